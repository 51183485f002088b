"""The frontier's arithmetic (benchmarks/frontier_stats.py, frontier_store.py,
frontier_report.py, frontier_held_out.py): Best-of-N from one pool, the comparison at equal
generated tokens, and the diagnosis lines the report prints."""

from __future__ import annotations

import itertools
import statistics

import pytest

from benchmarks.frontier_report import config_rows, held_out_table, last_line, prefix_vs_final
from benchmarks.frontier_stats import bon_at, bon_curve, expected_best, spearman
from benchmarks.frontier_store import attach_answer_scores, join_pools

POOL = [0.3, 1.2, -0.5, 0.9, 0.9, 2.0, 0.1]


@pytest.mark.parametrize("n", range(1, len(POOL) + 1))
def test_expected_best_is_the_mean_best_over_every_subset(n: int) -> None:
    brute = statistics.fmean(max(s) for s in itertools.combinations(POOL, n))
    assert expected_best(POOL, n) == pytest.approx(brute)


def pool_record(qid: int, rewards: list[float]) -> dict[str, object]:
    k = len(rewards)
    return {"qid": qid, "half": "tune", "config": "bon", "rewards": rewards,
            "tokens": [100] * k, "ended": [False] * k, "prefilled": 20 * k, "decoded": 100 * k,
            "wall_s": float(k), "reward_s": 0.0}  # fmt: skip


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
    # 2x: one cycle of nb = 2 is read, not two cycles of nb = 1
    for config, reward in (("darwin:2:1:40", 9.0), ("darwin:1:2:40", 3.0)):
        records += [{**r, "config": config, "final_reward": reward, "generated": 1000}
                    for r in records if r["config"] == "darwin:1:1:40"]  # fmt: skip
    gain = 3.0 - expected_best(POOL, 7)  # 1000 tokens: 7 samples of the pool
    assert f"darwin_minus_bon@2x={gain:.4f}" in last_line(records)  # type: ignore[arg-type]


HELD = [5.0, -1.0, 2.0, 0.5, 3.0, 7.0, 1.0]  # a held-out score per pool sample


@pytest.mark.parametrize("n", range(1, len(POOL) + 1))
def test_expected_pick_is_the_mean_held_out_score_of_the_best_over_every_subset(n: int) -> None:
    rewards = [0.3, 1.2, -0.5, 0.9, 0.8, 2.0, 0.1]  # no ties: the pick is the argmax
    picks = [max(s, key=lambda i: rewards[i]) for s in itertools.combinations(range(7), n)]
    brute = statistics.fmean(HELD[i] for i in picks)
    assert expected_best(rewards, n, HELD) == pytest.approx(brute)


def test_pools_of_two_runs_join_with_their_answers_aligned() -> None:
    old = {**pool_record(1, [0.1, 0.2]), "pool_start": 0}  # stored before answers were
    new = {**pool_record(1, [0.3]), "pool_start": 2, "answers": ["c"]}
    for rows in ([old, new], [new, old]):
        (pool,) = join_pools([dict(r) for r in rows])  # type: ignore[arg-type]
        assert pool["rewards"] == [0.1, 0.2, 0.3] and pool["answers"] == [None, None, "c"]
        attach_answer_scores([pool], {"held_out": {"1": {}}, "prefix": {}})
        assert "held_out" not in pool  # answers missing: no held-out score, and no crash


