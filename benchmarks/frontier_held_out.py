"""The frontier's diagnosis of the held-out score (issue 18 item 3, report (f) to (g)): why a
search can win on the reward it steers by and lose on the held-out score. How the two scores
rank a question's plain samples, what each selection's pick loses against its pool, where the
default's loss sits (by who wrote the answer, by how far a rewrite drifts, by how much the
reward agrees with the judge on that question), and what each score rewards besides quality."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.frontier_stats import (
    BOOT,
    bon_at,
    bon_curve,
    expected_best,
    fmt_ci,
    mean_ci,
    spearman,
)


def against_bon(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float, float]]:
    """Each search with a held-out score, and its answer minus Best-of-N's pick at the
    search's own generated tokens: (record, held-out difference, steering difference). Each
    pool's curve is built once."""
    pools = {r["qid"]: r for r in records if r["config"] == "bon" and "held_out" in r}
    curves = {q: bon_curve(p) for q, p in pools.items()}
    return [
        (
            r,
            r["held_out"] - bon_at(curves[r["qid"]], r["generated"], "held_out")[0],
            r["final_reward"] - bon_at(curves[r["qid"]], r["generated"])[0],
        )
        for r in records
        if r["config"] != "bon" and "held_out" in r and r["qid"] in curves
    ]


def held_out_links(records: list[dict[str, Any]]) -> list[str]:
    """Why a search can win on its steering reward and lose on the held-out score: how the
    two rank a question's plain samples (Spearman, per question), and the held-out score of
    what each selection returns against its question's pool mean: Best-of-N's pick, and each
    search's answer by the kind of instruction that wrote it."""
    pools = {r["qid"]: r for r in records if r["config"] == "bon" and "held_out" in r}
    if not pools:
        return []
    rhos = [
        rho for p in pools.values() if (rho := spearman(p["rewards"], p["held_out"])) is not None
    ]
    lines = [
        "(f) held-out score against the steering reward: Spearman within a question's pool "
        f"{fmt_ci(mean_ci(rhos))} over {len(rhos)} questions; held-out minus the pool's mean:"
    ]
    base = {q: statistics.fmean(p["held_out"]) for q, p in pools.items()}
    for n in (5, 16, 32):
        if all(len(p["rewards"]) >= n for p in pools.values()):
            gaps = [
                expected_best(p["rewards"], n, p["held_out"]) - base[q] for q, p in pools.items()
            ]
            lines.append(f"    Best-of-{n}'s pick: {fmt_ci(mean_ci(gaps))} ({len(gaps)} questions)")
    by_kind: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r["config"] != "bon" and "held_out" in r and r["qid"] in base:
            kind = (r.get("summary") or {}).get("kind") or "none"
            by_kind[f"{r['config'].split(':')[0]} winner under {kind}"].append(
                r["held_out"] - base[r["qid"]]
            )
    for label, gaps in sorted(by_kind.items()):
        lines.append(f"    {label}: {fmt_ci(mean_ci(gaps))} ({len(gaps)} searches)")
    return lines


def kind_against_bon(records: list[dict[str, Any]]) -> list[str]:
    """Each search's answer minus Best-of-N at its own generated tokens, on both scores, by
    method and by the kind of instruction that wrote the answer (every budget and setting of
    the grid; ``cands`` replicates excluded by the caller). The kind is the search's own
    outcome, not assigned: read it as where the held-out loss sits, not as its cause."""
    by: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"held": [], "steer": []})
    for r, held, steer in against_bon(records):
        kind = (r.get("summary") or {}).get("kind") or "none"
        label = f"{r['config'].split(':')[0]} winner under {kind}"
        by[label]["held"].append(held)
        by[label]["steer"].append(steer)
    if not by:
        return []
    lines = [
        "(f'') each search's answer minus Best-of-N at its own generated tokens, by who wrote it:"
    ]
    for label, d in sorted(by.items()):
        lines.append(
            f"    {label} ({len(d['held'])} searches): held-out {fmt_ci(mean_ci(d['held']))}, "
            f"steering {fmt_ci(mean_ci(d['steer']))}"
        )
    return lines


def rewrite_drift(
    records: list[dict[str, Any]],
    embed: Callable[[Sequence[str]], Any] | None = None,
    asked: dict[Any, str] | None = None,
) -> list[str]:
    """For answers written under a policy rewrite: does the held-out loss grow as the rewrite
    drifts from the question? Spearman of the MiniLM cosine (question, rewrite) with the
    answer's held-out score minus Best-of-N's at its own tokens. A strong link would argue
    for a floor on rewrites' similarity. ``embed``: texts -> unit rows (MiniLM when None);
    ``asked``: question id -> its text (MT-Bench's first turns when None)."""
    if embed is None:
        from langchain_darwin.inprocess.default_reward import embed as minilm

        embed = minilm
    if asked is None:
        from benchmarks.frontier_store import questions

        asked = {q["id"]: q["prompt"] for q in questions(80)}
    rows = [
        (asked[r["qid"]], r["summary"]["instruction"], held)
        for r, held, _ in against_bon(records)
        if (r.get("summary") or {}).get("kind") == "rewrite"
    ]
    if len(rows) < 4:
        return []
    a, b = embed([x[0] for x in rows]), embed([x[1] for x in rows])
    cosine = [float(v) for v in (a * b).sum(1)]
    held = [x[2] for x in rows]
    rho = spearman(cosine, held)
    near = [h for c, h in zip(cosine, held, strict=True) if c >= 0.85]
    return [
        f"    answers under a rewrite ({len(rows)}): Spearman of the rewrite's MiniLM cosine to "
        f"the question with the held-out loss {rho if rho is None else f'{rho:.3f}'}; "
        f"rewrites at cosine >= 0.85: held-out {fmt_ci(mean_ci(near))} ({len(near)})"
    ]


