"""The DARWIN graph as deployed (LangGraph server, Studio): ``make_graph()``.

A server builds a run's context from the request's JSON (``context=`` in the SDK, ``{}`` when
the client sends none) by calling the graph's context schema with it. Models, sessions and
caches cannot travel that way, so the deployed graph's context schema is
:class:`DeploymentSettings`, plain optional names, and :class:`DeploymentContexts` turns them
into the :class:`DarwinContext` the nodes use: models named by the run, else by the
environment, loaded on the first run (never at import) and shared by later runs.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, fields, replace
from typing import Any

from langchain_core.runnables.config import ensure_config
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from langchain_darwin.config import DEFAULT_MODEL
from langchain_darwin.engines import EngineSpec
from langchain_darwin.graph.builder import build_darwin_graph
from langchain_darwin.graph.state import DarwinContext
from langchain_darwin.policy.base import PolicySession
from langchain_darwin.search import SearchService


@dataclass(frozen=True)
class DeploymentSettings:
    """Which policy and reward model a run uses; any of them may be set per run
    (``context={"model": ...}``), the rest come from the environment.

    ``model``: the policy, in process ("default", a folder or a hub id), or the name a vLLM
    server serves it under when ``base_url`` is set. ``reward_model``: a reward model's folder
    or hub id (unset: the offline default), or its served name when ``reward_base_url`` is set.
    """

    model: str | None = None
    base_url: str | None = None
    reward_model: str | None = None
    reward_base_url: str | None = None

    @classmethod
    def from_env(cls) -> DeploymentSettings:
        """``DARWIN_MODEL``, ``DARWIN_BASE_URL``, ``DARWIN_REWARD_MODEL``,
        ``DARWIN_REWARD_BASE_URL`` (unset or empty: the embedded defaults, in process)."""
        return cls(
            model=os.environ.get("DARWIN_MODEL") or None,
            base_url=os.environ.get("DARWIN_BASE_URL") or None,
            reward_model=os.environ.get("DARWIN_REWARD_MODEL") or None,
            reward_base_url=os.environ.get("DARWIN_REWARD_BASE_URL") or None,
        )

    def over(self, defaults: DeploymentSettings) -> DeploymentSettings:
        """These settings where set, ``defaults`` elsewhere."""
        mine = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(defaults, **{k: v for k, v in mine.items() if v is not None})


class DeploymentContexts:
    """Resolves each node's :class:`DarwinContext` from the run's settings over the
    deployment's; a policy session per thread and policy (the most recent ``max_threads``).

    ``api_key`` (``DARWIN_API_KEY``) goes only to the deployment's own ``base_url``: a run
    that names another server does not get the deployment's credentials sent to it.
    """

    def __init__(
        self,
        defaults: DeploymentSettings | None = None,
        api_key: str | None = None,
        max_threads: int = 16,
    ) -> None:
        self.defaults = defaults or DeploymentSettings()
        self.api_key = api_key
        self.max_threads = max_threads
        self._sessions: OrderedDict[tuple[str, EngineSpec], PolicySession] = OrderedDict()
        self._services: dict[tuple[EngineSpec, str | None, str | None], SearchService] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> DeploymentContexts:
        return cls(DeploymentSettings.from_env(), os.environ.get("DARWIN_API_KEY") or None)

    def engine_spec(self, settings: DeploymentSettings) -> EngineSpec:
        own_server = settings.base_url is not None and settings.base_url == self.defaults.base_url
        return EngineSpec(
            model=settings.model or DEFAULT_MODEL,
            base_url=settings.base_url,
            api_key=self.api_key if own_server else None,
        )

    def _reward(self, settings: DeploymentSettings) -> Any:
        """The reward spec (the service resolves it): a name, or the served reward model."""
        if settings.reward_base_url is None:
            return settings.reward_model
        if settings.reward_model is None:
            raise ValueError(
                f"reward_base_url {settings.reward_base_url!r} needs reward_model, the name the "
                "server serves the reward model under (DARWIN_REWARD_MODEL)"
            )
        from langchain_darwin.served.reward import ServedReward

        return ServedReward(settings.reward_base_url, settings.reward_model)

    def service(self, settings: DeploymentSettings) -> SearchService:
        """The search service for these settings, built and readied once (each node asks for
        its context, so readying per call would repeat the loads' checks every step); one
        that cannot ready is not kept, so the next run tries again."""
        spec = self.engine_spec(settings)
        key = (spec, settings.reward_model, settings.reward_base_url)
        with self._lock:
            service = self._services.get(key)
        if service is None:
            service = SearchService(spec, self._reward(settings))
            service.ready()
            with self._lock:
                service = self._services.setdefault(key, service)
        return service

    def __call__(self, runtime: Runtime[DeploymentSettings | None]) -> DarwinContext:
        settings = (runtime.context or DeploymentSettings()).over(self.defaults)
        service = self.service(settings)
        spec, policy, reward = service.spec, service.engine(), service.reward
        thread = str(ensure_config().get("configurable", {}).get("thread_id", ""))
        with self._lock:
            session = self._sessions.pop((thread, spec), None) or policy.new_session()
            self._sessions[(thread, spec)] = session
            while len(self._sessions) > self.max_threads:
                self._sessions.popitem(last=False)
        return DarwinContext(policy=policy, reward=reward, session=session)


def make_graph() -> CompiledStateGraph:
    """The graph ``graphs/langgraph.json`` serves; the server adds its own checkpointer."""
    return build_darwin_graph(
        context=DeploymentContexts.from_env(), context_schema=DeploymentSettings
    ).compile()
