"""How a chat-model call's callbacks reach the graph run, and the answer as stream chunks.

- ``invoke``/``batch`` -> ``_generate``/``_agenerate``, which receive the chat run's manager.
- ``stream``/``astream`` -> ``_stream``/``_astream``, which LangChain calls *without* a run
  manager. ``DarwinChatModel.stream``/``astream`` fix the chat run's id in advance and hand
  it, with the caller's callbacks, to ``_stream``/``_astream`` through a context variable.
- ``stream_events(version="v3")`` hands ``_stream`` the run manager itself.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.callbacks.base import BaseCallbackManager
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import RunnableConfig, ensure_config

#: A word with the whitespace after it (or leading whitespace): the answer's stream pieces.
_PIECE = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class StreamParent:
    """The chat run a ``stream``/``astream`` call is about to start: the graph nests under it."""

    callbacks: BaseCallbackManager
    run_id: uuid.UUID


STREAM_PARENT: ContextVar[StreamParent | None] = ContextVar("darwin_stream_parent", default=None)


def child_callbacks(
    parent: BaseCallbackManager | CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun,
    run_id: uuid.UUID,
    *,
    is_async: bool,
) -> BaseCallbackManager:
    """Callbacks for runs nested under run ``run_id``: the parent's inheritable handlers,
    tags and metadata (LLM run managers have no ``get_child()``)."""
    cls = AsyncCallbackManager if is_async else CallbackManager
    return cls(
        handlers=list(parent.inheritable_handlers),
        inheritable_handlers=list(parent.inheritable_handlers),
        parent_run_id=run_id,
        tags=list(parent.inheritable_tags),
        inheritable_tags=list(parent.inheritable_tags),
        metadata=dict(parent.inheritable_metadata),
        inheritable_metadata=dict(parent.inheritable_metadata),
    )


def stream_parent_callbacks(*, is_async: bool) -> BaseCallbackManager | None:
    parent = STREAM_PARENT.get()
    if parent is None:
        return None
    return child_callbacks(parent.callbacks, parent.run_id, is_async=is_async)


def with_stream_parent(
    config: RunnableConfig | None, *, is_async: bool
) -> tuple[RunnableConfig, StreamParent]:
    """The caller's config with the chat run's id fixed in advance and its callbacks
    configured once, so the chat run and the graph run share the same handlers (tracers)."""
    config = ensure_config(config)
    manager_cls = AsyncCallbackManager if is_async else CallbackManager
    callbacks = manager_cls.configure(
        inheritable_callbacks=config.get("callbacks"),
        inheritable_tags=config.get("tags"),
        inheritable_metadata=config.get("metadata"),
    )
    run_id = config.get("run_id") or uuid.uuid4()
    config = {**config, "callbacks": callbacks, "run_id": run_id}
    return config, StreamParent(callbacks, run_id)


def answer_chunks(message: AIMessage) -> list[AIMessageChunk]:
    """The answer as word-sized text chunks; the last one carries usage and metadata."""
    text = message.content if isinstance(message.content, str) else message.text
    pieces = _PIECE.findall(text) or [""]
    chunks = [AIMessageChunk(content=piece, id=message.id) for piece in pieces[:-1]]
    chunks.append(
        AIMessageChunk(
            content=pieces[-1],
            id=message.id,
            usage_metadata=message.usage_metadata,
            response_metadata=dict(message.response_metadata),
            chunk_position="last",
        )
    )
    return chunks
