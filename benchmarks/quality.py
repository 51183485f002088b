"""Answer quality of DARWIN against its baselines at equal budget, on MT-Bench first turns.

Every method is a configuration of the same graph (``langchain_darwin.baselines``): plain
sampling, Best-of-N, sampling + replacement, mutation + Best-of-N, and DARWIN, each at budgets
matched in beams (the paper's MC=1/2/3 against N=5/10/15). For every method and budget:

- the **steering reward** (what the search maximised; by default the offline default reward,
  ``relevance + 0.5 * tone``), mean with a 95% bootstrap interval over prompts;
- a **held-out score** that the search did not maximise (``--held-out``, default relevance
  alone: the tone term is the easily gamed part of the default, so a method that wins the
  steering reward through tone alone does not win here), with its interval, and DARWIN's win
  rate against Best-of-N at the same budget under it;
- the tone term, an *echo* diagnostic (share of the question's word trigrams repeated in the
  answer: restating the question is how an embedding-relevance proxy is gamed), the answer's
  length, generated tokens and wall time.

``--steer tone --held-out relevance`` is the clean hacking probe: the search then maximises
sentiment alone and relevance is fully held out.

Results: per-prompt rows in ``benchmarks/out/quality/runs.jsonl`` (a rerun skips rows already
there, so an interrupted run resumes), a CSV per section, PNG plots and a markdown table
written between markers into ``docs/quality.md`` (``--quick`` writes under benchmarks/out/).

    python benchmarks/quality.py --quick                  # CI-sized: 2 prompts, 48 tokens
    python benchmarks/quality.py --prompts 8 --max-tokens 96 --budgets 5 10
    python benchmarks/quality.py --prompts 8 --max-tokens 96 --ablations
    python benchmarks/quality.py --prompts 6 --max-tokens 96 --budgets 5 --steer tone \
        --methods best_of_n darwin
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import DEFAULT_QUESTIONS, REPO_ROOT, load_first_turns, machine_info
from langchain_core.messages import HumanMessage

from langchain_darwin import DarwinChatModel
from langchain_darwin.baselines import LABELS, METHODS, beams, method_config, method_knobs
from langchain_darwin.rewards import RelevanceReward, RewardModel, ToneReward, default_reward

OUT = REPO_ROOT / "benchmarks" / "out" / "quality"
DOC = REPO_ROOT / "docs" / "quality.md"
BENCH_DOC = REPO_ROOT / "docs" / "benchmarks.md"
IMG = REPO_ROOT / "docs" / "img"
QUICK = {"prompts": 2, "max_tokens": 48, "budgets": [5], "replacement_period": 16}
#: Ablations of the paper, each one knob away from DARWIN at the base budget.
#: nb=2 doubles the beams of each cycle, so it is compared with Best-of-N at twice the budget.
ABLATIONS: dict[str, dict[str, Any]] = {
    # DARWIN's defaults (m=40, k=3, nb=1, l=0) run again with the ablations, so that every
    # ablation is compared with a reference made by the same code and in the same session
    "m=40": {},
    "m=20": {"replacement_period": 20},
    "m=80": {"replacement_period": 80},
    "k=1": {"survivors": 1},
    "nb=2": {"beams_per_instruction": 2},
    "l=25": {"look_ahead": 25},
    # not the paper's: one slot keeps the picked instruction (does a weak mutator cost us?)
    "keep=1": {"keep_picked": True},
}
STEERS = ("default", "low-tone", "tone", "relevance")
HELD_OUT = ("relevance", "tone")
BOOT = 2000
_WORD = re.compile(r"[a-z0-9']+")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- scorers --------------------------------------------------------------------------


def steering_reward(name: str) -> RewardModel:
    if name == "default":
        return default_reward()
    if name == "low-tone":  # the default proxy with half its tone weight: harder to game
        return default_reward(tone_weight=0.25)
    if name == "tone":
        return ToneReward()
    return RelevanceReward()


def trigrams(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def echo(question: str, answer: str) -> float:
    """Share of the question's word trigrams that the answer repeats (0: none, 1: all)."""
    grams = trigrams(question)
    return len(grams & trigrams(answer)) / len(grams) if grams else 0.0


# -- statistics -------------------------------------------------------------------------


