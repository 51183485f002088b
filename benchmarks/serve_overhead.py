"""What the OpenAI-compatible server costs: DARWIN searches through ``darwin serve`` against
the same searches through ``DarwinChatModel`` in this process, on the same vLLM servers.

Both sides run the policy on one vLLM server and score on one vLLM reward server (started with
``tests/servers.py`` unless ``--base-url`` and ``--reward-base-url`` name running ones), with
the same knobs and seeds. Two phases, each run for both sides, the sides alternating so that a
change of machine load hits both:

- ``1 at a time``: ``--searches`` searches one after another; mean wall seconds per search;
- ``8 at once``: ``--concurrent-searches`` searches, 8 in flight (threads; the server admits 8
  at once); searches per second.

Targets (issue 19): the served endpoint adds at most 5% to a search's wall time, and 8
concurrent requests through it reach at least the throughput of 8 concurrent in-process
``DarwinChatModel`` searches. The last line is machine-readable:
``wall_ratio=A throughput_ratio=B`` (served / direct).

    python -m benchmarks.serve_overhead --searches 8 --max-tokens 48
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai

from benchmarks.common import log
from langchain_darwin import DarwinChatModel
from langchain_darwin.rewards import ServedReward

ROOT = Path(__file__).resolve().parents[1]

QUESTION = "How do I boil an egg?"


def knobs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "max_tokens": args.max_tokens,
        "replacement_period": args.period,
        "iterations": 1,
        "ignore_eos": True,  # every search does the same answer work
    }


def direct_side(args: argparse.Namespace, urls: dict[str, str]) -> Callable[[int], int]:
    chat = DarwinChatModel(
        model=urls["model"],
        base_url=urls["policy"],
        reward_model=ServedReward(urls["reward"], urls["reward_model"]),
        **knobs(args),
    )

    def search(seed: int) -> int:
        message = chat.invoke(QUESTION, seed=seed)
        return (message.usage_metadata or {}).get("output_tokens", 0)

    return search


def served_side(base_url: str) -> Callable[[int], int]:
    client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=3600)

    def search(seed: int) -> int:
        response = client.chat.completions.create(
            model="darwin", messages=[{"role": "user", "content": QUESTION}], seed=seed
        )
        return response.usage.completion_tokens if response.usage else 0

    return search


def one_at_a_time(search: Callable[[int], int], seeds: list[int]) -> list[float]:
    walls = []
    for seed in seeds:
        start = time.perf_counter()
        search(seed)
        walls.append(time.perf_counter() - start)
        log(f"  seed {seed}: {walls[-1]:.2f} s")
    return walls


def eight_at_once(search: Callable[[int], int], seeds: list[int]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(search, seeds))
    return len(seeds) / (time.perf_counter() - start)


def start_vllm() -> tuple[dict[str, str], list[Any]]:
    from tests.servers import VLLMServer, policy_dir, reward_model_dir, start_servers

    logs = Path(tempfile.mkdtemp(prefix="serve-overhead-"))
    policy = VLLMServer(policy_dir(), "smollm2-policy", logs / "policy.log")
    reward = VLLMServer(reward_model_dir(), "smollm2-reward", logs / "reward.log", pooling=True)
    log(f"starting vLLM servers (logs in {logs})")
    start_servers(policy, reward)
    urls = {
        "policy": policy.base_url,
        "model": policy.model,
        "reward": reward.base_url,
        "reward_model": reward.model,
    }
    return urls, [policy, reward]


def measure(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    from tests.serve_helpers import DarwinServer

    flags = ["--base-url", urls["policy"], "--model", urls["model"]]
    flags += ["--reward-base-url", urls["reward"], "--reward-model", urls["reward_model"]]
    flags += ["--max-tokens", str(args.max_tokens), "--replacement-period", str(args.period)]
    flags += ["--iterations", "1", "--ignore-eos", "--max-concurrent", "8", "--queue", "64"]
    flags += ["--log-level", "warning"]
    server = DarwinServer(flags, Path(tempfile.mkdtemp(prefix="serve-")) / "serve.log").start()
    sides = {"direct": direct_side(args, urls), "served": served_side(server.base_url)}
    seeds = list(range(args.searches))
    batch = list(range(100, 100 + args.concurrent_searches))
    walls: dict[str, list[float]] = {"direct": [], "served": []}
    rates: dict[str, list[float]] = {"direct": [], "served": []}
    try:
        for name, search in sides.items():
            start = time.perf_counter()
            search(999)  # warm-up: connections, tokenizers, the servers' prefix caches
            log(f"warm-up {name}: {time.perf_counter() - start:.2f} s")
        for rep in range(args.repeats):
            order = list(sides.items()) if rep % 2 == 0 else list(sides.items())[::-1]
            for name, search in order:
                walls[name] += one_at_a_time(search, seeds)
                log(f"rep {rep} {name} 1 at a time: mean {statistics.mean(walls[name]):.2f} s")
            for name, search in order:
                rates[name].append(eight_at_once(search, batch))
                log(f"rep {rep} {name} 8 at once: {rates[name][-1]:.3f} searches/s")
    finally:
        server.stop()
    return {"walls": walls, "rates": rates}


def report(result: dict[str, Any], args: argparse.Namespace) -> str:
    walls, rates = result["walls"], result["rates"]
    wall = {k: statistics.mean(v) for k, v in walls.items()}
    rate = {k: statistics.mean(v) for k, v in rates.items()}
    lines = [
        f"settings: {knobs(args)}; per side and repeat: {args.searches} searches one at a "
        f"time, {args.concurrent_searches} with 8 in flight; {args.repeats} repeat(s)",
        "| phase | direct (DarwinChatModel) | served (darwin serve) | served / direct |",
        "|---|---|---|---|",
        f"| 1 at a time: mean wall per search | {wall['direct']:.2f} s | {wall['served']:.2f} s "
        f"| {wall['served'] / wall['direct']:.3f} |",
        f"| 8 at once: searches per second | {rate['direct']:.3f} | {rate['served']:.3f} "
        f"| {rate['served'] / rate['direct']:.3f} |",
        f"median walls: direct {statistics.median(walls['direct']):.2f} s, "
        f"served {statistics.median(walls['served']):.2f} s",
        f"wall_ratio={wall['served'] / wall['direct']:.3f} "
        f"throughput_ratio={rate['served'] / rate['direct']:.3f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=8, help="sequential searches per side")
    parser.add_argument(
        "--concurrent-searches", type=int, default=8, help="searches per side, 8 in flight"
    )
    parser.add_argument("--repeats", type=int, default=1, help="times each phase is repeated")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--period", type=int, default=16, help="replacement period")
    parser.add_argument("--base-url", help="a running vLLM policy server (…/v1)")
    parser.add_argument("--model", default="smollm2-policy", help="the name it serves")
    parser.add_argument("--reward-base-url", help="a running vLLM reward server (…/v1)")
    parser.add_argument("--reward-model", default="smollm2-reward")
    args = parser.parse_args(argv)
    servers: list[Any] = []
    if args.base_url and args.reward_base_url:
        urls = {
            "policy": args.base_url,
            "model": args.model,
            "reward": args.reward_base_url,
            "reward_model": args.reward_model,
        }
    else:
        urls, servers = start_vllm()
    try:
        print(report(measure(args, urls), args))
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
