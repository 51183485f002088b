"""DarwinChatModel: a LangChain chat model whose answers come out of a DARWIN search.

A thin front door: messages are turned into a plain conversation, the DARWIN graph runs
over it, and the best answer comes back as an AIMessage with the search in its metadata.
The best answer is known only when the search ends, so a stream carries the search's
progress as custom events (LangGraph ``custom`` stream mode, LangChain ``on_custom_event``
named ``darwin_<step>``) and then the answer in word-sized chunks (see ``streaming.py``).

Tools and structured output (``bind_tools``, ``with_structured_output``) go the DARWIN way: the
tools are described in the system prompt, a validity term joins the reward, and the winning
answer is parsed into ``tool_calls`` (see ``tools.py``).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Sequence
from typing import Any, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.callbacks.base import BaseCallbackManager
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.utils import LC_ID_PREFIX
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from langchain_darwin.config import DEFAULT_MODEL, DarwinConfig
from langchain_darwin.conversation import to_conversation
from langchain_darwin.engines import EngineSpec
from langchain_darwin.graph.state import DarwinOutput
from langchain_darwin.search import GRAPH_RUN_NAME, PreparedSearch, SearchService, winner_of
from langchain_darwin.streaming import (
    STREAM_PARENT,
    answer_chunks,
    child_callbacks,
    stream_parent_callbacks,
    with_stream_parent,
)
from langchain_darwin.tools import (
    ToolSetup,
    tool_spec,
)
from langchain_darwin.usage import token_usage

KNOBS = frozenset(DarwinConfig.model_fields)
#: LangChain's standard parameters accepted per call and ignored: the connection settings
#: (``base_url``, ``api_key``, ``timeout``, ``max_retries``) are the model's, not a call's.
IGNORED_STANDARD = frozenset(
    {"timeout", "max_retries", "api_key", "base_url", "rate_limiter", "stream"}
)
#: Per-call arguments of tool calling (set by ``bind_tools``), and the validity term's weight.
TOOL_ARGS = frozenset({"tools", "tool_choice", "validity_weight"})


class DarwinChatModel(BaseChatModel):
    r"""Chat model whose answers come out of a DARWIN search: mutated instructions explore,
    a reward model steers beams every replacement period, and the best answer found is the
    reply.

    .. dropdown:: Setup
        :open:

        Install ``langchain-darwin``. The default policy (SmolLM2-135M-Instruct) and the
        offline default reward ship with the package: nothing is downloaded. Any other policy
        or reward model is a local folder, a hub id already in the local Hugging Face cache,
        or a model a vLLM server serves.

        .. code-block:: bash

            pip install -U langchain-darwin

    Key init args — the search (every :class:`DarwinConfig` knob is also an init arg):
        iterations: int
            Mutation cycles (the paper's MC); 0 is plain sampling.
        replacement_period: int
            Tokens between two reward-guided replacements of the weakest beams.
        max_tokens: int
            Answer tokens per beam.
        temperature: float
            Sampling temperature; 0 decodes greedily.

    Key init args — the machines:
        model: str
            The policy: ``"default"``, a folder, a cached hub id, or with ``base_url`` the
            name a vLLM server serves.
        reward_model: Any
            What steers the search; None is the offline default proxy reward.
        base_url: str | None
            A vLLM server's OpenAI-compatible API; None runs the policy in this process.

    See the fields below for the rest (``device``, ``dtype``, ``api_key``, ``timeout``,
    ``max_retries``, ``validity_weight``).

    Instantiate:
        .. code-block:: python

            from langchain_darwin import DarwinChatModel

            llm = DarwinChatModel(
                model="default",  # the embedded SmolLM2-135M-Instruct
                max_tokens=128,
                replacement_period=32,
                seed=0,
                # reward_model="path/to/a/sequence-classifier", other knobs ...
            )

    Invoke:
        .. code-block:: python

            messages = [
                ("system", "You are a patient cooking teacher."),
                ("human", "How do I boil an egg?"),
            ]
            msg = llm.invoke(messages)
            msg.content  # the best answer the search found
            msg.response_metadata["darwin"]["final_reward"]  # its reward
            msg.response_metadata["darwin"]["seed_reward"]  # the plain sample's, to compare

        .. code-block:: python

            AIMessage(
                content="...",
                response_metadata={
                    "model_name": "default",
                    "model_provider": "darwin",
                    "finish_reason": "stop",  # "length" at max_tokens, "tool_calls"
                    "darwin": {"final_reward": ..., "seed_reward": ..., "winner": {...},
                               "cycle_rewards": [...], "cycle_beams": [...],
                               "mutated_instructions": [...],
                               "archive": [...], "usage": {...}, "config": {...}, ...},
                },
                usage_metadata={"input_tokens": ..., "output_tokens": ..., "total_tokens": ...},
            )

        Knobs and the policy may change per call:

        .. code-block:: python

            llm.invoke("Write a haiku about rain", iterations=2, max_tokens=64)

    Stream:
        The answer exists only when the search ends, so a stream yields it in word-sized
        chunks after the search; the search's progress comes as custom events
        (``darwin_mutate``, ``darwin_decode_chunk``, ``darwin_score``,
        ``darwin_select_replace``, ``darwin_update_archive``) to ``astream_events`` and to a
        LangGraph ``custom`` stream.

        .. code-block:: python

            for chunk in llm.stream("How do I boil an egg?"):
                print(chunk.text, end="")

        .. code-block:: python

            async for event in llm.astream_events("How do I boil an egg?", version="v2"):
                if event["event"] == "on_custom_event":
                    print(event["name"], event["data"])  # e.g. darwin_score {...}

    Async:
        .. code-block:: python

            await llm.ainvoke("How do I boil an egg?")
            await llm.abatch(["How do I boil an egg?", "Name three herbs"])

        Cancelling the task stops the search at its next token.

    Tool calling:
        The tools are described in the system prompt and ``validity_weight`` times a
        tool-call validity term joins the reward, so answers that are valid calls win; a
        winning valid call comes back as ``tool_calls``.

        .. code-block:: python

            from pydantic import BaseModel, Field

            class Multiply(BaseModel):
                a: int = Field(..., description="First integer")
                b: int = Field(..., description="Second integer")

            llm_with_tools = llm.bind_tools([Multiply], tool_choice="Multiply")
            msg = llm_with_tools.invoke("What is 45 * 67?")
            msg.tool_calls  # [{"name": "Multiply", "args": {...}, "id": ..., ...}] if valid
            msg.response_metadata["darwin"]["tools"]  # offered, required, valid_call

        ``with_structured_output(Multiply)`` works the same way.

    Served:
        The policy and the reward model can each run on a vLLM server (prefix caching does
        the KV reuse there; this process holds no weights):

        .. code-block:: bash

            vllm serve HuggingFaceTB/SmolLM2-360M-Instruct --port 8000
            vllm serve Skywork/Skywork-Reward-V2-Llama-3.1-8B --runner pooling --port 8001

        .. code-block:: python

            from langchain_darwin.rewards import ServedReward

            llm = DarwinChatModel(
                model="HuggingFaceTB/SmolLM2-360M-Instruct",  # the name the server serves
                base_url="http://127.0.0.1:8000/v1",
                reward_model=ServedReward(
                    "http://127.0.0.1:8001/v1", "Skywork/Skywork-Reward-V2-Llama-3.1-8B"
                ),
                timeout=120,
                max_retries=2,
            )
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    model: str = DEFAULT_MODEL
    """The policy. In process: ``"default"`` (the embedded SmolLM2-135M-Instruct), a local
    folder or a hub id already in the local cache (nothing is downloaded). With ``base_url``:
    the name the server serves it under. Per call: ``invoke(..., model="other")``."""
    reward_model: Any = None
    """What the search maximises: None for the offline default proxy reward
    (:func:`~langchain_darwin.rewards.default_reward`), a folder or cached hub id of a
    sequence-classifier reward model, a :class:`~langchain_darwin.rewards.RewardModel`
    (e.g. ``ServedReward``, ``ChatModelJudge``), a callable ``(conversation, answer) ->
    float``, or a list of ``(weight, reward)`` pairs. Loaded and checked before the first
    token of the first search."""
    config: DarwinConfig = Field(default_factory=DarwinConfig)
    """Every knob of the method; knobs given as init args (``max_tokens=128``) are merged in,
    and a call's knobs (``invoke(..., iterations=2)``) win over these for that call."""
    validity_weight: float = 1.0
    """Weight of the tool-call validity term (1 for a valid call) added to the reward when
    tools are bound; also a per-call argument."""
    device: str | None = None
    """Torch device of an in-process policy (``"cpu"``, ``"cuda"``, ``"cuda:1"``); None:
    CUDA when there is one, else CPU. Must stay None with ``base_url``."""
    dtype: str | None = None
    """Torch dtype of an in-process policy (``"float32"``, ``"bfloat16"``); None: bfloat16
    on a GPU that supports it, else float32. Must stay None with ``base_url``."""
    base_url: str | None = None
    """A vLLM server's OpenAI-compatible API (``http://host:port/v1``); None: in process."""
    api_key: SecretStr | None = None
    """Bearer key of the policy server at ``base_url``; None sends none."""
    timeout: float | None = None
    """Seconds one request to the policy server may take; None: 300."""
    max_retries: int | None = None
    """Retries of a request to the policy server that timed out, could not connect or got a
    5xx (with exponential backoff; a 4xx is not retried); None: 2."""
    streaming: bool = False
    """Accepted for compatibility; the answer exists only once the search ends."""

    _service: SearchService | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="before")
    @classmethod
    def _gather_knobs(cls, values: Any) -> Any:
        """Knobs passed as keyword arguments go into ``config``."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        knobs = {k: values.pop(k) for k in list(values) if k in KNOBS}
        if knobs:
            base = values.get("config") or DarwinConfig()
            if isinstance(base, dict):
                base = DarwinConfig(**base)
            if knobs.get("stop") == []:
                knobs["stop"] = None
            values["config"] = base.merged(**knobs)
        return values

    # -- LangChain identity ------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "darwin"

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def temperature(self) -> float:
        return self.config.temperature

    @property
    def max_tokens(self) -> int:
        return self.config.max_tokens

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "base_url": self.base_url,
            "reward_model": repr(self.reward_model),
            **self.config.model_dump(),
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "darwin"
        params["ls_model_name"] = kwargs.get("model") or self.model
        params["ls_model_type"] = "chat"
        params["ls_temperature"] = kwargs.get("temperature", self.config.temperature)
        params["ls_max_tokens"] = kwargs.get("max_tokens", self.config.max_tokens)
        if stop or self.config.stop:
            params["ls_stop"] = list(stop or self.config.stop or [])
        return params

    # -- machinery -----------------------------------------------------------------------
    def engine_spec(self, model: str | None = None) -> EngineSpec:
        """Where this model's policy runs (``model`` overrides the field, as per call)."""
        return EngineSpec(
            model=model or self.model,
            base_url=self.base_url,
            api_key=self.api_key.get_secret_value() if self.api_key is not None else None,
            timeout=self.timeout,
            max_retries=self.max_retries,
            device=self.device,
            dtype=self.dtype,
        )

    @property
    def search_service(self) -> SearchService:
        """The service this model's searches run on (policy and reward resolved once)."""
        with self._lock:
            if self._service is None:
                self._service = SearchService(self.engine_spec(), self.reward_model)
            return self._service

    def _call_config(
        self, stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[DarwinConfig, str]:
        model = kwargs.pop("model", None) or self.model
        unknown = [
            k
            for k in kwargs
            if k not in KNOBS
            and k not in IGNORED_STANDARD
            and k not in TOOL_ARGS
            and not k.startswith("ls_")
        ]
        if unknown:
            raise ValueError(
                f"unknown argument(s) {sorted(unknown)} for DarwinChatModel; "
                f"DARWIN knobs are: {sorted(KNOBS)}"
            )
        knobs = {k: v for k, v in kwargs.items() if k in KNOBS}
        if stop:
            knobs["stop"] = [*(self.config.stop or []), *stop]
        elif knobs.get("stop") == []:
            knobs["stop"] = None
        return self.config.merged(**knobs), model

    def prepare_search(
        self,
        messages: Sequence[BaseMessage],
        stop: list[str] | None = None,
        callbacks: BaseCallbackManager | None = None,
        **kwargs: Any,
    ) -> PreparedSearch:
        """The search for ``messages`` with this model's knobs and the call's ``kwargs``, both
        machines readied (see :class:`SearchService`); run it with the service."""
        tools = self._tool_setup(kwargs)
        conversation = to_conversation(messages, tool_turns=bool(kwargs.get("tools")))
        config, model = self._call_config(stop, dict(kwargs))
        return self.search_service.prepare(
            conversation,
            config,
            model=model,
            tools=tools,
            validity_weight=float(kwargs.get("validity_weight", self.validity_weight)),
            callbacks=callbacks,
        )

    # -- tools and structured output --------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer ``tools`` to the policy: they go into the system prompt, and an answer that is
        a valid call (``{"name": ..., "arguments": {...}}`` validating against the tool's JSON
        schema) earns ``validity_weight`` more reward. ``tool_choice``: None/"auto" (call or
        answer), "any"/"required"/True (some call), a tool name (that call), "none"."""
        specs = [tool_spec(t) for t in tools]
        ToolSetup.of(specs, tool_choice)  # a bad tool_choice fails here, not at invoke
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=specs, **kwargs)

    @staticmethod
    def _tool_setup(kwargs: dict[str, Any]) -> ToolSetup | None:
        return ToolSetup.of(kwargs.get("tools"), kwargs.get("tool_choice"))

    # -- LangChain entry points ----------------------------------------------------------------
    def _should_stream(
        self,
        *,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> bool:
        # With a run manager in hand (invoke/batch), LangChain would call _stream without it
        # and the graph could not nest under the chat run: answer through _generate, which
        # replays the answer to streaming handlers itself.
        if run_manager is not None:
            return False
        return super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)

    def _wants_tokens(
        self, run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None
    ) -> bool:
        """Whether a streaming handler (astream_events, LangGraph messages mode) listens."""
        return run_manager is not None and super()._should_stream(
            async_api=False, run_manager=run_manager
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        callbacks = None
        if run_manager is not None:
            callbacks = child_callbacks(run_manager, run_manager.run_id, is_async=False)
        service = self.search_service
        state = service.run(self.prepare_search(messages, stop, callbacks, **kwargs))
        message = self._to_message(
            state, kwargs.get("model") or self.model, run_manager, self._tool_setup(kwargs)
        )
        if run_manager is not None and self._wants_tokens(run_manager):
            for chunk in message_chunks(message):
                run_manager.on_llm_new_token(chunk.text, chunk=ChatGenerationChunk(message=chunk))
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        callbacks = None
        if run_manager is not None:
            callbacks = child_callbacks(run_manager, run_manager.run_id, is_async=True)
        service = self.search_service
        search = await asyncio.to_thread(self.prepare_search, messages, stop, callbacks, **kwargs)
        state = await service.arun(search)
        message = self._to_message(
            state, kwargs.get("model") or self.model, run_manager, self._tool_setup(kwargs)
        )
        if run_manager is not None and self._wants_tokens(run_manager):
            for chunk in message_chunks(message):
                await run_manager.on_llm_new_token(
                    chunk.text, chunk=ChatGenerationChunk(message=chunk)
                )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        config, parent = with_stream_parent(config, is_async=False)
        # BaseChatModel.stream is a generator function typed as returning an Iterator
        chunks = cast(
            Generator[AIMessageChunk, None, None],
            super().stream(input, config, stop=stop, **kwargs),
        )
        try:
            token = STREAM_PARENT.set(parent)
            try:  # the whole search runs before the first chunk: _stream reads `parent` then
                first = next(chunks, None)
            finally:
                STREAM_PARENT.reset(token)
            if first is not None:
                yield first
                yield from chunks
        finally:
            chunks.close()

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        config, parent = with_stream_parent(config, is_async=True)
        chunks = cast(
            AsyncGenerator[AIMessageChunk, None],
            super().astream(input, config, stop=stop, **kwargs),
        )
        try:
            token = STREAM_PARENT.set(parent)
            try:
                first = await anext(chunks, None)
            finally:
                STREAM_PARENT.reset(token)
            if first is not None:
                yield first
                async for chunk in chunks:
                    yield chunk
        finally:
            await chunks.aclose()

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        callbacks: BaseCallbackManager | None
        if run_manager is not None:  # stream_events(version="v3") hands it over
            callbacks = child_callbacks(run_manager, run_manager.run_id, is_async=False)
        else:
            callbacks = stream_parent_callbacks(is_async=False)
        service = self.search_service
        state = service.run(self.prepare_search(messages, stop, callbacks, **kwargs))
        message = self._to_message(
            state, kwargs.get("model") or self.model, tools=self._tool_setup(kwargs)
        )
        for chunk in message_chunks(message):
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        callbacks: BaseCallbackManager | None
        if run_manager is not None:
            callbacks = child_callbacks(run_manager, run_manager.run_id, is_async=True)
        else:
            callbacks = stream_parent_callbacks(is_async=True)
        service = self.search_service
        search = await asyncio.to_thread(self.prepare_search, messages, stop, callbacks, **kwargs)
        state = await service.arun(search)
        message = self._to_message(
            state, kwargs.get("model") or self.model, tools=self._tool_setup(kwargs)
        )
        for chunk in message_chunks(message):
            yield ChatGenerationChunk(message=chunk)

    def _to_message(
        self,
        state: DarwinOutput,
        model: str,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        tools: ToolSetup | None = None,
    ) -> AIMessage:
        """The winning answer as a message: a valid call of an offered tool becomes
        ``tool_calls`` (content empty), anything else is text."""
        winner = winner_of(state, tools)
        call = winner.call
        return AIMessage(
            content="" if call is not None else state["answer"],
            tool_calls=[call] if call is not None else [],
            id=f"{LC_ID_PREFIX}-{run_manager.run_id}" if run_manager is not None else None,
            response_metadata={
                "model_name": model,
                "model_provider": "darwin",
                "finish_reason": winner.finish_reason,
                "darwin": winner.metadata,
            },
            usage_metadata=token_usage(state["usage"]),
        )


def message_chunks(message: AIMessage) -> list[AIMessageChunk]:
    """A finished answer as stream chunks: word-sized text, or one chunk holding the tool
    calls (with usage and metadata)."""
    if not message.tool_calls:
        return answer_chunks(message)
    calls = [
        tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
        for i, c in enumerate(message.tool_calls)
    ]
    return [
        AIMessageChunk(
            content="",
            id=message.id,
            tool_call_chunks=calls,
            usage_metadata=message.usage_metadata,
            response_metadata=dict(message.response_metadata),
            chunk_position="last",
        )
    ]


__all__ = ["GRAPH_RUN_NAME", "DarwinChatModel", "PreparedSearch", "message_chunks"]
