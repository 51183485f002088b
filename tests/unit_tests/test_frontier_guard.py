"""The consensus guard replayed on stored candidates (benchmarks/frontier_guard.py) picks
exactly what the graph picks with ``consensus_weight`` on: the report's numbers for the guard
are the library's."""

from __future__ import annotations

import types

import numpy as np
import pytest

from benchmarks.frontier import TimedReward, run_search
from benchmarks.frontier_guard import cycle_consensus, guard_pick, pool_guard_curve
from benchmarks.frontier_stats import expected_best
from langchain_darwin.rewards import CallableReward
from tests.fake_engine import FakeEngine
from tests.unit_tests.test_fake_engine import rare_share, search

QUESTION = {"id": 7, "prompt": "How do I boil an egg?"}
ARGS = types.SimpleNamespace(max_tokens=24, seed=0)


@pytest.mark.parametrize("mc", [1, 2])
def test_the_replayed_choice_is_the_graphs_at_every_weight(mc: int) -> None:
    reward = TimedReward(CallableReward(rare_share))
    record = run_search(FakeEngine(), reward, QUESTION, f"darwin:{mc}:1:8:cands", ARGS)
    cycles = record["candidates"]
    assert len(cycles) == mc and all(len(c) == 6 for c in cycles)  # seed answer + 5 beams
    agreement = [cycle_consensus(c) for c in cycles]
    assert guard_pick(cycles, agreement, 0.0)["answer"] == record["answer"]
    differs = 0
    for weight in (0.5, 2.0, 8.0):
        graph = search(seed=QUESTION["id"], iterations=mc, consensus_weight=weight)
        pick = guard_pick(cycles, agreement, weight)
        assert pick["answer"] == graph["answer"] and pick["reward"] == graph["final_reward"]
        differs += pick["answer"] != record["answer"]
    assert differs > 0  # some weight changes the choice, so the comparison can fail


def test_best_of_n_with_the_guard_off_is_plain_best_of_n() -> None:
    rewards = [0.3, 1.2, -0.5, 0.9, 2.0, 0.1]
    pool = {
        "qid": 3,
        "rewards": rewards,
        "held_out": [-float(i) for i in range(6)],
        "tokens": [10] * 6,
        "answers": ["a", "b", "c", "d", "e", "f"],
        "similarity": np.eye(6),
    }
    curve = pool_guard_curve(pool, 0.0)
    assert curve[-1]["reward"] == 2.0 and curve[-1]["held_out"] == -4.0
    for point in curve:  # Monte Carlo over subsets, against the exact expectation
        assert point["reward"] == pytest.approx(expected_best(rewards, point["n"]), abs=0.08)
    # with orthogonal answers the guard adds nothing, whatever its weight
    assert pool_guard_curve(pool, 4.0) == curve


def rule_table(steer: dict[float, float], held: dict[float, float]) -> dict:
    """Every budget alike: weight -> steering and held-out differences on three questions."""
    from benchmarks.frontier_guard import GUARD_WEIGHTS, GUARDED

    return {
        (w, k): {"steer": [steer[w] - 0.01, steer[w], steer[w] + 0.01], "held": [held[w]] * 3}
        for w in GUARD_WEIGHTS
        for k in GUARDED
    }


def test_the_rule_takes_the_smallest_weight_that_is_not_worse_and_still_steers() -> None:
    from benchmarks.frontier_guard import choose_weight, verdict

    steer = {0.0: 0.1, 0.5: 0.08, 1.0: 0.06, 2.0: 0.03, 4.0: -0.01}
    table = rule_table(steer, {0.0: -0.1, 0.5: -0.02, 1.0: 0.0, 2.0: 0.05, 4.0: 0.09})
    assert choose_weight(table) == 1.0
    assert verdict(table, 1.0) == "passes"
    assert verdict(table, 0.5) == "fails"  # held-out mean below zero
    assert verdict(table, 4.0) == "fails"  # steering mean below zero
    # no weight is not worse: the one whose worst held-out difference is highest, among
    # those that still steer above Best-of-N
    table = rule_table(steer, {0.0: -0.1, 0.5: -0.05, 1.0: -0.02, 2.0: -0.03, 4.0: 0.2})
    assert choose_weight(table) == 1.0