def mean_ci(values: Sequence[float], seed: int = 0) -> tuple[float, float, float]:
    """Mean and its 95% percentile-bootstrap interval over prompts."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if data.size == 0:
        return (math.nan, math.nan, math.nan)
    if data.size == 1:
        return (float(data[0]),) * 3
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(BOOT, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(data.mean()), float(low), float(high)


def win_rate(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """Share of prompts where ``ours`` scores higher (ties count one half)."""
    pairs = list(zip(ours, theirs, strict=True))
    if not pairs:
        return math.nan
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs)
    return wins / len(pairs)


# -- runs -------------------------------------------------------------------------------


def pick_prompts(path: Path, count: int, stratified: bool) -> list[dict[str, Any]]:
    """The first ``count`` questions, or (``stratified``) the first of each category in turn:
    MT-Bench lists its 8 categories in blocks of 10, so the first N are all "writing"."""
    if not stratified:
        return load_first_turns(path, count)
    total = sum(1 for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
    everything = load_first_turns(path, total)
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in everything:
        by_category[item["category"]].append(item)
    picked: list[dict[str, Any]] = []
    rank = 0
    while len(picked) < count and any(len(v) > rank for v in by_category.values()):
        picked += [v[rank] for v in by_category.values() if len(v) > rank]
        rank += 1
    return picked[:count]


def run_key(row: dict[str, Any]) -> str:
    return "|".join(
        str(row[k])
        for k in ("steer", "variant", "method", "budget", "qid", "max_tokens", "seed", "period")
    )


def load_done(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a run killed mid-write: that row runs again
                continue
            done[run_key(row)] = row
    return done


def append_row(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def plan(args: argparse.Namespace) -> list[tuple[str, str, int, dict[str, Any]]]:
    """(variant, method, budget, extra knobs) for every configuration this run needs."""
    jobs: list[tuple[str, str, int, dict[str, Any]]] = []
    if args.ablations:
        base = args.budgets[0]
        chosen = {k: v for k, v in ABLATIONS.items() if not args.variants or k in args.variants}
        jobs += [("base", "best_of_n", base, {}), ("base", "darwin", base, {})]
        if any("beams_per_instruction" in knobs for knobs in chosen.values()):
            jobs += [("base", "best_of_n", 2 * base, {})]
        for name, knobs in chosen.items():  # nb=2: the same cycles, twice the beams
            budget = base * knobs.get("beams_per_instruction", 1)
            jobs.append((name, "darwin", budget, dict(knobs)))
        return jobs
    for method in args.methods:
        for budget in [1] if method == "sample" else args.budgets:
            jobs.append(("base", method, budget, {}))
    return jobs


def knobs_for(method: str, budget: int, extra: dict[str, Any]) -> dict[str, Any]:
    return method_knobs(method, None if method == "sample" else budget, **extra)


def run_all(args: argparse.Namespace, prompts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    runs_path = args.out / "runs.jsonl"
    done = load_done(runs_path)
    llm = DarwinChatModel(
        model=args.model,
        reward_model=steering_reward(args.steer),
        max_tokens=args.max_tokens,
        replacement_period=args.replacement_period,
    )
    relevance, tone = RelevanceReward(), ToneReward()
    # budget-major, then prompt-major: a run cut short leaves every method of the smaller
    # budgets done on the same prompts (sampling runs with the first budget)
    jobs = [(job, i, p) for i, p in enumerate(prompts) for job in plan(args)]
    jobs.sort(key=lambda j: (max(j[0][2], min(args.budgets)), j[1]))
    rows: list[dict[str, Any]] = []
    started, fresh = time.perf_counter(), 0
    todo = sum(
        1 for (v, m, b, k), i, p in jobs if run_key(_ident(args, v, m, b, k, i, p)) not in done
    )
    todo = 0 if args.report_only else todo
    for (variant, method, budget, extra), index, item in jobs:
        ident = _ident(args, variant, method, budget, extra, index, item)
        key = run_key(ident)
        if key in done:
            rows.append(done[key])
            continue
        if args.report_only:
            continue
        knobs = knobs_for(method, budget, extra)
        config = method_config(method, None, llm.config, **knobs)
        t0 = time.perf_counter()
        message = llm.invoke([HumanMessage(item["prompt"])], seed=ident["seed"], **knobs)
        wall = time.perf_counter() - t0
        meta = message.response_metadata["darwin"]
        answer = message.content
        conversation = [{"role": "user", "content": item["prompt"]}]
        row = {
            **ident,
            "category": item["category"],
            "knobs": knobs,
            "beams": beams(config),
            "answer": answer,
            "steering": meta["final_reward"],
            "seed_reward": meta["seed_reward"],
            "relevance": relevance.score(conversation, [answer])[0],
            "tone": tone.score(conversation, [answer])[0],
            "echo": echo(item["prompt"], answer),
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
        append_row(runs_path, _finite(row))
        rows.append(row)
        fresh += 1
        elapsed = time.perf_counter() - started
        eta = elapsed / fresh * (todo - fresh)
        log(
            f"[{fresh}/{todo}] {variant:>5} {method:<16} N={budget:<2} q{item['id']} "
            f"steer={row['steering']:.3f} rel={row['relevance']:.3f} tone={row['tone']:.3f} "
            f"{row['generated_tokens']} tok {wall:.0f}s (eta {eta / 60:.0f} min)"
        )
    if not args.ablations:  # methods another --methods run answered on all these prompts
        seen = {run_key(r) for r in rows}
        qids = {p["id"] for p in prompts}
        extra: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        for key, row in done.items():
            same = all(row[k] == v for k, v in _settings(args).items())
            same = same and row["seed"] == args.seed + next(
                (i for i, p in enumerate(prompts) if p["id"] == row["qid"]), -1
            )
            if same and row["variant"] == "base" and row["qid"] in qids and key not in seen:
                extra[(row["method"], row["budget"])].append(row)
        for group in extra.values():
            if {r["qid"] for r in group} >= qids:
                rows += group
    return complete(rows)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"steer": args.steer, "max_tokens": args.max_tokens, "period": args.replacement_period}


def complete(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At each budget, only the prompts that every method of that budget answered, so the
    comparisons stay paired when a run was cut short (sampling, budget 1, keeps them all)."""
    groups: dict[tuple[str, str, int], set[Any]] = defaultdict(set)
    for row in rows:
        groups[(row["variant"], row["method"], row["budget"])].add(row["qid"])
    shared: dict[int, set[Any]] = {}
    for (_, method, budget), qids in groups.items():
        if method != "sample":
            shared[budget] = shared.get(budget, qids) & qids
    kept = []
    for row in rows:
        if row["method"] == "sample" or row["qid"] in shared.get(row["budget"], set()):
            kept.append(row)
    if len(kept) < len(rows):
        counts = {b: len(q) for b, q in shared.items()}
        log(f"reporting the prompts every method answered, per budget: {counts}")
    return kept


