"""What the two speed benchmarks (in process, served) share: the paper's settings and the
report's arithmetic."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from langchain_darwin.config import PRESETS

#: Beams of a search at the paper's settings, and the N of the Best-of-N it is compared with.
BEAMS = 5
#: The paper's settings (``DarwinConfig.preset("paper")``: 5 beams, replacement every 40
#: tokens, 3 survivors, one mutation cycle, T=0.7, top-k 40). ``ignore_eos`` so that every
#: method decodes exactly max_tokens per answer and they all do the same answer work.
PAPER: dict[str, Any] = {**PRESETS["paper"], "ignore_eos": True}
#: A short run of every method before timing, so that each code path has run once.
WARM_PROMPT = "Say hello in one short sentence."


def ratio(a: float | None, b: float | None) -> float:
    """``a / b``, or NaN where either is missing, NaN or ``b`` is zero."""
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(rows: list[list[str]]) -> str:
    """A markdown table (first row the header), columns padded to their widest cell."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if k == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def add_questions_argument(parser: Any) -> None:
    """``--questions PATH``: the MT-Bench jsonl both speed benchmarks read prompts from."""
    from benchmarks.common import DEFAULT_QUESTIONS

    parser.add_argument(
        "--questions",
        type=Path,
        default=None,
        help=f"MT-Bench questions jsonl (default {DEFAULT_QUESTIONS})",
    )