def test_a_guarded_default_reads_the_last_line_from_the_replayed_choice() -> None:
    from benchmarks.frontier_report import last_line

    pool = {"qid": 1, "half": "tune", "config": "bon", "rewards": [0.0, 1.0],
            "tokens": [100, 100], "ended": [True, True], "prefilled": 20, "decoded": 200,
            "wall_s": 2.0, "reward_s": 0.0}  # fmt: skip
    # Best-of-N at 200 tokens (N = 2) expects 1.0; the pick at weight 0 scores 1.5, and at
    # weight 1 the guard prefers the 1.2 answer the others agree with
    cycle = [
        {"answer": "s", "reward": 0.5},
        {"answer": "x", "reward": 1.5},
        {"answer": "y", "reward": 1.2},
    ]
    records = [pool] + [
        {
            "qid": 1,
            "half": "tune",
            "config": f"darwin:1:{k}:40:cands",
            "generated": 200,
            "candidates": [cycle],
            "consensus": [[0.1, 0.0, 0.6]],
            "final_reward": 1.5,  # what the search returned (the guard off)
            **{"prefilled": 0, "reward_answers": 3, "wall_s": 1.0, "reward_s": 0.0},
            **{"winner": "cycle 0 beam 0", "answer_ended": True},
        }
        for k in (1, 2, 4)
    ]
    assert "darwin_minus_bon@1x=0.5000" in last_line(records, consensus_weight=0.1)
    assert "darwin_minus_bon@4x=0.2000" in last_line(records, consensus_weight=1.0)
    assert last_line(records, consensus_weight=1.0).startswith("frontier n=1 ")


@pytest.mark.parametrize("mc", [1, 2])
def test_the_replayed_choice_is_the_graphs_at_every_unfinished_penalty(mc: int) -> None:
    reward = TimedReward(CallableReward(rare_share))
    differs = 0
    for qid in range(6):
        question = {**QUESTION, "id": qid}
        record = run_search(FakeEngine(), reward, question, f"darwin:{mc}:1:8:cands", ARGS)
        cycles = record["candidates"]
        none = [[None] * len(c) for c in cycles]
        for penalty in (0.01, 0.1, 100.0):
            graph = search(seed=qid, iterations=mc, unfinished_penalty=penalty)
            pick = guard_pick(cycles, none, 0.0, penalty, ARGS.max_tokens)
            assert pick["answer"] == graph["answer"] and pick["reward"] == graph["final_reward"]
            differs += pick["answer"] != record["answer"]
    assert differs > 0  # some penalty changes the choice, so the comparison can fail


def test_best_of_n_with_a_large_penalty_picks_the_best_finished_sample() -> None:
    pool = {
        "qid": 3,
        "rewards": [0.3, 1.2, 2.0, 0.9],
        "held_out": [0.0, -1.0, -2.0, -3.0],
        "tokens": [10] * 4,
        "ended": [True, True, False, False],
        "answers": ["a", "b", "c", "d"],
        "similarity": np.eye(4),
    }
    assert pool_guard_curve(pool, 0.0)[-1]["reward"] == 2.0  # off: the cut sample wins
    assert pool_guard_curve(pool, 0.0, 0.5)[-1]["reward"] == 2.0  # it leads by more
    assert pool_guard_curve(pool, 0.0, 10.0)[-1]["held_out"] == -1.0  # the best finished


def test_the_finishing_rule_takes_the_penalty_meeting_most_of_the_target() -> None:
    from benchmarks.frontier_guard import GUARDED, PENALTIES, choose_penalty

    def table(steer: dict[float, float], held: dict[float, float]) -> dict:
        return {
            (p, k): {"steer": [steer[p]], "held": [held[p]]} for p in PENALTIES for k in GUARDED
        }

    steer = dict(zip(PENALTIES, (0.1, 0.08, 0.05, 0.02, -0.01, -0.05), strict=True))
    held = dict(zip(PENALTIES, (-0.1, -0.05, 0.0, 0.01, 0.05, 0.1), strict=True))
    assert choose_penalty(table(steer, held)) == 0.25  # six of six, the smallest such
    held = dict.fromkeys(PENALTIES, -0.1)
    assert choose_penalty(table(steer, held)) == 0.0  # three of six everywhere: the smallest
