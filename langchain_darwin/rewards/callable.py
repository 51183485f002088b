"""A reward written as a plain Python function, for quick experiments and custom checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import SupportsFloat

from langchain_darwin.rewards.base import Conversation, RewardModel

#: ``fn(conversation, answer) -> number``; the conversation ends with the user turn.
RewardFn = Callable[[Conversation, str], SupportsFloat]


class CallableReward(RewardModel):
    """Scores each answer with ``fn(conversation, answer)``.

    The function sees the ORIGINAL conversation (not a mutated instruction), so it judges
    answers to what the user actually asked. Any number-like result (int, numpy scalar,
    0-d tensor) becomes a float. NaN and inf pass through: the search ranks them last
    with a warning (one documented rule for every kind of reward).
    """

    def __init__(self, fn: RewardFn) -> None:
        if not callable(fn):
            raise TypeError(
                f"CallableReward needs a callable (conversation, answer) -> float, got {fn!r}"
            )
        self.fn = fn

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        messages = [dict(m) for m in conversation]
        return [self._one(messages, answer, i) for i, answer in enumerate(answers)]

    def _one(self, conversation: Conversation, answer: str, index: int) -> float:
        result = self.fn(conversation, answer)
        try:
            value = float(result)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"reward function {self._name()} returned {result!r} for answer {index}; "
                "it must return a number"
            ) from err
        return value

    def _name(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))

    def __repr__(self) -> str:
        return f"CallableReward({self._name()})"
