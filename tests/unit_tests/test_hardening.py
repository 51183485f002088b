"""Bad input, faulty rewards, budgets, concurrency and reproducibility."""

from __future__ import annotations

import asyncio
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import ValidationError

from langchain_darwin import DarwinChatModel
from langchain_darwin.conversation import ConversationError
from langchain_darwin.rewards.base import RewardError

FAST = {"max_tokens": 16, "replacement_period": 8}


def vowels(conversation, answer: str) -> float:
    return float(sum(ch in "aeiou " for ch in answer))


@pytest.fixture(scope="module")
def llm(tiny_dirs) -> DarwinChatModel:
    return DarwinChatModel(model=str(tiny_dirs[0]), reward_model=vowels, seed=0, **FAST)


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "no messages"),
        ("   ", "last user message is empty"),
        ([SystemMessage("be nice")], "only system messages"),
        ([HumanMessage("hi"), AIMessage("hello")], "ends with a assistant turn"),
        (
            [HumanMessage("hi"), AIMessage("", tool_calls=[]), ToolMessage("42", tool_call_id="x")],
            "role 'tool'",
        ),
        (
            [HumanMessage(content=[{"type": "image_url", "image_url": {"url": "http://x/a.png"}}])],
            "'image_url' content block",
        ),
    ],
)
def test_bad_conversations_get_specific_errors(llm, messages, match: str) -> None:
    with pytest.raises(ConversationError, match=match):
        llm.invoke(messages)


def test_prompt_longer_than_the_context_window(llm) -> None:
    with pytest.raises(ValueError, match="context window of 4096 tokens"):
        llm.invoke("word " * 900)  # the tiny byte-level model: one token per byte


@pytest.mark.parametrize(
    ("knobs", "field"),
    [
        ({"survivors": 5}, "survivors"),
        ({"replacement_period": 0}, "replacement_period"),
        ({"temperature": -0.1}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"look_ahead": -1}, "look_ahead"),
    ],
)
def test_invalid_knobs_are_named_at_construction_and_per_call(llm, knobs, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        DarwinChatModel(model="default", **knobs)
    with pytest.raises(ValidationError, match=field):
        llm.invoke("hi", **knobs)


def test_a_missing_model_path_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError):
        DarwinChatModel(model="./no/such/model").invoke("hi")


def test_a_reward_that_raises_names_the_answers(tiny_dirs) -> None:
    def broken(conversation, answer: str) -> float:
        raise KeyError("boom")

    llm = DarwinChatModel(model=str(tiny_dirs[0]), reward_model=broken, seed=0, **FAST)
    with pytest.raises(RewardError, match=r"failed while scoring 6 answers .*KeyError"):
        llm.invoke("hi")


def test_nan_and_inf_rewards_rank_last_with_a_warning(tiny_dirs) -> None:
    calls = []

    def spiky(conversation, answer: str) -> float:
        calls.append(answer)
        if len(calls) % 3 == 0:
            return math.nan
        if len(calls) % 3 == 1:
            return math.inf  # inf is not "infinitely good": it is a broken score too
        return vowels(None, answer)

    llm = DarwinChatModel(model=str(tiny_dirs[0]), reward_model=spiky, seed=1, **FAST)
    with pytest.warns(RuntimeWarning, match="ranks last"):
        state = llm.search_service.run(llm.prepare_search([HumanMessage("Tell me about eggs")]))
    assert math.isfinite(state["final_reward"])
    last_period = state["period_scores"][-1]["rewards"]  # the beams' rewards at the end
    finite = [r for r in last_period if math.isfinite(r)]
    assert state["final_reward"] >= max(finite)


def test_a_reward_with_the_wrong_number_of_scores(tiny_dirs) -> None:
    from langchain_darwin.rewards import RewardModel

    class Short(RewardModel):
        def score(self, conversation, answers):
            return [0.0]

    llm = DarwinChatModel(model=str(tiny_dirs[0]), reward_model=Short(), seed=0, **FAST)
    with pytest.raises(RewardError, match="returned 1 scores for 6 answers"):
        llm.invoke("hi")


def test_generated_token_budget_returns_the_best_so_far(tiny_dirs) -> None:
    llm = DarwinChatModel(
        model=str(tiny_dirs[0]), reward_model=vowels, seed=2, max_tokens=64, replacement_period=8
    )
    full = llm.invoke("Tell me about eggs").response_metadata["darwin"]
    msg = llm.invoke("Tell me about eggs", max_generated_tokens=150)
    darwin = msg.response_metadata["darwin"]
    assert full["stopped"] is None and darwin["stopped"] == "max_generated_tokens"
    # checked before every period: it overshoots by at most one period of every row
    assert 150 <= darwin["generated_tokens"] < full["generated_tokens"]
    assert darwin["final_reward"] >= darwin["seed_reward"]


def test_time_budget_returns_an_answer(tiny_dirs) -> None:
    llm = DarwinChatModel(
        model=str(tiny_dirs[0]), reward_model=vowels, seed=2, max_tokens=4000, replacement_period=8
    )
    msg = llm.invoke("Tell me about eggs", max_time=2.0, iterations=3)
    assert msg.response_metadata["darwin"]["stopped"] == "max_time"


def test_same_seed_same_answer_including_batch(llm) -> None:
    first = llm.invoke("Tell me about cats").content
    assert llm.invoke("Tell me about cats").content == first
    batched = llm.batch(["Tell me about cats", "Tell me about dogs", "Tell me about cats"])
    assert batched[0].content == first and batched[2].content == first


def test_eight_threads_without_cross_talk(llm) -> None:
    prompts = [f"Question number {i}" for i in range(8)]
    expected = {p: llm.invoke(p).content for p in prompts}
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = dict(zip(prompts, pool.map(lambda p: llm.invoke(p).content, prompts), strict=True))
    assert got == expected
    assert threading.active_count() < 50


async def test_eight_concurrent_ainvokes_without_cross_talk(llm) -> None:
    prompts = [f"Question number {i}" for i in range(8)]
    expected = {p: llm.invoke(p).content for p in prompts}
    answers = await asyncio.wait_for(
        asyncio.gather(*(llm.ainvoke(p) for p in prompts)), timeout=600
    )
    assert {p: a.content for p, a in zip(prompts, answers, strict=True)} == expected


def test_batch_with_max_concurrency(llm) -> None:
    prompts = [f"Question number {i}" for i in range(4)]
    expected = [llm.invoke(p).content for p in prompts]
    got = llm.batch(prompts, config={"max_concurrency": 2})
    assert [m.content for m in got] == expected
