"""The OpenAI-compatible server on a real uvicorn (in this process) over the tiny models,
driven by the official ``openai`` client and plain HTTP: answers equal the same seeded search
run directly, every bad input is a 4xx in OpenAI's shape before any decoding, admission
refuses past capacity, and a client that leaves cancels its search."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import torch

from langchain_darwin import DarwinChatModel
from langchain_darwin.rewards import HFSequenceClassifierReward, RewardModel, Scored
from tests.serve_helpers import metric, serving

KNOBS: dict[str, Any] = {"max_tokens": 16, "replacement_period": 8, "temperature": 0.7}
EGG = [{"role": "user", "content": "How do I boil an egg?"}]
KEY = "test-key-0123456789"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TimedReward(RewardModel):
    """The tiny classifier, recording when each scoring call ended (to see a search stop)."""

    def __init__(self, folder: Path) -> None:
        self.inner = HFSequenceClassifierReward(folder, prefix_cache=False)
        self.calls: list[float] = []

    def score(self, conversation: Any, answers: Any) -> list[float]:
        return self.score_with_usage(conversation, answers).scores

    def score_with_usage(self, conversation: Any, answers: Any) -> Scored:
        scored = self.inner.score_with_usage(conversation, answers)
        self.calls.append(time.monotonic())
        return scored


@pytest.fixture(scope="module")
def chat(tiny_dirs: tuple[Path, Path]) -> DarwinChatModel:
    return DarwinChatModel(model=str(tiny_dirs[0]), reward_model=TimedReward(tiny_dirs[1]), **KNOBS)


@pytest.fixture(scope="module")
def server(chat: DarwinChatModel) -> Iterator[str]:
    with serving(chat, api_key=KEY, max_concurrent=4, queue=16) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server, api_key=KEY, max_retries=0)


def direct(chat: DarwinChatModel, seed: int, **knobs: Any) -> tuple[str, dict[str, int]]:
    message = chat.invoke("How do I boil an egg?", seed=seed, **knobs)
    usage = message.usage_metadata or {}
    return str(message.content), {
        "prompt_tokens": usage["input_tokens"],
        "completion_tokens": usage["output_tokens"],
    }


def answered(response: Any) -> tuple[str, dict[str, int]]:
    return response.choices[0].message.content, {
        "prompt_tokens": response.usage.prompt_tokens,
        "completion_tokens": response.usage.completion_tokens,
    }


# -- answers ----------------------------------------------------------------------------------


def test_a_completion_equals_the_same_seeded_search_run_directly(
    client: openai.OpenAI, chat: DarwinChatModel
) -> None:
    response = client.chat.completions.create(model="darwin", messages=EGG, seed=3)
    assert response.object == "chat.completion" and response.model == "darwin"
    assert answered(response) == direct(chat, 3)
    choice = response.choices[0]
    assert choice.finish_reason in ("stop", "length") and choice.message.role == "assistant"
    record = response.model_extra["darwin"]
    assert record["seed"] == 3 and record["config"]["max_tokens"] == 16
    assert record["usage"]["reward"]["positions"] > 0
    assert response.usage.total_tokens == sum(answered(response)[1].values())


def test_extra_body_knobs_and_openai_parameters_reach_the_search(
    client: openai.OpenAI, chat: DarwinChatModel
) -> None:
    response = client.chat.completions.create(
        model="darwin",
        messages=EGG,
        seed=5,
        max_completion_tokens=12,
        extra_body={"darwin": {"replacement_period": 4, "iterations": 1}},
    )
    config = response.model_extra["darwin"]["config"]
    assert (config["max_tokens"], config["replacement_period"]) == (12, 4)
    assert answered(response) == direct(chat, 5, max_tokens=12, replacement_period=4)


def test_stream_carries_progress_then_the_same_answer_and_usage(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="darwin", messages=EGG, seed=7)
    chunks = list(
        client.chat.completions.create(
            model="darwin",
            messages=EGG,
            seed=7,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    progress = [
        c.model_extra["darwin"]["progress"] for c in chunks if not c.choices and not c.usage
    ]
    steps = {p["step"] for p in progress}
    assert {"mutate", "decode_chunk", "score", "select_replace", "update_archive"} <= steps
    assert any(p.get("best") is not None for p in progress if p["step"] == "score")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == plain.choices[0].finish_reason
    assert finish[0].model_extra["darwin"]["final_reward"] == pytest.approx(
        plain.model_extra["darwin"]["final_reward"]
    )
    assert chunks[-1].usage == plain.usage and not chunks[-1].choices
    assert len({c.id for c in chunks}) == 1


async def test_async_client_and_concurrent_requests(server: str, chat: DarwinChatModel) -> None:
    aclient = openai.AsyncOpenAI(base_url=server, api_key=KEY, max_retries=0)
    responses = await asyncio.gather(
        *(aclient.chat.completions.create(model="darwin", messages=EGG, seed=s) for s in (1, 2))
    )
    expected = await asyncio.to_thread(lambda: [direct(chat, s) for s in (1, 2)])
    assert [answered(r) for r in responses] == expected
    stream = await aclient.chat.completions.create(
        model="darwin", messages=EGG, seed=1, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == expected[0][0]


def test_tools_are_offered_as_bind_tools_does(client: openai.OpenAI) -> None:
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    response = client.chat.completions.create(
        model="darwin",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[weather],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        seed=1,
    )
    tools = response.model_extra["darwin"]["tools"]
    assert tools["offered"] == ["get_weather"] and tools["required"] is True
    choice = response.choices[0]
    if tools["valid_call"]:  # a random tiny policy rarely writes one; either way it is consistent
        assert choice.finish_reason == "tool_calls"
        assert json.loads(choice.message.tool_calls[0].function.arguments)["city"]
    else:
        assert choice.finish_reason in ("stop", "length") and not choice.message.tool_calls
    with pytest.raises(openai.BadRequestError, match="not a bound tool") as bad:
        client.chat.completions.create(
            model="darwin", messages=EGG, tools=[weather], tool_choice="get_time"
        )
    assert bad.value.body["param"] == "tool_choice"


# -- bad input: a 4xx in OpenAI's shape, before any decoding ----------------------------------

LONG = [{"role": "user", "content": "egg " * 1200}]  # 4,800 byte-tokens: over the 4,096 window
BAD: list[tuple[dict[str, Any], int, str | None, str]] = [
    ({"model": "darwin", "messages": EGG, "n": 2}, 400, "n", "n=2 is not supported"),
    ({"model": "darwin", "messages": EGG, "top_p": 0.9}, 400, "top_p", "nucleus"),
    ({"model": "darwin", "messages": EGG, "logprobs": True}, 400, "logprobs", "logprobs"),
    ({"model": "darwin", "messages": EGG, "presence_penalty": 1}, 400, "presence_penalty", ""),
    ({"model": "darwin", "messages": EGG, "best_of": 2}, 400, "best_of", "unrecognized"),
    ({"model": "darwin", "messages": EGG, "darwin": {"beams": 3}}, 400, "darwin.beams", "knob"),
    ({"model": "darwin", "messages": EGG, "darwin": {"survivors": 9}}, 400, "darwin", "survivors"),
    ({"model": "darwin", "messages": EGG, "darwin": {"max_time": -1}}, 400, "darwin.max_time", ""),
    (
        {"model": "darwin", "messages": EGG, "max_tokens": 8, "darwin": {"max_tokens": 9}},
        400,
        "max_tokens",
        "disagree",
    ),
    ({"model": "darwin", "messages": EGG, "temperature": "hot"}, 400, "temperature", ""),
    ({"model": "darwin", "messages": []}, 400, "messages", ""),
    ({"model": "darwin"}, 400, "messages", "Field required"),
    (
        {"model": "darwin", "messages": [{"role": "robot", "content": "hi"}]},
        400,
        "messages.0.role",
        "",
    ),
    (
        {"model": "darwin", "messages": [*EGG, {"role": "assistant", "content": "Boil it."}]},
        400,
        "messages",
        "end with a user message",
    ),
    ({"model": "darwin", "messages": LONG}, 400, "messages", "context window"),
    ({"model": "gpt-4o", "messages": EGG}, 404, "model", "not served here"),
    (
        {"model": "darwin", "messages": EGG, "response_format": {"type": "json_object"}},
        400,
        "response_format",
        "tools",
    ),
]


@pytest.mark.parametrize(("body", "status", "param", "words"), BAD)
def test_bad_requests_are_refused_naming_what_is_wrong(
    server: str, body: dict[str, Any], status: int, param: str | None, words: str
) -> None:
    before = metric(server, "generated_tokens_total")
    response = httpx.post(
        f"{server}/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and words in error["message"]
    assert metric(server, "generated_tokens_total") == before  # nothing was decoded


def test_bad_json_and_a_non_object_body(server: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    for body, words in ((b'{"model": "darwin", "messa', "not valid JSON"), (b"[1, 2]", "object")):
        response = httpx.post(f"{server}/chat/completions", content=body, headers=headers)
        assert response.status_code == 400 and words in response.json()["error"]["message"]


def test_a_missing_or_wrong_key_is_401_and_no_key_is_echoed(server: str) -> None:
    body = {"model": "darwin", "messages": EGG}
    for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": KEY}):
        response = httpx.post(f"{server}/chat/completions", json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert "wrong-key" not in response.text and KEY not in response.text
    assert httpx.get(f"{server}/models").status_code == 401
    listed = httpx.get(f"{server}/models", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert [m["id"] for m in listed["data"]] == ["darwin"]
    root = server.removesuffix("/v1")
    assert httpx.get(f"{root}/health").json() == {"status": "ok"}
    assert httpx.get(f"{root}/ready").status_code == 200
    assert httpx.get(f"{root}/nowhere").json()["error"]["type"] == "not_found"


# -- load, admission, disconnects ---------------------------------------------------------------


def test_sixteen_concurrent_clients_each_get_their_own_seeded_answer(
    client: openai.OpenAI, chat: DarwinChatModel
) -> None:
    seeds = list(range(100, 116))
    with ThreadPoolExecutor(16) as pool:
        responses = list(
            pool.map(
                lambda s: client.chat.completions.create(model="darwin", messages=EGG, seed=s),
                seeds,
            )
        )
    solo = [direct(chat, s) for s in seeds]
    assert [answered(r) for r in responses] == solo
    assert len({text for text, _ in solo}) > 8  # seeds differ, so a mixed answer would show


def test_past_capacity_requests_get_429_with_retry_after_and_none_is_lost(
    chat: DarwinChatModel,
) -> None:
    slow = {"max_tokens": 96, "ignore_eos": True}
    with serving(chat, max_concurrent=1, queue=1) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)

        def ask(seed: int) -> Any:
            try:
                return client.chat.completions.create(
                    model="darwin", messages=EGG, seed=seed, extra_body={"darwin": slow}
                )
            except openai.RateLimitError as err:
                return err

        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(ask, range(4)))
        refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
        served = [(s, o) for s, o in enumerate(outcomes) if not isinstance(o, Exception)]
        assert len(served) == 2 and len(refused) == 2  # one running, one queued
        for err in refused:
            assert int(err.response.headers["Retry-After"]) >= 1
            assert err.body["code"] == "queue_full"
        for seed, response in served:
            assert response.model_extra["darwin"]["seed"] == seed
            assert answered(response) == direct(chat, seed, **slow)
        assert metric(url, "queue_depth") == 0 and metric(url, "searches_running") == 0


def _hang_up_after(url: str, body: dict[str, Any], seconds: float) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/chat/completions", json=body, timeout=httpx.Timeout(seconds))


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_cancels_its_search_and_frees_its_slot(
    chat: DarwinChatModel, stream: bool
) -> None:
    reward: TimedReward = chat.reward_model
    long = {"max_tokens": 3000, "ignore_eos": True, "replacement_period": 4}
    body = {"model": "darwin", "messages": EGG, "seed": 1, "stream": stream, "darwin": long}
    with serving(chat, max_concurrent=1, queue=0) as url:
        if stream:
            with httpx.stream("POST", f"{url}/chat/completions", json=body) as response:
                lines = response.iter_lines()
                assert '"progress"' in next(line for line in lines if line)
        else:
            calls = len(reward.calls)
            thread = threading.Thread(target=_hang_up_after, args=(url, body, 1.5))
            thread.start()
            thread.join()
            assert len(reward.calls) > calls  # the search was under way
        left = time.monotonic()
        while metric(url, "searches_running") > 0:
            assert time.monotonic() - left < 10, "the search kept its slot"
            time.sleep(0.05)
        freed = time.monotonic() - left
        assert metric(url, "searches_cancelled_total") == 1
        last_call = reward.calls[-1]
        time.sleep(0.5)
        assert reward.calls[-1] == last_call  # nothing scored after the slot came back
        print(f"slot freed {freed:.2f} s after the client left (stream={stream})")
        quick = {"model": "darwin", "messages": EGG, "seed": 2}
        assert httpx.post(f"{url}/chat/completions", json=quick, timeout=60).status_code == 200


def test_an_unreachable_policy_server_is_503() -> None:
    from tests.servers import free_port

    dead = DarwinChatModel(
        model="policy",
        base_url=f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
        max_retries=0,
        timeout=2,
        reward_model=lambda c, a: 0.0,
    )
    with serving(dead, check="health", max_concurrent=1) as url:
        ready = httpx.get(url.removesuffix("/v1") + "/ready", timeout=30)
        assert ready.status_code == 503 and "ServerUnreachable" in ready.json()["error"]["message"]
        body = {"model": "darwin", "messages": EGG}
        response = httpx.post(f"{url}/chat/completions", json=body, timeout=30)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "upstream_unavailable"


def test_a_per_request_max_time_returns_the_best_answer_so_far(client: openai.OpenAI) -> None:
    started = time.monotonic()
    response = client.chat.completions.create(
        model="darwin",
        messages=EGG,
        seed=1,
        extra_body={"darwin": {"max_tokens": 3000, "ignore_eos": True, "max_time": 1.0}},
    )
    assert time.monotonic() - started < 30
    record = response.model_extra["darwin"]
    assert record["stopped"] == "max_time" and record["config"]["max_time"] == 1.0
    assert response.choices[0].finish_reason in ("stop", "length")  # an answer, not an error


def test_darwin_serve_refuses_bad_flags_before_serving(capsys: pytest.CaptureFixture) -> None:
    from langchain_darwin.cli import main

    assert main(["serve", "--survivors", "9"]) == 2
    assert "survivors=9" in capsys.readouterr().err
    assert main(["serve", "--max-concurrent", "0"]) == 2
    assert "--max-concurrent" in capsys.readouterr().err
