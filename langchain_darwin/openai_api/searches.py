"""The searches behind the server: one policy and one reward, resolved once and shared by
every request, each search run in a worker thread so the event loop stays free.

A search's progress events reach the loop as they happen; cancelling the awaiting task
cancels the search's session (the engine stops at its next token) and waits until its thread
has left the graph, so a freed slot is a slot no search still uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import httpx
from langchain_core.messages import convert_to_messages

from langchain_darwin.config import DarwinConfig
from langchain_darwin.conversation import ConversationError, to_conversation
from langchain_darwin.graph.state import DarwinOutput
from langchain_darwin.openai_api.protocol import ApiError, bad_request
from langchain_darwin.rewards.weighted import WeightedReward
from langchain_darwin.search import PreparedSearch, SearchService
from langchain_darwin.tools import ToolSetup

#: A search's progress event (the graph's ``custom`` stream), delivered on the event loop.
OnEvent = Callable[[dict[str, Any]], None]


class Searches:
    """Runs the server's DARWIN searches on one :class:`SearchService` (its policy and reward,
    shared by every request), with ``defaults`` as the knobs a request does not set."""

    def __init__(
        self,
        service: SearchService,
        defaults: DarwinConfig | None = None,
        max_concurrent: int = 4,
    ) -> None:
        self.service = service
        self.defaults = defaults or DarwinConfig()
        self._executor = ThreadPoolExecutor(max_concurrent, thread_name_prefix="darwin-search")

    def load(self) -> None:
        """Load the weights, or check the servers, of the policy and the reward."""
        self.service.ready()

    def check(self) -> None:
        """Ready: both loaded and every server they use answers ``/health``."""
        self.load()
        roots = self._roots(self.service.engine()) + self._roots(self.service.reward)
        for root in roots:
            response = httpx.get(f"{root}/health", timeout=5.0)
            if response.status_code != 200:
                raise ConnectionError(f"{root}/health answered {response.status_code}")

    @staticmethod
    def _roots(part: Any) -> list[str]:
        if isinstance(part, WeightedReward):
            return [root for _, term in part.terms for root in Searches._roots(term)]
        client = getattr(part, "client", None)
        root = getattr(client, "root", None)
        return [root] if isinstance(root, str) else []

    @staticmethod
    def conversation(messages: list[dict[str, Any]], tools: bool) -> list[dict[str, str]]:
        """OpenAI messages as the conversation a search answers; a 400 naming what is wrong."""
        try:
            return to_conversation(convert_to_messages(messages), tool_turns=tools)
        except (ConversationError, ValueError) as err:
            raise bad_request(str(err), param="messages") from None

    def prepare(
        self,
        messages: list[dict[str, Any]],
        config: DarwinConfig,
        tools: ToolSetup | None,
        validity_weight: float,
    ) -> PreparedSearch:
        """One search, ready to run; a prompt over the policy's context window is a 400."""
        conversation = self.conversation(messages, tools is not None)
        search = self.service.prepare(
            conversation, config, tools=tools, validity_weight=validity_weight
        )
        try:
            self._check_context(search, config)
        except ApiError:
            search.close()
            raise
        return search

    @staticmethod
    def _check_context(search: PreparedSearch, config: DarwinConfig) -> None:
        policy = search.context.policy
        window = policy.context_window
        prompt = len(policy.render(search.graph_input["conversation"]))
        if window is not None and prompt + config.max_tokens > window:
            raise bad_request(
                f"the prompt is {prompt} tokens and max_tokens={config.max_tokens}, more than "
                f"the policy's context window of {window} tokens; shorten the messages or "
                "lower max_tokens",
                param="messages",
                code="context_length_exceeded",
            )

    async def run(self, search: PreparedSearch, on_event: OnEvent | None = None) -> DarwinOutput:
        """Run ``search`` to its end in a worker thread; its progress goes to ``on_event``."""
        loop = asyncio.get_running_loop()

        def work() -> DarwinOutput:
            state: dict[str, Any] | None = None
            for mode, data in self.service.stream(search):
                if mode == "values":
                    state = cast(dict[str, Any], data)
                elif on_event is not None:
                    loop.call_soon_threadsafe(on_event, cast(dict[str, Any], data))
            return cast(DarwinOutput, state)

        future = loop.run_in_executor(self._executor, work)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            search.cancel()  # the engine stops at its next token
            await asyncio.wait([future])  # and the slot is free only once it has
            if not future.cancelled():
                future.exception()  # SearchCancelled, expected: retrieved, not logged
            raise
        finally:
            search.close()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
