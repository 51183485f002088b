"""The frontier's arithmetic (benchmarks/frontier_report.py): Best-of-N from one pool and
the comparison at equal generated tokens."""

from __future__ import annotations

import itertools
import statistics

import pytest

from benchmarks.frontier_report import bon_at, bon_curve, expected_best, last_line, spearman

POOL = [0.3, 1.2, -0.5, 0.9, 0.9, 2.0, 0.1]


@pytest.mark.parametrize("n", range(1, len(POOL) + 1))
def test_expected_best_is_the_mean_best_over_every_subset(n: int) -> None:
    brute = statistics.fmean(max(s) for s in itertools.combinations(POOL, n))
    assert expected_best(POOL, n) == pytest.approx(brute)


def pool_record(qid: int, rewards: list[float]) -> dict[str, object]:
    k = len(rewards)
    return {"qid": qid, "half": "tune", "config": "bon", "rewards": rewards,
            "tokens": [100] * k, "ended": [False] * k, "prefilled": 20 * k, "decoded": 100 * k,
            "wall_s": float(k)}  # fmt: skip


def test_best_of_n_is_read_at_equal_generated_tokens() -> None:
    curve = bon_curve(pool_record(1, POOL))  # type: ignore[arg-type]
    assert [p["generated"] for p in curve[:3]] == [100, 200, 300]
    assert bon_at(curve, 100) == (curve[0]["reward"], False)
    mid, clamped = bon_at(curve, 250)
    assert mid == pytest.approx((curve[1]["reward"] + curve[2]["reward"]) / 2) and not clamped
    assert bon_at(curve, 10_000) == (curve[-1]["reward"], True)


def test_the_last_line_pairs_darwin_with_best_of_n_at_its_own_tokens() -> None:
    records = [pool_record(q, POOL) for q in (1, 2)]
    for q, reward in ((1, 2.5), (2, 1.5)):
        records.append({"qid": q, "half": "tune", "config": "darwin:1:1:40",
                        "final_reward": reward, "generated": 500, "prefilled": 0,
                        "reward_answers": 30, "wall_s": 1.0, "reward_s": 0.5, "winner": "seed",
                        "answer_ended": True})  # fmt: skip
    line = last_line(records)  # type: ignore[arg-type]
    gain = 2.0 - expected_best(POOL, 5)
    assert line.startswith("frontier n=2 ") and f"darwin_minus_bon@1x={gain:.4f}" in line
    assert "darwin_minus_bon@2x=na" in line and "lo@1x=" in line


def test_spearman() -> None:
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_the_frontier_records_a_pool_and_a_search_the_report_reads() -> None:
    """benchmarks/frontier.py end to end on the fake engine: the pool and the search records it
    writes (rewards through its timed, locked reward) are what the report's last line reads."""
    import argparse

    from benchmarks.frontier import TimedReward, run_pool, run_search
    from langchain_darwin.rewards import CallableReward
    from tests.fake_engine import FakeEngine

    engine = FakeEngine()
    reward = TimedReward(CallableReward(lambda _c, answer: answer.count("e")))
    args = argparse.Namespace(pool=6, max_tokens=48, seed=0)
    question = {"id": 81, "prompt": "Write a poem about the sea.", "half": "tune"}
    pool = run_pool(engine, reward, question, args)
    assert len(pool["rewards"]) == len(pool["answers"]) == 6
    assert pool["rewards"] == [float(a.count("e")) for a in pool["answers"]]
    search = run_search(engine, reward, question, "darwin:1:1:16", args)
    assert search["final_reward"] == float(search["answer"].count("e"))
    assert search["generated"] > pool["tokens"][0] and search["reward_s"] >= 0
    records = [
        {"qid": 81, "half": "tune", "config": "bon", **pool},
        {"qid": 81, "half": "tune", "config": "darwin:1:1:16", **search},
    ]
    assert last_line(records).startswith("frontier n=")
