"""KVSession: the policy's per-run cache store, with cancellation."""

from __future__ import annotations

import threading

from langchain_darwin.inprocess.prefix import PrefixStore


class KVSession(PrefixStore[str]):
    """Cached rows of one run. ``reuse_cache=False`` forgets everything before each call,
    which reproduces the reference implementation's re-prefill cost."""

    def __init__(self, reuse_cache: bool = True) -> None:
        super().__init__()
        self.reuse_cache = reuse_cache
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop the run's decoding at the next token and free its caches."""
        self.cancelled.set()
        self.clear()
