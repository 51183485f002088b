"""LangChain's standard unit suite, plus the chat model's own offline checks (no weights load)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_darwin import DarwinChatModel
from langchain_darwin import search as search_module
from langchain_darwin.config import DarwinConfig
from langchain_darwin.graph.progress import preview
from langchain_darwin.streaming import answer_chunks
from langchain_darwin.usage import PHASES


class TestDarwinChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[DarwinChatModel]:
        return DarwinChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # The embedded default: construction must not load it (weights load on first call).
        return {"model": "default", "seed": 0}

    @property
    def has_tool_calling(self) -> bool:
        return True  # bind_tools: tools in the prompt + a validity term (docs/tools.md)

    @property
    def has_structured_output(self) -> bool:
        return True


def test_init_loads_no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("weights loaded at construction")

    monkeypatch.setattr(search_module, "get_engine", refuse)
    monkeypatch.setattr(search_module, "as_reward_model", refuse)
    for _ in range(10):
        DarwinChatModel(model="/no/such/model", reward_model="/no/such/rm", temperature=0)


def test_standard_params_become_knobs_or_are_ignored() -> None:
    chat = DarwinChatModel(
        temperature=0, max_tokens=100, timeout=60, stop=[], max_retries=2, api_key="test"
    )
    assert chat.config.temperature == 0
    assert chat.config.max_tokens == 100
    assert chat.config.stop is None
    assert chat.temperature == 0 and chat.max_tokens == 100
    assert DarwinChatModel(streaming=True).streaming is True


def test_ls_params_name_provider_model_and_per_call_override() -> None:
    chat = DarwinChatModel(model="/models/a", max_tokens=10, stop=["x"], temperature=0)
    params = chat._get_ls_params()
    assert params["ls_provider"] == "darwin"
    assert params["ls_model_name"] == "/models/a"
    assert params["ls_model_type"] == "chat"
    assert params["ls_max_tokens"] == 10
    assert params["ls_temperature"] == 0
    assert params["ls_stop"] == ["x"]
    assert chat._get_ls_params(model="/models/b")["ls_model_name"] == "/models/b"


def test_call_config_merges_stop_and_knobs_and_rejects_unknown() -> None:
    chat = DarwinChatModel(stop=["a"], max_tokens=20)
    config, model = chat._call_config(["b"], {"model": "/m", "max_tokens": 5, "timeout": 3})
    assert config.stop == ["a", "b"] and config.max_tokens == 5 and model == "/m"
    assert chat.config.max_tokens == 20  # the instance is untouched
    with pytest.raises(ValueError, match="unknown argument"):
        chat._call_config(None, {"tempreature": 0})


def test_answer_chunks_split_words_and_put_metadata_on_the_last() -> None:
    message = AIMessage(
        content="  Boil the egg\nfor 9 minutes. ",
        response_metadata={"model_name": "m", "darwin": {"final_reward": 1.0}},
        usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
    )
    chunks = answer_chunks(message)
    pieces = ["  ", "Boil ", "the ", "egg\n", "for ", "9 ", "minutes. "]
    assert [c.content for c in chunks] == pieces
    assert all(not c.usage_metadata and not c.response_metadata for c in chunks[:-1])
    last = chunks[-1]
    assert last.chunk_position == "last"
    assert last.usage_metadata == message.usage_metadata
    assert last.response_metadata["darwin"] == {"final_reward": 1.0}
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert full.content == message.content
    assert full.usage_metadata == message.usage_metadata


def test_answer_chunks_of_an_empty_answer_is_one_last_chunk() -> None:
    chunks = answer_chunks(AIMessage(content="", response_metadata={"model_name": "m"}))
    assert len(chunks) == 1 and chunks[0].content == "" and chunks[0].chunk_position == "last"


def test_progress_preview_is_one_short_line() -> None:
    assert preview("  Boil\n the   egg. ") == "Boil the egg."
    long = preview("word " * 100, limit=20)
    assert len(long) == 20 and long.endswith("…")


def _finished_state(best: dict[str, Any] | None) -> dict[str, Any]:
    usage = {p: {"prefilled": 10, "decoded": 3} for p in PHASES}
    usage["reward"] = {"positions": 0, "answers": 0}
    seed = {"answer": [5, 6], "reward": None, "finished": True}
    return {
        "answer": "ab",
        "best": best,
        "final_reward": None if best is None else best["reward"],
        "seed": seed,
        "seed_value": 0,
        "cycle_rewards": [None],
        "period_scores": [],
        "mutated_instructions": [],
        "mutation_stats": {"rewrites": 0, "fallbacks": 0, "original": 0},
        "archive": [],
        "usage": usage,
        "stopped": "max_time",
        "config": DarwinConfig(max_tokens=2).model_dump(),
    }


def test_a_search_stopped_before_any_score_still_makes_a_message() -> None:
    """nodes.finish leaves ``best`` None when a budget ends the search before any score."""
    message = DarwinChatModel(model="/m")._to_message(_finished_state(None), "/m")
    meta = message.response_metadata
    assert message.content == "ab"
    assert meta["darwin"]["winner"] is None and meta["darwin"]["final_reward"] is None
    assert meta["darwin"]["answer_tokens"] == 2 and meta["finish_reason"] == "length"
    assert message.usage_metadata["output_tokens"] == 3 * len(PHASES)
    best = {"answer": [5], "reward": 0.5, "score": 0.5, "source": "seed"}
    meta = DarwinChatModel()._to_message(_finished_state(best), "/m").response_metadata
    assert meta["darwin"]["winner"] == {"source": "seed", "reward": 0.5, "score": 0.5, "tokens": 1}
    assert meta["finish_reason"] == "stop"
