"""Issue 13's quality rerun: Best-of-N, DARWIN, DARWIN with the over-optimisation guard and
DARWIN ``keep_picked`` under the default reward, on the steering reward and on a held-out
score (``reverse``: log pi(question | answer), see ``quality_registry.reverse_likelihood``),
and the guard's weight chosen on questions kept apart.

The guard (``proximity_weight``) changes only the final choice among the seed answer and each
cycle's beams, not the search. So one DARWIN run records every final candidate (its reward,
its proximity = mean token log-prob under the original conversation, its held-out score) and
every weight is evaluated offline on the same runs; the weight-0 choice is checked against
the answer the graph returned.

    # the held-out score's validity on the ShareGPT development set (reward_devset rivals)
    python benchmarks/quality_guard.py validity --pairs 60
    # runs (resumable, one store per shard; two shards = two workers with one thread each)
    python benchmarks/quality_guard.py run --set apart --methods darwin --shard 0/2
    python benchmarks/quality_guard.py run --set mtbench40 --methods best_of_n darwin keep \
        --shard 0/2
    # the tables: the curve on the kept-apart set chooses the weight reported on mtbench40
    python benchmarks/quality_guard.py report
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from common import DEFAULT_QUESTIONS, REPO_ROOT, log, pick_prompts
from quality_registry import reverse_likelihood

from langchain_darwin.config import DarwinConfig

OUT = REPO_ROOT / "benchmarks" / "out" / "quality_guard"
WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
#: method name -> (graph method, extra knobs)
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "best_of_n": ("best_of_n", {}),
    "darwin": ("darwin", {}),
    "keep": ("darwin", {"keep_picked": True}),
}
LABELS = {
    "best_of_n": "Best-of-N",
    "darwin": "DARWIN",
    "guard": "DARWIN + guard",
    "keep": "DARWIN keep_picked",
}


def prompt_set(name: str) -> list[dict[str, Any]]:
    """``mtbench40``: 5 per category (the reported set); ``apart``: the other 40 MT-Bench
    questions, 5 per category, kept apart to choose the guard's weight."""
    everything = pick_prompts(DEFAULT_QUESTIONS, 80, stratified=True)
    return everything[:40] if name == "mtbench40" else everything[40:]


# -- runs ---------------------------------------------------------------------------------


def run_one(
    service: Any, item: dict[str, Any], method: str, seed: int, args: Any
) -> dict[str, Any]:
    """One search; every candidate of its final choices with reward, proximity, held-out."""
    from langchain_darwin.baselines import method_knobs
    from langchain_darwin.graph.builder import compiled_graph
    from langchain_darwin.graph.guard import proximity
    from langchain_darwin.policy.text import answer_text

    graph_method, extra = METHODS[method]
    knobs = method_knobs(graph_method, args.budget, **extra)
    t0 = time.perf_counter()
    config = DarwinConfig(max_tokens=args.max_tokens, replacement_period=args.replacement_period)
    conversation = [{"role": "user", "content": item["prompt"]}]
    search = service.prepare(conversation, config.merged(seed=seed, **knobs))
    candidates: dict[tuple[int, ...], dict[str, Any]] = {}
    cycle = 0
    try:
        last: dict[str, Any] = {}
        for state in compiled_graph().stream(
            search.graph_input, search.run_config, context=search.context, stream_mode="values"
        ):
            last = state
            if state.get("cycle", 0) > cycle:  # update_archive just chose among these
                for source, beam in [
                    ("seed", state["seed"]),
                    *(("beam", b) for b in state["beams"]),
                ]:
                    if beam["reward"] is not None:
                        candidates.setdefault(
                            tuple(beam["answer"]),
                            {
                                "source": f"{source} c{cycle}",
                                "reward": beam["reward"],
                                "finished": beam["finished"],
                            },
                        )
                cycle = state["cycle"]
        policy, stop = search.context.policy, last["config"].get("stop")
        keys = list(candidates)
        prox, _ = proximity(
            policy,
            search.context.session,
            last["seed"]["prompt"],
            {str(i): list(k) for i, k in enumerate(keys)},
        )
    finally:
        search.close()
    wall = time.perf_counter() - t0
    rows = []
    for i, key in enumerate(keys):
        text = answer_text(policy, list(key), stop)
        rows.append(
            {
                **candidates[key],
                "text": text,
                "tokens": len(key),
                "proximity": prox[str(i)],
                "held_out": reverse_likelihood(item["prompt"], text),
            }
        )
    return {
        "qid": item["id"],
        "category": item["category"],
        "method": method,
        "seed": seed,
        "budget": args.budget,
        "max_tokens": args.max_tokens,
        "answer": last.get("answer"),
        "final_reward": last.get("final_reward"),
        "candidates": rows,
        "wall_s": round(wall, 1),
    }


