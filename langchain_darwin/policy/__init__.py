"""Policy engines: the language model that writes, driven in token ids."""

from langchain_darwin.policy.base import (
    ExtendOutcome,
    PolicyEngine,
    PolicySession,
    RowRequest,
    RowResult,
    Sampling,
    SearchCancelled,
    Work,
)
from langchain_darwin.policy.transformers_engine import TransformersPolicy

__all__ = [
    "ExtendOutcome",
    "PolicyEngine",
    "PolicySession",
    "RowRequest",
    "RowResult",
    "Sampling",
    "SearchCancelled",
    "TransformersPolicy",
    "Work",
]