def test_held_out_scores_are_read_at_the_searchs_own_tokens() -> None:
    from benchmarks.frontier_store import answer_key

    answers = [f"answer {i}" for i in range(len(POOL))]
    pool = {**pool_record(1, POOL), "answers": answers}
    search = {"qid": 1, "half": "tune", "config": "darwin:1:1:40", "final_reward": 2.5,
              "generated": 200, "answer": "the search's"}  # fmt: skip
    held = {answer_key(a): h for a, h in zip(answers, HELD, strict=True)}
    held[answer_key("the search's")] = 4.0
    records: list[dict[str, object]] = [pool, search]
    cuts = {answer_key(a): [0.5, float(i)] for i, a in enumerate(answers[:3])}  # first 3 cut
    scores = {"held_out": {"1": held}, "prefix": {"1": cuts}}
    attach_answer_scores(records, scores)  # type: ignore[arg-type]
    assert pool["held_out"] == HELD and search["held_out"] == 4.0
    assert pool["prefix"] == [[0.5, 0.0], [0.5, 1.0], [0.5, 2.0]]  # the pool's cut head
    table = "\n".join(held_out_table(records, None))  # type: ignore[arg-type]
    best2 = expected_best(POOL, 2, HELD)  # 200 tokens: Best-of-2's pick
    assert f"| darwin:1:1:40 | 1 | 4.000 | {4.0 - best2:.3f} | 2.500 |" in table
    # reward 2.5 is above the whole pool's best (2.0): read at Best-of-7, flagged
    assert f"| 2.500 | {4.0 - expected_best(POOL, 7, HELD):.3f} (1 past the pool) |" in table
    # on the reward axis Best-of-N is read where its expected best equals the given reward
    curve = bon_curve({**pool, "held_out": HELD})  # type: ignore[arg-type]
    a, b = curve[1], curve[2]
    middle = (a["reward"] + b["reward"]) / 2
    picked, past = bon_at(curve, middle, "held_out", axis="reward")
    assert picked == pytest.approx((a["held_out"] + b["held_out"]) / 2) and not past


def test_prefix_spearman_counts_an_ended_sample_at_its_final_reward() -> None:
    prefix = [[1.0, 2.0, 3.0], [3.0, 1.0], [2.0, 4.0, 1.0]]  # cuts..., final
    lines = prefix_vs_final([{"config": "bon", "qid": 1, "prefix": prefix}])
    # after 40 tokens: partial [1, 3, 2] vs final [3, 1, 1]; after 80: [2, 1, 4] (the second
    # sample ended: its final 1) vs the same finals
    first = spearman([1.0, 3.0, 2.0], [3.0, 1.0, 1.0])
    second = spearman([2.0, 1.0, 4.0], [3.0, 1.0, 1.0])
    assert f"after 40 tokens: {first:.3f} over 1 questions, 100% still going" in lines[1]
    assert f"after 80 tokens: {second:.3f} over 1 questions, 67% still going" in lines[2]


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
    assert search["generated"] > pool["tokens"][0] and search["reward_answers"] >= 6
    (cycle,) = search["period_scores"]  # MC = 1: one cycle, every beam's reward per period
    assert len(cycle) == 48 // 16 and all(len(rewards) == 5 for rewards in cycle)
    records = [
        {"qid": 81, "half": "tune", "config": "bon", **pool},
        {"qid": 81, "half": "tune", "config": "darwin:1:1:16", **search},
    ]
    (row,) = config_rows(records, None)  # type: ignore[arg-type]
    assert row["n"] == 1 and row["reward"][0] == search["final_reward"]
    assert last_line(records) == "frontier n=0 " + " ".join(  # no config at m=40
        [f"darwin_minus_bon@{k}x=na" for k in (1, 2, 4)] + [f"lo@{k}x=na" for k in (1, 2, 4)]
    )


def test_the_shadow_continues_each_replaced_slot_from_where_it_was_overwritten() -> None:
    """benchmarks/frontier_shadow.py on the fake engine: every replacement yields a shadow that
    starts from the overwritten slot's own answer, runs to the length limit (or EOS), and is
    scored by the steering reward; the slot's final reward is the search's last one."""
    import argparse

    from benchmarks.frontier import TimedReward
    from benchmarks.frontier_shadow import shadow_search, summary
    from langchain_darwin.rewards import CallableReward
    from tests.fake_engine import FakeEngine

    reward = TimedReward(CallableReward(lambda _c, answer: answer.count("e")))
    args = argparse.Namespace(max_tokens=48, seed=0)
    question = {"id": 81, "prompt": "Write a poem about the sea.", "half": "tune"}
    record = shadow_search(FakeEngine(), reward, question, "darwin:1:1:16:softmax", args)
    assert record["events"], "five beams over three periods: some slot is overwritten"
    assert len(record["slot_finals"]) == 5
    assert record["final_reward"] >= max(record["slot_finals"])
    for event in record["events"]:
        # periods count from 1 (decode_chunk before score); the last one replaces nothing
        assert event["slot"] != event["donor"] and 1 <= event["period"] < 48 // 16
        assert event["shadow_answer"].startswith(event["slot_answer"])
        assert len(event["shadow_answer"]) > len(event["slot_answer"])
        assert event["shadow_final"] == float(event["shadow_answer"].count("e"))
        assert event["slot_final"] == record["slot_finals"][event["slot"]]
    (head, best, *periods) = summary([record])
    assert head.startswith(f"shadow: {len(record['events'])} replacements in 1 of 1 searches")
    assert best.startswith("  the search's best beam minus the best without replacement")
    assert len(periods) == len({e["period"] for e in record["events"]})
    with pytest.raises(SystemExit, match="MC = 1"):
        shadow_search(FakeEngine(), reward, question, "darwin:2:1:16", args)