def cmd_run(args: argparse.Namespace) -> None:
    import torch

    from langchain_darwin.rewards import default_reward
    from langchain_darwin.search import SearchService

    torch.set_num_threads(args.threads)
    shard, shards = (int(x) for x in args.shard.split("/"))
    prompts = prompt_set(args.set)
    store = OUT / f"{args.set}-{args.max_tokens}t-shard{shard}.jsonl"
    store.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if store.exists():
        done = {(r["qid"], r["method"]) for r in map(json.loads, store.read_text().splitlines())}
    service = SearchService(reward=default_reward())
    # question-major: a run cut short leaves every method done on the same questions
    for index, item in enumerate(prompts):
        if index % shards != shard:
            continue
        for method in args.methods:
            if (item["id"], method) in done:
                continue
            row = run_one(service, item, method, args.seed + index, args)
            with store.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            log(f"{args.set} q{item['id']} {method}: {row['wall_s']} s")


# -- selection and statistics ---------------------------------------------------------------


def choose(row: dict[str, Any], weight: float) -> dict[str, Any]:
    """The candidate the final choice picks at ``weight`` (first of equals, as the graph)."""
    return max(row["candidates"], key=lambda c: c["reward"] + weight * c["proximity"])


def mean_ci(
    values: Sequence[float], seed: int = 0, draws: int = 4000
) -> tuple[float, float, float]:
    """Mean with a 95% percentile-bootstrap interval."""
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choice(values) for _ in range(n)) / n for _ in range(draws))
    return statistics.fmean(values), means[int(0.025 * draws)], means[int(0.975 * draws) - 1]


def fmt(ci: tuple[float, float, float], digits: int = 3) -> str:
    m, lo, hi = ci
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def load(pattern: str) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(OUT.glob(pattern)):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