def _ident(
    args: argparse.Namespace,
    variant: str,
    method: str,
    budget: int,
    extra: dict[str, Any],
    index: int,
    item: dict[str, Any],
) -> dict[str, Any]:
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


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# -- summaries ----------------------------------------------------------------------------


def summarise(rows: list[dict[str, Any]], held_out: str = "relevance") -> list[dict[str, Any]]:
    """One summary per (variant, method, budget); ``held_out`` names the row field (a scorer
    every answer was scored with after the search) used as the held-out score."""
    rows = [{**r, "held_out": r[held_out]} for r in rows]
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["variant"], row["method"], row["budget"])].append(row)
    bon = {b: rs for (v, m, b), rs in groups.items() if v == "base" and m == "best_of_n"}
    out = []
    for (variant, method, budget), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["qid"])
        steer = mean_ci([r["steering"] for r in rs])
        held = mean_ci([r["held_out"] for r in rs])
        summary = {
            "variant": variant,
            "method": method,
            "budget": budget,
            "beams": rs[0]["beams"],
            "prompts": len(rs),
            "steering": steer[0],
            "steering_lo": steer[1],
            "steering_hi": steer[2],
            "held_out": held[0],
            "held_out_lo": held[1],
            "held_out_hi": held[2],
            "relevance": _mean(r["relevance"] for r in rs),
            "tone": _mean(r["tone"] for r in rs),
            "echo": _mean(r["echo"] for r in rs),
            "answer_tokens": _mean(r["answer_tokens"] for r in rs),
            "answer_words": _mean(r["answer_words"] for r in rs),
            "generated_tokens": _mean(r["generated_tokens"] for r in rs),
            "wall_s": _mean(r["wall_s"] for r in rs),
            "gain_over_seed": _mean(r["steering"] - r["seed_reward"] for r in rs),
            "rewrites": sum(r["mutation_stats"]["rewrites"] for r in rs),
            "fallbacks": sum(r["mutation_stats"]["fallbacks"] for r in rs),
            "win_vs_bon_held_out": math.nan,
            "win_vs_bon_steering": math.nan,
        }
        ref = {r["qid"]: r for r in bon.get(budget, [])}
        paired = [(r, ref[r["qid"]]) for r in rs if r["qid"] in ref]
        if method not in ("best_of_n", "sample") and paired:
            summary["win_vs_bon_held_out"] = win_rate(
                [a["held_out"] for a, _ in paired], [b["held_out"] for _, b in paired]
            )
            summary["win_vs_bon_steering"] = win_rate(
                [a["steering"] for a, _ in paired], [b["steering"] for _, b in paired]
            )
        out.append(summary)
    order = {m: i for i, m in enumerate(METHODS)}
    variants = ["base", *ABLATIONS]
    out.sort(key=lambda s: (variants.index(s["variant"]), s["budget"], order[s["method"]]))
    return out


