"""The instruction archive: instructions that produced well-rewarded answers.

Stored as plain data (a list of ``{"instruction", "reward"}``) so checkpoints can hold it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypedDict


class ArchiveEntry(TypedDict):
    instruction: str
    reward: float | None


def pick(archive: Sequence[ArchiveEntry], rng: random.Random) -> int:
    """Index of the instruction to mutate next, uniformly at random."""
    if not archive:
        raise ValueError("the archive is empty; it always starts with the original instruction")
    return rng.randrange(len(archive))


def update(
    archive: Sequence[ArchiveEntry],
    picked: int,
    winners: Sequence[tuple[str, float]],
) -> list[ArchiveEntry]:
    """Winners (instruction, final reward) that beat the picked instruction's reward enter;
    if any entered, the picked instruction leaves."""
    base = archive[picked]["reward"]
    known = {entry["instruction"] for entry in archive}
    entering: list[ArchiveEntry] = []
    for instruction, reward in winners:
        if instruction in known or (base is not None and not reward > base):
            continue
        known.add(instruction)
        entering.append({"instruction": instruction, "reward": reward})
    if not entering:
        return list(archive)
    kept = [entry for i, entry in enumerate(archive) if i != picked]
    return kept + entering
