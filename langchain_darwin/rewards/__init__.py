"""Reward models: anything that scores (original conversation, answers) -> floats, batched."""

from langchain_darwin.rewards.base import Conversation, RewardModel
from langchain_darwin.rewards.callable import CallableReward
from langchain_darwin.rewards.default import RelevanceReward, ToneReward, default_reward
from langchain_darwin.rewards.hf import HFSequenceClassifierReward
from langchain_darwin.rewards.resolve import as_reward_model
from langchain_darwin.rewards.weighted import WeightedReward

__all__ = [
    "CallableReward",
    "Conversation",
    "HFSequenceClassifierReward",
    "RelevanceReward",
    "RewardModel",
    "ToneReward",
    "WeightedReward",
    "as_reward_model",
    "default_reward",
]
