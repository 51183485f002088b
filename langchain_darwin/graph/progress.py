"""Progress of a search, emitted as LangGraph ``custom`` stream events and as LangChain
custom events, so ``stream(stream_mode="custom")`` and ``astream_events`` both see it."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import dispatch_custom_event
from langgraph.runtime import Runtime

EVENT_PREFIX = "darwin_"


def emit(runtime: Runtime[Any], step: str, **data: Any) -> None:
    payload = {"step": step, **data}
    runtime.stream_writer(payload)
    try:
        dispatch_custom_event(EVENT_PREFIX + step, payload)
    except RuntimeError:  # no parent run (graph invoked without callbacks): nothing listens
        pass
