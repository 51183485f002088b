"""The instruction archive: picking and updating."""

from __future__ import annotations

import random

import pytest

from langchain_darwin import archive


def test_pick_is_uniform_over_entries() -> None:
    entries = [{"instruction": f"i{k}", "reward": 0.0} for k in range(3)]
    rng = random.Random(0)
    counts = [0, 0, 0]
    for _ in range(3000):
        counts[archive.pick(entries, rng)] += 1
    assert all(900 < c < 1100 for c in counts)


def test_pick_refuses_empty_archive() -> None:
    with pytest.raises(ValueError, match="empty"):
        archive.pick([], random.Random(0))


def test_winners_that_beat_the_picked_enter_and_the_picked_leaves() -> None:
    entries = [{"instruction": "orig", "reward": 1.0}, {"instruction": "other", "reward": 3.0}]
    out = archive.update(entries, 0, [("a", 2.0), ("b", 0.5)])
    assert out == [{"instruction": "other", "reward": 3.0}, {"instruction": "a", "reward": 2.0}]


def test_no_winner_beats_the_picked_keeps_the_archive() -> None:
    entries = [{"instruction": "orig", "reward": 1.0}]
    assert archive.update(entries, 0, [("a", 1.0), ("b", 0.2)]) == entries


def test_known_instructions_do_not_enter_twice() -> None:
    entries = [{"instruction": "orig", "reward": 1.0}, {"instruction": "a", "reward": 5.0}]
    assert archive.update(entries, 0, [("a", 2.0)]) == entries
