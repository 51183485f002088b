"""The paper's baselines as configurations of the same DARWIN graph, not separate code.

Every method below is a set of :class:`~langchain_darwin.config.DarwinConfig` knobs, so each
runs through the same nodes, is charged by the same usage counters (``generated_tokens``,
``usage``) and returns the same ``response_metadata["darwin"]``:

==================  =======================================================================
``sample``          plain sampling, one answer (``iterations=0``: only the seed answer)
``best_of_n``       N samples of the original instruction, best by reward
                    (``mutation=False, replacement=False``)
``sample_replace``  samples of the original instruction with reward-guided replacement every
                    period (``mutation=False, replacement=True``)
``mutate_best_of_n`` samples of mutated instructions, best by reward, no replacement
                    (``mutation=True, replacement=False``)
``darwin``          mutation and replacement (``mutation=True, replacement=True``)
==================  =======================================================================

Budgets are matched in beams, the way the paper matches DARWIN MC=1/2/3 with N=5/10/15:
a budget of ``N`` candidate answers (besides the seed answer every method also decodes) is

- ``best_of_n``: one round of ``N`` independent samples, ``n_mutations = N / 5``
  (``5 x n_mutations`` beams of the original instruction);
- every method with mutation or replacement: ``iterations = N / (5 x nb)`` cycles (the
  paper's MC) of ``5 x nb`` beams, ``nb`` being ``beams_per_instruction``. ``sample_replace``
  uses the same cycles as DARWIN, so the two differ only in mutation.

Methods with mutation also decode the rewrites themselves (5 short generations per cycle):
``generated_tokens`` counts them, so compare methods on that too, not on beams alone.

    from langchain_darwin.baselines import method_config, method_model

    bon = method_model("best_of_n", budget=10, max_tokens=96, seed=0)   # a DarwinChatModel
    cfg = method_config("darwin", budget=10, max_tokens=96)             # iterations=2
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from langchain_darwin.config import REWRITES_PER_MUTATION, DarwinConfig

if TYPE_CHECKING:  # the chat model imports the graph and torch: only when a model is built
    from langchain_darwin.chat_model import DarwinChatModel

#: Knobs that define each method. Everything else (max_tokens, replacement_period, seed...)
#: is shared, so the methods differ only in these.
METHODS: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType(
    {
        "sample": MappingProxyType({"iterations": 0}),
        "best_of_n": MappingProxyType({"mutation": False, "replacement": False}),
        "sample_replace": MappingProxyType({"mutation": False, "replacement": True}),
        "mutate_best_of_n": MappingProxyType({"mutation": True, "replacement": False}),
        "darwin": MappingProxyType({"mutation": True, "replacement": True}),
    }
)

#: What each method is called in tables and plots.
LABELS: MappingProxyType[str, str] = MappingProxyType(
    {
        "sample": "Sampling (N=1)",
        "best_of_n": "Best-of-N",
        "sample_replace": "Sampling + replacement",
        "mutate_best_of_n": "Mutation + Best-of-N",
        "darwin": "DARWIN",
    }
)

#: The paper's budgets: DARWIN MC=1/2/3 against Best-of-N N=5/10/15.
PAPER_BUDGETS = (5, 10, 15)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")


def budget_knobs(method: str, budget: int, beams_per_instruction: int = 1) -> dict[str, Any]:
    """The knobs that give ``method`` a budget of ``budget`` candidate answers (beams),
    besides the seed answer. ``sample`` has no budget (one answer) and ignores it.

    Raises ``ValueError`` when ``budget`` cannot be split into whole rounds: a multiple of
    5 for ``best_of_n``, of ``5 x beams_per_instruction`` for the cycle-based methods.
    """
    _check_method(method)
    if method == "sample":
        return {"iterations": 0}
    if budget < 1:
        raise ValueError(f"budget must be a positive number of beams, got {budget}")
    if method == "best_of_n":
        per_round = REWRITES_PER_MUTATION * beams_per_instruction
        if budget % per_round:
            raise ValueError(
                f"best_of_n decodes {per_round} beams per mutation slot "
                f"({REWRITES_PER_MUTATION} x beams_per_instruction={beams_per_instruction}); "
                f"budget {budget} is not a multiple of {per_round}"
            )
        return {"iterations": 1, "n_mutations": budget // per_round}
    per_cycle = REWRITES_PER_MUTATION * beams_per_instruction
    if budget % per_cycle:
        raise ValueError(
            f"{method} decodes {per_cycle} beams per mutation cycle "
            f"({REWRITES_PER_MUTATION} x beams_per_instruction={beams_per_instruction}); "
            f"budget {budget} is not a multiple of {per_cycle}"
        )
    return {"iterations": budget // per_cycle, "n_mutations": 1}


def method_knobs(method: str, budget: int | None = None, **overrides: Any) -> dict[str, Any]:
    """The knob dict of ``method`` at ``budget`` (None: the method's knobs alone), with
    ``overrides`` applied last. ``beams_per_instruction`` in ``overrides`` is taken into
    account when splitting the budget."""
    _check_method(method)
    knobs: dict[str, Any] = dict(METHODS[method])
    if budget is not None:
        nb = int(overrides.get("beams_per_instruction", 1))
        knobs.update(budget_knobs(method, budget, nb))
    knobs.update(overrides)
    return knobs


def method_config(
    method: str,
    budget: int | None = None,
    base: DarwinConfig | None = None,
    **overrides: Any,
) -> DarwinConfig:
    """A validated :class:`DarwinConfig` for ``method`` at ``budget`` over ``base``'s knobs."""
    base = base if base is not None else DarwinConfig()
    if budget is not None and "beams_per_instruction" not in overrides:
        overrides = {**overrides, "beams_per_instruction": base.beams_per_instruction}
    return base.merged(**method_knobs(method, budget, **overrides))


def beams(config: DarwinConfig) -> int:
    """Answers a search with ``config`` decodes: the seed answer plus every beam of every
    cycle. Equal for methods at the same budget."""
    return 1 + config.iterations * config.n_beams


def method_model(method: str, budget: int | None = None, **kwargs: Any) -> DarwinChatModel:
    """A :class:`~langchain_darwin.DarwinChatModel` running ``method`` at ``budget``.
    ``kwargs`` are the chat model's fields (``model``, ``reward_model``...) and knobs."""
    from langchain_darwin.chat_model import KNOBS, DarwinChatModel

    knobs = {k: kwargs.pop(k) for k in list(kwargs) if k in KNOBS}
    base = kwargs.pop("config", None) or DarwinConfig()
    if isinstance(base, dict):
        base = DarwinConfig(**base)
    return DarwinChatModel(config=method_config(method, budget, base, **knobs), **kwargs)
