"""The models the local speed benchmark runs: a policy and a reward model of one shape.

- ``smollm2``: the embedded SmolLM2-135M-Instruct (its real weights) and a reward model of
  its size built from its backbone (:func:`common.smollm_reward_model`);
- ``tiny`` and ``llama3-8b``: random weights built from a ``LlamaConfig`` of that shape
  (``AutoModelForCausalLM.from_config``, and ``AutoModelForSequenceClassification`` with one
  label for the reward model), placed on the device as they are built, with the embedded
  tokenizer's vocabulary (SmolLM2's 49,152 tokens). ``tiny`` runs anywhere in seconds (the
  CPU rehearsal of the GPU run); ``llama3-8b`` has Llama-3-8B's dimensions, for a GPU.

Random weights write random tokens, so every method decodes with ``ignore_eos`` to do the
same work, and the reward model is a real forward of the right shape whose scores mean
nothing.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from benchmarks.common import smollm_reward_model

EMBEDDED = "smollm2"
#: Llama dimensions of the random-weight shapes (vocabulary: the tokenizer's).
RANDOM: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    "llama3-8b": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "rope_theta": 500000.0,
    },
}
SHAPES = ("tiny", EMBEDDED, "llama3-8b")


@dataclass
class BenchModels:
    """A policy, its tokenizer and a one-logit reward model of the same shape, on a device."""

    shape: str
    policy: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    reward: PreTrainedModel
    device: str
    random_weights: bool
    build_s: float

    def describe(self) -> dict[str, Any]:
        config = self.policy.config
        return {
            "shape": self.shape,
            "device": self.device,
            "dtype": str(self.policy.dtype).removeprefix("torch."),
            "random_weights": self.random_weights,
            "policy_params_b": sum(p.numel() for p in self.policy.parameters()) / 1e9,
            "reward_params_b": sum(p.numel() for p in self.reward.parameters()) / 1e9,
            "layers": config.num_hidden_layers,
            "hidden": config.hidden_size,
            "heads": config.num_attention_heads,
            "kv_heads": config.num_key_value_heads,
            "intermediate": config.intermediate_size,
            "vocab": config.vocab_size,
            "build_s": self.build_s,
        }


def default_dtype(device: str) -> torch.dtype:
    """bf16 on CUDA (what people run 8B models in), fp32 on CPU (bf16 is ~5x slower there)."""
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def embedded_tokenizer_dir() -> Path:
    from langchain_darwin.inprocess.models import default_model_dir

    return default_model_dir()


def build_models(
    shape: str,
    device: str,
    dtype: torch.dtype | None = None,
    tokenizer_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> BenchModels:
    """The models of ``shape`` on ``device`` (``dtype``: default by device)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")
    dtype = dtype or default_dtype(device)
    start = time.perf_counter()
    if shape == EMBEDDED:
        from langchain_darwin.inprocess.models import load_policy

        policy, tokenizer = load_policy("default", device=device, dtype=dtype)
        reward = smollm_reward_model(policy, tokenizer, seed)
    else:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or embedded_tokenizer_dir())
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        policy, reward = random_models(RANDOM[shape], tokenizer, device, dtype, seed)
    _sync(device)
    return BenchModels(
        shape=shape,
        policy=policy,
        tokenizer=tokenizer,
        reward=reward,
        device=device,
        random_weights=shape != EMBEDDED,
        build_s=time.perf_counter() - start,
    )


def random_models(
    dims: dict[str, Any],
    tokenizer: PreTrainedTokenizerBase,
    device: str,
    dtype: torch.dtype,
    seed: int,
) -> tuple[PreTrainedModel, PreTrainedModel]:
    """A causal LM and a one-label sequence classifier of the same Llama shape, random
    weights (seeded), built directly on ``device`` in ``dtype``."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=8192,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=0.02,
        **dims,
    )
    reward_config = copy.deepcopy(config)
    reward_config.num_labels = 1
    torch.manual_seed(seed)
    with torch.device(device):
        policy = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
        reward = AutoModelForSequenceClassification.from_config(reward_config, dtype=dtype)
    policy.generation_config.pad_token_id = tokenizer.pad_token_id
    return policy, reward.eval()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
