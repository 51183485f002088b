"""DarwinState: the whole search as plain data (token ids, rewards, archive, lineage, usage),
so any LangGraph checkpointer can store it and a fresh process can resume it.

Three schemas, as LangGraph's ``StateGraph`` takes them: what a run is given
(:class:`DarwinInput`), what it returns (:class:`DarwinOutput`: the answer and the record of
the search), and the working state in between (:class:`DarwinState`). Records that only grow
and the usage counters carry reducers, so a node returns only what it added; ``seed`` resets
them with ``Overwrite`` so a second run on the same thread starts a fresh record.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langchain_darwin.archive import ArchiveEntry
from langchain_darwin.policy.base import PolicyEngine, PolicySession
from langchain_darwin.rewards.base import RewardModel
from langchain_darwin.usage import Usage, add_usage


class Beam(TypedDict):
    """One partial answer. ``instruction`` indexes this cycle's instructions (-1: the
    original conversation, used by the seed answer). ``lineage`` lists the
    ``[instruction, tokens]`` chunks that wrote the answer, so wins credit their authors.
    ``finished``: decodes no more (ended, at the cap, or a budget stopped the search);
    ``ended``: the answer ended by itself (EOS or a stop string), not cut."""

    instruction: int
    prompt: list[int]
    answer: list[int]
    finished: bool
    ended: bool
    reward: float | None
    scored: int
    lineage: list[list[int]]


class Best(TypedDict):
    """The answer to return so far: its reward, and the score it won by (the reward plus
    the over-optimisation guard's term when ``proximity_weight`` is on)."""

    answer: list[int]
    reward: float
    score: float
    source: str
    #: What wrote it: "seed", or the kind of its beam's instruction ("original", "rewrite",
    #: "hint", "fallback"); and that instruction (None for the seed answer).
    kind: str
    instruction: str | None


class PeriodScores(TypedDict):
    """The beams' rewards after one period of one mutation cycle."""

    cycle: int
    period: int
    rewards: list[float | None]


class CycleBeam(TypedDict):
    """One beam at the end of its mutation cycle: the kind of its slot's instruction
    ("original", "rewrite", "hint", "fallback") and its final reward. With replacement on, the
    slot's answer may have been copied from another instruction's beam."""

    kind: str
    reward: float | None


class DarwinInput(TypedDict, total=False):
    conversation: list[dict[str, str]]
    config: dict[str, Any]


class DarwinOutput(TypedDict, total=False):
    """The answer, and the record of how the search found it."""

    answer: str
    final_reward: float | None
    seed_answer: str
    config: dict[str, Any]
    seed_value: int
    seed: Beam
    best: Best | None
    stopped: str | None
    archive: list[ArchiveEntry]
    cycle_rewards: Annotated[list[float | None], operator.add]
    period_scores: Annotated[list[PeriodScores], operator.add]
    #: Per mutation cycle, each beam's instruction kind and final reward.
    cycle_beams: Annotated[list[list[CycleBeam]], operator.add]
    mutated_instructions: Annotated[list[list[str]], operator.add]
    mutation_stats: dict[str, int]
    archive_history: Annotated[list[list[ArchiveEntry]], operator.add]
    usage: Annotated[Usage, add_usage]


class DarwinState(DarwinInput, DarwinOutput, total=False):
    """Input, output and the working state of the current mutation cycle."""

    started_at: float
    cycle: int
    period: int
    picked: int
    instructions: list[str]
    instruction_kinds: list[str]
    beams: list[Beam]
    wins: list[float]


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
        ended=False,
        reward=None,
        scored=-1,
        lineage=[],
    )


def cycle_period_scores(state: DarwinOutput) -> list[list[list[float | None]]]:
    """Period scores as ``[cycle][period][beam]``, one list per mutation cycle run."""
    cycles: list[list[list[float | None]]] = [[] for _ in state.get("mutated_instructions", [])]
    for row in state.get("period_scores", []):
        cycles[row["cycle"]].append(row["rewards"])
    return cycles
