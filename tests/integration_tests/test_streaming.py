"""Streaming: the answer as text chunks, the search's progress as custom events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph

from langchain_darwin import DarwinChatModel
from langchain_darwin.graph.builder import compiled_graph
from langchain_darwin.graph.progress import EVENT_PREFIX

STEPS = {"mutate", "decode_chunk", "score", "select_replace", "update_archive"}
NODES = {"seed", "mutate", "decode_chunk", "score", "select_replace", "update_archive", "finish"}
Factory = Callable[..., DarwinChatModel]


def _joined(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


def _check_stream(chunks: list[AIMessageChunk], expected: str, model: str) -> None:
    assert chunks and all(isinstance(c, AIMessageChunk) for c in chunks)
    full = _joined(chunks)
    assert full.content == expected
    last = chunks[-1]
    assert last.chunk_position == "last"
    assert [bool(c.usage_metadata) for c in chunks].count(True) == 1
    assert last.usage_metadata and last.usage_metadata["output_tokens"] > 0
    meta = full.response_metadata
    assert meta["model_name"] == model
    assert meta["darwin"]["final_reward"] == pytest.approx(meta["darwin"]["winner"]["reward"])


def test_stream_yields_the_invoke_answer_in_chunks(make_chat: Factory) -> None:
    chat = make_chat()
    answer = chat.invoke("How do I boil an egg?").content
    assert answer
    _check_stream(list(chat.stream("How do I boil an egg?")), answer, chat.model)


async def test_astream_yields_the_invoke_answer_in_chunks(make_chat: Factory) -> None:
    chat = make_chat()
    answer = (await chat.ainvoke("How do I boil an egg?")).content
    chunks = [c async for c in chat.astream("How do I boil an egg?")]
    _check_stream(chunks, answer, chat.model)


async def test_astream_events_v2_sees_progress_as_custom_events(make_chat: Factory) -> None:
    chat = make_chat()
    events = [e async for e in chat.astream_events("How do I boil an egg?", version="v2")]
    chat_run = next(e for e in events if e["event"] == "on_chat_model_start")["run_id"]
    custom = [e for e in events if e["event"] == "on_custom_event"]
    assert {e["name"] for e in custom} >= {EVENT_PREFIX + s for s in STEPS}
    assert all(e["name"] == EVENT_PREFIX + e["data"]["step"] for e in custom)
    # The progress belongs to the chat model's run: its node runs nest under it.
    assert all(chat_run in e["parent_ids"] for e in custom)
    scores = [e["data"] for e in custom if e["name"] == "darwin_score"]
    assert len(scores) == 2  # 16 tokens, a replacement every 8
    assert scores[0]["period"] < scores[1]["period"]
    assert all(len(s["rewards"]) == 5 and s["cycle"] == 0 for s in scores)
    assert all(isinstance(r, float) for s in scores for r in s["rewards"])
    # Progress first, then the answer.
    streamed = [i for i, e in enumerate(events) if e["event"] == "on_chat_model_stream"]
    assert streamed and max(i for i, e in enumerate(events) if e in custom) < streamed[0]


async def test_invoke_inside_a_chain_still_streams_progress_and_tokens(
    make_chat: Factory,
) -> None:
    """Under astream_events, invoke() goes through _generate (which has the run manager),
    nests the graph, and replays the answer as tokens to the streaming handler."""
    chat = make_chat()
    chain = RunnableLambda(lambda text: chat.invoke(text))
    events = [e async for e in chain.astream_events("Hi there", version="v2")]
    names = {e["name"] for e in events if e["event"] == "on_custom_event"}
    assert names >= {EVENT_PREFIX + s for s in STEPS}
    tokens = [e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"]
    end = next(e for e in events if e["event"] == "on_chat_model_end")["data"]["output"]
    assert tokens and _joined(tokens).content == end.content
    assert {t.id for t in tokens} == {end.id}


def test_sync_stream_reaches_sync_custom_event_handlers(make_chat: Factory) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    class Collect(BaseCallbackHandler):
        def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
            seen.append((name, data))

    chunks = list(make_chat().stream("Hi", config={"callbacks": [Collect()]}))
    assert chunks[-1].chunk_position == "last"
    assert {name for name, _ in seen} >= {EVENT_PREFIX + s for s in STEPS}


def test_graph_streams_updates_and_custom_progress(make_chat: Factory) -> None:
    search = make_chat().prepare_search([HumanMessage("How do I boil an egg?")])
    try:
        parts = list(
            compiled_graph().stream(
                search.graph_input,
                search.run_config,
                context=search.context,
                stream_mode=["updates", "custom"],
            )
        )
    finally:
        search.close()
    modes = {mode for mode, _ in parts}
    assert modes == {"updates", "custom"}
    updated = [node for mode, part in parts if mode == "updates" for node in part]
    assert set(updated) == NODES and updated[0] == "seed" and updated[-1] == "finish"
    steps = [part["step"] for mode, part in parts if mode == "custom"]
    assert set(steps) >= STEPS
    assert isinstance(parts[-1][1]["finish"]["answer"], str)


def test_score_progress_carries_a_leader_preview(make_chat: Factory) -> None:
    search = make_chat().prepare_search([HumanMessage("Hi")])
    try:
        scores = [
            part
            for part in compiled_graph().stream(
                search.graph_input, search.run_config, context=search.context, stream_mode="custom"
            )
            if part["step"] == "score"
        ]
    finally:
        search.close()
    assert scores and all(isinstance(s.get("leader"), str) for s in scores)


def test_inside_a_langgraph_node_progress_and_answer_reach_the_outer_stream(
    make_chat: Factory,
) -> None:
    """An agent graph calling the chat model in a node: with ``subgraphs=True`` the DARWIN
    graph's progress arrives in the outer ``custom`` stream, and ``messages`` mode gets the
    answer once (the replayed chunks and the final message share one id)."""
    chat = make_chat()

    class State(TypedDict):
        question: str
        answer: str

    def ask(state: State) -> dict[str, str]:
        return {"answer": chat.invoke(state["question"]).text}

    outer = StateGraph(State)
    outer.add_node("ask", ask)
    outer.add_edge(START, "ask")
    outer.add_edge("ask", END)
    parts = list(
        outer.compile().stream(
            {"question": "Hi"}, stream_mode=["messages", "custom", "values"], subgraphs=True
        )
    )
    steps = {part["step"] for _, mode, part in parts if mode == "custom"}
    assert steps >= STEPS
    messages = [part[0] for _, mode, part in parts if mode == "messages"]
    assert messages and len({m.id for m in messages}) == 1
    final = [part for ns, mode, part in parts if mode == "values" and not ns][-1]
    assert _joined(messages).content == final["answer"]