#: Today's default DARWIN at 1x, 2x and 4x Best-of-5's beams.
DEFAULTS = tuple(f"darwin:1:{k}:40:softmax" for k in (1, 2, 4))


def agreement_link(records: list[dict[str, Any]]) -> list[str]:
    """Whether the default's held-out loss follows its reward's agreement with the held-out
    score, question by question: rho_q (Spearman of the two over the question's pool) against
    d_q (the default's held-out score minus Best-of-N's at equal generated tokens, averaged
    over the budgets it ran at). If harder selection amplifies whatever agreement the reward
    has, d_q rises with rho_q, and a reward that agrees with the judge would turn the loss
    into a gain; the steering difference is the check that the search itself does not."""
    pools = {r["qid"]: r for r in records if r["config"] == "bon" and "held_out" in r}
    by_q: dict[Any, dict[str, list[float]]] = defaultdict(lambda: {"held": [], "steer": []})
    for r, held, steer in against_bon(records):
        if r["config"] in DEFAULTS:
            by_q[r["qid"]]["held"].append(held)
            by_q[r["qid"]]["steer"].append(steer)
    rows = [
        (rho, statistics.fmean(d["held"]), statistics.fmean(d["steer"]))
        for q, d in by_q.items()
        if (rho := spearman(pools[q]["rewards"], pools[q]["held_out"])) is not None
    ]
    if len(rows) < 4:
        return []
    data = np.asarray(rows)
    rng = np.random.default_rng(0)
    lines = [
        "(f') the default's held-out loss against its reward's agreement with the held-out "
        f"score, per question ({len(rows)} questions; d_q averaged over 1x, 2x, 4x):"
    ]
    for col, label in ((1, "held-out"), (2, "steering")):
        boots = []
        for _ in range(BOOT):
            sample = data[rng.integers(0, len(data), len(data))]
            rho = spearman(sample[:, 0].tolist(), sample[:, col].tolist())
            if rho is not None:
                boots.append(rho)
        rho = spearman(data[:, 0].tolist(), data[:, col].tolist())
        if rho is None or not boots:
            link = "none (one of the two is constant)"
        else:
            lo, hi = np.percentile(boots, [2.5, 97.5])
            link = f"{rho:.3f} [{lo:.3f}, {hi:.3f}]"
        agree, disagree = data[data[:, 0] > 0, col], data[data[:, 0] <= 0, col]
        lines.append(
            f"    {label} minus Best-of-N: Spearman with rho_q {link}; "
            f"mean where rho_q > 0 {fmt_ci(mean_ci(agree.tolist()))} ({len(agree)} q), "
            f"where rho_q <= 0 {fmt_ci(mean_ci(disagree.tolist()))} ({len(disagree)} q)"
        )
    return lines


def overrates(records: list[dict[str, Any]]) -> list[str]:
    """What a score rewards besides quality, read on plain samples so that no search chose
    them: per question, how the steering reward and the held-out score rank the pool against
    the answer's length and against its ending on EOS (an answer cut at ``max_tokens`` is
    unfinished), and each score's mean for ended minus cut answers where a pool has both (and
    the score is not constant over it).
    A search that selects harder than Best-of-N inherits whatever its reward overrates."""
    pools = [r for r in records if r["config"] == "bon" and "held_out" in r]
    if not pools:
        return []
    lines = ["(g) what each score rewards besides quality, within a question's pool of samples:"]
    for label, key in (("steering reward", "rewards"), ("held-out score", "held_out")):
        by_length, by_ending, gaps = [], [], []
        for p in pools:
            ended = [float(e) for e in p["ended"]]
            if (rho := spearman(p[key], p["tokens"])) is not None:
                by_length.append(rho)
            if (rho := spearman(p[key], ended)) is not None:
                by_ending.append(rho)
                done = [v for v, e in zip(p[key], ended, strict=True) if e]
                cut = [v for v, e in zip(p[key], ended, strict=True) if not e]
                gaps.append(statistics.fmean(done) - statistics.fmean(cut))
        lines.append(
            f"    {label}: Spearman with tokens {fmt_ci(mean_ci(by_length))} ({len(by_length)} q), "
            f"with ending on EOS {fmt_ci(mean_ci(by_ending))}; ended minus cut "
            f"{fmt_ci(mean_ci(gaps))} ({len(gaps)} q)"
        )
    return lines
