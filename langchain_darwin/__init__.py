"""DARWIN decoding-time alignment as a LangGraph state machine behind a LangChain chat model."""

from typing import Any

from langchain_darwin import rewards
from langchain_darwin.chat_model import DarwinChatModel
from langchain_darwin.config import DarwinConfig
from langchain_darwin.graph.builder import build_darwin_graph
from langchain_darwin.graph.state import DarwinContext, DarwinState
from langchain_darwin.rewards import CallableReward, RewardModel, WeightedReward
from langchain_darwin.tools import ToolCallValidity, parse_tool_call, tool_prompt


def __getattr__(name: str) -> Any:
    """Model-backed names load on first use: ``import langchain_darwin`` stays free of torch."""
    if name in ("HFSequenceClassifierReward", "ServedReward", "default_reward"):
        return getattr(rewards, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CallableReward",
    "DarwinChatModel",
    "DarwinConfig",
    "DarwinContext",
    "DarwinState",
    "HFSequenceClassifierReward",
    "RewardModel",
    "ServedReward",
    "ToolCallValidity",
    "WeightedReward",
    "build_darwin_graph",
    "default_reward",
    "parse_tool_call",
    "tool_prompt",
]
