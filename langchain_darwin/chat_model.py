"""DarwinChatModel: a LangChain chat model whose answers come out of a DARWIN search.

A thin front door: messages are turned into a plain conversation, the DARWIN graph runs
over it, and the best answer comes back as an AIMessage with the search in its metadata.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManager, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.graph.state import CompiledStateGraph
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from langchain_darwin.config import DarwinConfig
from langchain_darwin.conversation import to_conversation
from langchain_darwin.graph.builder import build_darwin_graph, recursion_limit
from langchain_darwin.graph.nodes import PHASES, generated_tokens
from langchain_darwin.graph.state import DarwinContext, DarwinState
from langchain_darwin.models import DEFAULT_MODEL, load_policy
from langchain_darwin.policy.transformers_engine import TransformersPolicy
from langchain_darwin.rewards.base import RewardModel
from langchain_darwin.rewards.resolve import as_reward_model

KNOBS = frozenset(DarwinConfig.model_fields)
#: LangChain's standard parameters that carry no meaning for a local search.
IGNORED_STANDARD = frozenset({"timeout", "max_retries", "api_key", "base_url", "rate_limiter"})

_GRAPH: CompiledStateGraph | None = None
_GRAPH_LOCK = threading.Lock()


def compiled_graph() -> CompiledStateGraph:
    """The DARWIN graph compiled once per process (it holds no models)."""
    global _GRAPH
    with _GRAPH_LOCK:
        if _GRAPH is None:
            _GRAPH = build_darwin_graph().compile()
        return _GRAPH


class DarwinChatModel(BaseChatModel):
    """Answers steered toward what a reward model prefers, by DARWIN decoding-time search.

    ``model`` is the policy (a local path, a hub id already in the local cache, or
    ``"default"``: the embedded SmolLM2-135M-Instruct). ``reward_model`` is a path or hub id
    of a sequence-classifier reward model, a :class:`RewardModel`, a callable
    ``(conversation, answer) -> float``, a list of ``(weight, reward)`` pairs, or None for the
    offline default proxy reward. Every knob of :class:`DarwinConfig` may be given here, as
    ``config=DarwinConfig(...)``, or per call (``invoke(..., replacement_period=80)``).
    Weights load lazily, on the first call, once per process.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    model: str = DEFAULT_MODEL
    reward_model: Any = None
    config: DarwinConfig = Field(default_factory=DarwinConfig)
    relevance_weight: float = 1.0
    tone_weight: float = 0.5
    device: str | None = None
    dtype: str | None = None
    timeout: float | None = None
    max_retries: int | None = None

    _reward: RewardModel | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="before")
    @classmethod
    def _gather_knobs(cls, values: Any) -> Any:
        """Knobs passed as keyword arguments go into ``config``."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        knobs = {k: values.pop(k) for k in list(values) if k in KNOBS}
        values.pop("api_key", None)
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
    def _policy(self, model: str) -> TransformersPolicy:
        hf_model, tokenizer = load_policy(model, device=self.device, dtype=self.dtype)
        return TransformersPolicy(hf_model, tokenizer)

    def _reward_model(self) -> RewardModel:
        with self._lock:
            if self._reward is None:
                self._reward = as_reward_model(
                    self.reward_model,
                    relevance_weight=self.relevance_weight,
                    tone_weight=self.tone_weight,
                )
            return self._reward

    def _call_config(
        self, stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[DarwinConfig, str]:
        model = kwargs.pop("model", None) or self.model
        unknown = [
            k
            for k in kwargs
            if k not in KNOBS and k not in IGNORED_STANDARD and not k.startswith("ls_")
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

    def run_search(
        self,
        messages: Sequence[BaseMessage],
        stop: list[str] | None = None,
        callbacks: CallbackManager | None = None,
        **kwargs: Any,
    ) -> DarwinState:
        """Run the DARWIN graph over ``messages`` and return its final state."""
        conversation = to_conversation(messages)
        config, model = self._call_config(stop, dict(kwargs))
        policy = self._policy(model)
        context = DarwinContext(
            policy=policy,
            reward=self._reward_model(),
            session=policy.new_session(reuse_cache=config.cache == "kv"),
        )
        run_config: dict[str, Any] = {
            "recursion_limit": recursion_limit(config),
            "configurable": {"thread_id": str(uuid.uuid4())},
        }
        if callbacks is not None:
            run_config["callbacks"] = callbacks
        try:
            return compiled_graph().invoke(
                {"conversation": conversation, "config": config.model_dump()},
                config=run_config,
                context=context,
            )
        finally:
            context.session.clear()

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        callbacks = None
        if run_manager is not None:
            callbacks = CallbackManager(
                handlers=run_manager.inheritable_handlers,
                inheritable_handlers=run_manager.inheritable_handlers,
                parent_run_id=run_manager.run_id,
                tags=run_manager.inheritable_tags,
                inheritable_tags=run_manager.inheritable_tags,
                metadata=run_manager.inheritable_metadata,
                inheritable_metadata=run_manager.inheritable_metadata,
            )
        state = self.run_search(messages, stop=stop, callbacks=callbacks, **kwargs)
        message = self._to_message(state, kwargs.get("model") or self.model)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _to_message(self, state: DarwinState, model: str) -> AIMessage:
        usage = state["usage"]
        prefilled = sum(usage[p]["prefilled"] for p in PHASES)
        decoded = generated_tokens(usage)
        metadata = search_metadata(state)
        return AIMessage(
            content=state["answer"],
            response_metadata={"model_name": model, "model_provider": "darwin", "darwin": metadata},
            usage_metadata={
                "input_tokens": prefilled,
                "output_tokens": decoded,
                "total_tokens": prefilled + decoded,
            },
        )


def search_metadata(state: DarwinState) -> dict[str, Any]:
    """What a user needs to see of a finished search, as plain data."""
    best = state["best"]
    seed_beam = state["seed"]
    return {
        "final_reward": state["final_reward"],
        "seed_reward": seed_beam["reward"],
        "seed_answer_tokens": len(seed_beam["answer"]),
        "cycle_rewards": state["cycle_rewards"],
        "period_scores": state["period_scores"],
        "mutated_instructions": state["mutated_instructions"],
        "mutation_stats": state["mutation_stats"],
        "archive": state["archive"],
        "winner": {
            "source": best["source"],
            "reward": best["reward"],
            "tokens": len(best["answer"]),
        },
        "generated_tokens": generated_tokens(state["usage"]),
        "usage": state["usage"],
        "stopped": state.get("stopped"),
        "seed": state["seed_value"],
        "config": state["config"],
    }
