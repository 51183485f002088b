"""Policy engines: the language model that writes, driven in token ids.

This package is the protocol and the factory only; the engines live with their backend
(``langchain_darwin.inprocess``: transformers; ``langchain_darwin.served``: vLLM over HTTP),
so importing it loads neither torch nor an HTTP client.
"""

from langchain_darwin.policy.base import (
    EngineError,
    ExtendOutcome,
    PolicyEngine,
    PolicySession,
    RowRequest,
    RowResult,
    Sampling,
    SearchCancelled,
    Work,
)

__all__ = [
    "EngineError",
    "ExtendOutcome",
    "PolicyEngine",
    "PolicySession",
    "RowRequest",
    "RowResult",
    "Sampling",
    "SearchCancelled",
    "Work",
]
