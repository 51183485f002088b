"""A LangChain chat model served by vLLM as DARWIN's judge: ``ChatOpenAI`` pointed at the
real policy server (its OpenAI-compatible chat API) scores a search's answers. A 135M model
is no judge (verified-facts.md): this checks the plumbing (real requests, temperature 0,
parsing, unreadable replies ranked last and counted), not the verdicts."""

from __future__ import annotations

import math
import warnings
from typing import Any

from langchain_openai import ChatOpenAI

from langchain_darwin import DarwinChatModel
from langchain_darwin.rewards.judge import ChatModelJudge


def test_a_served_chat_model_judges_a_served_search(vllm_policy_server: Any) -> None:
    judge_model = ChatOpenAI(
        model=vllm_policy_server.model,
        base_url=vllm_policy_server.base_url,
        api_key="unused",  # type: ignore[arg-type]
        max_tokens=8,
        timeout=120,
        max_retries=1,
    )
    judge = ChatModelJudge(judge_model, max_concurrency=4)
    llm = DarwinChatModel(
        model=vllm_policy_server.model,
        base_url=vllm_policy_server.base_url,
        reward_model=judge,
        max_tokens=12,
        replacement_period=6,
        seed=5,
        timeout=120,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # unreadable verdicts warn
        message = llm.invoke("How do I boil an egg?")
    darwin = message.response_metadata["darwin"]
    reward = darwin["usage"]["reward"]
    assert judge.judged >= reward["answers"] > 0  # every scored answer went to the server
    assert reward["unparsed"] == judge.unparsed  # what could not be read is counted here
    assert darwin["final_reward"] is not None and math.isfinite(darwin["final_reward"])
    scores = [s for p in darwin["period_scores"] for row in p for s in row if s is not None]
    assert scores and all(0.0 <= s <= 10.0 for s in scores)
