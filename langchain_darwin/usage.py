"""Usage accounting, in one place: what a search pushed through its models, per phase.

Positions are counted where the engine reports them (``Work``): *prefilled* positions (context
run through the policy without sampling) and *decoded* ones (one per sampled token), for each
phase of the method, plus the reward model's positions and answers scored. The graph state
keeps the totals in one ``usage`` channel whose reducer adds what each node charged, so nodes
return only their own charges. The chat model's ``usage_metadata``, the CLI and the benchmarks
read the totals through the functions here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from langchain_darwin.policy.base import ExtendOutcome

#: Phases of a search that drive the policy: the seed answer, the mutation requests, the
#: beams, look-ahead tokens decoded only to score a beam, and the over-optimisation guard's
#: read of the final candidates (prefill only).
PHASES = ("seed", "mutation", "beams", "look_ahead", "guard")
#: Counters of the reward model (not the policy).
REWARD = "reward"
#: Counters of the consensus guard's embedder (``{"positions": n, "answers": n}``), present
#: only when the guard ran.
CONSENSUS = "consensus"

#: ``{phase: {"prefilled": n, "decoded": n}, "reward": {"positions": n, "answers": n,
#: "unparsed": n}}``: ``unparsed`` counts a judge's replies that held no score (they rank last)
Usage = dict[str, dict[str, int]]


def empty_usage() -> Usage:
    usage: Usage = {p: {"prefilled": 0, "decoded": 0} for p in PHASES}
    usage[REWARD] = {"positions": 0, "answers": 0, "unparsed": 0}
    return usage


def add_usage(total: Usage | None, charge: Usage | None) -> Usage:
    """The state's reducer: counters add up, phase by phase."""
    out = {phase: dict(counts) for phase, counts in (total or {}).items()}
    for phase, counts in (charge or {}).items():
        into = out.setdefault(phase, {})
        for name, n in counts.items():
            into[name] = into.get(name, 0) + n
    return out


def charge(phase: str, outcome: ExtendOutcome, keys: Iterable[str]) -> Usage:
    """What the rows ``keys`` of an engine call cost, charged to ``phase``."""
    keys = set(keys)
    work = outcome.work
    return {
        phase: {
            "prefilled": sum(n for k, n in work.prefilled.items() if k in keys),
            "decoded": sum(n for k, n in work.decoded.items() if k in keys),
        }
    }


def reward_charge(positions: int, answers: int, unparsed: int = 0) -> Usage:
    return {REWARD: {"positions": positions, "answers": answers, "unparsed": unparsed}}


def generated_tokens(usage: Mapping[str, Mapping[str, int]]) -> int:
    """Tokens sampled from the policy over the whole search (every phase)."""
    return sum(usage.get(p, {}).get("decoded", 0) for p in PHASES)


def prefilled_positions(usage: Mapping[str, Mapping[str, int]]) -> int:
    """Context positions run through the policy over the whole search (every phase)."""
    return sum(usage.get(p, {}).get("prefilled", 0) for p in PHASES)


def token_usage(usage: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """LangChain's ``usage_metadata``: input tokens are positions prefilled through the policy,
    output tokens positions decoded."""
    prefilled, decoded = prefilled_positions(usage), generated_tokens(usage)
    return {
        "input_tokens": prefilled,
        "output_tokens": decoded,
        "total_tokens": prefilled + decoded,
    }
