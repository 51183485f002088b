"""The deployed graph (graphs/langgraph.json -> deployment.py), in process.

A LangGraph server builds each run's context from the request's JSON, ``{}`` when the client
sends none; passing ``context=`` here does what the server does (the real server is in
tests/integration_tests/test_langgraph_server.py).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_cli.config import validate_config_file

from langchain_darwin.deployment import (
    DeploymentContexts,
    DeploymentSettings,
    make_graph,
)
from langchain_darwin.inprocess import models

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
INPUTS = {
    "conversation": [{"role": "user", "content": "Tell me about eggs"}],
    "config": {"max_tokens": 16, "replacement_period": 8, "seed": 1},
}


def test_langgraph_json_names_an_importable_factory() -> None:
    """A module path, not a file path: ``langgraph dev`` resolves file paths against its
    working directory, so only a module loads from the repo root and from graphs/ alike."""
    config = validate_config_file(GRAPHS / "langgraph.json")
    module, _, name = config["graphs"]["darwin"]["path"].partition(":")
    assert getattr(importlib.import_module(module), name) is make_graph


def test_context_schema_is_plain_settings() -> None:
    """The server keeps only the context keys the schema's JSON names, then calls it."""
    schema = make_graph().get_context_jsonschema()
    assert set(schema["properties"]) == {"model", "base_url", "reward_model", "reward_base_url"}


def test_factory_loads_no_weights_and_its_graph_runs_and_streams(tiny_dirs, monkeypatch) -> None:
    policy_dir, rm_dir = tiny_dirs
    monkeypatch.setenv("DARWIN_MODEL", str(policy_dir))
    monkeypatch.setenv("DARWIN_REWARD_MODEL", str(rm_dir))
    loaded = set(models._POLICIES)
    graph = make_graph()
    assert set(models._POLICIES) == loaded  # importing and building loaded nothing
    assert {"mutate", "decode_chunk", "score", "select_replace"} <= set(graph.get_graph().nodes)

    steps, custom = [], []
    for mode, chunk in graph.stream(
        INPUTS,
        {"configurable": {"thread_id": "t1"}},
        context={},  # what the server passes when the client sends no context
        stream_mode=["updates", "custom"],
    ):
        if mode == "updates":
            steps.extend(chunk)
        else:
            custom.append(chunk)
    assert steps[:4] == ["seed", "mutate", "decode_chunk", "score"] and steps[-1] == "finish"
    assert {"mutate", "decode_chunk", "score", "select_replace"} <= {c["step"] for c in custom}

    saved = make_graph().copy(update={"checkpointer": InMemorySaver()})
    final = saved.invoke(INPUTS, {"configurable": {"thread_id": "t2"}})
    assert isinstance(final["answer"], str) and final["config"]["max_tokens"] == 16
    assert saved.get_state({"configurable": {"thread_id": "t2"}}).next == ()


def test_a_run_chooses_its_models_in_its_context(tiny_dirs, monkeypatch) -> None:
    policy_dir, rm_dir = tiny_dirs
    monkeypatch.setenv("DARWIN_MODEL", str(policy_dir / "missing"))  # loading it would fail
    monkeypatch.setenv("DARWIN_REWARD_MODEL", str(rm_dir))
    final = make_graph().invoke(
        INPUTS, {"configurable": {"thread_id": "t3"}}, context={"model": str(policy_dir)}
    )
    assert isinstance(final["answer"], str)


def test_settings_from_the_environment_and_per_run(monkeypatch) -> None:
    monkeypatch.setenv("DARWIN_MODEL", "policy-8b")
    monkeypatch.setenv("DARWIN_BASE_URL", "http://policy:8000/v1")
    monkeypatch.setenv("DARWIN_API_KEY", "secret")
    monkeypatch.setenv("DARWIN_REWARD_MODEL", "rm")
    monkeypatch.setenv("DARWIN_REWARD_BASE_URL", "")  # empty reads as unset
    contexts = DeploymentContexts.from_env()
    assert contexts.defaults == DeploymentSettings(
        model="policy-8b", base_url="http://policy:8000/v1", reward_model="rm"
    )
    own = contexts.engine_spec(DeploymentSettings().over(contexts.defaults))
    assert (own.model, own.base_url, own.api_key) == (
        "policy-8b",
        "http://policy:8000/v1",
        "secret",
    )
    # a run may name another server, but the deployment's key is never sent there
    run = DeploymentSettings(base_url="http://elsewhere/v1").over(contexts.defaults)
    other = contexts.engine_spec(run)
    assert (other.model, other.base_url, other.api_key) == (
        "policy-8b",
        "http://elsewhere/v1",
        None,
    )


def test_a_served_reward_needs_its_name() -> None:
    contexts = DeploymentContexts(DeploymentSettings(reward_base_url="http://rm:8001/v1"))
    with pytest.raises(ValueError, match="needs reward_model"):
        contexts._reward(contexts.defaults)