def test_held_out_links_compare_each_selection_with_its_pools_mean() -> None:
    from benchmarks.frontier_held_out import held_out_links

    pool = {**pool_record(1, POOL), "held_out": HELD}
    search = {"qid": 1, "config": "darwin:1:1:40", "held_out": 4.0,
              "summary": {"kind": "rewrite"}}  # fmt: skip
    lines = held_out_links([pool, search])
    rho = spearman(POOL, HELD)
    assert rho is not None and f"Spearman within a question's pool {rho:.3f}" in lines[0]
    mean = statistics.fmean(HELD)
    assert f"Best-of-5's pick: {expected_best(POOL, 5, HELD) - mean:.3f}" in lines[1]
    assert not any("Best-of-16" in line for line in lines)  # a pool of 7
    assert f"darwin winner under rewrite: {4.0 - mean:.3f} (1 searches)" in lines[-1]


def test_knob_pairs_set_each_variant_against_the_defaults_by_question_and_half() -> None:
    from benchmarks.frontier_report import knob_pairs

    records = [
        {"qid": q, "half": half, "config": config, "final_reward": reward, "held_out": held}
        for q, half in ((1, "tune"), (2, "tune"), (3, "held_out"))
        for config, reward, held in (
            ("darwin:1:1:40", 1.0, -2.0),
            ("darwin:1:1:40:topk", 1.0 + q / 10, -2.0 - q),
        )
    ]
    (title, line) = knob_pairs(records)
    assert title.startswith("(4)") and line.startswith(
        "    darwin:1:1:40:topk minus darwin:1:1:40:"
    )
    assert "tune (2): steering 0.150 [0.100, 0.200], held-out -1.500 [-2.000, -1.000] (2)" in line
    assert "held_out (1): steering 0.300, held-out -3.000 (1)" in line  # one: no interval


def test_period_pairs_set_each_longer_period_against_m40_with_the_same_other_settings() -> None:
    from benchmarks.frontier_report import period_pairs

    records = [
        {"qid": q, "half": "tune", "config": config, "final_reward": reward, "held_out": -2.0}
        for q in (1, 2)
        for config, reward in (
            ("darwin:1:2:40:softmax", 1.0),
            ("darwin:1:2:80:softmax", 1.0 - q / 10),
            ("darwin:1:2:40", 5.0),  # another variant: not the reference
            ("sample_replace:1:2:80", 9.0),  # no m = 40 twin: no line
        )
    ]
    (title, line) = period_pairs(records)
    assert title.startswith("(4) replacement period")
    assert line.startswith("    darwin:1:2:80:softmax minus darwin:1:2:40:softmax: tune (2): ")
    assert "steering -0.150 [-0.200, -0.100], held-out 0.000 [0.000, 0.000] (2)" in line


