"""The runner: which (variant, method, budget) configurations a benchmark needs, on which
prompts, and one search per configuration and prompt, each scored and stored as it ends."""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

from common import log
from langchain_core.messages import HumanMessage
from quality_registry import ABLATIONS, ANSWER_SCORES, REFERENCE, STEERING, UNBUDGETED, AnswerScore
from quality_store import append_row, load_done, run_key

from langchain_darwin import DarwinChatModel
from langchain_darwin.baselines import beams, method_config, method_knobs

#: (variant, method, budget, extra knobs): one configuration of the graph.
Job = tuple[str, str, int, dict[str, Any]]


def plan(args: argparse.Namespace) -> list[Job]:
    """(variant, method, budget, extra knobs) for every configuration this run needs."""
    jobs: list[Job] = []
    if args.ablations:
        base = args.budgets[0]
        chosen = {k: v for k, v in ABLATIONS.items() if not args.variants or k in args.variants}
        jobs += [("base", REFERENCE, base, {}), ("base", "darwin", base, {})]
        if any("beams_per_instruction" in knobs for knobs in chosen.values()):
            jobs += [("base", REFERENCE, 2 * base, {})]
        for name, knobs in chosen.items():  # nb=2: the same cycles, twice the beams
            budget = base * knobs.get("beams_per_instruction", 1)
            jobs.append((name, "darwin", budget, dict(knobs)))
        return jobs
    for method in args.methods:
        for budget in [1] if method in UNBUDGETED else args.budgets:
            jobs.append(("base", method, budget, {}))
    return jobs


def knobs_for(method: str, budget: int, extra: dict[str, Any]) -> dict[str, Any]:
    return method_knobs(method, None if method in UNBUDGETED else budget, **extra)


def ident(args: argparse.Namespace, job: Job, index: int, item: dict[str, Any]) -> dict[str, Any]:
    """The fields that name one run (prompt ``item``, the ``index``-th of the run)."""
    variant, method, budget, extra = job
    return {
        "steer": args.steer,
        "variant": variant,
        "method": method,
        "budget": budget,
        "qid": item["id"],
        "prompt": item["prompt"],
        "max_tokens": args.max_tokens,
        "period": extra.get("replacement_period", args.replacement_period),
        "seed": args.seed + index,
    }


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """Row fields that must match for a stored run to count towards this benchmark."""
    return {"steer": args.steer, "max_tokens": args.max_tokens, "period": args.replacement_period}


def run_one(
    llm: DarwinChatModel,
    scores: dict[str, AnswerScore],
    job: Job,
    row_ident: dict[str, Any],
    item: dict[str, Any],
) -> dict[str, Any]:
    """One search, its answer scored by every answer score: a row of the store."""
    _, method, budget, extra = job
    knobs = knobs_for(method, budget, extra)
    config = method_config(method, None, llm.config, **knobs)
    t0 = time.perf_counter()
    message = llm.invoke([HumanMessage(item["prompt"])], seed=row_ident["seed"], **knobs)
    wall = time.perf_counter() - t0
    meta = message.response_metadata["darwin"]
    answer = message.content
    return {
        **row_ident,
        "category": item["category"],
        "knobs": knobs,
        "beams": beams(config),
        "answer": answer,
        "steering": meta["final_reward"],
        "seed_reward": meta["seed_reward"],
        **{name: score(item["prompt"], answer) for name, score in scores.items()},
        "answer_tokens": meta["winner"]["tokens"],
        "answer_words": len(answer.split()),
        "winner": meta["winner"]["source"],
        "generated_tokens": meta["generated_tokens"],
        "prefilled_tokens": message.usage_metadata["input_tokens"],
        "mutation_tokens": meta["usage"]["mutation"]["decoded"],
        "wall_s": round(wall, 2),
        "mutation_stats": meta["mutation_stats"],
        "cycle_rewards": meta["cycle_rewards"],
        "mutated_instructions": meta["mutated_instructions"],
        "period_scores": meta["period_scores"],
    }


