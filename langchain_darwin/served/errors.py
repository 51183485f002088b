"""Named failures of a served model: each says what went wrong and where, so a user can act.

All are :class:`EngineError`, which the graph re-raises naming the step, cycle and period.
"""

from __future__ import annotations

from langchain_darwin.policy.base import EngineError


class ServedError(EngineError):
    """A served model (policy or reward) could not do what was asked."""


class ServerUnreachable(ServedError):
    """Nothing answers at the URL (refused, reset or timed out connecting)."""


class ModelNotServed(ServedError):
    """The server is up but serves other models under other names."""


class TokenizerMismatch(ServedError):
    """The client's tokenizer turns text into other ids than the server's: token ids sent
    would mean other text to the model, so the search would be silently wrong."""


class ContextWindowExceeded(ServedError, ValueError):
    """A row's context plus its token budget is over the server's ``max_model_len``."""


class RequestFailed(ServedError):
    """A request kept failing (timeouts, 5xx) after its retries, or the server refused it."""
