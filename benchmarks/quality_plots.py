"""The quality benchmark's plots: scores against budget, and beam rewards period by period."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
from quality_registry import LABELS, METHODS, PERIOD_COLOURS, UNBUDGETED


def _pyplot() -> Any:
    """matplotlib's pyplot on a file-only backend (imported late: only plots need it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_budget(path: Path, summaries: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Steering and held-out score of every method against its budget, with intervals."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [
        ("steering", f"steering reward ({args.steer})"),
        ("held_out", f"held-out: {args.held_out}"),
    ]
    base = [s for s in summaries if s["variant"] == "base"]
    for ax, (field, title) in zip(axes, panels, strict=True):
        for i, method in enumerate(METHODS):
            pts = sorted((s for s in base if s["method"] == method), key=lambda s: s["budget"])
            if not pts:
                continue
            x = [s["budget"] + (i - 2) * 0.12 for s in pts]
            y = [s[field] for s in pts]
            err = [
                [s[field] - s[f"{field}_lo"] for s in pts],
                [s[f"{field}_hi"] - s[field] for s in pts],
            ]
            style = "s" if method in UNBUDGETED else "o-"
            ax.errorbar(x, y, yerr=err, fmt=style, capsize=3, label=LABELS[method])
        ax.set_xlabel("budget N (beams; sampling: 1 answer)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean over prompts, 95% bootstrap CI")
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle(
        f"up to {max(s['prompts'] for s in base)} MT-Bench prompts, "
        f"SmolLM2-135M-Instruct, max_tokens={args.max_tokens}, m={args.replacement_period}",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_periods(path: Path, rows: list[dict[str, Any]], count: int = 3) -> None:
    """Best and mean beam reward at every period, cycles end to end, for a few prompts:
    DARWIN against sampling + replacement and Best-of-N at DARWIN's largest budget."""
    base = [r for r in rows if r["variant"] == "base"]
    darwin = [r for r in base if r["method"] == "darwin"]
    if not darwin:
        return
    plt = _pyplot()
    budget = max(r["budget"] for r in darwin)
    qids = sorted({r["qid"] for r in darwin})[:count]
    fig, axes = plt.subplots(1, len(qids), figsize=(4.2 * len(qids), 3.6), squeeze=False)
    for ax, qid in zip(axes[0], qids, strict=True):
        for method, color in PERIOD_COLOURS.items():
            match = [r for r in base if r["method"] == method and r["budget"] == budget]
            match = [r for r in match if r["qid"] == qid]
            if not match:
                continue
            best, mean, bounds = _period_curves(match[0]["period_scores"])
            x = range(1, len(best) + 1)
            ax.plot(x, best, "-o", color=color, ms=3, label=f"{LABELS[method]}: best beam")
            if method == "darwin":
                ax.plot(x, mean, ":", color=color, label=f"{LABELS[method]}: mean beam")
                for b in bounds[:-1]:
                    ax.axvline(b + 0.5, color="grey", lw=0.6)
        ax.set_title(f"MT-Bench q{qid}, N={budget}", fontsize=9)
        ax.set_xlabel("period (cycles end to end)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("beam reward at the period")
    axes[0][-1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _period_curves(
    period_scores: list[list[list[float | None]]],
) -> tuple[list[float], list[float], list[int]]:
    """Best and mean beam reward per period, cycles end to end, and where each cycle ends."""
    best: list[float] = []
    mean: list[float] = []
    bounds: list[int] = []
    for cycle in period_scores:
        for period in cycle:
            scores = [s for s in period if s is not None]
            best.append(max(scores) if scores else math.nan)
            mean.append(float(np.mean(scores)) if scores else math.nan)
        bounds.append(len(best))
    return best, mean, bounds
