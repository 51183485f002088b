"""Faults and bad input on the served backend, each a named error or a defined behaviour:
against real vLLM servers, with a loopback proxy (tests/servers.py FaultProxy) where the
network has to fail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from langchain_darwin import DarwinChatModel
from langchain_darwin.policy.base import EngineError, RowRequest, Sampling
from langchain_darwin.rewards import CallableReward, ServedReward
from langchain_darwin.served import (
    ContextWindowExceeded,
    ModelNotServed,
    RequestFailed,
    ServerUnreachable,
    TokenizerMismatch,
)
from langchain_darwin.served.policy import ServedPolicy
from tests.servers import FaultProxy, free_port

QUESTION = "How do I boil an egg?"
SMALL: dict[str, Any] = {"max_tokens": 16, "replacement_period": 8, "seed": 3}
COMPLETIONS = "/v1/completions"


def length_reward() -> CallableReward:
    return CallableReward(lambda conversation, answer: float(len(answer)))


@pytest.fixture
def proxy(vllm_policy_server: Any) -> Iterator[FaultProxy]:
    proxy = FaultProxy(vllm_policy_server.base_url.removesuffix("/v1"))
    yield proxy
    proxy.close()


def test_unreachable_server_fails_fast_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(ServerUnreachable, match=url.removesuffix("/v1")):
        ServedPolicy(url, "anything", max_retries=1)
    with pytest.raises(ServerUnreachable, match=url.removesuffix("/v1")):
        ServedReward(url, "anything", max_retries=0)
    assert time.monotonic() - started < 10


def test_wrong_model_name_lists_the_served_ones(vllm_policy_server: Any) -> None:
    with pytest.raises(ModelNotServed, match=vllm_policy_server.model) as err:
        ServedPolicy(vllm_policy_server.base_url, "gpt-4")
    assert "'gpt-4'" in str(err.value)
    chat = DarwinChatModel(
        model="gpt-4",
        base_url=vllm_policy_server.base_url,
        reward_model=length_reward(),
        **SMALL,
    )
    with pytest.raises(ModelNotServed):
        chat.invoke(QUESTION)


def test_tokenizer_mismatch_is_named(vllm_policy_server: Any, vllm_reward_server: Any, tiny_dirs):
    tiny_policy = tiny_dirs[0]  # a byte-level tokenizer: other ids for the same text
    with pytest.raises(TokenizerMismatch, match="disagree"):
        ServedPolicy(vllm_policy_server.base_url, vllm_policy_server.model, tokenizer=tiny_policy)
    with pytest.raises(TokenizerMismatch):
        ServedReward(vllm_reward_server.base_url, vllm_reward_server.model, tokenizer=tiny_policy)


def test_over_the_context_window_is_caught_before_decoding(
    vllm_policy_server: Any, proxy: FaultProxy
) -> None:
    engine = ServedPolicy(proxy.base_url, vllm_policy_server.model)
    window = engine.context_window
    assert window == vllm_policy_server.max_model_len
    long = engine.tokenize("egg " * window)[: window - 8]
    with pytest.raises(ContextWindowExceeded, match=f"max_model_len={window}"):
        engine.extend(engine.new_session(), {"beam0": RowRequest(long, 16)}, Sampling(0, 0, 0))
    chat = DarwinChatModel(
        model=vllm_policy_server.model,
        base_url=proxy.base_url,
        reward_model=length_reward(),
        max_tokens=window,
        seed=0,
    )
    with pytest.raises(ValueError, match="context window"):
        chat.invoke(QUESTION)
    assert proxy.counts.get(COMPLETIONS, 0) == 0  # nothing was decoded


def test_5xx_mid_search_retries_then_names_the_period(
    vllm_policy_server: Any, proxy: FaultProxy
) -> None:
    """Completions after the mutation step's fail with 503: each is retried once, then the
    search stops with an error saying where."""
    chat = DarwinChatModel(
        model=vllm_policy_server.model,
        base_url=proxy.base_url,
        reward_model=length_reward(),
        max_retries=1,
        **SMALL,
    )
    healthy = 12  # the mutation rows and the first period's rows go through
    proxy.fault = lambda method, path, n: 503 if path == COMPLETIONS and n > healthy else None
    with pytest.raises(EngineError, match=r"decode_chunk \(cycle \d+, period \d+\)") as err:
        chat.invoke(QUESTION)
    assert "returned 503 after 1 retry" in str(err.value)
    assert isinstance(err.value.__cause__, RequestFailed)
    assert proxy.counts[COMPLETIONS] > healthy + 1  # the failing request was tried again


def test_a_stalled_request_times_out_after_its_retries(
    vllm_policy_server: Any, proxy: FaultProxy
) -> None:
    engine = ServedPolicy(
        proxy.base_url, vllm_policy_server.model, timeout=3, max_retries=1, max_concurrency=2
    )
    proxy.fault = lambda method, path, n: "stall" if path == COMPLETIONS else None
    prompt = engine.render([{"role": "user", "content": QUESTION}])
    started = time.monotonic()
    with pytest.raises(RequestFailed, match="timed out .* after 1 retry"):
        engine.extend(engine.new_session(), {"beam0": RowRequest(prompt, 4)}, Sampling(0, 0, 0))
    assert 6 <= time.monotonic() - started < 20  # two tries of 3 s, a short backoff
    assert proxy.counts[COMPLETIONS] == 2
