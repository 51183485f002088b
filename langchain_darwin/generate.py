"""Answer a whole dataset with DARWIN (or a baseline) the way researchers run them.

    darwin generate --input questions.jsonl --output outputs.jsonl --method darwin --budget 10

Inputs (detected per file):

- JSON Lines of ``{"instruction": ...}`` or ``{"prompt": ...}`` objects;
- MT-Bench ``question.jsonl`` (``{"question_id", "category", "turns": [...]}``): ``turns[0]``;
- an AlpacaEval-style JSON list of ``{"instruction": ..., "dataset": ...}`` objects (its
  reference ``output``/``generator`` are dropped).

Output: one AlpacaEval-compatible JSON object per line, in input order, with ``instruction``,
``output``, ``generator``, the input's other fields (``dataset``, ``question_id``...), and
``index`` (the input row), ``method``, ``reward``, ``seed_answer``, ``seed_reward`` and the
search in ``darwin`` (the chat model's ``response_metadata["darwin"]``). ``--export-json``
also writes the finished rows as one JSON list, the form ``alpaca_eval --model_outputs`` reads.

Runs resume: every row is appended, flushed and fsynced as soon as it is done, a rerun skips the
rows already in the output, and a last line cut short by a crash is dropped and redone. Each
row's seed is ``--seed + index``, so a resumed run writes what an uninterrupted one would.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_darwin.baselines import METHODS, method_knobs
from langchain_darwin.cli_args import (
    add_knob_arguments,
    add_model_arguments,
    chat_fields,
    knobs_from,
)
from langchain_darwin.graph.report import plain_json
from langchain_darwin.policy.base import EngineError
from langchain_darwin.rewards.base import RewardError

#: Input fields that never pass through to the output record.
_DROPPED = frozenset(
    "instruction prompt turns output generator reference index method reward seed_answer "
    "seed_reward darwin".split()
)


class ResumeError(RuntimeError):
    """The output file cannot be resumed against this input (it belongs to another one, or
    a line other than the last is damaged)."""


# -- input --------------------------------------------------------------------------------


def _instruction(item: Any, where: str) -> str:
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(item).__name__}")
    if isinstance(item.get("instruction"), str):
        return item["instruction"]
    if isinstance(item.get("prompt"), str):
        return item["prompt"]
    turns = item.get("turns")
    if isinstance(turns, list) and turns and isinstance(turns[0], str):
        return turns[0]
    raise ValueError(f"{where}: no 'instruction', 'prompt' or 'turns' field in {sorted(item)}")


def read_prompts(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The prompts of ``path`` as ``{"instruction": str, "extra": {passthrough fields}}``,
    from JSON Lines (instruction / prompt / MT-Bench turns) or a JSON list."""
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    stripped = text.lstrip()
    items: list[tuple[Any, str]]
    if stripped.startswith("["):
        data = json.loads(text)
        items = [(item, f"{file}[{i}]") for i, item in enumerate(data)]
    else:
        items = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    items.append((json.loads(line), f"{file}:{number}"))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{file}:{number}: not JSON ({err.msg})") from err
    prompts = []
    for item, where in items:
        extra = {}
        if isinstance(item, dict):
            extra = {k: v for k, v in item.items() if k not in _DROPPED}
        prompts.append({"instruction": _instruction(item, where), "extra": extra})
    return prompts


# -- output and resume -------------------------------------------------------------------------


