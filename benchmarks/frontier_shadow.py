"""Issue 18, diagnosis (b): what replacement does to the slot it overwrites.

Each search runs as the frontier's does (same seeds, same reward, a vLLM-served policy). At
every replacement, the overwritten beam (its prompt and answer just before the copy) is kept;
once the search ends, each such beam is continued to the end unreplaced, its *shadow*, and
scored with the steering reward. Replacement pays when a replaced slot ends with a higher
final reward than its shadow: the donor's prefix led somewhere better than the slot's own.

    python -m benchmarks.frontier_shadow --questions 12 --config darwin:1:1:40:softmax

One JSON line per search in ``results/frontier-shadow.jsonl.gz`` (resumable, committed);
``--report-only`` prints the summary from it. MC = 1 only: a later cycle starts from new
instructions, where a slot's shadow has no meaning.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import signal
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, cast

from benchmarks.common import REPO_ROOT, log
from benchmarks.frontier import (
    TimedReward,
    _interrupt,
    build_reward,
    parse_config,
    search_config,
    served_policy,
)
from benchmarks.frontier_stats import mean_ci
from benchmarks.frontier_store import questions, read_rows

STORE = REPO_ROOT / "benchmarks" / "results" / "frontier-shadow.jsonl.gz"


def shadow_search(
    policy: Any, reward: TimedReward, q: dict[str, Any], name: str, args: Any
) -> dict[str, Any]:
    """One search, then a shadow for every replacement it made (see the module docstring)."""
    from langchain_darwin.graph.builder import compiled_graph, recursion_limit
    from langchain_darwin.graph.draws import keyed_seed
    from langchain_darwin.graph.state import DarwinContext
    from langchain_darwin.policy.base import RowRequest, Sampling
    from langchain_darwin.policy.text import answer_text

    config = search_config(name, q, args)  # the frontier's own knobs and seed
    if config.iterations != 1:
        raise SystemExit(f"{name}: the shadow experiment runs MC = 1 searches only")
    conversation = [{"role": "user", "content": q["prompt"]}]
    context = DarwinContext(policy, reward, policy.new_session())
    t0 = time.perf_counter()
    beams: list[Any] = []  # as the last node that touched them left them
    events: list[dict[str, Any]] = []
    final_reward = None
    for part in compiled_graph().stream(
        {"conversation": conversation, "config": config.model_dump()},
        {"recursion_limit": recursion_limit(config)},
        context=context,
        stream_mode=["updates", "custom"],
    ):
        mode, chunk = cast(tuple[str, Any], part)
        if mode == "updates":
            for node, update in chunk.items():
                if node in ("score", "select_replace") and update and "beams" in update:
                    beams = update["beams"]
                if node == "finish" and update:
                    final_reward = update.get("final_reward")
        elif chunk.get("step") == "select_replace":
            for i, j in chunk["replaced"]:  # ``beams`` is still the scored state before it
                before = copy.deepcopy(beams[i])
                events.append(
                    {
                        "period": chunk["period"],
                        "slot": i,
                        "donor": j,
                        "slot_reward": before["reward"],
                        "donor_reward": beams[j]["reward"],
                        "tokens": before["prompt"] + before["answer"],
                        "answer": before["answer"],
                    }
                )
    search_s = time.perf_counter() - t0
    rows = {
        f"e{k}": RowRequest(e["tokens"], config.max_tokens - len(e["answer"]))
        for k, e in enumerate(events)
    }
    seed = keyed_seed(config.seed or 0, "shadow")
    sampling = Sampling(config.temperature, config.top_k, seed, ignore_eos=config.ignore_eos)
    outcome = policy.extend(policy.new_session(), rows, sampling) if rows else None
    grown = {k: outcome.rows[k].new_tokens for k in rows} if outcome is not None else {}
    texts = [
        answer_text(policy, e["answer"] + grown[f"e{k}"], config.stop) for k, e in enumerate(events)
    ]
    shadows = reward.score(conversation, texts) if texts else []
    finals = [b["reward"] for b in beams]
    return {
        "final_reward": final_reward,
        "slot_finals": finals,
        "events": [
            {
                "period": e["period"],
                "slot": e["slot"],
                "donor": e["donor"],
                "slot_reward": e["slot_reward"],
                "donor_reward": e["donor_reward"],
                "slot_final": finals[e["slot"]],
                "shadow_final": float(s),
                "shadow_tokens": len(grown[f"e{k}"]),
                "slot_answer": answer_text(policy, e["answer"], config.stop),
                "shadow_answer": text,
            }
            for k, (e, s, text) in enumerate(zip(events, shadows, texts, strict=True))
        ],
        "reward_s": round(reward.take_seconds(), 2),
        "search_s": round(search_s, 2),
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def counterfactual_gain(record: dict[str, Any]) -> float:
    """The best final beam of the search minus the best of the same search had nothing been
    replaced: a slot's first shadow is its unreplaced continuation (it was never replaced
    before), and a slot never replaced ends as it did."""
    finals = list(record["slot_finals"])
    without = list(finals)
    for event in sorted(record["events"], key=lambda e: e["period"], reverse=True):
        without[event["slot"]] = event["shadow_final"]  # the earliest event is written last
    return max(finals) - max(without)


def summary(records: list[dict[str, Any]]) -> list[str]:
    """Replaced slot's final minus its shadow's, per search then over searches (a search's
    replacements share its question, so the interval is over searches), and per period."""
    per_search = [
        statistics.fmean(e["slot_final"] - e["shadow_final"] for e in r["events"])
        for r in records
        if r["events"]
    ]
    events = [e for r in records for e in r["events"]]
    if not events:
        return ["shadow: no replacement recorded"]
    mean, lo, hi = mean_ci(per_search)
    wins = sum(e["slot_final"] > e["shadow_final"] for e in events)
    lines = [
        f"shadow: {len(events)} replacements in {len(per_search)} of {len(records)} searches; "
        f"replaced slot's final minus its shadow's {mean:+.3f} [{lo:+.3f}, {hi:+.3f}] "
        f"(mean per search, 95% bootstrap over searches); slot ahead in {wins}/{len(events)}",
    ]
    best = [counterfactual_gain(r) for r in records]  # a search with no replacement: 0
    bm, blo, bhi = mean_ci(best)
    lines.append(
        f"  the search's best beam minus the best without replacement (each replaced slot at "
        f"its first shadow): {bm:+.3f} [{blo:+.3f}, {bhi:+.3f}] over {len(best)} searches; "
        f"higher in {sum(b > 0 for b in best)}, lower in {sum(b < 0 for b in best)}"
    )
    for period in sorted({e["period"] for e in events}):
        at = [e for e in events if e["period"] == period]
        gap = statistics.fmean(e["slot_final"] - e["shadow_final"] for e in at)
        lead = statistics.fmean(e["donor_reward"] - e["slot_reward"] for e in at)
        lines.append(
            f"  after period {period}: {len(at)} replacements, final gap {gap:+.3f}, "
            f"donor's lead when copied {lead:+.3f}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=12, help="stratified MT-Bench count")
    parser.add_argument("--config", default="darwin:1:1:40:softmax", help="method:1:nb:m[:var]")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=4, help="searches at once")
    parser.add_argument("--store", default=str(STORE))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    store = Path(args.store)
    if not args.report_only:
        import torch

        torch.set_num_threads(1)  # the vLLM server needs the cores more
        parse_config(args.config)
        done = {(r["qid"], r["config"]) for r in read_rows(store)}
        todo = [q for q in questions(args.questions) if (q["id"], args.config) not in done]
        log(f"{len(todo)} searches to run ({len(done)} already in {store})")
        signal.signal(signal.SIGTERM, _interrupt)  # `timeout` stops the run: stop the server
        if todo:
            with served_policy() as policy:
                reward, lock = build_reward("whole"), threading.Lock()

                def one(q: dict[str, Any]) -> str:
                    body = shadow_search(policy, reward, q, args.config, args)
                    row = {"qid": q["id"], "half": q["half"], "config": args.config, **body}
                    with lock, gzip.open(store, "at", encoding="utf-8") as fh:
                        fh.write(json.dumps(row) + "\n")
                    return f"q{q['id']}: {len(body['events'])} shadows, {body['wall_s']} s"

                pool = ThreadPoolExecutor(args.concurrency)
                try:
                    for future in as_completed([pool.submit(one, q) for q in todo]):
                        log(future.result())
                finally:  # stopped or failed: searches still queued are dropped
                    pool.shutdown(wait=False, cancel_futures=True)
    for line in summary(read_rows(store)):
        print(line)


if __name__ == "__main__":
    main()