def by_method(rows: list[dict[str, Any]]) -> dict[str, dict[Any, dict[str, Any]]]:
    out: dict[str, dict[Any, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        out[r["method"]][r["qid"]] = r
    return out


def curve(rows: list[dict[str, Any]], weights: Sequence[float]) -> list[str]:
    """Held-out and steering score of DARWIN's final choice at each guard weight."""
    darwin = [r for r in rows if r["method"] == "darwin"]
    base = [choose(r, 0.0) for r in darwin]
    lines = [
        "| weight | held-out (reverse) | held-out diff vs 0 | steering reward | picks changed |",
        "|---|---|---|---|---|",
    ]
    for w in weights:
        picked = [choose(r, w) for r in darwin]
        held = [p["held_out"] for p in picked]
        diff = [p["held_out"] - b["held_out"] for p, b in zip(picked, base, strict=True)]
        steer = [p["reward"] for p in picked]
        changed = sum(p is not b for p, b in zip(picked, base, strict=True))
        lines.append(
            f"| {w:g} | {fmt(mean_ci(held))} | {fmt(mean_ci(diff))} | {fmt(mean_ci(steer))} "
            f"| {changed}/{len(darwin)} |"
        )
    return lines


def best_weight(rows: list[dict[str, Any]], weights: Sequence[float]) -> float:
    """The weight with the highest mean held-out score (ties: the smallest weight)."""
    darwin = [r for r in rows if r["method"] == "darwin"]
    means = {w: statistics.fmean(choose(r, w)["held_out"] for r in darwin) for w in weights}
    return max(weights, key=lambda w: (round(means[w], 6), -w))


def quality_table(rows: list[dict[str, Any]], weight: float) -> tuple[list[str], list[str]]:
    """Per method: steering reward, held-out, paired held-out diff vs Best-of-N, win rate;
    then held-out per category."""
    methods = by_method(rows)
    qids = sorted(set.intersection(*(set(m) for m in methods.values())))
    picks: dict[str, list[dict[str, Any]]] = {}
    for name in ("best_of_n", "darwin", "keep"):
        if name in methods:
            picks[name] = [choose(methods[name][q], 0.0) for q in qids]
    if "darwin" in methods:
        picks["guard"] = [choose(methods["darwin"][q], weight) for q in qids]
    order = [m for m in ("best_of_n", "darwin", "guard", "keep") if m in picks]
    ref = picks.get("best_of_n")
    max_tokens = rows[0]["max_tokens"]
    lines = [
        "| method | steering reward | held-out (reverse) | held-out diff vs Best-of-N "
        "| win vs Best-of-N (held-out) | words | ended before max_tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in order:
        p = picks[m]
        diff = win = "—"
        if ref is not None and m != "best_of_n":
            d = [a["held_out"] - b["held_out"] for a, b in zip(p, ref, strict=True)]
            diff = fmt(mean_ci(d))
            w = sum(
                (a > b) + 0.5 * (a == b)
                for a, b in zip(
                    (x["held_out"] for x in p), (y["held_out"] for y in ref), strict=True
                )
            )
            win = f"{w / len(p):.2f}"
        label = LABELS[m] + (f" (w={weight:g})" if m == "guard" else "")
        words = statistics.fmean(len(x["text"].split()) for x in p)
        eos = sum(x["tokens"] < max_tokens for x in p)
        lines.append(
            f"| {label} | {fmt(mean_ci([x['reward'] for x in p]))} "
            f"| {fmt(mean_ci([x['held_out'] for x in p]))} | {diff} | {win} | {words:.0f} "
            f"| {eos}/{len(p)} |"
        )
    cats = sorted(
        {methods[order[0] if order[0] != "guard" else "darwin"][q]["category"] for q in qids}
    )
    any_rows = methods["darwin"] if "darwin" in methods else next(iter(methods.values()))
    cat_lines = [
        "| category | " + " | ".join(LABELS[m] for m in order) + " |",
        "|---" * (len(order) + 1) + "|",
    ]
    for c in cats:
        idx = [i for i, q in enumerate(qids) if any_rows[q]["category"] == c]
        cells = [f"{statistics.fmean(picks[m][i]['held_out'] for i in idx):.2f}" for m in order]
        cat_lines.append(f"| {c} (n={len(idx)}) | " + " | ".join(cells) + " |")
    return lines, cat_lines


def cmd_report(args: argparse.Namespace) -> None:
    apart = load(f"apart-{args.max_tokens}t-shard*.jsonl")
    main_rows = load(f"mtbench40-{args.max_tokens}t-shard*.jsonl")
    out: dict[str, Any] = {}
    if apart:
        weight = best_weight(apart, WEIGHTS)
        count = sum(r["method"] == "darwin" for r in apart)
        print(f"guard curve on the kept-apart set ({count} questions):")
        print("\n".join(curve(apart, WEIGHTS)))
        print(f"chosen weight: {weight:g}")
        out["weight"] = weight
    else:
        weight = args.weight
    if main_rows:
        darwin = [r for r in main_rows if r["method"] == "darwin"]
        agree = sum(choose(r, 0.0)["text"] == r["answer"] for r in darwin)
        print(f"weight-0 choice == graph's answer on {agree}/{len(darwin)} DARWIN runs")
        table, cats = quality_table(main_rows, weight)
        print("\n".join(table))
        print("\n".join(cats))
        print("curve on the reported set (for reference, not used to choose):")
        print("\n".join(curve(main_rows, WEIGHTS)))
        walls = defaultdict(list)
        for r in main_rows:
            walls[r["method"]].append(r["wall_s"])
        print(
            "wall s per question: "
            + ", ".join(f"{m} {statistics.fmean(v):.1f} (n={len(v)})" for m, v in walls.items())
        )


# -- validity of the held-out score ----------------------------------------------------------


def cmd_validity(args: argparse.Namespace) -> None:
    import torch
    from reward_devset import RIVALS, build_rivals, load_pairs, wilson

    torch.set_num_threads(args.threads)
    pairs = load_pairs(args.pairs, args.seed)
    rivals = build_rivals(pairs, args.seed)
    wins = dict.fromkeys(RIVALS, 0)
    t0 = time.perf_counter()
    for p, ((q, a), r) in enumerate(zip(pairs, rivals, strict=True)):
        real = reverse_likelihood(q, a)
        for kind in RIVALS:
            wins[kind] += real > reverse_likelihood(q, r[kind])
        if (p + 1) % 5 == 0:
            log(f"  {p + 1}/{len(pairs)} pairs: " + ", ".join(f"{k} {wins[k]}" for k in RIVALS))
    n = len(pairs)
    print(
        f"reverse likelihood: real answer ranked strictly above the rival, {n} ShareGPT pairs "
        f"(seed {args.seed}), {1000 * (time.perf_counter() - t0) / (6 * n):.0f} ms per answer"
    )
    print("| score | " + " | ".join(RIVALS) + " |")
    print("|---" * (len(RIVALS) + 1) + "|")
    cells = []
    for kind in RIVALS:
        lo, hi = wilson(wins[kind], n)
        cells.append(f"{100 * wins[kind] / n:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]")
    print("| reverse likelihood | " + " | ".join(cells) + " |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--set", choices=("mtbench40", "apart"), required=True)
    run.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    run.add_argument("--shard", default="0/1", help="i/k: every k-th question from the i-th")
    for p in (run, sub.add_parser("report")):
        p.add_argument("--max-tokens", type=int, default=96)
    run.add_argument("--replacement-period", type=int, default=40)
    run.add_argument("--budget", type=int, default=5)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--threads", type=int, default=1)
    val = sub.add_parser("validity")
    val.add_argument("--pairs", type=int, default=60)
    val.add_argument("--seed", type=int, default=0)
    val.add_argument("--threads", type=int, default=1)
    report = sub.choices["report"]
    report.add_argument("--weight", type=float, default=0.0, help="without a kept-apart run")
    args = parser.parse_args(argv)
    {"run": cmd_run, "report": cmd_report, "validity": cmd_validity}[args.cmd](args)


if __name__ == "__main__":
    main()
    sys.exit(0)
