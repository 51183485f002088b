"""graphs/: the LangGraph server / Studio entry point."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver
from langgraph_cli.config import validate_config_file

from langchain_darwin.inprocess import models

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"


def load_factory():
    spec = importlib.util.spec_from_file_location("darwin_studio_graph", GRAPHS / "darwin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_graph


def test_langgraph_json_is_valid_for_the_cli() -> None:
    config = validate_config_file(GRAPHS / "langgraph.json")
    assert config["graphs"] == {"darwin": "./darwin.py:make_graph"}


def test_factory_loads_no_weights_and_its_graph_runs_and_streams(tiny_dirs, monkeypatch) -> None:
    policy_dir, rm_dir = tiny_dirs
    monkeypatch.setenv("DARWIN_MODEL", str(policy_dir))
    monkeypatch.setenv("DARWIN_REWARD_MODEL", str(rm_dir))
    loaded = set(models._POLICIES)
    graph = load_factory()()
    assert set(models._POLICIES) == loaded  # importing and building loaded nothing
    assert {"mutate", "decode_chunk", "score", "select_replace"} <= set(graph.get_graph().nodes)

    inputs = {
        "conversation": [{"role": "user", "content": "Tell me about eggs"}],
        "config": {"max_tokens": 16, "replacement_period": 8, "seed": 1},
    }
    steps, custom = [], []
    for mode, chunk in graph.stream(
        inputs, {"configurable": {"thread_id": "t1"}}, stream_mode=["updates", "custom"]
    ):
        if mode == "updates":
            steps.extend(chunk)
        else:
            custom.append(chunk)
    assert steps[:4] == ["seed", "mutate", "decode_chunk", "score"] and steps[-1] == "finish"
    assert {"mutate", "decode_chunk", "score", "select_replace"} <= {c["step"] for c in custom}

    saved = load_factory()().copy(update={"checkpointer": InMemorySaver()})
    final = saved.invoke(inputs, {"configurable": {"thread_id": "t2"}})
    assert isinstance(final["answer"], str) and final["config"]["max_tokens"] == 16
    assert saved.get_state({"configurable": {"thread_id": "t2"}}).next == ()
