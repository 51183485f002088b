"""Random draws keyed by (seed, cycle, period, purpose), never by global RNG state, so runs
are reproducible across threads, batches and resumed processes."""

from __future__ import annotations

import hashlib
import random


def keyed_seed(seed: int, *parts: object) -> int:
    digest = hashlib.sha256("/".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def keyed_rng(seed: int, *parts: object) -> random.Random:
    return random.Random(keyed_seed(seed, *parts))
