"""Reward models on real (tiny or embedded) weights: no mocks."""

from __future__ import annotations

import math

import pytest

from langchain_darwin.rewards import (
    RelevanceReward,
    default_reward,
)

EGG = [{"role": "user", "content": "How do I boil an egg?"}]
GOOD = (
    "Put the egg in a pot of cold water, bring it to a boil, then simmer for 9 minutes and "
    "cool it in cold water. Enjoy your egg!"
)
OFF_TOPIC = "The stock market closed slightly higher today after a quiet session."
RUDE = "Boil it, obviously. What a stupid question, figure it out yourself, idiot."
ANSWERS = ["Boil it.", GOOD, "", "Ten minutes in hot water, peel, salt, done. " * 3, RUDE]


# -- HF sequence-classifier reward (tiny random Llama) ----------------------------------------


@pytest.mark.embedded
def test_default_reward_ranks_good_above_off_topic_and_rude() -> None:
    good, off, rude, empty = default_reward().score(EGG, [GOOD, OFF_TOPIC, RUDE, ""])
    assert good > off and good > rude
    assert math.isfinite(empty) and empty < good


@pytest.mark.embedded
def test_relevance_uses_the_last_user_turn() -> None:
    conversation = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "How do I boil an egg?"},
    ]
    egg, france = RelevanceReward().score(conversation, [GOOD, "The capital of France is Paris."])
    assert egg > france
    earlier = conversation[:2]  # now the France question is the last user turn
    egg2, france2 = RelevanceReward().score(earlier, [GOOD, "The capital of France is Paris."])
    assert france2 > egg2
    with pytest.raises(ValueError, match="no user turn"):
        RelevanceReward().score([{"role": "system", "content": "hi"}], [GOOD])


@pytest.mark.embedded
def test_relevance_blank_answer_is_low_and_finite() -> None:
    scores = RelevanceReward().score(EGG, ["", "   ", GOOD])
    assert scores[:2] == [0.0, 0.0] and scores[2] > 0.5
