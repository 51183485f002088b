"""What a user sees of a finished search: the final state, summarised as plain data."""

from __future__ import annotations

import math
from typing import Any

from langchain_darwin.graph.state import DarwinOutput, cycle_period_scores
from langchain_darwin.usage import generated_tokens


def search_metadata(state: DarwinOutput) -> dict[str, Any]:
    """What a user needs to see of a finished search, as plain data."""
    best = state["best"]  # None when a budget ended the search before any score
    seed_beam = state["seed"]
    winner = None
    if best is not None:
        winner = {
            "source": best["source"],
            "reward": best["reward"],
            "score": best["score"],  # the reward plus the guard's term, when it is on
            "tokens": len(best["answer"]),
        }
    return {
        "final_reward": state["final_reward"],
        "seed_reward": seed_beam["reward"],
        "seed_answer": state.get("seed_answer"),
        "seed_answer_tokens": len(seed_beam["answer"]),
        "cycle_rewards": state["cycle_rewards"],
        "period_scores": cycle_period_scores(state),
        "cycle_beams": state.get("cycle_beams", []),
        "mutated_instructions": state["mutated_instructions"],
        "mutation_stats": state["mutation_stats"],
        "archive": state["archive"],
        "winner": winner,
        "answer_tokens": len((best or seed_beam)["answer"]),
        "generated_tokens": generated_tokens(state["usage"]),
        "usage": state["usage"],
        "stopped": state.get("stopped"),
        "seed": state["seed_value"],
        "config": state["config"],
    }


def plain_json(value: Any) -> Any:
    """Non-finite floats (an unscored answer ranks at -inf) become null: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    return value


def search_summary(state: DarwinOutput) -> dict[str, Any]:
    """Where the winner came from and what the search bought over its seed answer: the seed
    answer (one plain sample) or which cycle's beam, under which kind of instruction, and
    the best beam's reward against the seed answer's. A search whose winner is the seed
    answer spent its beams for nothing."""
    best, seed_reward = state["best"], state["seed"]["reward"]
    beam_rewards = [r for r in state["cycle_rewards"] if r is not None and math.isfinite(r)]
    best_beam = max(beam_rewards) if beam_rewards else None
    gain = None
    if best_beam is not None and seed_reward is not None and math.isfinite(seed_reward):
        gain = best_beam - seed_reward
    return {
        "winner": best["source"] if best is not None else None,
        "from_seed": best is not None and best["source"] == "seed",
        "kind": best.get("kind") if best is not None else None,
        "instruction": best.get("instruction") if best is not None else None,
        "seed_reward": seed_reward,
        "best_beam_reward": best_beam,
        "best_beam_minus_seed": gain,
    }


def describe_search(summary: dict[str, Any]) -> str:
    """``search_summary`` as one line for a person: where the winner came from, and the best
    beam's reward against the seed answer's."""
    if summary["winner"] is None:
        return "winner: none (a budget ended the search before any answer was scored)"
    if summary["from_seed"]:
        where = "the seed answer (no beam beat one plain sample)"
    else:
        kind = {
            "original": "the original instruction",
            "rewrite": "a rewrite",
            "hint": "the instruction with a hint",
        }.get(summary["kind"], "a fallback to the picked instruction")
        where = f"{summary['winner']}, under {kind}: {summary['instruction']!r}"
    line = f"winner: {where}"
    if summary["best_beam_minus_seed"] is not None:
        line += (
            f"; best beam {summary['best_beam_reward']:.3f} vs seed answer "
            f"{summary['seed_reward']:.3f} ({summary['best_beam_minus_seed']:+.3f})"
        )
    return line