def test_beams_by_kind_set_each_beam_against_its_cycles_mean_per_search() -> None:
    from benchmarks.frontier_report import beams_by_kind

    def beams(*pairs: tuple[str, float | None]) -> list[dict[str, object]]:
        return [{"kind": k, "reward": r} for k, r in pairs]

    records = [
        {"qid": 1, "config": "mutate_best_of_n:1:1:40", "cycle_beams": [
            beams(("rewrite", 1.0), ("rewrite", 2.0), ("fallback", 3.0), ("fallback", None)),
        ]},
        {"qid": 2, "config": "mutate_best_of_n:2:1:40", "cycle_beams": [
            beams(("rewrite", 4.0), ("fallback", 2.0)),
            beams(("fallback", 1.0), ("fallback", 5.0)),  # one kind: left out
        ]},
        {"qid": 2, "config": "mutate_best_of_n:1:1:40", "cycle_beams": [  # same question
            beams(("rewrite", 0.0), ("fallback", 2.0)),
        ]},
        {"qid": 3, "config": "darwin:1:1:40", "period_scores": []},  # an old record: none kept
    ]  # fmt: skip
    (title, line) = beams_by_kind(records)
    assert title.startswith("(c) final reward of beams by instruction kind")
    # question 1: mean 2.0, rewrite -0.5, fallback +1.0; question 2, two searches averaged:
    # rewrite (+1 - 1) / 2 = 0, fallback (-1 + 1) / 2 = 0
    assert line == (
        "    mutate_best_of_n: fallback 0.500 [0.000, 1.000] (2); "
        "rewrite -0.250 [-0.500, 0.000] (2)"
    )


def test_against_darwin_pairs_each_setting_with_default_darwin_of_as_many_beams() -> None:
    from benchmarks.frontier_report import against_darwin

    records = [
        {"qid": q, "half": "held_out", "config": config, "final_reward": reward}
        for q in (1, 2, 3)
        for config, reward in (
            ("darwin:1:2:40:softmax", 1.0),
            ("darwin:2:1:40:softmax", 1.0 - q / 10),  # MC = 2: as many beams as nb = 2
            ("sample_replace:1:2:40:softmax", 1.0 + q / 10),
            ("darwin:1:2:40:topk", 0.0),  # DARWIN's own cell: knob_pairs' job
            ("darwin:1:2:80:softmax", 0.0),  # another period: period_pairs' job
            ("mutate_best_of_n:1:1:40", 0.0),  # no default DARWIN at nb = 1: no line
        )
    ]
    (title, *lines) = against_darwin(records)
    assert title.startswith("(4) each setting against default DARWIN")
    assert lines == [
        "    darwin:2:1:40:softmax minus darwin:1:2:40:softmax: "
        "held_out (3): steering -0.200 [-0.300, -0.100]",
        "    sample_replace:1:2:40:softmax minus darwin:1:2:40:softmax: "
        "held_out (3): steering 0.200 [0.100, 0.300]",
    ]


def test_without_replacement_each_slot_ends_as_its_first_shadow() -> None:
    from benchmarks.frontier_shadow import counterfactual_gain

    record = {
        "slot_finals": [3.0, 5.0, 1.0],
        "events": [  # slot 1 replaced twice: its first shadow (period 0) is the unreplaced one
            {"period": 2, "slot": 1, "shadow_final": 6.0},
            {"period": 0, "slot": 1, "shadow_final": 2.0},
            {"period": 1, "slot": 2, "shadow_final": 4.0},
        ],
    }
    assert counterfactual_gain(record) == 5.0 - 4.0


def test_overrates_reads_each_score_against_length_and_ending_within_a_pool() -> None:
    from benchmarks.frontier_held_out import overrates

    # steering prefers the long, cut answers; the held-out score the finished ones
    pool = {**pool_record(1, [1.0, 2.0, 3.0, 0.5]), "held_out": [-1.0, -3.0, -2.0, 0.0]}
    pool |= {"tokens": [50, 256, 256, 20], "ended": [True, False, False, True]}
    title, steering, held = overrates([pool])
    assert title.startswith("(g)")
    rho_len = spearman([1.0, 2.0, 3.0, 0.5], [50, 256, 256, 20])
    assert rho_len is not None and f"with tokens {rho_len:.3f} (1 q)" in steering
    assert "with ending on EOS -0.894" in steering  # ranks of (1, 2, 3, 0.5) against ended
    assert steering.endswith(f"ended minus cut {0.75 - 2.5:.3f} (1 q)")
    assert held.startswith("    held-out score") and held.endswith(f"{-0.5 - -2.5:.3f} (1 q)")
    assert overrates([pool_record(2, POOL)]) == []  # no held-out scores: nothing to read


