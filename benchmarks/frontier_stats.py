"""The frontier's statistics: bootstrap intervals over questions, Best-of-N's expected curve
from one pool of samples (exact, by order statistics), reading it at a search's own compute,
and Spearman's rank correlation. Shared by the report, its held-out diagnosis and the guards'
replay."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Bootstrap resamples of every interval.
BOOT = 2000


def mean_ci(values: Sequence[float], seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap interval over questions."""
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        m = float(data.mean()) if data.size else math.nan
        return m, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(BOOT, data.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(data.mean()), float(lo), float(hi)


def expected_best(rewards: Sequence[float], n: int, values: Sequence[float] | None = None) -> float:
    """E[max] over a uniformly random n-subset of the pool (exact: order statistics); with
    ``values``, the expected value of the sample the max reward picks (the picked answer's
    held-out score)."""
    order = sorted(range(len(rewards)), key=lambda i: rewards[i])
    v = [(rewards if values is None else values)[i] for i in order]
    size = len(v)
    total = math.comb(size, n)
    return sum(v[i] * math.comb(i, n - 1) for i in range(n - 1, size)) / total


def bon_curve(pool: dict[str, Any]) -> list[dict[str, float]]:
    """Best-of-N for N = 1..pool: expected best reward and its expected compute."""
    size = len(pool["rewards"])
    per = {
        "generated": statistics.fmean(pool["tokens"]),
        "positions": (pool["prefilled"] + pool["decoded"]) / size,
        "reward_answers": 1.0,
        "wall_s": pool["wall_s"] / size,
    }
    curve = [
        {"n": n, "reward": expected_best(pool["rewards"], n), **{k: n * v for k, v in per.items()}}
        for n in range(1, size + 1)
    ]
    if "held_out" in pool:
        for point in curve:
            point["held_out"] = expected_best(pool["rewards"], int(point["n"]), pool["held_out"])
    return curve


def bon_at(
    curve: list[dict[str, float]], at: float, key: str = "reward", axis: str = "generated"
) -> tuple[float, bool]:
    """Best-of-N's reward (or ``key``) where ``axis`` (generated tokens by default; any
    value that grows with N) equals ``at``, linear between integer N, clamped to N = 1 below
    the curve and to the largest N past it (second value True: past the pool; on the tokens
    axis that favours the search)."""
    if at <= curve[0][axis]:
        return curve[0][key], False
    for a, b in zip(curve, curve[1:], strict=False):
        if at <= b[axis]:
            span = b[axis] - a[axis]
            w = (at - a[axis]) / span if span > 0 else 1.0
            return a[key] + w * (b[key] - a[key]), False
    return curve[-1][key], True


# -- configurations ---------------------------------------------------------------------------


def fmt_ci(ci: tuple[float, float, float]) -> str:
    m, lo, hi = ci
    if math.isnan(lo):
        return f"{m:.3f}"
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    ra, rb = _ranks(a), _ranks(b)
    if len(set(ra)) < 2 or len(set(rb)) < 2:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])