def run_all(args: argparse.Namespace, prompts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every configuration on every prompt: stored runs are reused, the rest run and are
    appended to the store as they end. Returns the rows to report (see :func:`complete`)."""
    runs_path = args.out / "runs.jsonl"
    done = load_done(runs_path)
    llm = DarwinChatModel(
        model=args.model,
        reward_model=STEERING[args.steer](),
        max_tokens=args.max_tokens,
        replacement_period=args.replacement_period,
    )
    scores = {name: make() for name, make in ANSWER_SCORES.items()}
    # budget-major, then prompt-major: a run cut short leaves every method of the smaller
    # budgets done on the same prompts (sampling runs with the first budget)
    jobs = [(job, i, p) for i, p in enumerate(prompts) for job in plan(args)]
    jobs.sort(key=lambda j: (max(j[0][2], min(args.budgets)), j[1]))
    rows: list[dict[str, Any]] = []
    todo = 0
    if not args.report_only:
        todo = sum(1 for job, i, p in jobs if run_key(ident(args, job, i, p)) not in done)
    progress = _Progress(todo)
    for job, index, item in jobs:
        row_ident = ident(args, job, index, item)
        key = run_key(row_ident)
        if key in done:
            rows.append(done[key])
            continue
        if args.report_only:
            continue
        row = run_one(llm, scores, job, row_ident, item)
        append_row(runs_path, row)
        rows.append(row)
        progress.ran(row)
    if not args.ablations:
        rows += answered_elsewhere(args, prompts, done, rows)
    return complete(rows)


class _Progress:
    """One log line per fresh run, with an estimate of the time left."""

    def __init__(self, todo: int) -> None:
        self.todo, self.fresh, self.started = todo, 0, time.perf_counter()

    def ran(self, row: dict[str, Any]) -> None:
        self.fresh += 1
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.fresh * (self.todo - self.fresh)
        log(
            f"[{self.fresh}/{self.todo}] {row['variant']:>5} {row['method']:<16} "
            f"N={row['budget']:<2} q{row['qid']} "
            f"steer={row['steering']:.3f} rel={row['relevance']:.3f} tone={row['tone']:.3f} "
            f"{row['generated_tokens']} tok {row['wall_s']:.0f}s (eta {eta / 60:.0f} min)"
        )


def answered_elsewhere(
    args: argparse.Namespace,
    prompts: list[dict[str, Any]],
    done: dict[str, dict[str, Any]],
    rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Stored rows of methods another ``--methods`` run answered on all these prompts, with
    the same settings and seeds: they join the report."""
    seen = {run_key(r) for r in rows}
    qids = {p["id"] for p in prompts}
    extra: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for key, row in done.items():
        same = all(row[k] == v for k, v in settings(args).items())
        same = same and row["seed"] == args.seed + next(
            (i for i, p in enumerate(prompts) if p["id"] == row["qid"]), -1
        )
        if same and row["variant"] == "base" and row["qid"] in qids and key not in seen:
            extra[(row["method"], row["budget"])].append(row)
    return [row for group in extra.values() if {r["qid"] for r in group} >= qids for row in group]


def complete(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At each budget, only the prompts that every method of that budget answered, so the
    comparisons stay paired when a run was cut short (sampling, budget 1, keeps them all)."""
    groups: dict[tuple[str, str, int], set[Any]] = defaultdict(set)
    for row in rows:
        groups[(row["variant"], row["method"], row["budget"])].add(row["qid"])
    shared: dict[int, set[Any]] = {}
    for (_, method, budget), qids in groups.items():
        if method not in UNBUDGETED:
            shared[budget] = shared.get(budget, qids) & qids
    kept = []
    for row in rows:
        if row["method"] in UNBUDGETED or row["qid"] in shared.get(row["budget"], set()):
            kept.append(row)
    if len(kept) < len(rows):
        counts = {b: len(q) for b, q in shared.items()}
        log(f"reporting the prompts every method answered, per budget: {counts}")
    return kept
