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
