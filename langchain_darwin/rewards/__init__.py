"""Reward models: anything that scores (original conversation, answers) -> floats, batched.

Names backed by a model (the offline default, an in-process classifier, a served one, a chat
model as judge) are imported on first use, so importing the protocol loads neither torch nor
an HTTP client.
"""

from __future__ import annotations

import importlib
from typing import Any

from langchain_darwin.rewards.base import Conversation, RewardModel, Scored
from langchain_darwin.rewards.callable import CallableReward
from langchain_darwin.rewards.weighted import WeightedReward

_LAZY = {
    "RelevanceReward": "langchain_darwin.inprocess.default_reward",
    "ToneReward": "langchain_darwin.inprocess.default_reward",
    "CivilityReward": "langchain_darwin.inprocess.default_reward",
    "SubstanceReward": "langchain_darwin.inprocess.default_reward",
    "FluencyReward": "langchain_darwin.inprocess.default_reward",
    "EchoReward": "langchain_darwin.inprocess.default_reward",
    "default_reward": "langchain_darwin.inprocess.default_reward",
    "as_reward_model": "langchain_darwin.reward_models",
    "ChatModelJudge": "langchain_darwin.rewards.judge",
    "HFSequenceClassifierReward": "langchain_darwin.inprocess.reward",
    "ServedReward": "langchain_darwin.served.reward",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CallableReward",
    "ChatModelJudge",
    "CivilityReward",
    "Conversation",
    "EchoReward",
    "FluencyReward",
    "HFSequenceClassifierReward",
    "RelevanceReward",
    "RewardModel",
    "Scored",
    "ServedReward",
    "SubstanceReward",
    "ToneReward",
    "WeightedReward",
    "as_reward_model",
    "default_reward",
]
