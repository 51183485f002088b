"""Tracing: the graph run nests under the chat model's run, one child run per DARWIN step."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_core.tracers.schemas import Run

from langchain_darwin import DarwinChatModel
from langchain_darwin.chat_model import GRAPH_RUN_NAME

STEPS = ("seed", "mutate", "decode_chunk", "score", "select_replace", "update_archive", "finish")
PROMPT = "How do I boil an egg?"


async def _call(chat: DarwinChatModel, how: str, config: dict) -> str:
    if how == "invoke":
        return chat.invoke(PROMPT, config=config).text
    if how == "ainvoke":
        return (await chat.ainvoke(PROMPT, config=config)).text
    if how == "stream":
        return "".join(c.text for c in chat.stream(PROMPT, config=config))
    if how == "astream":
        return "".join([c.text async for c in chat.astream(PROMPT, config=config)])
    raise AssertionError(how)


def _check_trace(root: Run, answer: str) -> None:
    assert root.run_type == "llm" and root.name == "DarwinChatModel"
    assert root.outputs["generations"][0][0]["text"] == answer
    (graph,) = root.child_runs
    assert graph.name == GRAPH_RUN_NAME and graph.run_type == "chain"
    assert graph.inputs["conversation"] == [{"role": "user", "content": PROMPT}]
    assert graph.outputs["answer"] == answer
    steps = [r for r in graph.child_runs if r.name in STEPS]
    assert {r.name for r in steps} == set(STEPS)
    assert [r.name for r in steps].count("decode_chunk") == 2  # 16 tokens, period 8
    for run in steps:
        assert run.run_type == "chain" and run.error is None
        assert run.inputs and run.outputs, run.name
        assert "run-tag" in run.tags and run.metadata["who"] == "test"
    decode = next(r for r in steps if r.name == "decode_chunk")
    assert len(decode.outputs["beams"]) == 5
    score = next(r for r in steps if r.name == "score")
    assert all(isinstance(b["reward"], float) for b in score.outputs["beams"])


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "stream", "astream"])
async def test_graph_steps_are_child_runs_of_the_chat_run(
    make_chat: Callable[..., DarwinChatModel], how: str
) -> None:
    collector = RunCollectorCallbackHandler()
    config = {"callbacks": [collector], "tags": ["run-tag"], "metadata": {"who": "test"}}
    answer = await _call(make_chat(), how, config)
    (root,) = collector.traced_runs
    _check_trace(root, answer)


def test_batch_traces_one_tree_per_input(make_chat: Callable[..., DarwinChatModel]) -> None:
    collector = RunCollectorCallbackHandler()
    answers = make_chat().batch(
        [PROMPT, PROMPT],
        config={"callbacks": [collector], "tags": ["run-tag"], "metadata": {"who": "test"}},
    )
    assert len(collector.traced_runs) == 2
    for root, answer in zip(collector.traced_runs, answers, strict=True):
        _check_trace(root, answer.text)
