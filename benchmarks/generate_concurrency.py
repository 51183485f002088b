"""Throughput of ``darwin generate --concurrency N`` against vLLM servers.

    .venv/bin/python -m benchmarks.generate_concurrency --rows 8 --concurrency 1 4 8

Starts the vLLM test servers (tests/servers.py: the embedded SmolLM2 as the policy and a
SmolLM2-based classifier as the reward model, both on loopback), or uses running ones
(``--base-url`` with ``--reward-base-url``), then answers the same prompts once per N with
:func:`langchain_darwin.generate.generate`. The prompts are short ones written here (a
mutation's token budget grows with the instruction, so MT-Bench's long questions cost far more
per row); ``--questions FILE`` takes any file ``darwin generate`` reads.
Every run gets its own seeds (so no run decodes tokens the server's prefix cache already holds
from another), after one warm-up run of all rows at the largest N (the prompts' prefixes are
then cached for every measured run alike). Prints one JSON line per N: wall seconds, rows per
second, generated tokens per second, the speed-up over the first N. A benchmark, not a test:
on a shared machine the numbers are noisy. That concurrency changes no answer is tested
(tests/unit_tests/test_generate.py), not measured here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_darwin.generate import generate
from langchain_darwin.rewards import ServedReward

#: Short instructions, so that a row costs seconds, not minutes, on a loaded CPU server.
PROMPTS = [
    "Name three herbs.",
    "How do I boil an egg?",
    "Say hello in French.",
    "What is rain?",
    "Describe a cat.",
    "Give me a tip for sleeping well.",
    "Why is the sky blue?",
    "Suggest a name for a dog.",
    "What is a prime number?",
    "How do plants drink water?",
    "Write one line about the sea.",
    "What does a baker do?",
    "Name two planets.",
    "How do I make tea?",
    "What is a verb?",
    "Tell me a fun fact about owls.",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8, help="prompts per run (default: 8)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--method", default="darwin")
    parser.add_argument("--budget", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--replacement-period", type=int, default=8)
    parser.add_argument("--questions", type=Path, help="a prompts file (default: PROMPTS)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per request")
    parser.add_argument("--base-url", help="a running policy server (default: start one)")
    parser.add_argument("--model", default="smollm2-policy", help="the name it serves")
    parser.add_argument("--reward-base-url", help="a running reward server (with --base-url)")
    parser.add_argument("--reward-model", default="smollm2-reward", help="the name it serves")
    parser.add_argument("--no-warmup", action="store_true", help="servers already warm")
    parser.add_argument("--seed", type=int, default=0, help="run k uses seed + 1000 k")
    parser.add_argument("--workdir", type=Path, help="outputs and server logs (default: a temp)")
    return parser.parse_args()


def one_run(
    args: argparse.Namespace, src: Path, out: Path, n: int, rows: int, seed: int
) -> dict[str, Any]:
    reward = ServedReward(args.reward_base_url, args.reward_model, timeout=args.timeout)
    started = time.perf_counter()
    summary = generate(
        src,
        out,
        method=args.method,
        budget=args.budget,
        model=args.model,
        reward_model=reward,
        engine={"base_url": args.base_url, "timeout": args.timeout},
        limit=rows,
        seed=seed,
        progress=False,
        concurrency=n,
        max_tokens=args.max_tokens,
        replacement_period=args.replacement_period,
    )
    seconds = time.perf_counter() - started
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(rows)), "rows out of input order"
    tokens = sum(r["darwin"]["generated_tokens"] for r in records)
    return {
        "concurrency": n,
        "rows": summary["written"],
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds, 3),
        "generated_tokens_per_s": round(tokens / seconds, 1),
        "mean_row_seconds": round(sum(r["seconds"] for r in records) / rows, 2),
    }


def measure(args: argparse.Namespace, workdir: Path) -> None:
    src = args.questions
    if src is None:
        src = workdir / "prompts.jsonl"
        src.write_text("".join(json.dumps({"instruction": p}) + "\n" for p in PROMPTS))
    if not args.no_warmup:
        top = max(args.concurrency)
        one_run(args, src, workdir / "warmup.jsonl", top, args.rows, seed=10_000)
    first: dict[str, Any] | None = None
    for k, n in enumerate(args.concurrency):
        seed = args.seed + 1_000 * k
        result = one_run(args, src, workdir / f"c{n}.jsonl", n, args.rows, seed=seed)
        first = first or result
        result["speedup"] = round(first["seconds"] / result["seconds"], 2)
        print(json.dumps(result), flush=True)
        print(f"concurrency {n}: {result}", file=sys.stderr, flush=True)


def main() -> int:
    args = parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="darwin-concurrency-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.base_url:
        if not args.reward_base_url:
            sys.exit("--base-url needs --reward-base-url")
        measure(args, workdir)
        return 0
    from tests.servers import VLLMServer, policy_dir, reward_model_dir, start_servers

    policy = VLLMServer(policy_dir(), args.model, workdir / "policy.log")
    reward = VLLMServer(reward_model_dir(), args.reward_model, workdir / "reward.log", pooling=True)
    print(f"starting vLLM servers (logs in {workdir})", file=sys.stderr, flush=True)
    start_servers(policy, reward)
    try:
        args.base_url, args.reward_base_url = policy.base_url, reward.base_url
        measure(args, workdir)
    finally:
        policy.stop()
        reward.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
