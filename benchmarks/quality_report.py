"""The quality benchmark's document: a markdown table per section, written between markers
into a page so that reruns replace their own section and leave the rest."""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quality_registry import LABELS, REFERENCE
from quality_stats import BOOT, finite_mean


def fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def fmt_ci(s: dict[str, Any], field: str) -> str:
    return f"{fmt(s[field])} [{fmt(s[f'{field}_lo'])}, {fmt(s[f'{field}_hi'])}]"


def command_line(raw: Sequence[str]) -> str:
    """The command that produces this report's rows (``--report-only`` rebuilds the report;
    the command is the same less it), with the thread count it ran under."""
    command = "python benchmarks/quality.py " + shlex.join(a for a in raw if a != "--report-only")
    if os.environ.get("OMP_NUM_THREADS"):
        command = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} {command}"
    return command.strip()


def markdown(
    summaries: list[dict[str, Any]],
    args: argparse.Namespace,
    command: str,
    images: list[str],
    rows: Sequence[dict[str, Any]] = (),
) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        f"Settings: up to {max(s['prompts'] for s in summaries)} MT-Bench first turns "
        "(questions 81 on; the `prompts` column says how many every method of a row's budget "
        "finished), "
        f"policy `{args.model}`, max_tokens={args.max_tokens}, "
        f"replacement_period={args.replacement_period}, survivors=3, T=0.7, top-k 40, "
        f"seed {args.seed} + prompt index (the same seed for every method); steering reward "
        f"`{args.steer}`, held-out score `{args.held_out}`. Intervals: 95% bootstrap over "
        f"prompts ({BOOT} resamples). Wall time on a shared 2-core CPU, indicative only.",
        "",
        "| variant | method | N | beams | prompts | steering reward | held-out | win vs BoN "
        "(held-out / steering) | tone | echo | answer tokens | generated tokens | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_table_row(s) for s in summaries]
    mutated = [s for s in summaries if s["rewrites"] + s["fallbacks"]]
    if mutated:
        rewrites = sum(s["rewrites"] for s in mutated)
        total = rewrites + sum(s["fallbacks"] for s in mutated)
        lines += ["", f"Mutation: {rewrites} of {total} mutated instructions were real rewrites."]
    lines += mutation_breakdown(rows)
    lines += [""] + [f"![{Path(i).stem}]({i})" for i in images]
    return "\n".join(lines) + "\n"


def _table_row(s: dict[str, Any]) -> str:
    win = "-"
    if math.isfinite(s["win_vs_bon_held_out"]):
        win = f"{s['win_vs_bon_held_out']:.2f} / {s['win_vs_bon_steering']:.2f}"
    return (
        f"| {s['variant']} | {LABELS[s['method']]} | {s['budget']} | {s['beams']} | "
        f"{s['prompts']} | "
        f"{fmt_ci(s, 'steering')} | {fmt_ci(s, 'held_out')} | {win} | {fmt(s['tone'])} | "
        f"{fmt(s['echo'], 2)} | {fmt(s['answer_tokens'], 1)} | "
        f"{fmt(s['generated_tokens'], 0)} | {fmt(s['wall_s'], 1)} |"
    )


_WINNER = re.compile(r"cycle (\d+) beam (\d+)")


def mutation_breakdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """DARWIN against Best-of-N at the same budget, by how many real rewrites the mutation
    step produced: does exploring other instructions help or hurt here?"""
    bon = {(r["qid"], r["budget"]): r for r in rows if r["method"] == REFERENCE}
    buckets: dict[str, list[tuple[float, float, bool]]] = defaultdict(list)
    for r in rows:
        other = bon.get((r["qid"], r["budget"]))
        if r["method"] != "darwin" or r["variant"] != "base" or other is None:
            continue
        rewrites = r["mutation_stats"].get("rewrites", 0)
        bucket = "0-1" if rewrites <= 1 else "2-3" if rewrites <= 3 else "4+"
        diff = (r["steering"] - other["steering"], r["relevance"] - other["relevance"])
        buckets[bucket].append((*diff, _won_under_rewrite(r)))
    if not buckets:
        return []
    lines = [
        "",
        "DARWIN minus Best-of-N on the same prompt, by the number of real rewrites its mutation "
        "step produced (the rest fell back to the original instruction):",
        "",
        "| rewrites | prompts | steering diff | held-out diff | DARWIN won | winner decoded "
        "under a rewrite |",
        "|---|---|---|---|---|---|",
    ]
    for bucket in ("0-1", "2-3", "4+"):
        got = buckets.get(bucket, [])
        if not got:
            continue
        wins = sum(1 for d in got if d[1] > 0)
        lines.append(
            f"| {bucket} | {len(got)} | {fmt(finite_mean(d[0] for d in got))} | "
            f"{fmt(finite_mean(d[1] for d in got))} | {wins} of {len(got)} (held-out) | "
            f"{sum(d[2] for d in got)} of {len(got)} |"
        )
    return lines


def _won_under_rewrite(row: dict[str, Any]) -> bool:
    """Whether the winning beam decoded under an instruction other than the prompt."""
    won = _WINNER.fullmatch(str(row["winner"]))
    if not won:
        return False
    instruction = row["mutated_instructions"][int(won[1])][int(won[2])]
    return " ".join(instruction.split()) != " ".join(row["prompt"].split())


def write_doc(path: Path, section: str, body: str) -> None:
    """Put ``body`` between the markers of ``section`` in ``path`` (appended if absent)."""
    begin, end = f"<!-- BEGIN quality:{section} -->", f"<!-- END quality:{section} -->"
    block = f"{begin}\n{body}{end}"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Answer quality\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## Results: {section}\n\n{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
