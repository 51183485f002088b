"""DarwinChatModel end to end on a served policy and a served reward model (real vLLM
servers, tests/servers.py): the same knobs, metadata, usage and stream events as in process."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk

from langchain_darwin import DarwinChatModel
from langchain_darwin.rewards import ServedReward

QUESTION = "How do I boil an egg?"
#: One mutation cycle, 5 beams, 16 tokens, a replacement every 8: seconds on 2 idle cores.
SMALL: dict[str, Any] = {"max_tokens": 16, "replacement_period": 8, "seed": 3}


@pytest.fixture(scope="module")
def served_reward(vllm_reward_server: Any) -> ServedReward:
    return ServedReward(vllm_reward_server.base_url, vllm_reward_server.model)


@pytest.fixture(scope="module")
def chat(vllm_policy_server: Any, served_reward: ServedReward) -> DarwinChatModel:
    return DarwinChatModel(
        model=vllm_policy_server.model,
        base_url=vllm_policy_server.base_url,
        reward_model=served_reward,
        timeout=120,
        max_retries=1,
        **SMALL,
    )


@pytest.fixture(scope="module")
def first(chat: DarwinChatModel, served_reward: ServedReward) -> tuple[AIMessage, int]:
    """One search, shared: (its message, the positions the served reward model scored)."""
    before = served_reward.positions_scored
    message = chat.invoke(QUESTION)
    return message, served_reward.positions_scored - before


def test_invoke_runs_the_search_on_the_servers(
    chat: DarwinChatModel, first: tuple[AIMessage, int]
) -> None:
    message, scored = first
    assert isinstance(message.content, str) and message.content.strip()
    meta = message.response_metadata
    assert meta["model_name"] == chat.model
    assert meta["finish_reason"] in {"stop", "length"}
    darwin = meta["darwin"]
    assert darwin["config"]["max_tokens"] == 16 and darwin["winner"]["tokens"] <= 16
    assert len(darwin["period_scores"][0]) == 2  # 16 tokens, a replacement every 8
    assert darwin["final_reward"] == pytest.approx(darwin["winner"]["reward"])
    usage = message.usage_metadata
    assert usage is not None and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert scored > 0  # the served reward model scored them
    # a fixed seed reproduces the search on the server
    assert chat.invoke(QUESTION).content == message.content


def test_knobs_per_call(chat: DarwinChatModel) -> None:
    message = chat.invoke(QUESTION, max_tokens=8, replacement_period=4, seed=5)
    darwin = message.response_metadata["darwin"]
    assert darwin["config"]["max_tokens"] == 8 and darwin["winner"]["tokens"] <= 8
    assert len(darwin["period_scores"][0]) == 2
    assert chat.config.max_tokens == 16  # the instance is untouched


def test_cache_none_reprefills_on_the_server(
    chat: DarwinChatModel, first: tuple[AIMessage, int]
) -> None:
    """``cache="none"`` salts each call's prefix cache: same answer, more prefill."""
    kv = first[0].response_metadata["darwin"]
    none = chat.invoke(QUESTION, cache="none").response_metadata["darwin"]
    assert none["winner"] == kv["winner"]
    assert _prefilled(none) > _prefilled(kv)


def _prefilled(darwin: dict[str, Any]) -> int:
    usage = darwin["usage"]
    return sum(v["prefilled"] for v in usage.values() if isinstance(v, dict) and "prefilled" in v)


async def test_astream_events_progress_then_tokens(
    chat: DarwinChatModel, first: tuple[AIMessage, int]
) -> None:
    answer = first[0].content
    events = [e async for e in chat.astream_events(QUESTION, version="v2")]
    custom = [e for e in events if e["event"] == "on_custom_event"]
    scores = [e["data"] for e in custom if e["name"] == "darwin_score"]
    assert len(scores) == 2 and all(len(s["rewards"]) == 5 for s in scores)
    chunks = [e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"]
    assert chunks and all(isinstance(c, AIMessageChunk) for c in chunks)
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert full.content == answer
