"""DARWIN decoding-time alignment as a LangGraph state machine behind a LangChain chat model."""

from langchain_darwin.chat_model import DarwinChatModel
from langchain_darwin.config import DarwinConfig
from langchain_darwin.graph.builder import build_darwin_graph
from langchain_darwin.graph.state import DarwinContext, DarwinState
from langchain_darwin.rewards import (
    CallableReward,
    HFSequenceClassifierReward,
    RewardModel,
    WeightedReward,
    default_reward,
)
from langchain_darwin.tools import ToolCallValidity, parse_tool_call, tool_prompt

__all__ = [
    "CallableReward",
    "DarwinChatModel",
    "DarwinConfig",
    "DarwinContext",
    "DarwinState",
    "HFSequenceClassifierReward",
    "RewardModel",
    "ToolCallValidity",
    "WeightedReward",
    "build_darwin_graph",
    "default_reward",
    "parse_tool_call",
    "tool_prompt",
]
