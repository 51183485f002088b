"""Correctness of the in-process engine on a device, on random-weight models of one shape.

- ``fp32_kv_equals_none``: in fp32, ``cache="kv"`` and ``cache="none"`` (re-prefill) give the
  same tokens, seed answer and winner, as they do on the CPU;
- ``fp32_engine_copies``: the same at the engine's level, where a row takes another row's
  answer under its own (different) prompt and another clones a row whole (random-weight
  searches fall back to the original instruction, so their copies never cross prompts);
- ``same_seed_twice_{fp32,bf16}``: the same seed gives the same answer twice;
- ``bf16_end_to_end``: a bf16 search runs to the end with a finite reward and the answer
  length asked for (``bf16_kv_equals_none`` is recorded too, not required: rounding differs
  between a cached and a re-prefilled forward).

Searches are sampled (T=0.7, top-k 40) with several replacements per answer, so the KV
bookkeeping (copies, prefills in place, twins) is exercised. Writes ``OUT/correctness.json``;
exits 1 when a required check fails. From the repository root:

    python -m benchmarks.gpu.check --device cuda --tokenizer .gpu/tok --out OUT
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import log, machine_info
from benchmarks.shapes import SHAPES, build_models
from benchmarks.speed_local_runner import Runner
from langchain_darwin.policy import RowRequest, Sampling

PROMPT = "Explain why the sky is blue, in a few sentences."
#: Short answers with a replacement every 8 tokens: 6 periods, several copies per search.
KNOBS: dict[str, Any] = {"replacement_period": 8}
REQUIRED = ("fp32_kv_equals_none", "fp32_engine_copies", "same_seed_twice_fp32")
REQUIRED += ("same_seed_twice_bf16", "bf16_end_to_end")


def search(runner: Runner, cache: str, seed: int, tokens: int) -> dict[str, Any]:
    start = time.perf_counter()
    state = runner.search(PROMPT, runner.config(tokens, seed, cache, **KNOBS))
    best = state["best"] or {}
    return {
        "s": time.perf_counter() - start,
        "best": list(best.get("answer", [])),
        "winner": best.get("source"),
        "seed_answer": list(state["seed"]["answer"]),
        "final_reward": state["final_reward"],
        "answer": state["answer"],
    }


def engine_periods(runner: Runner, reuse: bool) -> dict[str, list[int]]:
    """Three sampled periods of 8 tokens over rows with different prompts; after the first,
    row "a" takes row "b"'s answer under its own prompt and "c" becomes a clone of "b"."""
    engine = runner.policy
    p1 = engine.render([{"role": "user", "content": "Hello there"}])
    p2 = engine.render([{"role": "user", "content": "Write a long poem about cats"}])
    prompts = {"a": p1, "b": p2, "c": p1}
    answers: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    session = engine.new_session(reuse_cache=reuse)
    for period in range(3):
        rows = {k: RowRequest(prompts[k] + answers[k], 8) for k in answers}
        out = engine.extend(session, rows, Sampling(0.7, 40, seed=period))
        for key in answers:
            answers[key] = answers[key] + out.rows[key].new_tokens
        if period == 0:
            answers["a"] = list(answers["b"])
            prompts["c"], answers["c"] = p2, list(answers["b"])
    session.clear()
    return answers


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("best", "winner", "seed_answer")
    return all(a[k] == b[k] for k in keys) and a["final_reward"] == b["final_reward"]


def checks_for(dtype: torch.dtype, args: argparse.Namespace) -> dict[str, Any]:
    """Every check of one dtype, on models built for it."""
    name = str(dtype).removeprefix("torch.")
    short = "fp32" if dtype == torch.float32 else "bf16"
    models = build_models(args.shape, args.device, dtype, args.tokenizer, seed=0)
    runner = Runner(models)
    kv = search(runner, "kv", 3, args.tokens)
    none = search(runner, "none", 3, args.tokens)
    again = search(runner, "kv", 3, args.tokens)
    other = search(runner, "kv", 4, args.tokens)
    copies = {"kv": engine_periods(runner, True), "none": engine_periods(runner, False)}
    out: dict[str, Any] = {
        f"{short}_engine_copies": copies["kv"] == copies["none"],
        f"{short}_kv_equals_none": same(kv, none),
        f"same_seed_twice_{short}": same(kv, again),
        f"{short}_other_seed_differs": not same(kv, other),
        f"{short}_runs": {"kv": kv, "none": none, "kv_again": again, "kv_seed4": other},
        f"{short}_engine_rows": copies,
        f"{short}_models": models.describe(),
    }
    if dtype == torch.bfloat16:
        reward = kv["final_reward"]
        out["bf16_end_to_end"] = (
            reward is not None
            and math.isfinite(reward)
            and len(kv["best"]) == args.tokens
            and isinstance(kv["answer"], str)
        )
    log(f"{name}: " + ", ".join(f"{k}={v}" for k, v in out.items() if isinstance(v, bool)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shape", choices=SHAPES, default="tiny")
    parser.add_argument("--tokens", type=int, default=48, help="answer tokens per search")
    parser.add_argument("--tokenizer", type=Path, help="default: the embedded SmolLM2's")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"args": vars(args), "machine": machine_info()}
    for dtype in (torch.float32, torch.bfloat16):
        try:
            result.update(checks_for(dtype, args))
        except Exception:  # a failure is a result: record it and go on to the other dtype
            result[f"{dtype}_error"] = traceback.format_exc()
            log(result[f"{dtype}_error"])
        result["passed"] = {k: bool(result.get(k)) for k in REQUIRED}
        # written after each dtype, so a run cut short still leaves what it found
        (args.out / "correctness.json").write_text(json.dumps(result, indent=1, default=str))
    for key, ok in result["passed"].items():
        print(f"{'PASS' if ok else 'FAIL'} {key}")
    return 0 if all(result["passed"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
