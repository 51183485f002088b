"""``darwin run`` (the default command): answer one prompt with a DARWIN search, with live
progress.

    darwin "How do I boil an egg?" --demo --compare
    darwin run "Write a haiku about rain" --iterations 2 --max-tokens 128 --json

Every knob of :class:`DarwinConfig` is a flag, generated from its fields.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from langchain_darwin.cli.args import (
    add_knob_arguments,
    add_model_arguments,
    knobs_from,
    quiet_transformers,
    search_service,
)
from langchain_darwin.cli.progress import Tracker, run_with_progress
from langchain_darwin.config import DEFAULT_RELEVANCE_WEIGHT, DEFAULT_TONE_WEIGHT, DarwinConfig
from langchain_darwin.graph.report import (
    describe_search,
    plain_json,
    search_metadata,
    search_summary,
)
from langchain_darwin.policy.base import EngineError
from langchain_darwin.rewards.base import RewardError

#: ``--demo``: room for a complete answer to end on end-of-sequence, aimed at about a minute on
#: two quiet CPU cores; benchmarks/demo_seeds.py measures completeness and failures over seeds.
DEMO = {"max_tokens": 256, "replacement_period": 64}
INTERRUPTED = 130


def _flags(knobs: dict[str, Any]) -> str:
    return " ".join(f"--{name.replace('_', '-')} {value}" for name, value in knobs.items())


HELP = "answer one prompt (the default command: `darwin PROMPT` is `darwin run PROMPT`)"
DESCRIPTION = (
    "Answer PROMPT with DARWIN decoding-time alignment: mutated instructions explore, a reward "
    "model steers beams every replacement period."
)
EPILOG = (
    f"--demo sets {_flags(DEMO)} (explicit flags win). "
    "Ctrl-C prints the best answer found so far and exits 130."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``darwin run``'s arguments: the prompt, the models, the output form and every knob."""
    parser.add_argument("prompt", help="the user message to answer ('-' reads it from stdin)")
    add_model_arguments(parser)
    parser.add_argument(
        "--relevance-weight",
        type=float,
        default=DEFAULT_RELEVANCE_WEIGHT,
        help="weight of relevance in the default reward (default: %(default)s)",
    )
    parser.add_argument(
        "--tone-weight",
        type=float,
        default=DEFAULT_TONE_WEIGHT,
        help="weight of tone in the default reward (default: %(default)s)",
    )
    parser.add_argument("--demo", action="store_true", help="small settings for a quick CPU run")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also run a plain sample (iterations=0, same model and seed) and show its reward",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object on stdout, nothing else (progress still goes to stderr)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    add_knob_arguments(parser)


def config_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> DarwinConfig:
    """The knobs given on the command line over the --demo preset, with a seed always set
    so that the DARWIN run and the --compare sample share it."""
    knobs = dict(DEMO) if args.demo else {}
    knobs.update(knobs_from(args))
    knobs.setdefault("seed", random.SystemRandom().randrange(2**31))
    try:
        return DarwinConfig(**knobs)
    except ValidationError as err:
        problems = "; ".join(
            (f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: " if e["loc"] else "") + e["msg"]
            for e in err.errors()
        )
        parser.error(problems)


def _result(tracker: Tracker) -> dict[str, Any]:
    state = tracker.state
    return {
        "answer": state["answer"],
        "reward": state["final_reward"],
        "seed_answer": state["seed_answer"],
        "seed_reward": state["seed"]["reward"],
        "seconds": round(tracker.seconds, 2),
        "darwin": search_metadata(state),  # type: ignore[arg-type]
        "summary": search_summary(state),  # type: ignore[arg-type]
    }


def _show(out: Console, title: str, answer: str, footer: str) -> None:
    out.print(Panel(Text(answer.strip() or "(empty answer)"), title=title, title_align="left"))
    out.print(Text(footer))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _report(out: Console, darwin: dict[str, Any], plain: dict[str, Any] | None) -> None:
    meta = darwin["darwin"]
    stopped = f", stopped early by {meta['stopped']}" if meta["stopped"] else ""
    _show(
        out,
        "DARWIN answer",
        darwin["answer"],
        f"seed reward {_fmt(darwin['seed_reward'])} -> final reward {_fmt(darwin['reward'])}"
        f"{stopped}\n{describe_search(darwin['summary'])}\n"
        f"{meta['config']['iterations']} mutation cycle(s), {meta['generated_tokens']} "
        f"generated tokens, {darwin['seconds']:.1f} s, seed {meta['seed']}",
    )
    if plain is not None:
        _show(
            out,
            f"plain sample (iterations=0, seed {meta['seed']})",
            plain["answer"],
            f"plain reward {_fmt(plain['reward'])} vs DARWIN reward {_fmt(darwin['reward'])}\n"
            f"{plain['darwin']['generated_tokens']} generated tokens, {plain['seconds']:.1f} s",
        )


def _interrupted(out: Console, tracker: Tracker, as_json: bool) -> int:
    best = tracker.best()
    if best is None:
        print("interrupted before any answer was scored", file=sys.stderr)
        return INTERRUPTED
    answer = tracker.text(best.tokens)
    if as_json:
        found = {"interrupted": True, "answer": answer, "reward": best.reward}
        print(json.dumps(plain_json({**found, "source": best.source, "partial": best.partial})))
    else:
        note = " (unfinished beam)" if best.partial else ""
        _show(
            out,
            "interrupted: best answer so far",
            answer,
            f"reward {_fmt(best.reward)}, from {best.source}{note}",
        )
    return INTERRUPTED


def _weighted_default_reward(args: argparse.Namespace) -> Any:
    """The default reward with ``--relevance-weight``/``--tone-weight``, when either differs
    from its default (None otherwise: the flags' reward); they weigh its terms, so they
    cannot go with ``--reward-model``."""
    weights = {"relevance_weight": args.relevance_weight, "tone_weight": args.tone_weight}
    if weights == {
        "relevance_weight": DEFAULT_RELEVANCE_WEIGHT,
        "tone_weight": DEFAULT_TONE_WEIGHT,
    }:
        return None
    if args.reward_model is not None:
        raise ValueError(
            "--relevance-weight and --tone-weight weigh terms of the default reward; "
            "drop them or drop --reward-model"
        )
    from langchain_darwin.rewards import default_reward

    return default_reward(**weights)


def run(args: argparse.Namespace) -> int:
    """Run ``darwin run``: one search (and with ``--compare`` a plain sample), then report."""
    config = config_from(args, args.command_parser)
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    conversation = [{"role": "user", "content": prompt}]
    out = Console(highlight=False)
    progress = None if args.quiet else Console(stderr=True)
    quiet_transformers()
    darwin, plain = Tracker("DARWIN"), None
    code = 0
    try:
        service = search_service(args, reward=_weighted_default_reward(args))
        run_with_progress(service, conversation, config, darwin, progress)
        if args.compare:
            plain = Tracker("plain")
            run_with_progress(service, conversation, config.merged(iterations=0), plain, progress)
    except KeyboardInterrupt:
        if not darwin.finished:
            return _interrupted(out, darwin, args.json)
        plain, code = None, INTERRUPTED  # DARWIN's answer is complete; the comparison is not
    except (ValueError, OSError, RewardError, EngineError) as err:
        # a bad model, prompt or reward model, or a server that failed
        print(f"darwin: error: {err}", file=sys.stderr)
        return 1
    result = _result(darwin)
    plain_result = _result(plain) if plain else None
    if args.json:
        if plain_result is not None:
            result["plain"] = plain_result
        print(json.dumps(plain_json(result)))
    else:
        _report(out, result, plain_result)
    return code
