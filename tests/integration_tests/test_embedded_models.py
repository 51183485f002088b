"""Model resolution and loading: the embedded default, local folders, hub ids, the caches."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from langchain_darwin.inprocess import models
from langchain_darwin.inprocess.models import (
    COMPLETE_MARKER,
    DEFAULT_DIRNAME,
    default_model_dir,
    load_policy,
    resolve_model_path,
)
from tests.unit_tests.test_models import _convert_in_child


@pytest.fixture(scope="module")
def default_dir() -> Path:
    """The embedded model in the normal cache: converted at most once per machine."""
    return default_model_dir()


QUESTION = "What is the capital of France?"
CHATML_PROMPT = f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.embedded
def test_default_model_answers_through_chat_template(default_dir: Path) -> None:
    model, tokenizer = load_policy("default", device="cpu")
    assert not model.training and model.dtype == torch.float32
    assert tokenizer.pad_token == "<|im_end|>"
    messages = [{"role": "user", "content": QUESTION}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n") and text.endswith(CHATML_PROMPT)
    enc = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=10, do_sample=False)
    answer = tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert answer.strip()


@pytest.mark.embedded
def test_default_cache_is_reused(default_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = (default_dir.stat().st_mtime_ns, (default_dir / COMPLETE_MARKER).stat().st_mtime_ns)

    def no_conversion(*args: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(models, "_convert_gguf", no_conversion)
    start = time.perf_counter()
    assert default_model_dir() == default_dir
    assert resolve_model_path(None) == resolve_model_path("default") == str(default_dir)
    AutoTokenizer.from_pretrained(default_dir)
    AutoModelForCausalLM.from_pretrained(default_dir)
    assert time.perf_counter() - start < 5
    after = (default_dir.stat().st_mtime_ns, (default_dir / COMPLETE_MARKER).stat().st_mtime_ns)
    assert after == before


@pytest.mark.embedded
def test_load_policy_is_memoized(default_dir: Path) -> None:
    first = load_policy("default", device="cpu")
    assert load_policy(None, device="cpu", dtype="float32") is first
    assert load_policy(default_dir, device="cpu", dtype=torch.float32) is first
    results: list[object] = [None, None]
    barrier = threading.Barrier(2)

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = load_policy("default", device="cpu")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] is results[1] is first


@pytest.mark.embedded
def test_two_processes_convert_once(tmp_path: Path) -> None:
    """The one conversion of this file: two spawned processes race on a fresh cache root."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_convert_in_child, args=(str(tmp_path), barrier, queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (path_a, n_a), (path_b, n_b) = results
    target = tmp_path / DEFAULT_DIRNAME
    assert path_a == path_b == str(target)
    assert n_a + n_b == 1
    assert (target / COMPLETE_MARKER).is_file() and (target / "model.safetensors").is_file()
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == [DEFAULT_DIRNAME, f"{DEFAULT_DIRNAME}.lock"]  # no temp folder left
    tokenizer = AutoTokenizer.from_pretrained(target)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.endswith(CHATML_PROMPT)
