"""Run contexts for a graph served without one (LangGraph server, Studio).

A served graph receives plain JSON, so the models are named by settings and loaded on the
first run (never at import); each thread keeps its own policy cache across the nodes of a run.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from langchain_core.runnables.config import ensure_config
from langgraph.runtime import Runtime

from langchain_darwin.graph.state import DarwinContext
from langchain_darwin.policy.base import PolicySession
from langchain_darwin.policy.factory import DEFAULT_MODEL, EngineSpec, get_engine
from langchain_darwin.rewards.base import RewardModel
from langchain_darwin.rewards.resolve import as_reward_model


@dataclass(frozen=True)
class ServedSettings:
    model: str = DEFAULT_MODEL
    reward_model: str | None = None

    @classmethod
    def from_env(cls) -> ServedSettings:
        """``DARWIN_MODEL`` and ``DARWIN_REWARD_MODEL`` (unset: the embedded defaults)."""
        return cls(
            model=os.environ.get("DARWIN_MODEL", DEFAULT_MODEL),
            reward_model=os.environ.get("DARWIN_REWARD_MODEL") or None,
        )


class ServedContexts:
    """Resolves a node's context: the caller's DarwinContext if it gave one, else models
    loaded from the settings and a KV session per thread (the most recent threads only)."""

    def __init__(self, settings: ServedSettings, max_threads: int = 16) -> None:
        self.settings = settings
        self.max_threads = max_threads
        self._sessions: OrderedDict[str, PolicySession] = OrderedDict()
        self._reward: RewardModel | None = None
        self._lock = threading.Lock()

    def __call__(self, runtime: Runtime[DarwinContext | None]) -> DarwinContext:
        if isinstance(runtime.context, DarwinContext):
            return runtime.context
        policy = get_engine(EngineSpec(model=self.settings.model))
        thread = str(ensure_config().get("configurable", {}).get("thread_id", ""))
        with self._lock:
            if self._reward is None:
                self._reward = as_reward_model(self.settings.reward_model)
            session = self._sessions.pop(thread, None) or policy.new_session()
            self._sessions[thread] = session
            while len(self._sessions) > self.max_threads:
                self._sessions.popitem(last=False)
        return DarwinContext(policy=policy, reward=self._reward, session=session)
