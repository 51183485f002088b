"""The graph's whole final state, working fields too (beams, instructions, wins), which a
search's output leaves out: the last ``values`` item of a streamed run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from langchain_darwin import DarwinChatModel
from langchain_darwin.graph.builder import compiled_graph


def full_state(
    llm: DarwinChatModel, messages: Sequence[BaseMessage], **knobs: Any
) -> dict[str, Any]:
    search = llm.prepare_search(messages, **knobs)
    try:
        *_, last = compiled_graph().stream(
            search.graph_input, search.run_config, context=search.context, stream_mode="values"
        )
    finally:
        search.close()
    return last