def test_best_of_n_rows_give_the_share_of_picks_that_ended_not_of_samples() -> None:
    from benchmarks.frontier_report import bon_rows

    pool = {**pool_record(1, [1.0, 2.0, 3.0]), "ended": [True, True, False]}
    rows = bon_rows([pool], None, (1, 2, 3))
    # the samples' share is 2/3 at every N; the best of N ends less often as N grows
    assert [row.rsplit("|", 2)[1].strip() for row in rows] == [
        "0.67 (pick)",
        "0.33 (pick)",
        "0.00 (pick)",
    ]


def test_agreement_link_ranks_each_questions_loss_against_its_rewards_agreement() -> None:
    from benchmarks.frontier_held_out import agreement_link

    records = []
    for qid in range(6):
        # question qid: the reward agrees with the held-out score more as qid grows, and the
        # search's held-out loss shrinks with it (its steering gain does not move)
        held = [r * (qid - 2.5) + 0.1 * i for i, r in enumerate(POOL)]
        pool = {**pool_record(qid, POOL), "held_out": held}
        curve = bon_curve(pool)  # type: ignore[arg-type]
        at = 100
        records += [pool] + [
            {
                "qid": qid,
                "config": f"darwin:1:{k}:40:softmax",
                "generated": at,
                "final_reward": bon_at(curve, at)[0] + 0.1,
                "held_out": bon_at(curve, at, "held_out")[0] + 0.05 * qid - 0.2,
            }  # fmt: skip
            for k in (1, 2, 4)
        ]
    lines = agreement_link(records)
    assert "(6 questions" in lines[0]
    link = float(lines[1].split("Spearman with rho_q ")[1].split()[0])
    assert link > 0.9  # the loss shrinks as the reward agrees more
    assert "(3 q), where rho_q <= 0 -0.150" in lines[1]  # mean of qid 0, 1, 2
    # the same gain everywhere: nothing to rank, and said so
    assert (
        "steering minus Best-of-N: Spearman with rho_q none (one of the two is constant)"
        in (lines[2])
    )
    assert "where rho_q > 0 0.100" in lines[2]


def test_kind_against_bon_reads_each_answer_against_best_of_n_at_its_own_tokens() -> None:
    from benchmarks.frontier_held_out import kind_against_bon

    pool = {**pool_record(1, POOL), "held_out": HELD}
    curve = bon_curve(pool)  # type: ignore[arg-type]
    search = {"qid": 1, "config": "darwin:1:1:40:softmax", "generated": 250,
              "final_reward": 3.0, "held_out": 4.0, "summary": {"kind": "rewrite"}}  # fmt: skip
    lines = kind_against_bon([pool, search])
    held = 4.0 - bon_at(curve, 250, "held_out")[0]
    steer = 3.0 - bon_at(curve, 250)[0]
    assert lines[1] == (
        f"    darwin winner under rewrite (1 searches): held-out {held:.3f}, steering {steer:.3f}"
    )


def test_rewrite_drift_ranks_each_rewrites_similarity_against_its_held_out_loss() -> None:
    import numpy as np

    from benchmarks.frontier_held_out import rewrite_drift

    qid = 81
    pool = {**pool_record(qid, POOL), "held_out": HELD}
    curve = bon_curve(pool)  # type: ignore[arg-type]
    base = bon_at(curve, 100, "held_out")[0]
    # rewrite i sits at cosine 0.6 + 0.1 i from the question, and loses less as it nears it
    searches = [
        {"qid": qid, "config": "darwin:1:1:40:softmax", "generated": 100, "final_reward": 1.0,
         "held_out": base - 0.4 + 0.1 * i, "summary": {"kind": "rewrite", "instruction": f"r{i}"}}
        for i in range(4)
    ]  # fmt: skip
    searches.append({**searches[0], "summary": {"kind": "fallback", "instruction": "q"}})

    def embed(texts: list[str]) -> np.ndarray:
        angle = [np.arccos(0.6 + 0.1 * int(t[1])) if t.startswith("r") else 0.0 for t in texts]
        return np.stack([np.cos(angle), np.sin(angle)], axis=1)

    lines = rewrite_drift([pool, *searches], embed, {qid: "the question"})
    assert "answers under a rewrite (4)" in lines[0]  # the fallback is not a rewrite
    assert "with the held-out loss 1.000" in lines[0]
    assert "cosine >= 0.85: held-out -0.100 (1)" in lines[0]
