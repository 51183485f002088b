"""Weighted sums of rewards: how several preferences (relevance, tone, ...) combine into one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from numbers import Real

from langchain_darwin.rewards.base import Conversation, RewardModel


class WeightedReward(RewardModel):
    """``sum(weight * reward.score(...))`` over its terms; built by ``+`` and ``*`` on rewards.

    Sums stay flat (``a + b + c`` is one list of three terms), so each term scores the whole
    batch once.
    """

    def __init__(self, terms: Iterable[tuple[float, RewardModel]]) -> None:
        self.terms: list[tuple[float, RewardModel]] = []
        for term in terms:
            weight, reward = term
            if not isinstance(weight, Real) or isinstance(weight, bool):
                raise TypeError(f"weight must be a number, got {weight!r}")
            if not isinstance(reward, RewardModel):
                raise TypeError(f"term must be a RewardModel, got {reward!r}")
            self.terms.append((float(weight), reward))
        if not self.terms:
            raise ValueError("WeightedReward needs at least one (weight, reward) term")

    @classmethod
    def of(cls, reward: RewardModel) -> WeightedReward:
        """``reward`` itself if already weighted, else it as a single term of weight 1."""
        if isinstance(reward, WeightedReward):
            return reward
        if not isinstance(reward, RewardModel):
            raise TypeError(f"only RewardModels can be added to a reward, got {reward!r}")
        return cls([(1.0, reward)])

    def __add__(self, other: RewardModel) -> WeightedReward:
        return WeightedReward(self.terms + WeightedReward.of(other).terms)

    def __mul__(self, weight: float) -> WeightedReward:
        return WeightedReward([(w * float(weight), r) for w, r in self.terms])

    __rmul__ = __mul__

    def ready(self) -> None:
        for weight, reward in self.terms:
            if weight != 0.0:  # a switched-off term is never scored, so never loaded
                reward.ready()

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        totals = [0.0] * len(answers)
        if not answers:
            return totals
        for weight, reward in self.terms:
            if weight == 0.0:
                continue  # a switched-off term costs nothing (it may be a large model)
            scores = reward.score(conversation, answers)
            if len(scores) != len(answers):
                raise ValueError(
                    f"{reward!r} returned {len(scores)} scores for {len(answers)} answers"
                )
            totals = [t + weight * float(s) for t, s in zip(totals, scores, strict=True)]
        return totals

    @property
    def positions_scored(self) -> int:
        """Reward-model positions scored by the terms that count them (each model once)."""
        seen = {id(r): r for _, r in self.terms}
        return sum(int(getattr(r, "positions_scored", 0)) for r in seen.values())

    @property
    def unparsed(self) -> int:
        """Judge replies that could not be parsed, over the terms that count them."""
        seen = {id(r): r for _, r in self.terms}
        return sum(int(getattr(r, "unparsed", 0)) for r in seen.values())

    def __repr__(self) -> str:
        return " + ".join(f"{w:g} * {r!r}" for w, r in self.terms)
