"""Turning whatever the user passed as ``reward_model=`` into a RewardModel.

The reward-model counterpart of ``engines.py``: it knows every kind (the protocol's own in
``rewards/``, the model-backed ones in each backend), so it stands above them all, and loads
a backend only when its kind is named.
"""

from __future__ import annotations

import os
import threading
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_darwin.rewards.base import RewardModel
from langchain_darwin.rewards.callable import CallableReward
from langchain_darwin.rewards.weighted import WeightedReward

if TYPE_CHECKING:  # the model-backed rewards import torch: load them only when named
    from langchain_darwin.inprocess.reward import HFSequenceClassifierReward

#: HF reward models by spec, so chat models naming the same reward model share its weights.
_HF_CACHE: dict[str, HFSequenceClassifierReward] = {}
_HF_LOCK = threading.Lock()

ACCEPTED = (
    "None (the offline default), a RewardModel, a LangChain chat model (as a judge), a path or "
    "hub id of an "
    "AutoModelForSequenceClassification reward model, a callable (conversation, answer) -> float, "
    "or a list of (weight, reward) pairs"
)


def _hf_reward(spec: str | os.PathLike[str]) -> HFSequenceClassifierReward:
    from langchain_darwin.inprocess.reward import HFSequenceClassifierReward

    path = Path(spec)
    key = str(path.resolve()) if path.exists() else os.fspath(spec)
    with _HF_LOCK:
        if key not in _HF_CACHE:
            _HF_CACHE[key] = HFSequenceClassifierReward(key)
        return _HF_CACHE[key]


def _is_chat_model(spec: Any) -> bool:
    """A LangChain chat model, checked without importing langchain-core's models eagerly."""
    from langchain_core.language_models import BaseChatModel

    return isinstance(spec, BaseChatModel)


def _is_pair(item: Any) -> bool:
    return (
        isinstance(item, (tuple, list))
        and len(item) == 2
        and isinstance(item[0], Real)
        and not isinstance(item[0], bool)
    )


def as_reward_model(spec: Any) -> RewardModel:
    """The RewardModel that ``spec`` names (``None``: the offline default; other weights of
    its terms: pass ``default_reward(relevance_weight=..., ...)`` itself)."""
    if spec is None:
        from langchain_darwin.inprocess.default_reward import default_reward

        return default_reward()
    if isinstance(spec, RewardModel):
        return spec
    if _is_chat_model(spec):
        from langchain_darwin.rewards.judge import ChatModelJudge

        return ChatModelJudge(spec)
    if isinstance(spec, (str, os.PathLike)):
        return _hf_reward(spec)
    if isinstance(spec, (list, tuple)):
        if not spec or not all(_is_pair(item) for item in spec):
            raise TypeError(f"a list reward must be non-empty (weight, reward) pairs, got {spec!r}")
        return WeightedReward([(float(w), as_reward_model(s)) for w, s in spec])
    if callable(spec):
        return CallableReward(spec)
    raise TypeError(f"reward_model must be {ACCEPTED}; got {type(spec).__name__}: {spec!r}")
