"""Issue 18: mean steering reward against compute, per method, on a vLLM-served policy.

Best-of-N for N = 1..32 costs one run: a pool of ``--pool`` samples per question, every
smaller N the expected best of a random N-subset of it. ``sample_replace``,
``mutate_best_of_n`` and ``darwin`` run at MC 1-3 and nb 1-2 (``--configs``). Every search is
one JSON line (every candidate's reward: ``period_scores`` holds every beam at every period,
and the last period of a cycle its final candidates) appended to a gzip store that is
committed, so ``--report-only`` rebuilds the table, the plot and the last line anywhere:

    python -m benchmarks.frontier --questions 16 --pool 16 --configs darwin:1:1:40 darwin:1:2:40
    python -m benchmarks.frontier_answers        # held-out score, prefix rewards (sidecar)
    python -m benchmarks.frontier --report-only  # --reward first64 for the first run's records

Compute axes per search: policy tokens generated, positions the policy computed (prefill +
decode), answers the reward model scored, wall time (and the part of it inside the reward).
Searches run ``--concurrency`` at once against one server; the default reward is scored
in process under a lock, on one torch thread (its fluency term memoised on the tokens it
reads, which changes no value, see ``MemoFluency``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import REPO_ROOT, log
from benchmarks.frontier_report import report
from benchmarks.frontier_store import (
    RECORDS_CANDIDATES,
    REWARDS,
    VARIANTS,
    questions,
    read_rows,
    store_path,
    variant_of,
)
from langchain_darwin.rewards.base import RewardModel, Scored

if TYPE_CHECKING:
    from langchain_darwin.config import DarwinConfig

#: method, MC, nb, m for each searched configuration (the issue's grid; m=80 for two).
GRID = [
    f"{method}:{mc}:{nb}:40"
    for method in ("sample_replace", "mutate_best_of_n", "darwin")
    for nb in (1, 2)
    for mc in (1, 2, 3)
] + ["darwin:1:1:80", "sample_replace:1:1:80"]


def parse_config(name: str) -> tuple[str, dict[str, Any]]:
    """``method:MC:nb:m[:variant]`` -> (method, knobs)."""
    parts = name.split(":")
    if len(parts) not in (4, 5) or parts[0] not in ("sample_replace", "mutate_best_of_n", "darwin"):
        raise SystemExit(f"bad config {name!r}: write method:MC:nb:m[:variant]")
    variant = parts[4] if len(parts) == 5 else ""
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r} in {name!r}; known: {sorted(VARIANTS)}")
    mc, nb, m = (int(p) for p in parts[1:4])
    knobs = {"iterations": mc, "beams_per_instruction": nb, "replacement_period": m}
    return parts[0], {**knobs, **VARIANTS[variant]}


# -- the reward -----------------------------------------------------------------------------


class TimedReward(RewardModel):
    """The default reward behind a lock (one scorer at a time on a small CPU), timing the
    seconds spent scoring per search thread."""

    def __init__(self, reward: RewardModel) -> None:
        self.reward = reward
        self.lock = threading.Lock()
        self.local = threading.local()

    def score_with_usage(self, conversation: Any, answers: Any) -> Scored:
        with self.lock:
            t0 = time.perf_counter()
            out = self.reward.score_with_usage(conversation, answers)
            self.local.seconds = getattr(self.local, "seconds", 0.0) + time.perf_counter() - t0
        return out

    def score(self, conversation: Any, answers: Any) -> list[float]:
        return self.score_with_usage(conversation, answers).scores

    def ready(self) -> None:
        self.reward.ready()

    def take_seconds(self) -> float:
        seconds = getattr(self.local, "seconds", 0.0)
        self.local.seconds = 0.0
        return seconds


def build_reward(kind: str = "whole") -> TimedReward:
    """The default reward, its fluency term memoised (see ``MemoFluency``)."""
    from langchain_darwin.inprocess.default_reward import FluencyReward
    from langchain_darwin.rewards import default_reward
    from langchain_darwin.rewards.weighted import WeightedReward

    class MemoFluency(FluencyReward):
        """A search scores every beam every period, and a copied beam or one that has ended
        (or, for a reward that reads a bounded prefix, one past it) is read again unchanged.
        Same values, keyed by the tokens the term reads. What is charged (positions, the
        reward's seconds) is what was computed, so it depends on which search read a text
        first."""

        def __init__(self, like: FluencyReward) -> None:
            super().__init__(
                like.policy,
                floor=like.floor,
                max_answer_tokens=like.max_answer_tokens,
                batch_size=like.batch_size,
            )
            self.memo: dict[str, float] = {}

        def score_with_usage(self, conversation: Any, answers: Any) -> Scored:
            from langchain_darwin.inprocess.models import load_policy

            _, tokenizer = load_policy(self.policy)
            convo = json.dumps(conversation, sort_keys=True)
            read = self.max_answer_tokens
            keys = [
                hashlib.sha1(
                    f"{convo}{tokenizer.encode(a, add_special_tokens=False)[:read]}".encode()
                ).hexdigest()
                for a in answers
            ]
            todo = [i for i, k in enumerate(keys) if k not in self.memo]
            fresh = super().score_with_usage(conversation, [answers[i] for i in todo])
            for i, value in zip(todo, fresh.scores, strict=True):
                self.memo[keys[i]] = value
            return Scored([self.memo[k] for k in keys], fresh.positions)

    if kind not in REWARDS:
        raise SystemExit(f"unknown reward {kind!r}; known: {', '.join(REWARDS)}")
    base = default_reward(whole_answer=kind == "whole")
    terms = [
        (w, MemoFluency(r) if isinstance(r, FluencyReward) else r)
        for w, r in WeightedReward.of(base).terms
    ]
    return TimedReward(WeightedReward(terms))


# -- searches -------------------------------------------------------------------------------


def run_pool(
    policy: Any, reward: TimedReward, q: dict[str, Any], args: Any, start: int = 0
) -> dict[str, Any]:
    """Best-of-N's pool: samples ``start`` .. ``args.pool - 1`` of the original question (a
    larger ``--pool`` later adds samples; the report joins a question's records), each
    scored once at the end, as Best-of-N is (not every period)."""
    from langchain_darwin.policy.base import RowRequest, Sampling

    conversation = [{"role": "user", "content": q["prompt"]}]
    t0 = time.perf_counter()
    prompt = policy.render(conversation)
    rows = {f"s{i}": RowRequest(prompt, args.max_tokens) for i in range(start, args.pool)}
    outcome = policy.extend(policy.new_session(), rows, Sampling(0.7, 40, args.seed + int(q["id"])))
    answers = [policy.detokenize(outcome.rows[k].new_tokens) for k in rows]
    rewards = reward.score(conversation, answers)
    work = outcome.work.as_dict()
    return {
        "pool_start": start,
        "rewards": [float(r) for r in rewards],
        "answers": answers,
        "tokens": [len(outcome.rows[k].new_tokens) + outcome.rows[k].ended for k in rows],
        "ended": [outcome.rows[k].ended for k in rows],
        "prefilled": work["prefilled"],
        "decoded": work["decoded"],
        "reward_s": round(reward.take_seconds(), 2),
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def search_config(name: str, q: dict[str, Any], args: Any) -> DarwinConfig:
    """The knobs a config name runs with on question ``q`` (seed = ``--seed`` + question id)."""
    from langchain_darwin.baselines import METHODS
    from langchain_darwin.config import DarwinConfig

    method, knobs = parse_config(name)
    return DarwinConfig(
        max_tokens=args.max_tokens, seed=args.seed + int(q["id"]), **METHODS[method], **knobs
    )


def final_candidates(policy: Any, state: dict[str, Any]) -> list[dict[str, Any]]:
    """What a cycle's final choice picks among (``update_archive``): the seed answer, then
    every beam, each with its text, steering reward, tokens, and whether it decodes no more
    (``finished``) and ended by itself (``ended``: EOS or a stop string)."""
    beams = [("seed", state["seed"]), *((f"beam{i}", b) for i, b in enumerate(state["beams"]))]
    return [
        {
            "key": key,
            "answer": policy.detokenize(b["answer"]),
            "reward": b["reward"],
            "tokens": len(b["answer"]),
            "finished": b["finished"],
            "ended": b["ended"],
        }
        for key, b in beams
    ]


def run_search(
    policy: Any, reward: TimedReward, q: dict[str, Any], name: str, args: Any
) -> dict[str, Any]:
    """One search through the graph, recorded with every beam's reward at every period."""
    from langchain_darwin.graph.builder import compiled_graph, recursion_limit
    from langchain_darwin.graph.report import search_metadata, search_summary
    from langchain_darwin.graph.state import DarwinContext
    from langchain_darwin.usage import generated_tokens, prefilled_positions

    config = search_config(name, q, args)
    context = DarwinContext(policy, reward, policy.new_session())
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    state: dict[str, Any] = {}  # the latest value of each channel a node updated
    candidates: list[list[dict[str, Any]]] = []  # per cycle: the final choice's candidates
    for mode, chunk in compiled_graph().stream(
        {"conversation": [{"role": "user", "content": q["prompt"]}], "config": config.model_dump()},
        {"recursion_limit": recursion_limit(config)},
        context=context,
        stream_mode=["updates", "values"],
    ):
        if mode == "values":
            out = chunk
            continue
        for node, update in chunk.items():
            if node == "update_archive" and state.get("beams"):
                candidates.append(final_candidates(policy, state))
            state.update(update or {})
    wall = time.perf_counter() - t0
    meta = search_metadata(out)
    extra = {"candidates": candidates} if variant_of(name) in RECORDS_CANDIDATES else {}
    return {
        **extra,
        "final_reward": out["final_reward"],
        "answer": out["answer"],
        "seed_reward": meta["seed_reward"],
        "winner": (meta["winner"] or {}).get("source"),
        "answer_tokens": meta["answer_tokens"],
        "answer_ended": bool(meta["answer_tokens"] < args.max_tokens),
        "period_scores": meta["period_scores"],
        "cycle_rewards": meta["cycle_rewards"],
        "cycle_beams": meta["cycle_beams"],
        "mutation_stats": meta["mutation_stats"],
        "generated": generated_tokens(out["usage"]),
        "prefilled": prefilled_positions(out["usage"]),
        "reward_answers": out["usage"].get("reward", {}).get("answers", 0),
        "usage": out["usage"],
        "summary": search_summary(out),
        "reward_s": round(reward.take_seconds(), 2),
        "wall_s": round(wall, 2),
    }


def done_keys(store: Path) -> tuple[set[tuple[Any, str]], dict[Any, int]]:
    """The (question, config) searches stored, and each question's pool size so far."""
    rows = read_rows(store)
    pool: dict[Any, int] = {}
    for r in rows:
        if r["config"] == "bon":
            pool[r["qid"]] = pool.get(r["qid"], 0) + len(r["rewards"])
    return {(r["qid"], r["config"]) for r in rows if r["config"] != "bon"}, pool


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def served_policy() -> Iterator[Any]:
    """A vLLM server of the default policy (logs in benchmarks/out/frontier) and its client,
    the server stopped on the way out."""
    from langchain_darwin.served.policy import ServedPolicy
    from tests.servers import VLLMServer, policy_dir, start_servers

    logs = REPO_ROOT / "benchmarks" / "out" / "frontier"
    logs.mkdir(parents=True, exist_ok=True)
    server = VLLMServer(policy_dir(), "smollm2", logs / "vllm.log")
    start_servers(server)
    try:
        yield ServedPolicy(server.base_url, server.model, timeout=600, max_concurrency=64)
    finally:
        server.stop()


def run(args: argparse.Namespace) -> None:
    configs = ["bon", *args.configs]
    for name in args.configs:
        parse_config(name)  # a typo fails before the server starts
    signal.signal(signal.SIGTERM, _interrupt)  # `timeout` stops the run: stop the server too
    store, lock = Path(args.store), threading.Lock()
    store.parent.mkdir(parents=True, exist_ok=True)
    done, pooled = done_keys(store)
    jobs = [
        (q, c)
        for q in questions(args.questions)
        for c in configs
        if (q["id"], c) not in done and (c != "bon" or pooled.get(q["id"], 0) < args.pool)
    ]
    log(f"{len(jobs)} searches to run ({len(done)} already in {store})")
    if not jobs:
        return
    with served_policy() as policy:
        reward = build_reward(args.reward)

        def one(q: dict[str, Any], name: str) -> str:
            start = pooled.get(q["id"], 0)
            body = run_pool(policy, reward, q, args, start) if name == "bon" else None
            body = body or run_search(policy, reward, q, name, args)
            row = {"qid": q["id"], "category": q["category"], "half": q["half"]}
            row |= {"config": name, "reward": args.reward, "max_tokens": args.max_tokens}
            row |= {"seed": args.seed, **body}
            with lock, gzip.open(store, "at", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            return f"q{q['id']} {name}: {body['wall_s']} s (reward {body['reward_s']} s)"

        pool = ThreadPoolExecutor(args.concurrency)
        try:
            for future in as_completed([pool.submit(one, q, c) for q, c in jobs]):
                log(future.result())
        finally:  # stopped (SIGTERM from `timeout`, ^C): searches in flight are dropped
            pool.shutdown(wait=False, cancel_futures=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=40, help="stratified MT-Bench count")
    parser.add_argument("--configs", nargs="*", default=GRID, help="method:MC:nb:m[:variant]")
    parser.add_argument("--pool", type=int, default=32, help="Best-of-N samples per question")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=4, help="searches at once")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the in-process reward"
    )
    parser.add_argument("--reward", choices=REWARDS, default="whole", help="steering reward")
    parser.add_argument("--store", help="records (default: results/frontier-REWARD.jsonl.gz)")
    parser.add_argument("--report-only", action="store_true", help="rebuild from the store")
    parser.add_argument("--plot", help="default: docs/img/frontier-REWARD.png")
    args = parser.parse_args()
    args.store = args.store or str(store_path(args.reward))
    args.plot = args.plot or str(REPO_ROOT / "docs" / "img" / f"frontier-{args.reward}.png")
    if not args.report_only:
        import torch

        torch.set_num_threads(args.threads)  # the vLLM server needs the cores more
        try:
            run(args)
        except KeyboardInterrupt:
            log("stopped; the records so far are kept (run again to resume)")
            os._exit(1)  # worker threads blocked on the stopped server need not be joined
    report(Path(args.store), Path(args.plot))


if __name__ == "__main__":
    main()