def _mean(values: Iterable[float | None]) -> float:
    data = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(data)) if data else math.nan


def write_csv(path: Path, summaries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(summaries[0]))
        writer.writeheader()
        for s in summaries:
            writer.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()})


# -- plots --------------------------------------------------------------------------------


def plot_budget(path: Path, summaries: list[dict[str, Any]], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [
        ("steering", f"steering reward ({args.steer})"),
        ("held_out", f"held-out: {args.held_out}"),
    ]
    base = [s for s in summaries if s["variant"] == "base"]
    for ax, (field, title) in zip(axes, panels, strict=True):
        for i, method in enumerate(METHODS):
            pts = sorted((s for s in base if s["method"] == method), key=lambda s: s["budget"])
            if not pts:
                continue
            x = [s["budget"] + (i - 2) * 0.12 for s in pts]
            y = [s[field] for s in pts]
            err = [
                [s[field] - s[f"{field}_lo"] for s in pts],
                [s[f"{field}_hi"] - s[field] for s in pts],
            ]
            style = "s" if method == "sample" else "o-"
            ax.errorbar(x, y, yerr=err, fmt=style, capsize=3, label=LABELS[method])
        ax.set_xlabel("budget N (beams; sampling: 1 answer)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean over prompts, 95% bootstrap CI")
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle(
        f"up to {max(s['prompts'] for s in base)} MT-Bench prompts, "
        f"SmolLM2-135M-Instruct, max_tokens={args.max_tokens}, m={args.replacement_period}",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_periods(path: Path, rows: list[dict[str, Any]], count: int = 3) -> None:
    """Best and mean beam reward at every period, cycles end to end, for a few prompts:
    DARWIN against sampling + replacement and Best-of-N at DARWIN's largest budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = [r for r in rows if r["variant"] == "base"]
    darwin = [r for r in base if r["method"] == "darwin"]
    if not darwin:
        return
    budget = max(r["budget"] for r in darwin)
    qids = sorted({r["qid"] for r in darwin})[:count]
    fig, axes = plt.subplots(1, len(qids), figsize=(4.2 * len(qids), 3.6), squeeze=False)
    styles = {"darwin": "C4", "sample_replace": "C2", "best_of_n": "C1", "mutate_best_of_n": "C3"}
    for ax, qid in zip(axes[0], qids, strict=True):
        for method, color in styles.items():
            match = [r for r in base if r["method"] == method and r["budget"] == budget]
            match = [r for r in match if r["qid"] == qid]
            if not match:
                continue
            best, mean, bounds = [], [], []
            for cycle in match[0]["period_scores"]:
                for period in cycle:
                    scores = [s for s in period if s is not None]
                    best.append(max(scores) if scores else math.nan)
                    mean.append(float(np.mean(scores)) if scores else math.nan)
                bounds.append(len(best))
            x = range(1, len(best) + 1)
            ax.plot(x, best, "-o", color=color, ms=3, label=f"{LABELS[method]}: best beam")
            if method == "darwin":
                ax.plot(x, mean, ":", color=color, label=f"{LABELS[method]}: mean beam")
                for b in bounds[:-1]:
                    ax.axvline(b + 0.5, color="grey", lw=0.6)
        ax.set_title(f"MT-Bench q{qid}, N={budget}", fontsize=9)
        ax.set_xlabel("period (cycles end to end)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("beam reward at the period")
    axes[0][-1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- markdown -----------------------------------------------------------------------------


def _f(value: float, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _ci(s: dict[str, Any], field: str) -> str:
    return f"{_f(s[field])} [{_f(s[f'{field}_lo'])}, {_f(s[f'{field}_hi'])}]"


def markdown(
    summaries: list[dict[str, Any]],
    args: argparse.Namespace,
    command: str,
    images: list[str],
    rows: Sequence[dict[str, Any]] = (),
) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        f"Settings: up to {max(s['prompts'] for s in summaries)} MT-Bench first turns "
        "(questions 81 on; the `prompts` column says how many every method of a row's budget "
        "finished), "
        f"policy `{args.model}`, max_tokens={args.max_tokens}, "
        f"replacement_period={args.replacement_period}, survivors=3, T=0.7, top-k 40, "
        f"seed {args.seed} + prompt index (the same seed for every method); steering reward "
        f"`{args.steer}`, held-out score `{args.held_out}`. Intervals: 95% bootstrap over "
        f"prompts ({BOOT} resamples). Wall time on a shared 2-core CPU, indicative only.",
        "",
        "| variant | method | N | beams | prompts | steering reward | held-out | win vs BoN "
        "(held-out / steering) | tone | echo | answer tokens | generated tokens | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        win = "-"
        if math.isfinite(s["win_vs_bon_held_out"]):
            win = f"{s['win_vs_bon_held_out']:.2f} / {s['win_vs_bon_steering']:.2f}"
        lines.append(
            f"| {s['variant']} | {LABELS[s['method']]} | {s['budget']} | {s['beams']} | "
            f"{s['prompts']} | "
            f"{_ci(s, 'steering')} | {_ci(s, 'held_out')} | {win} | {_f(s['tone'])} | "
            f"{_f(s['echo'], 2)} | {_f(s['answer_tokens'], 1)} | "
            f"{_f(s['generated_tokens'], 0)} | {_f(s['wall_s'], 1)} |"
        )
    mutated = [s for s in summaries if s["rewrites"] + s["fallbacks"]]
    if mutated:
        rewrites = sum(s["rewrites"] for s in mutated)
        total = rewrites + sum(s["fallbacks"] for s in mutated)
        lines += ["", f"Mutation: {rewrites} of {total} mutated instructions were real rewrites."]
    lines += mutation_breakdown(rows)
    lines += [""] + [f"![{Path(i).stem}]({i})" for i in images]
    return "\n".join(lines) + "\n"


_WINNER = re.compile(r"cycle (\d+) beam (\d+)")


def mutation_breakdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """DARWIN against Best-of-N at the same budget, by how many real rewrites the mutation
    step produced: does exploring other instructions help or hurt here?"""
    bon = {(r["qid"], r["budget"]): r for r in rows if r["method"] == "best_of_n"}
    buckets: dict[str, list[tuple[float, float, bool]]] = defaultdict(list)
    for r in rows:
        other = bon.get((r["qid"], r["budget"]))
        if r["method"] != "darwin" or r["variant"] != "base" or other is None:
            continue
        rewrites = r["mutation_stats"].get("rewrites", 0)
        bucket = "0-1" if rewrites <= 1 else "2-3" if rewrites <= 3 else "4+"
        won = _WINNER.fullmatch(str(r["winner"]))
        from_rewrite = False
        if won:
            cycle, beam = int(won[1]), int(won[2])
            instruction = r["mutated_instructions"][cycle][beam]
            from_rewrite = " ".join(instruction.split()) != " ".join(r["prompt"].split())
        diff = (r["steering"] - other["steering"], r["relevance"] - other["relevance"])
        buckets[bucket].append((*diff, from_rewrite))
    if not buckets:
        return []
    lines = [
        "",
        "DARWIN minus Best-of-N on the same prompt, by the number of real rewrites its mutation "
        "step produced (the rest fell back to the original instruction):",
        "",
        "| rewrites | prompts | steering diff | held-out diff | DARWIN won | winner decoded "
        "under a rewrite |",
        "|---|---|---|---|---|---|",
    ]
    for bucket in ("0-1", "2-3", "4+"):
        got = buckets.get(bucket, [])
        if not got:
            continue
        wins = sum(1 for d in got if d[1] > 0)
        lines.append(
            f"| {bucket} | {len(got)} | {_f(_mean(d[0] for d in got))} | "
            f"{_f(_mean(d[1] for d in got))} | {wins} of {len(got)} (held-out) | "
            f"{sum(d[2] for d in got)} of {len(got)} |"
        )
    return lines


def write_doc(path: Path, section: str, body: str) -> None:
    begin, end = f"<!-- BEGIN quality:{section} -->", f"<!-- END quality:{section} -->"
    block = f"{begin}\n{body}{end}"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Answer quality\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## Results: {section}\n\n{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# -- main -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--prompts", type=int, default=8, help="first N MT-Bench questions")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--replacement-period", type=int, default=40)
    parser.add_argument("--budgets", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--model", default="default", help="policy (default: embedded SmolLM2)")
    parser.add_argument("--steer", choices=STEERS, default="default")
    parser.add_argument("--held-out", choices=HELD_OUT, default="relevance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablations", action="store_true", help="the paper's ablations")
    parser.add_argument("--quick", action="store_true", help="CI-sized: 2 prompts, 48 tokens")
    parser.add_argument(
        "--stratified",
        action="store_true",
        help="one question per category in turn (81, 91, 101...) instead of the first N",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads; on a shared CPU 1 is many times faster than oversubscribing",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="no new runs: report what runs.jsonl holds"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(ABLATIONS),
        help="with --ablations: only these (default: all)",
    )
    parser.add_argument(
        "--headline",
        action="store_true",
        help="also write this run's table into docs/benchmarks.md (the headline result)",
    )
    parser.add_argument(
        "--label", help="suffix for the report section, so a rerun does not replace an older one"
    )
    parser.add_argument("--out", type=Path, default=None, help=f"default: {OUT}")
    parser.add_argument("--doc", type=Path, default=None, help=f"default: {DOC}")
    parser.add_argument("--img", type=Path, default=None, help=f"default: {IMG}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    if args.quick:
        given = {a.split("=")[0] for a in raw}
        for name, value in QUICK.items():
            if f"--{name.replace('_', '-')}" not in given:
                setattr(args, name, value)
    quick_out = OUT / "quick"
    args.out = args.out or (quick_out if args.quick else OUT)
    doc = args.doc or (quick_out / "quality.md" if args.quick else DOC)
    img = args.img or (quick_out if args.quick else IMG)
    section = "ablations" if args.ablations else "main"
    if args.steer != "default":
        section += f"-steer-{args.steer}"
    if args.stratified:
        section += "-stratified"
    if args.label:
        section += f"-{args.label}"
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    log(f"quality benchmark [{section}] on {machine_info()}")
    prompts = pick_prompts(args.questions, args.prompts, args.stratified)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    rows = run_all(args, prompts)
    summaries = summarise(rows, args.held_out)
    write_csv(args.out / f"{section}.csv", summaries)
    images = []
    budget_png = img / f"quality_{section}_budget.png"
    if not args.ablations:
        plot_budget(budget_png, summaries, args)
        periods_png = img / f"quality_{section}_periods.png"
        plot_periods(periods_png, rows)
        images = [budget_png, periods_png]
    rel = [os.path.relpath(p, doc.parent) for p in images if p.is_file()]
    # --report-only rebuilds the report; the command that produces the rows is the same less it
    command = "python benchmarks/quality.py " + shlex.join(a for a in raw if a != "--report-only")
    if os.environ.get("OMP_NUM_THREADS"):
        command = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} {command}"
    body = markdown(summaries, args, command.strip(), rel, rows)
    write_doc(doc, section, body)
    if args.headline:  # the run the benchmarks page quotes, rendered there as well
        write_doc(BENCH_DOC, "headline", body)
    log(f"wrote {args.out / f'{section}.csv'}, {doc} ({section})")
    for s in summaries:
        log(
            f"{s['variant']:>5} {s['method']:<16} N={s['budget']:<2} steer {_ci(s, 'steering')} "
            f"held {_ci(s, 'held_out')} win {_f(s['win_vs_bon_held_out'], 2)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
