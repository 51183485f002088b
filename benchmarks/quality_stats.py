"""Statistics over the stored runs: per (variant, method, budget) means with bootstrap
intervals over prompts, and win rates against the reference method on the same prompts."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from quality_registry import ABLATIONS, ANSWER_SCORES, METHODS, REFERENCE, UNBUDGETED

#: Bootstrap resamples behind each interval.
BOOT = 2000


def mean_ci(values: Sequence[float], seed: int = 0) -> tuple[float, float, float]:
    """Mean and its 95% percentile-bootstrap interval over prompts."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if data.size == 0:
        return (math.nan, math.nan, math.nan)
    if data.size == 1:
        return (float(data[0]),) * 3
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(BOOT, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(data.mean()), float(low), float(high)


def win_rate(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """Share of prompts where ``ours`` scores higher (ties count one half)."""
    pairs = list(zip(ours, theirs, strict=True))
    if not pairs:
        return math.nan
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs)
    return wins / len(pairs)


def finite_mean(values: Iterable[float | None]) -> float:
    """Mean of the finite values (NaN when there are none)."""
    data = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(data)) if data else math.nan


def summarise(rows: list[dict[str, Any]], held_out: str = "relevance") -> list[dict[str, Any]]:
    """One summary per (variant, method, budget); ``held_out`` names the row field (a scorer
    every answer was scored with after the search) used as the held-out score."""
    rows = [{**r, "held_out": r[held_out]} for r in rows]
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["variant"], row["method"], row["budget"])].append(row)
    reference = {b: rs for (v, m, b), rs in groups.items() if v == "base" and m == REFERENCE}
    out = []
    for (variant, method, budget), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["qid"])
        summary = _summary(variant, method, budget, rs)
        ref = {r["qid"]: r for r in reference.get(budget, [])}
        paired = [(r, ref[r["qid"]]) for r in rs if r["qid"] in ref]
        if method != REFERENCE and method not in UNBUDGETED and paired:
            for field in ("held_out", "steering"):
                summary[f"win_vs_bon_{field}"] = win_rate(
                    [a[field] for a, _ in paired], [b[field] for _, b in paired]
                )
        out.append(summary)
    order = {m: i for i, m in enumerate(METHODS)}
    variants = ["base", *ABLATIONS]
    out.sort(key=lambda s: (variants.index(s["variant"]), s["budget"], order[s["method"]]))
    return out


def _summary(variant: str, method: str, budget: int, rs: list[dict[str, Any]]) -> dict[str, Any]:
    """The means and intervals of one configuration's rows (win rates still unset)."""
    steer = mean_ci([r["steering"] for r in rs])
    held = mean_ci([r["held_out"] for r in rs])
    return {
        "variant": variant,
        "method": method,
        "budget": budget,
        "beams": rs[0]["beams"],
        "prompts": len(rs),
        "steering": steer[0],
        "steering_lo": steer[1],
        "steering_hi": steer[2],
        "held_out": held[0],
        "held_out_lo": held[1],
        "held_out_hi": held[2],
        **{name: finite_mean(r[name] for r in rs) for name in ANSWER_SCORES},
        "answer_tokens": finite_mean(r["answer_tokens"] for r in rs),
        "answer_words": finite_mean(r["answer_words"] for r in rs),
        "generated_tokens": finite_mean(r["generated_tokens"] for r in rs),
        "wall_s": finite_mean(r["wall_s"] for r in rs),
        "gain_over_seed": finite_mean(r["steering"] - r["seed_reward"] for r in rs),
        "rewrites": sum(r["mutation_stats"]["rewrites"] for r in rs),
        "fallbacks": sum(r["mutation_stats"]["fallbacks"] for r in rs),
        "win_vs_bon_held_out": math.nan,
        "win_vs_bon_steering": math.nan,
    }


def write_csv(path: Path, summaries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(summaries[0]))
        writer.writeheader()
        for s in summaries:
            writer.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()})
