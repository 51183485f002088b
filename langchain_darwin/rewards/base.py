"""The reward-model protocol: score (original conversation, answers) -> floats, batched."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

#: A conversation as plain data: [{"role": "system"|"user"|"assistant", "content": str}, ...].
Conversation = Sequence[dict[str, str]]


class RewardError(RuntimeError):
    """The reward model raised or returned something that is not one number per answer."""


@dataclass(frozen=True)
class Scored:
    """One scoring call's scores and what that call alone cost: reward-model ``positions`` it
    read and judge replies it could not parse (``unparsed``). Searches charge these, never a
    reward's lifetime counters, which concurrent searches sharing the reward all move. A
    composite reward's positions add up each model's own tokens (the default reward: MiniLM
    tokens and SmolLM2 positions), a count of work done, not of one model's tokens."""

    scores: list[float] = field(default_factory=list)
    positions: int = 0
    unparsed: int = 0


class RewardModel(ABC):
    """Anything that scores candidate answers to one conversation.

    Rewards add and scale: ``0.7 * relevance + 0.3 * tone`` is a reward too.
    """

    @abstractmethod
    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        """One float per answer, higher is better, for answers to ``conversation``
        (which ends with the user turn being answered)."""

    def score_with_usage(self, conversation: Conversation, answers: Sequence[str]) -> Scored:
        """``score`` and what this call cost. Kinds that read a model (classifiers, served
        rewards, judges, sums of them) override it and count their own call; the default is
        for kinds with no model positions to count."""
        return Scored(list(self.score(conversation, answers)))

    def ready(self) -> None:
        """Load weights or check the server now, so a reward that cannot work fails before
        any decoding rather than at the first period's scoring. Nothing to do by default."""
        return None

    def __add__(self, other: RewardModel) -> RewardModel:
        from langchain_darwin.rewards.weighted import WeightedReward

        return WeightedReward.of(self) + WeightedReward.of(other)

    def __mul__(self, weight: float) -> RewardModel:
        from langchain_darwin.rewards.weighted import WeightedReward

        return WeightedReward([(float(weight), self)])

    __rmul__ = __mul__
