"""DarwinState: the whole search as plain data (token ids, rewards, archive, lineage, usage),
so any LangGraph checkpointer can store it and a fresh process can resume it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from langchain_darwin.archive import ArchiveEntry
from langchain_darwin.policy.base import PolicyEngine, PolicySession
from langchain_darwin.rewards.base import RewardModel


class Beam(TypedDict):
    """One partial answer. ``instruction`` indexes this cycle's instructions (-1: the
    original conversation, used by the seed answer). ``lineage`` lists the
    ``[instruction, tokens]`` chunks that wrote the answer, so wins credit their authors."""

    instruction: int
    prompt: list[int]
    answer: list[int]
    finished: bool
    reward: float | None
    scored: int
    lineage: list[list[int]]


class Best(TypedDict):
    answer: list[int]
    reward: float
    source: str


class DarwinState(TypedDict, total=False):
    # input
    conversation: list[dict[str, str]]
    config: dict[str, Any]
    # search
    seed_value: int
    started_at: float
    cycle: int
    period: int
    archive: list[ArchiveEntry]
    picked: int
    instructions: list[str]
    instruction_kinds: list[str]
    beams: list[Beam]
    seed: Beam
    wins: list[float]
    best: Best | None
    stopped: str | None
    # record
    cycle_rewards: list[float | None]
    period_scores: list[list[list[float | None]]]
    mutated_instructions: list[list[str]]
    mutation_stats: dict[str, int]
    archive_history: list[list[ArchiveEntry]]
    usage: dict[str, dict[str, int]]
    # output
    answer: str
    final_reward: float | None
    seed_answer: str


@dataclass
class DarwinContext:
    """What nodes use but never store: the models and this run's caches."""

    policy: PolicyEngine
    reward: RewardModel
    session: PolicySession


def new_beam(prompt: list[int], instruction: int) -> Beam:
    return Beam(
        instruction=instruction,
        prompt=prompt,
        answer=[],
        finished=False,
        reward=None,
        scored=-1,
        lineage=[],
    )
