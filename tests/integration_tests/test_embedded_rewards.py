"""Reward models on real (tiny or embedded) weights: no mocks."""

from __future__ import annotations

import math
import random

import pytest

from langchain_darwin.rewards import (
    RelevanceReward,
    RewardModel,
    ToneReward,
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


@pytest.mark.embedded
def test_windowed_relevance_reads_every_part_of_a_long_answer() -> None:
    """One capped cosine of a whole answer is at the cap after its first on-topic sentences, so
    an answer that drifts off topic later loses little; the mean over 40-word windows docks
    the drifting part in full."""
    on_topic = GOOD + " " + GOOD.replace("9 minutes", "ten minutes") + " " + GOOD
    drifting = GOOD + " " + GOOD + " " + " ".join([OFF_TOPIC] * 2)
    whole = RelevanceReward(ceiling=0.6)
    windowed = RelevanceReward(ceiling=0.6, window_words=40)
    whole_gap = whole.score(EGG, [on_topic])[0] - whole.score(EGG, [drifting])[0]
    stays, drifts, blank = windowed.score(EGG, [on_topic, drifting, "  "])
    assert stays - drifts > 2 * whole_gap and blank == 0.0
    assert windowed._windows(" ".join(["w"] * 90)) == [" ".join(["w"] * n) for n in (40, 50)]
    assert windowed._windows(" ".join(["w"] * 100 + ["x"] * 20))[-1].endswith("x")
    assert len(windowed._windows(" ".join(["w"] * 100 + ["x"] * 20))) == 3
    assert windowed._windows("short answer") == ["short answer"]
    from langchain_darwin.inprocess.default_reward import _load_minilm

    used = windowed.score_with_usage(EGG, [on_topic, "  "])
    tokenizer = _load_minilm()[0]  # charged: the instruction and every window, as MiniLM read
    read = [EGG[0]["content"], *windowed._windows(on_topic)]  # them (a blank answer: nothing)
    expected = sum(len(tokenizer(t, truncation=True, max_length=256)["input_ids"]) for t in read)
    assert used.scores[0] == stays and used.positions == expected
    with pytest.raises(ValueError, match="window_words"):
        RelevanceReward(window_words=0)


@pytest.mark.embedded
def test_default_reward_sees_past_the_first_75_words() -> None:
    """Two answers that share their first 75 words and differ after them only in order (the
    same words, fluent or shuffled): the default that reads the whole answer prefers the fluent
    one, the one that reads a bounded start cannot tell them apart."""
    start = " ".join(" ".join([GOOD] * 4).split()[:75])
    words = GOOD.split()
    random.Random(0).shuffle(words)
    fluent, shuffled = f"{start} {GOOD}", f"{start} {' '.join(words)}"
    first, second = default_reward().score(EGG, [fluent, shuffled])
    assert first > second
    old = default_reward(whole_answer=False).score(EGG, [fluent, shuffled])
    assert old[0] == pytest.approx(old[1], abs=1e-6)


# -- the default cannot be won by a non-answer (issue 13) -------------------------------------

#: Hand-written questions with real answers; each answer meets the five rivals of the reward
#: development set (benchmarks/reward_devset.py), written here by hand.
CASES = {
    "How do I boil an egg?": (
        "Put the eggs in a saucepan and cover them with cold water by about an inch. Bring the "
        "water to a boil over high heat, then lower the heat and simmer: 6 minutes for a runny "
        "yolk, 9 to 10 minutes for a firm one. Move the eggs to a bowl of ice water for a few "
        "minutes so they stop cooking and peel more easily."
    ),
    "Why is the sky blue?": (
        "Sunlight contains every colour. When it passes through the atmosphere, nitrogen and "
        "oxygen molecules scatter short wavelengths much more strongly than long ones (Rayleigh "
        "scattering, roughly proportional to one over the wavelength to the fourth power). Blue "
        "light is therefore scattered across the whole sky and reaches our eyes from every "
        "direction, while at sunset the long path through air removes the blue and leaves red."
    ),
    "What can I do to sleep better at night?": (
        "Keep a regular schedule, going to bed and getting up at the same time every day, even "
        "on weekends. Avoid caffeine after lunch and heavy meals or alcohol late in the evening. "
        "Keep the bedroom dark, quiet and cool, and put screens away an hour before bed. Regular "
        "exercise helps, and if worries keep you awake, writing them down can clear your head."
    ),
    "How can I make my Python script run faster?": (
        "First measure where the time goes with cProfile or line_profiler; most scripts spend it "
        "in a few lines. Then use better algorithms and data structures, such as sets for "
        "membership tests, move heavy loops into NumPy or pandas vectorised operations, cache "
        "repeated results with functools.lru_cache, and for CPU-bound work use multiprocessing "
        "or a compiled extension like Cython or Numba."
    ),
}
CHEER = "{q} Great question! I'm so happy to help you with this, and I hope you have a lovely day!"
INSULT = " Honestly, only an idiot would need to ask something this stupid."


def _rivals(question: str, answer: str, other: str) -> dict[str, str]:
    words = answer.split()
    return {
        "restate": CHEER.format(q=question),
        "issue 13's demo answer": "Boil an egg, no? The perfect way to prepare a perfectly "
        "cooked egg."
        if "egg" in question
        else f"{question.rstrip('?')}, no? The perfect way to get a perfect answer.",
        "stub": " ".join(words[:8]),
        "other": other,
        "insult": answer + INSULT,
        "shuffled": " ".join(random.Random(0).sample(words, len(words))),
    }


def _losses(reward: RewardModel) -> list[tuple[str, str]]:
    """(question, rival) pairs where the real answer does not score strictly higher."""
    questions = list(CASES)
    lost = []
    for k, question in enumerate(questions):
        answer = CASES[question]
        rivals = _rivals(question, answer, CASES[questions[(k + 1) % len(questions)]])
        scores = reward.score([{"role": "user", "content": question}], [answer, *rivals.values()])
        lost += [
            (question, kind) for kind, s in zip(rivals, scores[1:], strict=True) if s >= scores[0]
        ]
    return lost


@pytest.mark.embedded
def test_default_reward_ranks_a_real_answer_above_every_non_answer() -> None:
    assert _losses(default_reward()) == []


@pytest.mark.embedded
def test_these_cases_beat_the_old_default() -> None:
    """The cases are adversarial: the pre-issue-13 default (relevance + 0.5 * VADER tone)
    ranks some non-answers above the real answer."""
    old = RelevanceReward() + 0.5 * ToneReward()
    assert len(_losses(old)) >= 4
