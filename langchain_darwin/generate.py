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

``concurrency`` rows run at once, each its own search on the shared engine (a served engine
takes them as concurrent requests; the in-process one interleaves them on its threads). Rows
are still written in input order: a finished row waits for the rows before it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from langchain_darwin.baselines import METHODS, method_knobs
from langchain_darwin.config import DEFAULT_MODEL, DarwinConfig
from langchain_darwin.engines import EngineSpec
from langchain_darwin.graph.report import plain_json, search_metadata
from langchain_darwin.search import PreparedSearch, SearchService

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


def pending_rows(prompts: list[dict[str, Any]], out: Path, generator: str) -> list[int]:
    """The input rows ``out`` does not hold yet, after repairing a torn last line and checking
    that the rows it holds belong to this input and generator."""
    done = scan_output(out)
    _check_matches(done, prompts, out, generator)
    finished = {r["index"] for r in done}
    return [i for i in range(len(prompts)) if i not in finished]


class RowSearches:
    """Answers input rows, one DARWIN search per row on ``service``, from any number of
    threads at once; :meth:`cancel` stops every search still running at its next token."""

    def __init__(
        self,
        prompts: list[dict[str, Any]],
        service: SearchService,
        config: DarwinConfig,
        *,
        method: str,
        generator: str,
        seed: int | None,
    ) -> None:
        self.prompts, self.service, self.config = prompts, service, config
        self.method, self.generator, self.seed = method, generator, seed
        self._running: dict[int, PreparedSearch] = {}  # by id: searches are not hashable
        self._lock = threading.Lock()
        self._cancelled = False

    def __call__(self, index: int) -> dict[str, Any]:
        """The output record of row ``index`` (its seed is ``seed + index``)."""
        prompt, started = self.prompts[index], time.perf_counter()
        row_seed = None if self.seed is None else self.seed + index
        conversation = [{"role": "user", "content": prompt["instruction"]}]
        search = self.service.prepare(conversation, self.config.merged(seed=row_seed))
        with self._lock:
            if self._cancelled:
                search.cancel()
            self._running[id(search)] = search
        try:
            state = self.service.run(search)
        finally:
            with self._lock:
                del self._running[id(search)]
        return {
            "instruction": prompt["instruction"],
            "output": state["answer"],
            "generator": self.generator,
            **prompt["extra"],
            "index": index,
            "method": self.method,
            "reward": state["final_reward"],
            "seed_answer": state["seed_answer"],
            "seed_reward": state["seed"]["reward"],
            "seconds": round(time.perf_counter() - started, 3),
            "darwin": search_metadata(state),
        }

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            for search in self._running.values():
                search.cancel()


def in_input_order(
    rows: Sequence[int], answer: Callable[[int], dict[str, Any]], concurrency: int = 1
) -> Iterator[dict[str, Any]]:
    """``answer(row)`` for every row, ``concurrency`` at a time, yielded in the order of
    ``rows``. Leaving early (an error, Ctrl-C, the caller stopping) cancels the rows not yet
    started and stops the running ones if ``answer`` has a ``cancel()``."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    with ThreadPoolExecutor(concurrency, thread_name_prefix="darwin-generate") as pool:
        futures = [pool.submit(answer, row) for row in rows]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()
            cancel = getattr(answer, "cancel", None)
            if cancel is not None:
                cancel()


def generate(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    method: str = "darwin",
    budget: int | None = None,
    model: str | None = None,
    reward_model: Any = None,
    engine: dict[str, Any] | None = None,
    service: SearchService | None = None,
    seed: int | None = 0,
    limit: int | None = None,
    generator: str | None = None,
    export_json: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    concurrency: int = 1,
    **knobs: Any,
) -> dict[str, Any]:
    """Answer every prompt of ``input_path`` with ``method`` at ``budget`` (see
    :mod:`langchain_darwin.baselines`), ``concurrency`` rows at once, and append
    AlpacaEval-compatible records to ``output_path`` in input order, skipping rows already
    there. The searches run on ``service``, or on one made of ``model`` (the policy, default
    "default"), ``reward_model`` and ``engine`` (further :class:`EngineSpec` fields:
    ``base_url``, ``api_key``, ``device``...). ``knobs`` are DarwinConfig knobs
    (``max_tokens``, ``iterations``...) and win over the method's.
    Returns ``{"total", "skipped", "written", "output", "seconds"}``."""
    from tqdm.auto import tqdm

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if service is not None and (model is not None or reward_model is not None or engine):
        raise ValueError("give either service= or model=/reward_model=/engine=, not both")
    service = service or _service(model, reward_model, engine)
    config = DarwinConfig().merged(  # bad knobs fail before the first row
        **method_knobs(method, None if method == "sample" else budget, **knobs)
    )
    prompts = read_prompts(input_path)[:limit]
    out, name = Path(output_path), generator or generator_name(service.model, method, budget)
    todo = pending_rows(prompts, out, name)
    service.ready()  # a policy or reward that cannot load fails before the first row
    searches = RowSearches(prompts, service, config, method=method, generator=name, seed=seed)
    started, written = time.perf_counter(), 0
    out.parent.mkdir(parents=True, exist_ok=True)
    done = len(prompts) - len(todo)
    bar = tqdm(total=len(prompts), initial=done, desc=method, unit="prompt", disable=not progress)
    try:
        with out.open("a", encoding="utf-8") as fh:
            for record in in_input_order(todo, searches, concurrency):
                append_record(fh, record)
                written += 1
                if on_row is not None:
                    on_row(record)
                bar.set_postfix(reward=f"{record['reward']:.3f}")
                bar.update(1)
    finally:
        bar.close()
    if export_json is not None:
        export(out, export_json)
    return {
        "total": len(prompts),
        "skipped": done,
        "written": written,
        "output": str(out),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _service(model: str | None, reward_model: Any, engine: dict[str, Any] | None) -> SearchService:
    return SearchService(EngineSpec(model=model or DEFAULT_MODEL, **(engine or {})), reward_model)


def export(output_path: str | os.PathLike[str], json_path: str | os.PathLike[str]) -> None:
    """Write the rows of ``output_path`` as one JSON list (``alpaca_eval --model_outputs``)."""
    records = sorted(scan_output(output_path), key=lambda r: r["index"])
    Path(json_path).write_text(
        json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