def scan_output(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records already in ``path``. A last line cut short (no newline, or not JSON) is
    removed from the file so it can be redone; damage anywhere else raises
    :class:`ResumeError` rather than losing rows."""
    file = Path(path)
    if not file.is_file():
        return []
    data = file.read_bytes()
    records: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:  # no newline: the write was cut short
            break
        line = data[pos:end]
        if line.strip():
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if not isinstance(record, dict):
                if data[end + 1 :].strip():
                    number = data.count(b"\n", 0, pos) + 1
                    raise ResumeError(
                        f"{file}:{number} is damaged and is not the last line; fix it or move "
                        "the file aside (nothing was changed)"
                    )
                break
            records.append(record)
        pos = end + 1
    if pos < len(data):
        with file.open("r+b") as fh:
            fh.truncate(pos)
            fh.flush()
            os.fsync(fh.fileno())
    return records


def append_record(fh: Any, record: dict[str, Any]) -> None:
    """Append one JSON line and make it durable before the next row starts."""
    fh.write(json.dumps(plain_json(record), ensure_ascii=False) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def _check_matches(
    records: list[dict[str, Any]], prompts: list[dict[str, Any]], out: Path, generator: str
) -> None:
    for record in records:
        if record.get("generator") != generator:
            raise ResumeError(
                f"{out} holds rows of generator {record.get('generator')!r}, not {generator!r} "
                "(another model, method or budget); write to another --output"
            )
        index = record.get("index")
        if not isinstance(index, int) or not 0 <= index < len(prompts):
            raise ResumeError(f"{out} holds a record with index {index!r}, not a row of the input")
        if record.get("instruction") != prompts[index]["instruction"]:
            raise ResumeError(
                f"{out} row {index} answers a different instruction than the input's row "
                f"{index}; it belongs to another input file (use another --output)"
            )


# -- generation --------------------------------------------------------------------------------


def generator_name(model: str, method: str, budget: int | None) -> str:
    name = "smollm2-135m-instruct" if model == "default" else Path(model).name or model
    return f"{name}-{method}" + (f"-n{budget}" if budget is not None else "")


def generate(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    method: str = "darwin",
    budget: int | None = None,
    model: str = "default",
    reward_model: Any = None,
    chat: dict[str, Any] | None = None,
    seed: int | None = 0,
    limit: int | None = None,
    generator: str | None = None,
    export_json: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    **knobs: Any,
) -> dict[str, Any]:
    """Answer every prompt of ``input_path`` with ``method`` at ``budget`` (see
    :mod:`langchain_darwin.baselines`) and append AlpacaEval-compatible records to
    ``output_path``, skipping rows already there. ``chat`` holds further DarwinChatModel
    fields (``base_url``, ``api_key``, ``device``...). ``knobs`` are DarwinConfig knobs
    (``max_tokens``, ``replacement_period``, ``iterations``...) and win over the method's.
    Returns ``{"total", "skipped", "written", "output", "seconds"}``."""
    from langchain_core.messages import HumanMessage
    from tqdm.auto import tqdm

    from langchain_darwin.chat_model import DarwinChatModel
    from langchain_darwin.graph.report import search_metadata

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    prompts = read_prompts(input_path)
    if limit is not None:
        prompts = prompts[:limit]
    out = Path(output_path)
    name = generator or generator_name(model, method, budget)
    done = scan_output(out)
    _check_matches(done, prompts, out, name)
    finished = {r["index"] for r in done}
    todo = [i for i in range(len(prompts)) if i not in finished]
    call_knobs = method_knobs(method, None if method == "sample" else budget, **knobs)
    llm = DarwinChatModel(**{**(chat or {}), "model": model, "reward_model": reward_model})
    llm.config.merged(**call_knobs)  # fail on bad knobs before the first row
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(
        total=len(prompts),
        initial=len(prompts) - len(todo),
        desc=f"{method}",
        unit="prompt",
        disable=not progress,
        file=sys.stderr,
    )
    written = 0
    try:
        with out.open("a", encoding="utf-8") as fh:
            for index in todo:
                prompt = prompts[index]
                row_seed = None if seed is None else seed + index
                t0 = time.perf_counter()
                search = llm.prepare_search(
                    [HumanMessage(prompt["instruction"])], seed=row_seed, **call_knobs
                )
                state = llm.search_service.run(search)
                meta = search_metadata(state)
                record = {
                    "instruction": prompt["instruction"],
                    "output": state["answer"],
                    "generator": name,
                    **prompt["extra"],
                    "index": index,
                    "method": method,
                    "reward": state["final_reward"],
                    "seed_answer": state["seed_answer"],
                    "seed_reward": state["seed"]["reward"],
                    "seconds": round(time.perf_counter() - t0, 3),
                    "darwin": meta,
                }
                append_record(fh, record)
                written += 1
                if on_row is not None:
                    on_row(record)
                bar.set_postfix(reward=f"{state['final_reward']:.3f}")
                bar.update(1)
    finally:
        bar.close()
    if export_json is not None:
        records = sorted(scan_output(out), key=lambda r: r["index"])
        Path(export_json).write_text(
            json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
    return {
        "total": len(prompts),
        "skipped": len(prompts) - len(todo),
        "written": written,
        "output": str(out),
        "seconds": round(time.perf_counter() - started, 3),
    }


# -- command line ------------------------------------------------------------------------------

#: ``--seed`` is generate's own: row i runs with seed + i.
ROW_SEEDED = frozenset({"seed"})


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``darwin generate``'s arguments to ``parser``."""
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
    add_model_arguments(parser)
    add_knob_arguments(parser, skip=ROW_SEEDED)
    parser.add_argument(
        "--seed", type=int, default=0, help="row i uses seed + i (default: %(default)s)"
    )
    parser.add_argument("--limit", type=int, help="only the first N prompts")
    parser.add_argument("--generator", help="the records' generator name")
    parser.add_argument("--export-json", type=Path, help="also write all rows as a JSON list")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def add_generate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``generate`` on an ``add_subparsers()`` object; the subcommand's function is
    in ``set_defaults(func=...)``: ``args.func(args)`` runs it and returns an exit code."""
    parser = subparsers.add_parser(
        "generate",
        help="answer a dataset (JSONL / MT-Bench / AlpacaEval JSON) into AlpacaEval records",
        description=__doc__.split("\n\n")[0],
    )
    configure_parser(parser)
    parser.set_defaults(func=run_args)
    return parser


def run_args(args: argparse.Namespace) -> int:
    knobs = knobs_from(args, skip=ROW_SEEDED)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        fields = chat_fields(args)
        fields.pop("model")
        summary = generate(
            args.input,
            args.output,
            method=args.method,
            budget=args.budget,
            model=args.model,
            reward_model=fields.pop("reward_model", None),
            chat=fields,
            seed=args.seed,
            limit=args.limit,
            generator=args.generator,
            export_json=args.export_json,
            progress=not args.quiet,
            **knobs,
        )
    except (ResumeError, ValueError, FileNotFoundError, EngineError, RewardError) as err:
        print(f"darwin generate: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    print(json.dumps(summary))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``darwin generate ...`` as a function: ``main(["--input", ..., "--output", ...])``."""
    parser = configure_parser(
        argparse.ArgumentParser(prog="darwin generate", description=__doc__.split("\n\n")[0])
    )
    return run_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
