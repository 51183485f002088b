"""A failed search as an HTTP error: what broke decides the status a client sees.

- a policy or reward server that cannot be reached: 503 (``upstream_unavailable``), retry later;
- one that answered wrongly or kept failing after its retries: 502 (``upstream_error``);
- a row over a served model's context window: 400 (``context_length_exceeded``);
- anything else (a bug, an in-process model failing): 500, with what was raised.
"""

from __future__ import annotations

from collections.abc import Iterator

from langchain_darwin.openai_api.protocol import ApiError
from langchain_darwin.policy.base import EngineError
from langchain_darwin.rewards.base import RewardError


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def search_error(err: BaseException) -> ApiError:
    """The status and OpenAI-shaped error for an exception raised by a search."""
    from langchain_darwin.served.errors import (
        ContextWindowExceeded,
        ServedError,
        ServerUnreachable,
    )

    causes = list(_chain(err))
    message = f"{type(err).__name__}: {err}"
    if any(isinstance(e, ServerUnreachable) for e in causes):
        return ApiError(503, message, type="server_error", code="upstream_unavailable")
    if any(isinstance(e, ContextWindowExceeded) for e in causes):
        return ApiError(400, message, param="messages", code="context_length_exceeded")
    if any(isinstance(e, ServedError) for e in causes):
        return ApiError(502, message, type="server_error", code="upstream_error")
    if isinstance(err, RewardError | EngineError):
        return ApiError(502, message, type="server_error", code="model_error")
    return ApiError(500, message, type="server_error", code="internal_error")
