"""Fixtures for tests that run real searches on the tiny random models (see tests/tiny.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from langchain_darwin import DarwinChatModel
from tests.tiny import tiny_policy, tiny_tokenizer

#: Settings that keep one search on the tiny policy well under a second on 2 CPU cores:
#: one mutation cycle, 5 beams, 16 answer tokens, a replacement every 8 tokens, greedy.
FAST: dict[str, Any] = {
    "max_tokens": 16,
    "replacement_period": 8,
    "temperature": 0,
    "seed": 0,
}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """The tiny models gain nothing from intra-op threads, and on a shared 2-core machine two
    torch threads per process made one search 0.3 s -> up to 32 s (measured, load ~7)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def other_policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny policy (other random weights), for per-call model overrides."""
    folder = tmp_path_factory.mktemp("tiny-other") / "tiny-policy-other"
    tokenizer = tiny_tokenizer()
    tiny_policy(tokenizer, seed=2).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def make_chat(tiny_dirs: tuple[Path, Path]) -> Callable[..., DarwinChatModel]:
    """``make_chat(**overrides)``: a DarwinChatModel on the tiny policy and tiny reward model."""
    policy, reward = tiny_dirs

    def make(**overrides: Any) -> DarwinChatModel:
        params = {"model": str(policy), "reward_model": str(reward), **FAST, **overrides}
        return DarwinChatModel(**params)

    return make


# -- real vLLM servers (tests.servers, the launcher benchmarks.speed_served uses too) -------


@pytest.fixture(scope="session")
def vllm_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """(policy, reward): the embedded SmolLM2 and a SmolLM2-based reward model on vLLM.
    A missing vLLM venv fails here (``make vllm``): these tests are never skipped."""
    from tests.servers import VLLMServer, policy_dir, reward_model_dir, start_servers, vllm_python

    vllm_python()  # fail before building anything when vLLM is not installed
    logs = tmp_path_factory.mktemp("vllm")
    policy = VLLMServer(policy_dir(), "smollm2-policy", logs / "policy.log")
    reward = VLLMServer(reward_model_dir(), "smollm2-reward", logs / "reward.log", pooling=True)
    start_servers(policy, reward)
    try:
        yield policy, reward
    finally:
        policy.stop()
        reward.stop()


@pytest.fixture(scope="session")
def vllm_policy_server(vllm_servers: tuple[Any, Any]) -> Any:
    """The policy server: ``.base_url`` (…/v1), ``.model``, ``.folder``, ``.restart()``."""
    return vllm_servers[0]


@pytest.fixture(scope="session")
def vllm_reward_server(vllm_servers: tuple[Any, Any]) -> Any:
    """The reward-model server (``--runner pooling``), same interface."""
    return vllm_servers[1]
