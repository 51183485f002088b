"""One search, built one way: the policy engine and the reward resolved once, a session
opened per search, the graph run or streamed, the session closed.

Every front door (the chat model, the ``darwin`` command, ``darwin generate``, the LangGraph
deployment, the OpenAI-compatible server, the benchmarks) runs its searches through a
:class:`SearchService`, so engines, rewards, tools, budgets and cancellation are decided in
one place. :meth:`SearchService.ready` loads or checks both machines before any decoding:
a reward model that cannot load fails before the first token, as an unknown policy does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

from langchain_core.callbacks.base import BaseCallbackManager
from langchain_core.messages import ToolCall
from langchain_core.runnables import RunnableConfig

from langchain_darwin.config import DarwinConfig
from langchain_darwin.engines import EngineSpec, get_engine
from langchain_darwin.graph.builder import compiled_graph, recursion_limit
from langchain_darwin.graph.report import search_metadata
from langchain_darwin.graph.state import DarwinContext, DarwinInput, DarwinOutput
from langchain_darwin.policy.base import PolicyEngine
from langchain_darwin.reward_models import as_reward_model
from langchain_darwin.rewards.base import Conversation, RewardModel
from langchain_darwin.tools import (
    ToolCallValidity,
    ToolSetup,
    parse_tool_call,
    setup_prompt,
    with_tool_prompt,
)

#: Name of the graph's run in traces (its nodes are its child runs).
GRAPH_RUN_NAME = "darwin_search"
#: What a stream yields: LangGraph's (mode, chunk) pairs, ``"custom"`` progress events and
#: ``"values"`` states; the last ``"values"`` state is the search's output.
SearchEvent = tuple[str, Any]
STREAM_MODES: list[Literal["custom", "values"]] = ["custom", "values"]


@dataclass(frozen=True)
class Winner:
    """The search's answer as a front door returns it: a valid call of an offered tool
    (``call``, LangChain's tool-call dict) or text; why it ended (``stop``, ``length`` at
    ``max_tokens``, ``tool_calls``); and the search's record (``search_metadata``, with what
    was offered when tools were)."""

    text: str
    call: ToolCall | None
    finish_reason: str
    metadata: dict[str, Any]


def winner_of(state: DarwinOutput, tools: ToolSetup | None = None) -> Winner:
    """:class:`Winner` of a finished search (the chat model and the OpenAI-compatible
    server answer the same way)."""
    metadata = search_metadata(state)
    max_tokens = DarwinConfig.model_validate(state["config"]).max_tokens
    finish = "length" if metadata["answer_tokens"] >= max_tokens else "stop"
    call = parse_tool_call(state["answer"], tools) if tools is not None else None
    if tools is not None:
        metadata["tools"] = {
            "offered": tools.names,
            "required": tools.required,
            "valid_call": call is not None,
        }
    if call is not None:
        finish = "tool_calls"
    return Winner(state["answer"], call, finish, metadata)


@dataclass
class PreparedSearch:
    """One search ready to run on :func:`compiled_graph`: its input, its run config (recursion
    limit, callbacks) and its context (policy, reward model, this run's caches). ``close()``
    frees the caches; ``cancel()`` stops the node that is decoding at its next token."""

    graph_input: DarwinInput
    run_config: RunnableConfig
    context: DarwinContext
    model: str
    config: DarwinConfig
    tools: ToolSetup | None = None

    def cancel(self) -> None:
        self.context.session.cancel()

    def close(self) -> None:
        self.context.session.clear()


class SearchService:
    """The machines searches run on: a policy (``policy``: an :class:`EngineSpec` saying
    where and which, or an engine object such as a test's fake engine) and a reward
    (``reward``: anything ``reward_model=`` accepts, None for the offline default).

    Both are resolved on first use and shared by every search of this service; engines are
    also shared process-wide by spec (``engines.get_engine``). Thread-safe: each search gets
    its own policy session.
    """

    def __init__(self, policy: EngineSpec | PolicyEngine | None = None, reward: Any = None):
        self._own_engine = None if isinstance(policy, EngineSpec | None) else policy
        self.spec = policy if isinstance(policy, EngineSpec) else EngineSpec()
        self.reward_spec = reward
        self._reward: RewardModel | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        """The policy's name, as responses report it."""
        if self._own_engine is not None:
            return str(getattr(self._own_engine, "name", type(self._own_engine).__name__))
        return self.spec.model

    def engine(self, model: str | None = None) -> PolicyEngine:
        """The policy engine (``model`` overrides the spec's, as a per-call ``model=`` does)."""
        if self._own_engine is not None:
            if model is not None and model != self.model:
                raise ValueError(
                    f"this search service runs the engine {self.model!r}; it cannot switch "
                    f"to model {model!r} per call"
                )
            return self._own_engine
        spec = self.spec if model is None else replace(self.spec, model=model)
        return get_engine(spec)

    @property
    def reward(self) -> RewardModel:
        """The reward model, resolved once (an HF path or hub id loads lazily until
        :meth:`ready`)."""
        with self._lock:
            if self._reward is None:
                self._reward = as_reward_model(self.reward_spec)
            return self._reward

    def ready(self, model: str | None = None) -> None:
        """Load or check the policy and the reward now, so that a model that cannot load, or
        a server that does not answer, fails before any decoding."""
        self.engine(model)
        self.reward.ready()

    def prepare(
        self,
        conversation: Conversation,
        config: DarwinConfig,
        *,
        model: str | None = None,
        tools: ToolSetup | None = None,
        validity_weight: float = 1.0,
        callbacks: BaseCallbackManager | None = None,
    ) -> PreparedSearch:
        """Everything one search needs, both machines readied; call ``close()`` when done.

        With ``tools`` the tools are described in the system prompt and
        ``validity_weight * ToolCallValidity`` joins the reward (the system-prompt route works
        with every chat template)."""
        self.ready(model)
        policy = self.engine(model)
        reward = self.reward
        conversation = [dict(turn) for turn in conversation]
        if tools is not None:
            conversation = with_tool_prompt(conversation, setup_prompt(tools))
            if validity_weight:
                reward = reward + validity_weight * ToolCallValidity(tools)
        context = DarwinContext(
            policy=policy,
            reward=reward,
            session=policy.new_session(reuse_cache=config.cache == "kv"),
        )
        run_config: RunnableConfig = {
            "recursion_limit": recursion_limit(config),
            "run_name": GRAPH_RUN_NAME,
        }
        if callbacks is not None:
            run_config["callbacks"] = callbacks
        return PreparedSearch(
            graph_input={"conversation": conversation, "config": config.model_dump()},
            run_config=run_config,
            context=context,
            model=model or self.model,
            config=config,
            tools=tools,
        )

    def run(self, search: PreparedSearch) -> DarwinOutput:
        """Run a prepared search to its end and return its output; closes it."""
        try:
            # the v1 overload is typed dict[str, Any] | Any; the output schema is DarwinOutput
            return cast(
                DarwinOutput,
                compiled_graph().invoke(
                    search.graph_input, config=search.run_config, context=search.context
                ),
            )
        finally:
            search.close()

    async def arun(self, search: PreparedSearch) -> DarwinOutput:
        """:meth:`run` without blocking the event loop (LangGraph runs each synchronous node
        in its executor); cancelling the task cancels the search at its next token."""
        try:
            return cast(
                DarwinOutput,
                await compiled_graph().ainvoke(
                    search.graph_input, config=search.run_config, context=search.context
                ),
            )
        except asyncio.CancelledError:
            search.cancel()
            raise
        finally:
            search.close()

    async def aprepare(
        self, conversation: Conversation, config: DarwinConfig, **kw: Any
    ) -> PreparedSearch:
        """:meth:`prepare` in a worker thread: loading weights must not block the loop."""
        return await asyncio.to_thread(self.prepare, conversation, config, **kw)

    def stream(self, search: PreparedSearch) -> Iterator[SearchEvent]:
        """The search's progress events and states as it runs (see :data:`SearchEvent`);
        closing the iterator early cancels the search. Closes it."""
        finished = False
        try:
            for event in compiled_graph().stream(
                search.graph_input,
                config=search.run_config,
                context=search.context,
                stream_mode=STREAM_MODES,
            ):
                yield cast(SearchEvent, event)  # with a list of modes, (mode, chunk) pairs
            finished = True
        finally:
            if not finished:
                search.cancel()
            search.close()

    async def astream(self, search: PreparedSearch) -> AsyncIterator[SearchEvent]:
        """:meth:`stream` for asyncio; cancelling or closing it cancels the search."""
        finished = False
        try:
            async for event in compiled_graph().astream(
                search.graph_input,
                config=search.run_config,
                context=search.context,
                stream_mode=STREAM_MODES,
            ):
                yield cast(SearchEvent, event)
            finished = True
        finally:
            if not finished:
                search.cancel()
            search.close()

    def __repr__(self) -> str:
        return f"SearchService(policy={self.spec!r}, reward={self.reward_spec!r})"


__all__ = [
    "GRAPH_RUN_NAME",
    "PreparedSearch",
    "SearchEvent",
    "SearchService",
    "Winner",
    "winner_of",
]
