"""``darwin serve`` as a process on loopback, driven by the official ``openai`` client and by
``ChatOpenAI`` in a LangChain chain: on the tiny models (load: 16 concurrent clients), on the
embedded default, and on the vLLM test servers (with a failing reward server: 502)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from tests.serve_helpers import DarwinServer, metric
from tests.servers import FaultProxy

EGG = [{"role": "user", "content": "How do I boil an egg?"}]
SMALL = ["--max-tokens", "16", "--replacement-period", "8", "--iterations", "1"]
KEY = "integration-key-42"


@pytest.fixture(scope="module")
def tiny_server(tiny_dirs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    policy, reward = tiny_dirs
    args = ["--model", str(policy), "--reward-model", str(reward), *SMALL]
    args += ["--max-concurrent", "4", "--queue", "16"]
    log = tmp_path_factory.mktemp("serve") / "tiny.log"
    server = DarwinServer(args, log, env={"DARWIN_SERVE_API_KEY": KEY}).start()
    yield server
    server.stop()


def _ask(client: openai.OpenAI, seed: int) -> tuple[str, int, int]:
    response = client.chat.completions.create(model="darwin", messages=EGG, seed=seed)
    usage = response.usage
    assert usage is not None and response.model_extra["darwin"]["seed"] == seed
    return response.choices[0].message.content or "", usage.prompt_tokens, usage.completion_tokens


def test_sixteen_concurrent_clients_get_what_each_seed_gets_alone(tiny_server: Any) -> None:
    client = openai.OpenAI(base_url=tiny_server.base_url, api_key=KEY, max_retries=0)
    seeds = list(range(16))
    alone = [_ask(client, s) for s in seeds]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda s: _ask(client, s), seeds))
    assert together == alone  # every request answered, none mixed with another
    assert len({a[0] for a in alone}) > 8
    assert metric(tiny_server.base_url, "searches_running") == 0
    log = tiny_server.log.read_text()
    assert KEY not in log  # the key is never logged


def test_the_key_comes_from_the_environment(tiny_server: Any) -> None:
    url = f"{tiny_server.base_url}/chat/completions"
    body = {"model": "darwin", "messages": EGG}
    assert httpx.post(url, json=body).status_code == 401
    wrong = openai.OpenAI(base_url=tiny_server.base_url, api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="darwin", messages=EGG)


@pytest.mark.embedded
def test_embedded_default_through_openai_and_chat_openai(tmp_path: Path) -> None:
    server = DarwinServer([*SMALL, "--max-concurrent", "2"], tmp_path / "serve.log").start()
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0)
        response = client.chat.completions.create(
            model="darwin", messages=EGG, seed=1, extra_body={"darwin": {"temperature": 0.5}}
        )
        record = response.model_extra["darwin"]
        assert response.choices[0].message.content.strip()
        assert record["config"]["temperature"] == 0.5 and record["final_reward"] is not None
        assert response.usage.completion_tokens >= len(record["mutated_instructions"][0])
        # the chain's two calls are plain samples (iterations 0): one DARWIN search on the
        # embedded default is what a CPU run can afford; the path through the server is the same
        llm = ChatOpenAI(
            base_url=server.base_url,
            api_key="none",
            model="darwin",
            seed=1,
            max_retries=0,
            extra_body={"darwin": {"iterations": 0}},
        )
        chain = (
            ChatPromptTemplate.from_messages([("user", "How do I {task}?")])
            | llm
            | StrOutputParser()
        )
        answer = chain.invoke({"task": "boil an egg"})
        assert answer.strip()
        streamed = "".join(chain.stream({"task": "boil an egg"}))  # progress chunks pass
        assert streamed == answer
    finally:
        server.stop()


@pytest.fixture
def reward_proxy(vllm_reward_server: Any) -> Iterator[FaultProxy]:
    proxy = FaultProxy(vllm_reward_server.base_url.removesuffix("/v1"))
    yield proxy
    proxy.close()


def test_on_the_vllm_servers_and_a_failing_reward_server_is_502(
    vllm_policy_server: Any, vllm_reward_server: Any, reward_proxy: FaultProxy, tmp_path: Path
) -> None:
    args = ["--base-url", vllm_policy_server.base_url, "--model", vllm_policy_server.model]
    args += ["--reward-base-url", reward_proxy.base_url, "--reward-model", vllm_reward_server.model]
    args += [*SMALL, "--max-retries", "0"]
    server = DarwinServer(args, tmp_path / "serve.log").start()
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model="darwin",
                messages=EGG,
                seed=2,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        progress = [c for c in chunks if not c.choices and c.usage is None]
        assert any(c.model_extra["darwin"]["progress"]["step"] == "score" for c in progress)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        reward_proxy.fault = lambda method, path, n: 500 if path == "/classify" else None
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="darwin", messages=EGG, seed=2)
        assert failed.value.status_code == 502
        assert failed.value.body["code"] == "upstream_error"
        assert "classify" in failed.value.body["message"]
        assert httpx.get(f"{server.root}/health").status_code == 200  # still up
    finally:
        server.stop()
