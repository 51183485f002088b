"""Answer quality of DARWIN against its baselines at equal budget, on MT-Bench first turns.

Every method is a configuration of the same graph (``langchain_darwin.baselines``): plain
sampling, Best-of-N, sampling + replacement, mutation + Best-of-N, and DARWIN, each at budgets
matched in beams (the paper's MC=1/2/3 against N=5/10/15). For every method and budget:

- the **steering reward** (what the search maximised; by default the offline default reward,
  ``relevance + 0.5 * tone``), mean with a 95% bootstrap interval over prompts;
- a **held-out score** that the search did not maximise (``--held-out``, default relevance
  alone: the tone term is the easily gamed part of the default, so a method that wins the
  steering reward through tone alone does not win here), with its interval, and DARWIN's win
  rate against Best-of-N at the same budget under it;
- the tone term, an *echo* diagnostic (share of the question's word trigrams repeated in the
  answer: restating the question is how an embedding-relevance proxy is gamed), the answer's
  length, generated tokens and wall time.

``--steer tone --held-out relevance`` is the clean hacking probe: the search then maximises
sentiment alone and relevance is fully held out.

Results: per-prompt rows in ``benchmarks/out/quality/runs.jsonl`` (a rerun skips rows already
there, so an interrupted run resumes), a CSV per section, PNG plots and a markdown table
written between markers into ``docs/quality.md`` (``--quick`` writes under benchmarks/out/).

    python benchmarks/quality.py --quick                  # CI-sized: 2 prompts, 48 tokens
    python benchmarks/quality.py --prompts 8 --max-tokens 96 --budgets 5 10
    python benchmarks/quality.py --prompts 8 --max-tokens 96 --ablations
    python benchmarks/quality.py --prompts 6 --max-tokens 96 --budgets 5 --steer tone \
        --methods best_of_n darwin

The parts: ``quality_registry`` (what is measured: methods, steering rewards, answer
scores, ablations), ``quality_runs`` (the runner), ``quality_store`` (the resume store),
``quality_stats``, ``quality_plots`` and ``quality_report`` (the document).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from common import DEFAULT_QUESTIONS, REPO_ROOT, log, machine_info, pick_prompts
from quality_plots import plot_budget, plot_periods
from quality_registry import ABLATIONS, HELD_OUT, METHODS, STEERS
from quality_report import command_line, fmt, fmt_ci, markdown, write_doc
from quality_runs import run_all
from quality_stats import summarise, write_csv

OUT = REPO_ROOT / "benchmarks" / "out" / "quality"
DOC = REPO_ROOT / "docs" / "quality.md"
BENCH_DOC = REPO_ROOT / "docs" / "benchmarks.md"
IMG = REPO_ROOT / "docs" / "img"
QUICK = {"prompts": 2, "max_tokens": 48, "budgets": [5], "replacement_period": 16}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--prompts", type=int, default=8, help="first N MT-Bench questions")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--replacement-period", type=int, default=40)
    parser.add_argument("--budgets", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--model", default="default", help="policy (default: embedded SmolLM2)")
    parser.add_argument("--steer", choices=STEERS, default="default")
    parser.add_argument("--held-out", choices=HELD_OUT, default="relevance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablations", action="store_true", help="the paper's ablations")
    parser.add_argument("--quick", action="store_true", help="CI-sized: 2 prompts, 48 tokens")
    parser.add_argument(
        "--stratified",
        action="store_true",
        help="one question per category in turn (81, 91, 101...) instead of the first N",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads; on a shared CPU 1 is many times faster than oversubscribing",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="no new runs: report what runs.jsonl holds"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(ABLATIONS),
        help="with --ablations: only these (default: all)",
    )
    parser.add_argument(
        "--headline",
        action="store_true",
        help="also write this run's table into docs/benchmarks.md (the headline result)",
    )
    parser.add_argument(
        "--label", help="suffix for the report section, so a rerun does not replace an older one"
    )
    parser.add_argument("--out", type=Path, default=None, help=f"default: {OUT}")
    parser.add_argument("--doc", type=Path, default=None, help=f"default: {DOC}")
    parser.add_argument("--img", type=Path, default=None, help=f"default: {IMG}")
    return parser


def parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The arguments (``--quick`` filling what was not given) and the raw command line."""
    raw = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(raw)
    if args.quick:
        given = {a.split("=")[0] for a in raw}
        for name, value in QUICK.items():
            if f"--{name.replace('_', '-')}" not in given:
                setattr(args, name, value)
    return args, raw


def section_name(args: argparse.Namespace) -> str:
    """The report section this run writes: reruns with other settings get their own."""
    section = "ablations" if args.ablations else "main"
    if args.steer != "default":
        section += f"-steer-{args.steer}"
    if args.stratified:
        section += "-stratified"
    if args.label:
        section += f"-{args.label}"
    return section


def main(argv: Sequence[str] | None = None) -> int:
    args, raw = parse(argv)
    quick_out = OUT / "quick"
    args.out = args.out or (quick_out if args.quick else OUT)
    doc = args.doc or (quick_out / "quality.md" if args.quick else DOC)
    img = args.img or (quick_out if args.quick else IMG)
    section = section_name(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    log(f"quality benchmark [{section}] on {machine_info()}")
    prompts = pick_prompts(args.questions, args.prompts, args.stratified)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    rows = run_all(args, prompts)
    summaries = summarise(rows, args.held_out)
    write_csv(args.out / f"{section}.csv", summaries)
    images = []
    if not args.ablations:
        budget_png = img / f"quality_{section}_budget.png"
        plot_budget(budget_png, summaries, args)
        periods_png = img / f"quality_{section}_periods.png"
        plot_periods(periods_png, rows)
        images = [budget_png, periods_png]
    rel = [os.path.relpath(p, doc.parent) for p in images if p.is_file()]
    body = markdown(summaries, args, command_line(raw), rel, rows)
    write_doc(doc, section, body)
    if args.headline:  # the run the benchmarks page quotes, rendered there as well
        write_doc(BENCH_DOC, "headline", body)
    log(f"wrote {args.out / f'{section}.csv'}, {doc} ({section})")
    for s in summaries:
        log(
            f"{s['variant']:>5} {s['method']:<16} N={s['budget']:<2} steer {fmt_ci(s, 'steering')} "
            f"held {fmt_ci(s, 'held_out')} win {fmt(s['win_vs_bon_held_out'], 2)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
