"""The finishing guard (``unfinished_penalty``): at the final choice an answer cut short by the
token cap or a budget loses reward, so a finished answer wins unless the cut one leads by more."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from langchain_darwin.config import DarwinConfig
from langchain_darwin.graph.builder import compiled_graph, recursion_limit
from langchain_darwin.graph.nodes import _guarded_scores, cut_short
from langchain_darwin.graph.state import Beam, DarwinContext, new_beam
from langchain_darwin.rewards import CallableReward
from tests.fake_engine import FakeEngine
from tests.unit_tests.test_fake_engine import CONVERSATION, rare_share, search

ENGINE = FakeEngine()
CONTEXT = DarwinContext(ENGINE, CallableReward(lambda c, a: 0.0), ENGINE.new_session())


def beam(text: str, reward: float | None = 1.0, ended: bool = True) -> Beam:
    b = new_beam([], 0)
    b.update(answer=ENGINE.tokenize(text), reward=reward, finished=True, ended=ended, scored=0)
    return b


def final_beams(**knobs: Any) -> tuple[list[Beam], str | None]:
    """The beams as the last cycle leaves them (the graph's output keeps only the answer),
    and what stopped the search early, if anything."""
    config = DarwinConfig(max_tokens=24, replacement_period=8, seed=0, **knobs)
    state: dict[str, Any] = {}
    for update in compiled_graph().stream(
        {"conversation": CONVERSATION, "config": config.model_dump()},
        {"recursion_limit": recursion_limit(config)},
        context=DarwinContext(ENGINE, CallableReward(rare_share), ENGINE.new_session()),
        stream_mode="updates",
    ):
        for change in update.values():
            state.update(change or {})
    return state["beams"], state.get("stopped")


def test_an_answer_is_cut_unless_it_ended_by_itself() -> None:
    beams, stopped = final_beams()
    assert stopped is None
    ended = [not cut_short(b) for b in beams]
    assert ended == [len(b["answer"]) < 24 for b in beams]  # EOS, or the cap cut it
    assert 0 < sum(ended) < len(beams)  # both kinds occur, so the check can fail
    beams, _ = final_beams(stop=["e"])  # a stop string ends an answer: not cut
    assert not any(cut_short(b) for b in beams)
    # a budget stops the search mid-answer: its beams are finished, and cut
    beams, stopped = final_beams(max_generated_tokens=30)
    assert stopped == "max_generated_tokens"
    short = [b for b in beams if len(b["answer"]) < 24]
    assert all(b["finished"] for b in beams) and any(cut_short(b) for b in short)


def scores(penalty: float) -> dict[str, float]:
    candidates = {
        "seed": beam("a cut answer that ran on", reward=1.5, ended=False),
        "beam0": beam("done.", reward=1.0),
        "beam1": beam("unscored and cut", reward=None, ended=False),
    }
    cfg = DarwinConfig(unfinished_penalty=penalty)
    out, usage = _guarded_scores({"seed": candidates["seed"]}, CONTEXT, cfg, candidates)  # type: ignore[arg-type]
    assert usage == {}  # the guard reads nothing: it costs no model call
    return out


def test_the_penalty_is_charged_to_cut_answers_only() -> None:
    assert scores(0.0) == {"seed": 1.5, "beam0": 1.0}  # never scored: never a candidate
    assert scores(0.3) == {"seed": 1.2, "beam0": 1.0}  # the cut answer still leads
    assert scores(1.0) == {"seed": 0.5, "beam0": 1.0}  # the finished answer now wins


def test_a_guarded_search_keeps_its_beams_and_prefers_finished_answers() -> None:
    cap, cut_plain, cut_guarded, changed = 24, 0, 0, 0
    for seed in range(12):
        plain = search(seed=seed)
        guarded = search(seed=seed, unfinished_penalty=100.0)
        assert plain["period_scores"] == guarded["period_scores"]  # the search itself is unchanged
        assert guarded["final_reward"] <= plain["final_reward"]
        plain_cut = len(ENGINE.tokenize(plain["answer"])) >= cap
        guarded_cut = len(ENGINE.tokenize(guarded["answer"])) >= cap
        best = guarded["best"]
        assert best["score"] == pytest.approx(best["reward"] - 100.0 * guarded_cut)
        cut_plain += plain_cut
        cut_guarded += guarded_cut
        changed += guarded["answer"] != plain["answer"]
        if not plain_cut:  # a finished winner stays the winner
            assert guarded["answer"] == plain["answer"]
    assert changed > 0 and cut_guarded < cut_plain


def test_the_penalty_must_be_a_finite_non_negative_number() -> None:
    for bad in (-0.1, float("inf"), float("nan")):
        with pytest.raises(ValidationError, match="unfinished_penalty"):
            DarwinConfig(unfinished_penalty=bad)
    assert DarwinConfig.preset("paper").unfinished_penalty == 0.0
    assert DarwinConfig().unfinished_penalty == 0.0
