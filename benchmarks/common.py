"""Helpers shared by the benchmark scripts: data, a SmolLM2-sized reward model, memory and
per-node timing. Nothing here is part of the library."""

from __future__ import annotations

import copy
import ctypes
import gc
import json
import platform
import re
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID

import torch
from langchain_core.callbacks import BaseCallbackHandler
from transformers import LlamaForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_QUESTIONS = REPO_ROOT.parent / "shared" / "data" / "mt_bench_questions.jsonl"


def log(msg: str) -> None:
    """Progress for the person running a benchmark: stderr, so stdout stays the result."""
    print(msg, file=sys.stderr, flush=True)


# -- data -------------------------------------------------------------------------------


def load_first_turns(path: str | Path | None, count: int) -> list[dict[str, Any]]:
    """The first ``count`` MT-Bench questions as ``{"id", "category", "prompt"}`` (turn 1)."""
    file = Path(path) if path is not None else DEFAULT_QUESTIONS
    if not file.is_file():
        raise SystemExit(
            f"MT-Bench questions not found at {file}. The default is ../shared/data/"
            "mt_bench_questions.jsonl next to the repository root; pass --questions PATH "
            "(JSON Lines with a 'turns' list per line)."
        )
    rows = []
    with file.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            item = json.loads(line)
            prompt = item["turns"][0] if "turns" in item else item["instruction"]
            rows.append(
                {"id": item.get("question_id"), "category": item.get("category"), "prompt": prompt}
            )
            if len(rows) >= count:
                break
    if len(rows) < count:
        raise SystemExit(f"{file} holds only {len(rows)} questions; asked for {count}")
    return rows


# -- reward model -----------------------------------------------------------------------


def smollm_reward_model(
    policy: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, seed: int
) -> PreTrainedModel:
    """A reward model of the policy's size and architecture: SmolLM2's backbone weights (a
    separate copy, as a real reward model would be) and a seeded random one-logit head.
    Its scores mean nothing; it costs what a SmolLM2-sized reward model costs."""
    config = copy.deepcopy(policy.config)
    config.num_labels = 1
    config.architectures = ["LlamaForSequenceClassification"]
    config.pad_token_id = tokenizer.pad_token_id
    model = LlamaForSequenceClassification(config).to(device=policy.device, dtype=policy.dtype)
    model.model.load_state_dict(policy.model.state_dict())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        std = getattr(config, "initializer_range", 0.02)
        head = torch.empty(model.score.weight.shape).normal_(0.0, std, generator=generator)
        model.score.weight.copy_(head)
    return model.eval()


# -- memory -------------------------------------------------------------------------------

_STATUS = re.compile(r"^(VmRSS|VmHWM):\s+(\d+)\s+kB", re.MULTILINE)


def _status_kb() -> dict[str, int]:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return {}
    return {name: int(kb) for name, kb in _STATUS.findall(text)}


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """Peak resident memory of this process during a ``with`` block, above its start.

    Linux keeps a resettable high-water mark (``VmHWM``; writing 5 to ``/proc/self/clear_refs``
    resets it to the current RSS), so each block is measured on its own. Where that is not
    possible, ``ru_maxrss`` (monotonic over the process) is used instead and ``method`` says so.
    """

    def __init__(self) -> None:
        self.method = "VmHWM"
        self.start_kb = 0
        self.peak_kb = 0

    def __enter__(self) -> PeakRSS:
        _trim()
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.method = "ru_maxrss"
        status = _status_kb()
        if self.method == "VmHWM" and "VmRSS" in status:
            self.start_kb = status["VmRSS"]
        else:
            self.method = "ru_maxrss"
            self.start_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc: object) -> None:
        status = _status_kb()
        if self.method == "VmHWM" and "VmHWM" in status:
            self.peak_kb = status["VmHWM"]
        else:
            self.peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @property
    def delta_mb(self) -> float:
        return max(0, self.peak_kb - self.start_kb) / 1024

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024

    @property
    def start_mb(self) -> float:
        return self.start_kb / 1024


def cached_kv_mb(store: object) -> float:
    """Megabytes of keys/values a prefix store (``.rows`` of ``CachedRow``) holds, each
    storage counted once."""
    seen: dict[int, int] = {}
    for row in getattr(store, "rows", {}).values():
        for pair in row.kv.layers:  # views of a batch: its whole buffer is what is held
            for t in pair or ():
                storage = t.untyped_storage()
                seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values()) / 2**20


# -- per-node timing ----------------------------------------------------------------------


class NodeTimer(BaseCallbackHandler):
    """Wall time per LangGraph node (chain runs named like the nodes), summed over a run."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.totals: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self._open: dict[UUID, tuple[str, float]] = {}

    def on_chain_start(
        self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID, **kwargs: Any
    ) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name")
        if name in self.names:
            self._open[run_id] = (name, time.perf_counter())

    def _close(self, run_id: UUID) -> None:
        opened = self._open.pop(run_id, None)
        if opened is not None:
            name, start = opened
            self.totals[name] += time.perf_counter() - start
            self.counts[name] += 1

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id)

    def reset(self) -> None:
        self.totals.clear()
        self.counts.clear()
        self._open.clear()


# -- machine ------------------------------------------------------------------------------


def git_head() -> str:
    """Short HEAD commit, with ``+dirty`` when the library has uncommitted changes."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
            ).stdout.strip()
        except OSError:
            return ""

    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "langchain_darwin")
    return head + ("+dirty" if dirty else "")


def source_hash(package_dir: Path | None = None) -> str:
    """Hash of the library's ``.py`` files (the imported copy unless a folder is given)."""
    import hashlib

    import langchain_darwin

    folder = package_dir or Path(langchain_darwin.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def freeze_library(dest: Path) -> Path:
    """Copy ``langchain_darwin/`` and ``benchmarks/`` under ``dest`` (a child process started
    there with ``python -m`` imports both from it), so that every child process of one
    benchmark runs the same code while others edit the tree."""
    import shutil

    for package in ("langchain_darwin", "benchmarks"):
        shutil.copytree(
            REPO_ROOT / package,
            dest / package,
            ignore=shutil.ignore_patterns("__pycache__", "out"),
        )
    return dest


def machine_info() -> dict[str, Any]:
    import os

    import transformers

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda": torch.version.cuda,
        "code": source_hash(),
        "library": str(Path(__import__("langchain_darwin").__file__).resolve().parent),
    }


def pick_prompts(path: Path, count: int, stratified: bool) -> list[dict[str, Any]]:
    """The first ``count`` questions, or (``stratified``) the first of each category in turn:
    MT-Bench lists its 8 categories in blocks of 10, so the first N are all "writing"."""
    if not stratified:
        return load_first_turns(path, count)
    total = sum(1 for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
    everything = load_first_turns(path, total)
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in everything:
        by_category[item["category"]].append(item)
    picked: list[dict[str, Any]] = []
    rank = 0
    while len(picked) < count and any(len(v) > rank for v in by_category.values()):
        picked += [v[rank] for v in by_category.values() if len(v) > rank]
        rank += 1
    return picked[:count]
