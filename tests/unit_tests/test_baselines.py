"""The paper's baselines are configurations of the one DARWIN graph, matched in beams."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from langchain_darwin import DarwinChatModel, DarwinConfig
from langchain_darwin.baselines import (
    METHODS,
    beams,
    budget_knobs,
    method_config,
    method_knobs,
    method_model,
)
from langchain_darwin.usage import PHASES
from tests.full_state import full_state

FAST = {"max_tokens": 16, "replacement_period": 6}


def vowels(conversation, answer: str) -> float:
    return float(sum(ch in "aeiou " for ch in answer))


def test_methods_are_the_expected_knobs() -> None:
    assert dict(METHODS["sample"]) == {"iterations": 0}
    assert dict(METHODS["best_of_n"]) == {"mutation": False, "replacement": False}
    assert dict(METHODS["sample_replace"]) == {"mutation": False, "replacement": True}
    assert dict(METHODS["mutate_best_of_n"]) == {"mutation": True, "replacement": False}
    assert dict(METHODS["darwin"]) == {"mutation": True, "replacement": True}
    with pytest.raises(TypeError):
        METHODS["darwin"]["mutation"] = False  # read-only: nobody changes a baseline by accident


@pytest.mark.parametrize("budget", [5, 10, 15])
def test_budgets_match_in_beams(budget: int) -> None:
    configs = {m: method_config(m, budget) for m in METHODS if m != "sample"}
    assert {beams(c) for c in configs.values()} == {budget + 1}  # + the seed answer
    assert configs["best_of_n"].iterations == 1
    assert configs["best_of_n"].n_mutations == budget // 5
    for method in ("darwin", "sample_replace", "mutate_best_of_n"):
        assert configs[method].iterations == budget // 5  # the paper's MC
        assert configs[method].n_mutations == 1
    assert beams(method_config("sample", budget)) == 1


def test_budget_with_two_beams_per_instruction() -> None:
    config = method_config("darwin", 10, beams_per_instruction=2)
    assert (config.iterations, config.n_beams, beams(config)) == (1, 10, 11)
    base = DarwinConfig(beams_per_instruction=2)
    assert method_config("best_of_n", 10, base).n_beams == 10
    with pytest.raises(ValueError, match="multiple of 10"):
        budget_knobs("darwin", 5, beams_per_instruction=2)


def test_bad_budgets_and_methods_are_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 5"):
        budget_knobs("best_of_n", 7)
    with pytest.raises(ValueError, match="positive"):
        budget_knobs("darwin", 0)
    with pytest.raises(ValueError, match="unknown method"):
        method_knobs("beam_search", 5)
    assert budget_knobs("sample", 0) == {"iterations": 0}


def test_overrides_win_and_shared_knobs_stay() -> None:
    knobs = method_knobs("darwin", 10, iterations=3, replacement_period=80)
    assert knobs == {
        "mutation": True,
        "replacement": True,
        "iterations": 3,
        "n_mutations": 1,
        "replacement_period": 80,
    }
    base = DarwinConfig(max_tokens=64, seed=7)
    config = method_config("best_of_n", 5, base)
    assert (config.max_tokens, config.seed, config.mutation, config.replacement) == (
        64,
        7,
        False,
        False,
    )


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_through_the_chat_model(tiny_dirs, method: str) -> None:
    llm = method_model(method, 5, model=str(tiny_dirs[0]), reward_model=vowels, seed=3, **FAST)
    assert isinstance(llm, DarwinChatModel)
    msg = llm.invoke("Tell me about eggs")
    darwin = msg.response_metadata["darwin"]
    usage = darwin["usage"]
    assert set(usage) == {*PHASES, "reward"}
    assert msg.usage_metadata["output_tokens"] == darwin["generated_tokens"] > 0
    assert darwin["final_reward"] >= darwin["seed_reward"]
    stats = darwin["mutation_stats"]
    if method == "sample":
        assert darwin["cycle_rewards"] == [] and usage["beams"]["decoded"] == 0
        return
    assert len(darwin["cycle_rewards"]) == llm.config.iterations
    cycles = darwin["period_scores"]
    assert all(len(period) == 5 for cycle in cycles for period in cycle)  # 5 beams a period
    if METHODS[method]["mutation"]:
        assert usage["mutation"]["decoded"] > 0 and stats["original"] == 0
    else:  # beams decode from the original instruction; no rewrite is asked for
        assert usage["mutation"]["decoded"] == 0 and stats["original"] == 5
        assert all(i == ["Tell me about eggs"] * 5 for i in darwin["mutated_instructions"])


def test_best_of_n_never_replaces_and_sample_replace_does(tiny_dirs) -> None:
    """Without replacement every beam keeps its own lineage; with it, copies appear."""
    common = {"model": str(tiny_dirs[0]), "reward_model": vowels, "seed": 1, **FAST}
    for method, replaces in (("best_of_n", False), ("sample_replace", True)):
        llm = method_model(method, 5, **common)
        state = full_state(llm, [HumanMessage("Tell me about eggs")])
        own = [len(b["lineage"]) == 1 for b in state["beams"]]
        assert all(own) != replaces, method
