"""Progress of a search, emitted as LangGraph ``custom`` stream events and as LangChain
custom events named ``darwin_<step>``, so ``stream(stream_mode="custom")`` and
``astream_events(version="v2")`` (``on_custom_event``) both see it.

The LangChain event reaches listeners when the graph runs under a parent run, e.g. inside
``DarwinChatModel`` (which nests the graph under its own run) or any runnable with callbacks.
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.callbacks import dispatch_custom_event
from langgraph.runtime import Runtime

EVENT_PREFIX = "darwin_"
#: Characters of a beam's text shown in progress (a preview, not the answer).
PREVIEW_CHARS = 120
_SPACE = re.compile(r"\s+")


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """A one-line preview of an answer in progress: whitespace collapsed, cut at ``limit``."""
    line = _SPACE.sub(" ", text).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def emit(runtime: Runtime[Any], step: str, **data: Any) -> None:
    payload = {"step": step, **data}
    runtime.stream_writer(payload)
    try:
        dispatch_custom_event(EVENT_PREFIX + step, payload)
    except RuntimeError:  # no parent run (graph invoked without callbacks): nothing listens
        pass
