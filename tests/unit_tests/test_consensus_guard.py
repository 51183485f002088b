"""The consensus guard (``consensus_weight``): the final choice adds each candidate's mean
MiniLM cosine to the other candidates, so an answer unlike the rest must win by more."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from langchain_darwin.config import DarwinConfig
from langchain_darwin.graph.guard import consensus
from langchain_darwin.graph.nodes import _guarded_scores
from langchain_darwin.graph.state import DarwinContext, new_beam
from langchain_darwin.rewards import CallableReward
from tests.fake_engine import FakeEngine
from tests.unit_tests.test_fake_engine import search

VECTORS = {"a": [1.0, 0.0], "b": [1.0, 0.0], "c": [0.0, 1.0]}


def fixed_embed(texts: Sequence[str]) -> tuple[torch.Tensor, int]:
    return torch.tensor([VECTORS[t] for t in texts]), 7 * len(texts)


def test_consensus_is_the_mean_cosine_to_the_other_answers() -> None:
    values, positions = consensus({"x": "a", "y": "b", "z": "c", "e": " "}, fixed_embed)
    # the empty answer neither agrees nor counts as someone to agree with
    assert values == {"x": 0.5, "y": 0.5, "z": 0.0, "e": 0.0}
    assert positions == 21


def test_a_lone_answer_has_nothing_to_agree_with() -> None:
    assert consensus({"x": "a", "e": ""}, fixed_embed) == ({"x": 0.0, "e": 0.0}, 0)


EGG = (
    "Put the egg in boiling water for about nine minutes, then cool it in cold water.",
    "Boil water, lower the egg in gently and cook it nine to ten minutes for a firm yolk.",
    "Bring a pot of water to the boil, add the egg and let it cook for eight minutes.",
)
OFF_TOPIC = "The stock market closed higher on Friday as technology shares rallied."


def guarded_winner(weight: float) -> tuple[str, dict[str, Any]]:
    engine = FakeEngine()
    candidates = {}
    for i, (text, reward) in enumerate(zip((*EGG, OFF_TOPIC), (1.0, 1.1, 1.2, 1.5), strict=True)):
        beam = new_beam(engine.render([{"role": "user", "content": "How do I boil an egg?"}]), i)
        beam.update(answer=engine.tokenize(text), reward=reward, finished=True, scored=0)
        candidates[f"beam{i}"] = beam
    unscored = new_beam([], 4)  # never scored: not a candidate, and not someone to agree with
    candidates["beam4"] = unscored
    context = DarwinContext(engine, CallableReward(lambda c, a: 0.0), engine.new_session())
    config = DarwinConfig(consensus_weight=weight)
    scores, usage = _guarded_scores({"seed": unscored}, context, config, candidates)  # type: ignore[arg-type]
    return max(scores, key=scores.__getitem__), usage


def test_the_guard_passes_over_the_answer_the_others_disagree_with() -> None:
    winner, usage = guarded_winner(0.0)
    assert winner == "beam3" and usage == {}  # off: the off-topic answer's reward wins
    winner, usage = guarded_winner(2.0)
    assert winner in {"beam0", "beam1", "beam2"}
    assert usage["consensus"]["answers"] == 4 and usage["consensus"]["positions"] > 0


def test_a_guarded_search_keeps_its_candidates_and_changes_only_the_choice() -> None:
    changed = 0
    for seed in range(4):
        plain = search(seed=seed)
        guarded = search(seed=seed, consensus_weight=5.0)
        assert "consensus" not in plain["usage"]
        assert guarded["usage"]["consensus"]["answers"] == 6  # the seed answer and 5 beams
        assert plain["period_scores"] == guarded["period_scores"]
        assert guarded["final_reward"] <= plain["final_reward"]
        best = guarded["best"]
        assert 0 < best["score"] - best["reward"] <= 5.0
        changed += guarded["answer"] != plain["answer"]
    assert changed > 0


def test_the_paper_preset_keeps_the_guard_off() -> None:
    assert DarwinConfig.preset("paper", consensus_weight=1.0).consensus_weight == 1.0
    assert DarwinConfig.preset("paper").consensus_weight == 0.0
