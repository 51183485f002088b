"""The deployed graph under a real LangGraph server: ``langgraph dev`` on loopback, driven by
``langgraph_sdk``, as a user of graphs/langgraph.json runs it.

The server runs in its own process group from a scratch directory (it writes its in-memory
store there), with every call home switched off; it is stopped at the end of the module.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

CONFIG = Path(__file__).resolve().parents[2] / "graphs" / "langgraph.json"
LANGGRAPH = Path(sys.executable).parent / "langgraph"
INPUT = {
    "conversation": [{"role": "user", "content": "Tell me about eggs"}],
    "config": {"max_tokens": 24, "replacement_period": 12, "seed": 0},
}
OFFLINE = {
    "LANGGRAPH_NO_VERSION_CHECK": "true",  # else a PyPI request at start-up
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # one torch thread: on a shared 2-core machine, two spinning threads took a run of the
    # embedded model from about 20 to 90 s of CPU (measured under load)
    "OMP_NUM_THREADS": "1",
}
#: Keys that would make the server report to LangSmith, and settings the test chooses itself.
DROPPED = (
    "LANGSMITH_API_KEY",
    "LANGCHAIN_API_KEY",
    "LANGSMITH_CONTROL_PLANE_API_KEY",
    "LANGGRAPH_CLOUD_LICENSE_KEY",
    "LANGGRAPH_API_KEY",
)
READY_S = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def langgraph_dev(workdir: Path, settings: Mapping[str, str]) -> Iterator[str]:
    """``langgraph dev`` serving graphs/langgraph.json with the DARWIN_* ``settings``; yields
    its URL once it answers, and kills its process group on the way out."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED and not k.startswith("DARWIN_")}
    env.update(OFFLINE, **settings)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "langgraph-dev.log"
    command = [str(LANGGRAPH), "dev", "--config", str(CONFIG), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-browser", "--no-reload"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + READY_S
        while not _ready(url):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-4000:]
                pytest.fail(f"langgraph dev did not start (exit {server.returncode}):\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _client(url: str) -> SyncLangGraphClient:
    return get_sync_client(url=url, api_key=None, timeout=(5, 600, 60, 5))


def _run_and_stream(client: SyncLangGraphClient, stream_context: dict[str, Any]) -> None:
    """On one thread: a waited run that sends no context, a streamed run that sends
    ``stream_context``, then the thread's state; what a deployed DARWIN graph must answer."""
    thread = client.threads.create()["thread_id"]

    final = client.runs.wait(thread, "darwin", input=INPUT)
    assert isinstance(final, dict) and "__error__" not in final, final
    assert isinstance(final["answer"], str) and final["answer"].strip()
    assert final["config"]["max_tokens"] == 24
    assert final["mutated_instructions"] and final["period_scores"]  # the search record
    assert final["cycle_rewards"] and final["usage"]

    updates: list[dict[str, Any]] = []
    progress: list[dict[str, Any]] = []
    for part in client.runs.stream(
        thread, "darwin", input=INPUT, context=stream_context, stream_mode=["updates", "custom"]
    ):
        assert part.event != "error", part.data
        if part.event == "updates":
            updates.append(part.data)
        elif part.event == "custom":
            progress.append(part.data)
    steps = [step for update in updates for step in update]
    assert steps[:4] == ["seed", "mutate", "decode_chunk", "score"] and steps[-1] == "finish"
    assert {"mutate", "decode_chunk", "score", "select_replace"} <= {p["step"] for p in progress}

    state = client.threads.get_state(thread)
    assert state["next"] == []
    assert state["values"]["answer"] == updates[-1]["finish"]["answer"]  # the latest run's
    assert len(state["values"]["mutated_instructions"]) == 1  # a fresh record per run
    history = client.threads.get_history(thread, limit=500)
    assert sum(1 for s in history if s["metadata"].get("source") == "input") == 2


@pytest.mark.embedded
def test_deployed_graph_on_the_embedded_default(tmp_path: Path) -> None:
    """No settings: the embedded SmolLM2 policy and the offline reward, in the server process."""
    with langgraph_dev(tmp_path, {}) as url:
        client = _client(url)
        assistant = client.assistants.search(graph_id="darwin")[0]
        schema = client.assistants.get_schemas(assistant["assistant_id"])["context_schema"]
        assert {"model", "base_url", "reward_model", "reward_base_url"} <= set(schema["properties"])
        _run_and_stream(client, {"model": "default"})


def test_deployed_graph_on_served_engines(
    tmp_path: Path, vllm_policy_server: Any, vllm_reward_server: Any
) -> None:
    """The policy and the reward model on vLLM servers, named by the server's environment."""
    settings = {
        "DARWIN_BASE_URL": vllm_policy_server.base_url,
        "DARWIN_MODEL": vllm_policy_server.model,
        "DARWIN_REWARD_BASE_URL": vllm_reward_server.base_url,
        "DARWIN_REWARD_MODEL": vllm_reward_server.model,
    }
    with langgraph_dev(tmp_path, settings) as url:
        _run_and_stream(_client(url), {"model": vllm_policy_server.model})
