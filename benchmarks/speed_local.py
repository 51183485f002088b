"""Speed of a DARWIN search in process against its re-prefill mode and plain Best-of-5.

Methods (``--methods``; the first three by default):

- ``ours``: DARWIN with per-row KV caches (``cache="kv"``);
- ``reprefill``: the same search re-prefilling every beam each period (``cache="none"``, the
  reference implementation's cost);
- ``floor``: Best-of-5 as plain batched sampling: ``model.generate`` of 5 answers on the
  prompt repeated 5 times, plus one reward pass over the 5 answers;
- ``batch``: 4 DARWIN searches at once through the chat model's ``batch`` (4 prompts), whose
  throughput is compared with one search's.

Paper settings: 5 beams (n_mutations=1), replacement period 40, 3 survivors, 1 mutation
cycle, T=0.7, top-k 40; every answer decodes exactly ``--max-tokens`` tokens (``ignore_eos``),
so the methods do the same answer work. ``--shape`` picks the models (``benchmarks/shapes.py``):
``smollm2`` (default) the embedded SmolLM2-135M-Instruct and a SmolLM2-sized reward model;
``tiny`` and ``llama3-8b`` random weights of that shape with SmolLM2's 49,152-token vocabulary
(bf16 on CUDA), whose scores mean nothing.

By default each method runs in its own child process (one per prompt and method, methods
taking turns, so that each peak RSS is that method's alone and load from other processes hits
them alike); ``--one-process`` runs them all in this process (on a GPU: load the models once;
peak GPU memory is reset between runs). Run from the repository root:

    python -m benchmarks.speed_local --prompts 3 --max-tokens 256
    python -m benchmarks.speed_local --shape llama3-8b --device cuda --one-process \\
        --methods ours,reprefill,floor,batch --prompts 2 --max-tokens 256

The last line printed is machine-readable:
``ratio_reprefill_over_ours=X ratio_ours_over_floor=Y forwarded_per_token=Z peak_mem_ratio=W``
(``batch4_throughput_ratio=V`` after it when ``batch`` ran).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import (
    DEFAULT_QUESTIONS,
    REPO_ROOT,
    PeakRSS,
    cached_kv_mb,
    freeze_library,
    git_head,
    load_first_turns,
    log,
    machine_info,
    source_hash,
)
from benchmarks.shapes import EMBEDDED, SHAPES, BenchModels, build_models
from benchmarks.speed_common import WARM_PROMPT, add_questions_argument
from benchmarks.speed_local_report import report
from benchmarks.speed_local_runner import BATCH, DEFAULT_METHODS, METHODS, Runner


def prompts_for(questions: list[dict[str, Any]], index: int) -> list[str]:
    """The prompt of run ``index`` first, then the next ones (cycled) for ``batch``."""
    return [questions[(index + k) % len(questions)]["prompt"] for k in range(BATCH)]


def load_questions(args: argparse.Namespace) -> list[dict[str, Any]]:
    methods = args.methods.split(",")
    wanted = max(args.prompts, BATCH) if "batch" in methods or args.only == "batch" else 0
    return load_first_turns(args.questions, max(args.prompts, wanted))


def models_for(args: argparse.Namespace) -> BenchModels:
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = None if args.dtype == "auto" else getattr(torch, args.dtype)
    return build_models(args.shape, args.device, dtype, args.tokenizer, args.seed)


def timed(
    runner: Runner, method: str, questions: list[dict[str, Any]], index: int, args: Any
) -> dict[str, Any]:
    """One timed run of ``method`` on question ``index``, with CPU time, load and memory."""
    q = questions[index]
    load_before = os.getloadavg()[0]
    cpu0 = time.process_time()
    with PeakRSS() as mem:
        rec = runner.run(method, prompts_for(questions, index), args.max_tokens, args.seed + index)
    rec.update(
        question_id=q["id"],
        category=q["category"],
        cpu_s=time.process_time() - cpu0,
        loadavg=[load_before, os.getloadavg()[0]],
        rss_start_mb=mem.start_mb,
        rss_peak_mb=mem.peak_mb,
        rss_delta_mb=mem.delta_mb,
        rm_cache_mb=cached_kv_mb(getattr(runner.last_reward, "_store", None)),
        mem_method=mem.method,
    )
    log(
        f"[{method}] q{q['id']}: {rec['wall_s']:.2f} s (cpu {rec['cpu_s']:.1f} s, load "
        f"{rec['loadavg'][0]:.1f}), {rec['generated']} generated, {rec['forwarded']} forwarded, "
        f"RM {rec['reward_positions']} positions, peak +{mem.delta_mb:.0f} MB RSS, GPU peak "
        f"{rec['gpu_peak_mb']:.0f} MB (+{rec['gpu_delta_mb']:.0f} over its start)"
    )
    return rec


def warm_up(runner: Runner, method: str, args: argparse.Namespace) -> float:
    """A short run of the method: every code path (mutation, prefill, decode, scoring)."""
    start = time.perf_counter()
    runner.run(method, [WARM_PROMPT] * BATCH, min(args.max_tokens, 8), args.seed + 10_000)
    return time.perf_counter() - start


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """``--only METHOD``: one method in this (child) process."""
    torch.manual_seed(args.seed)
    questions = load_questions(args)
    indices = [args.prompt_index] if args.prompt_index is not None else range(args.prompts)
    models = models_for(args)
    runner = Runner(models, rm_cache=not args.no_rm_cache)
    log(f"[{args.only}] models ready in {models.build_s:.1f} s; warming up")
    warm = warm_up(runner, args.only, args)
    records = [timed(runner, args.only, questions, i, args) for i in indices]
    return {
        "method": args.only,
        "load_s": models.build_s,
        "warmup_s": warm,
        "records": records,
        "models": models.describe(),
        "machine": machine_info(),
    }


class Stopped(BaseException):
    """SIGTERM (``timeout`` ran out): report the runs that finished. A BaseException, as
    KeyboardInterrupt is, so that no ``except Exception`` on the way turns it into an error."""


def _stop(signum: int, frame: object) -> None:
    raise Stopped()


def run_one_process(args: argparse.Namespace, methods: list[str]) -> dict[str, dict[str, Any]]:
    """Every method in this process on one set of models, methods taking turns on each
    prompt; results are saved after every run, and ``--deadline`` (no run starts after it)
    or SIGTERM (the run in progress is dropped) stops early with what is done."""
    results: dict[str, dict[str, Any]] = {}
    signal.signal(signal.SIGTERM, _stop)
    try:
        _one_process(args, methods, results)
    except Stopped:
        log("SIGTERM: reporting the runs that finished")
        args.stopped = True
    return results


def _one_process(
    args: argparse.Namespace, methods: list[str], results: dict[str, dict[str, Any]]
) -> None:
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    questions = load_questions(args)
    models = models_for(args)
    log(f"models ready in {models.build_s:.1f} s: {models.describe()}")
    runner = Runner(models, rm_cache=not args.no_rm_cache)
    machine = machine_info()
    for method in methods:
        warm = warm_up(runner, method, args)
        log(f"[{method}] warm-up {warm:.1f} s")
        results[method] = {
            "method": method,
            "load_s": models.build_s,
            "warmup_s": warm,
            "records": [],
            "models": models.describe(),
            "machine": machine,
        }
    for i in range(args.prompts):
        for method in methods:
            if args.deadline and time.perf_counter() - start > args.deadline:
                log(f"deadline of {args.deadline:.0f} s reached: reporting the runs done")
                return
            results[method]["records"].append(timed(runner, method, questions, i, args))
            save(args, results)


def run_children(args: argparse.Namespace, methods: list[str]) -> dict[str, dict[str, Any]]:
    """One child process per (prompt, method) (``--no-interleave``: per method), each on a
    frozen copy of the code unless ``--no-freeze``."""
    if args.interleave:
        jobs: list[tuple[str, int | None]] = [(m, i) for i in range(args.prompts) for m in methods]
    else:
        jobs = [(m, None) for m in methods]
    env = dict(os.environ)
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        if args.workdir is not None:
            work = args.workdir
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cwd = REPO_ROOT
        if args.freeze:
            cwd = work / "lib"
            if (cwd / "langchain_darwin").is_dir():
                log(f"reusing the code frozen earlier in {cwd}")
            else:
                freeze_library(cwd)
            log(
                f"code: tree at {git_head()}, frozen sources "
                f"{source_hash(cwd / 'langchain_darwin')}, in {cwd}"
            )
        for method, index in jobs:
            which = f"q{index}" if index is not None else f"all{args.prompts}"
            which += "-normcache" if args.no_rm_cache else ""
            out = work / f"{method}-{args.shape}-{which}-n{args.max_tokens}-s{args.seed}.json"
            if out.is_file():
                log(f"== {method} {which}: reusing {out}")
            else:
                cmd = child_command(args, method, index, out)
                log(f"== {method}: {' '.join(cmd[3:])}")
                subprocess.run(cmd, check=True, env=env, cwd=cwd)
            child = json.loads(out.read_text())
            if method in results:
                results[method]["records"] += child["records"]
            else:
                results[method] = child
    return results


def child_command(args: argparse.Namespace, method: str, index: int | None, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.speed_local", "--only", method]
    cmd += ["--prompts", str(args.prompts), "--max-tokens", str(args.max_tokens)]
    cmd += ["--seed", str(args.seed), "--result-json", str(out)]
    # paths resolved here: a child started in the frozen copy has another repository root
    cmd += ["--questions", str(Path(args.questions or DEFAULT_QUESTIONS).resolve())]
    cmd += ["--shape", args.shape, "--device", args.device, "--dtype", args.dtype]
    cmd += ["--methods", args.methods, "--threads", str(args.threads)]
    if args.tokenizer is not None:
        cmd += ["--tokenizer", str(Path(args.tokenizer).resolve())]
    if index is not None:
        cmd += ["--prompt-index", str(index)]
    if args.no_rm_cache:
        cmd += ["--no-rm-cache"]
    return cmd


def save(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    if args.save:
        payload = {"args": vars(args), "results": results}
        Path(args.save).write_text(json.dumps(payload, indent=1, default=str))


def machine_line(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    children = [r for r in results.values() if r["records"]]
    machine = children[0]["machine"]
    versions = sorted({r["machine"]["code"] for r in children})
    if len(versions) > 1:
        log(f"WARNING: the runs used different library sources: {versions}")
    gpu = f", GPU {machine['gpu']} (CUDA {machine['cuda']})" if machine.get("gpu") else ""
    return (
        f"machine: {machine['nproc']} CPUs ({machine['cpu']}){gpu}, torch {machine['torch']} "
        f"({machine['torch_threads']} threads, OMP_WAIT_POLICY={machine['omp_wait_policy']}), "
        f"transformers {machine['transformers']}, python {machine['python']}, "
        f"library {git_head()} (sources {', '.join(versions)}"
        f"{', frozen copy' if args.freeze and not args.one_process else ''})"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=3, help="MT-Bench first turns to run")
    parser.add_argument("--max-tokens", type=int, default=256, help="tokens per answer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", choices=SHAPES, default=EMBEDDED, help="models (shapes.py)")
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu or cuda (default: cuda when there is one)",
    )
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16", "float16"),
        default="auto",
        help="auto: bf16 on CUDA, fp32 on CPU",
    )
    parser.add_argument(
        "--tokenizer",
        type=Path,
        help="tokenizer folder for the random shapes (default: the embedded SmolLM2's)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (0: torch's default). 1 for the tiny shape on a shared "
        "CPU: its ops are too small to split, and idle threads waiting on a loaded machine "
        "cost a single search 5x its CPU time (measured), which batched searches do not pay",
    )
    parser.add_argument(
        "--no-rm-cache",
        action="store_true",
        help="the reward model re-reads whole answers (no prefix cache): less memory, more time",
    )
    add_questions_argument(parser)
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated, from {METHODS}",
    )
    parser.add_argument("--save", type=Path, help="write every per-prompt record here (json)")
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="every method in this process, models loaded once (the GPU run); default: a "
        "child process per prompt and method",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=0.0,
        help="--one-process: seconds after which no further run starts (0: none)",
    )
    parser.add_argument(
        "--no-interleave",
        dest="interleave",
        action="store_false",
        help="one child per method for all prompts (default: one per prompt and method, "
        "methods taking turns)",
    )
    parser.add_argument(
        "--no-freeze",
        dest="freeze",
        action="store_false",
        help="children import the live working tree (default: a copy of langchain_darwin/ and "
        "benchmarks/ taken when the benchmark starts, so concurrent edits cannot mix versions)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the frozen code and each child's result here; a rerun with the same folder "
        "reuses both (resume after an interruption)",
    )
    parser.add_argument("--prompt-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--result-json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prompts < 1 or args.max_tokens < 1:
        parser.error("--prompts and --max-tokens must be positive")
    unknown = {m for m in args.methods.split(",") if m} - set(METHODS)
    if unknown:
        parser.error(f"unknown method(s) {sorted(unknown)}; choose from {METHODS}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.only:
        result = run_child(args)
        if args.result_json:
            args.result_json.write_text(json.dumps(result))
        else:
            print(json.dumps(result, indent=1))
        return
    methods = [m for m in args.methods.split(",") if m]
    load_questions(args)  # fail fast on a missing file
    if args.one_process:
        results = run_one_process(args, methods)
    else:
        results = run_children(args, methods)
    save(args, results)
    if not any(r["records"] for r in results.values()):
        raise SystemExit("no run finished before the deadline")
    print(machine_line(results, args))
    print(report(results, args), flush=True)
    if getattr(args, "stopped", False):
        os._exit(3)  # a batch cut short still has searches in worker threads: do not wait


if __name__ == "__main__":
    main()
