"""``darwin generate``: answer a dataset into AlpacaEval records (see
:mod:`langchain_darwin.generate` for the formats, the records and how runs resume).

    darwin generate --input questions.jsonl --output outputs.jsonl --method darwin --budget 10
    darwin generate -i q.jsonl -o out.jsonl --base-url http://127.0.0.1:8000/v1 --concurrency 8
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from langchain_darwin.baselines import METHODS
from langchain_darwin.cli.args import (
    add_knob_arguments,
    add_model_arguments,
    knobs_from,
    quiet_transformers,
    search_service,
)

HELP = "answer a dataset (JSONL / MT-Bench / AlpacaEval JSON) into AlpacaEval records"
DESCRIPTION = (
    "Answer every prompt of a dataset with DARWIN or a baseline into AlpacaEval-compatible "
    "JSON Lines, in input order; a rerun resumes where the last one stopped."
)
#: ``--seed`` is generate's own: row i runs with seed + i.
ROW_SEEDED = frozenset({"seed"})


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``darwin generate``'s arguments: files, method and budget, models, knobs, concurrency."""
    parser.add_argument("--input", "-i", required=True, type=Path, help="prompts file")
    parser.add_argument("--output", "-o", required=True, type=Path, help="JSONL to append to")
    parser.add_argument(
        "--method",
        choices=list(METHODS),
        default="darwin",
        help="darwin or a baseline run by the same graph (default: %(default)s)",
    )
    parser.add_argument(
        "--budget",
        type=int,
        help="candidate answers besides the seed answer, matched across methods (5, 10, 15: "
        "DARWIN MC=1/2/3 vs Best-of-N N=5/10/15); default: the method's knobs as they are",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        default=1,
        metavar="N",
        help="rows searched at once, e.g. against a --base-url server; rows are still written "
        "in input order (default: %(default)s)",
    )
    add_model_arguments(parser)
    add_knob_arguments(parser, skip=ROW_SEEDED)
    parser.add_argument(
        "--seed", type=int, default=0, help="row i uses seed + i (default: %(default)s)"
    )
    parser.add_argument("--limit", type=int, help="only the first N prompts")
    parser.add_argument("--generator", help="the records' generator name")
    parser.add_argument("--export-json", type=Path, help="also write all rows as a JSON list")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``darwin generate``: print the summary as JSON, or a short error (exit 2)."""
    from langchain_darwin.generate import ResumeError, generate
    from langchain_darwin.policy.base import EngineError
    from langchain_darwin.rewards.base import RewardError

    quiet_transformers()
    try:
        summary = generate(
            args.input,
            args.output,
            method=args.method,
            budget=args.budget,
            service=search_service(args),
            seed=args.seed,
            limit=args.limit,
            generator=args.generator,
            export_json=args.export_json,
            progress=not args.quiet,
            concurrency=args.concurrency,
            **knobs_from(args, skip=ROW_SEEDED),
        )
    except (ResumeError, ValueError, FileNotFoundError, EngineError, RewardError) as err:
        print(f"darwin generate: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    print(json.dumps(summary))
    return 0
