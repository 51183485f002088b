"""Speed of DARWIN on a vLLM server, against Best-of-5 on the same server, the in-process
engine, and 8 searches at once.

In this process, against one vLLM server (``--base-url``; without it, one is started with the
tests' launcher, ``tests.servers``, and stopped at the end), at the paper's settings: DARWIN on
the server; Best-of-5 on the same server (one ``/v1/completions`` request with ``n=5``, built
by the served engine's own ``completion_payload`` and sent through its client, plus one reward
pass); DARWIN on the in-process engine; and 8 DARWIN searches at once (threads) against one.
The prompt tokens the server computed are its prefix-cache queries minus hits (``/metrics``),
read around each run. Every method uses the same reward (``--reward``: a cheap callable by
default). Run from the repository root:

    python -m benchmarks.speed_served --prompts 1 --max-tokens 256

Last line: ``engine=vllm ratio_darwin_over_bon=A prefill_per_token=B speedup_vs_local=C
concurrent8_speedup=D``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import httpx

from benchmarks.common import load_first_turns, log
from benchmarks.speed_common import (
    BEAMS,
    PAPER,
    WARM_PROMPT,
    add_questions_argument,
    ratio,
    table,
    verdict,
)
from langchain_darwin.config import DarwinConfig
from langchain_darwin.engines import EngineSpec, get_engine
from langchain_darwin.graph.state import DarwinOutput
from langchain_darwin.policy import Sampling
from langchain_darwin.search import SearchService
from langchain_darwin.served.client import normalize_base_url
from langchain_darwin.served.policy import ServedPolicy, completion_payload
from langchain_darwin.usage import PHASES, generated_tokens
from tests.servers import VLLMServer, policy_dir

SERVED_MODEL = "smollm2-policy"
CONCURRENT = 8


def cheap_reward_fn(conversation: Any, answer: str) -> float:
    """Distinct words in the answer: deterministic, microseconds per answer, so that the
    timings measure the policy engines and not a reward model (see --reward)."""
    return float(len(set(answer.lower().split())))


def make_reward(kind: str) -> Any:
    from langchain_darwin.rewards import CallableReward, default_reward

    return default_reward() if kind == "default" else CallableReward(cheap_reward_fn)


def prefix_cache_counters(root: str) -> tuple[float, float]:
    """``(queries, hits)`` of the server's prefix cache, in tokens, summed over labels
    (Prometheus text, which the project's JSON client does not read)."""
    text = httpx.get(f"{root}/metrics", timeout=30).text
    totals = {"vllm:prefix_cache_queries_total": 0.0, "vllm:prefix_cache_hits_total": 0.0}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals["vllm:prefix_cache_queries_total"], totals["vllm:prefix_cache_hits_total"]


class ServedBench:
    """Every method, in this process, against one server."""

    def __init__(self, base_url: str, model: str, reward_kind: str) -> None:
        self.root = normalize_base_url(base_url)
        self.base_url = f"{self.root}/v1"
        self.model = model
        self.reward_kind = reward_kind
        self.reward = make_reward(reward_kind)
        engine = get_engine(EngineSpec(model=model, base_url=self.base_url))
        self.served = cast(ServedPolicy, engine)

    def counters(self) -> tuple[float, float]:
        return prefix_cache_counters(self.root)

    def search(self, prompt: str, max_tokens: int, seed: int, served: bool) -> DarwinOutput:
        """One DARWIN search through the search service: on the server, or in process (the
        embedded default policy)."""
        spec = EngineSpec(model=self.model, base_url=self.base_url) if served else EngineSpec()
        service = SearchService(spec, self.reward)
        config = DarwinConfig(**{**PAPER, "max_tokens": max_tokens, "seed": seed})
        conversation = [{"role": "user", "content": prompt}]
        return service.run(service.prepare(conversation, config))

    def darwin(
        self, prompt: str, max_tokens: int, seed: int, served: bool = True
    ) -> dict[str, Any]:
        q0, h0 = self.counters() if served else (0.0, 0.0)
        start = time.perf_counter()
        state = self.search(prompt, max_tokens, seed, served)
        wall = time.perf_counter() - start
        q1, h1 = self.counters() if served else (0.0, 0.0)
        usage = state["usage"]
        return {
            "wall_s": wall,
            "generated": generated_tokens(usage),
            "engine_prefilled": sum(usage[p]["prefilled"] for p in PHASES),
            "server_queried": q1 - q0,
            "server_computed": (q1 - q0) - (h1 - h0),
            "final_reward": state["final_reward"],
        }

    def best_of_n(self, prompt: str, max_tokens: int, seed: int) -> dict[str, Any]:
        """One request with n=5 (distinct samples, one prompt prefill) and one reward pass."""
        conversation = [{"role": "user", "content": prompt}]
        ids = self.served.render(conversation)
        sampling = Sampling(PAPER["temperature"], PAPER["top_k"], seed, ignore_eos=True)
        payload = completion_payload(self.model, ids, max_tokens, sampling, seed, n=BEAMS)
        q0, h0 = self.counters()
        start = time.perf_counter()
        body = self.served.client.post("/v1/completions", payload)
        answers = [self.served.detokenize(c["token_ids"]) for c in body["choices"]]
        mid = time.perf_counter()
        rewards = self.reward.score(conversation, answers)
        end = time.perf_counter()
        q1, h1 = self.counters()
        return {
            "wall_s": end - start,
            "generate_s": mid - start,
            "reward_s": end - mid,
            "generated": int(body["usage"]["completion_tokens"]),
            "engine_prefilled": int(body["usage"]["prompt_tokens"]),
            "server_queried": q1 - q0,
            "server_computed": (q1 - q0) - (h1 - h0),
            "final_reward": max(rewards),
        }

    def concurrent(self, prompts: list[str], max_tokens: int, seed: int) -> dict[str, Any]:
        """``CONCURRENT`` DARWIN searches at once (threads), prompts cycled, own seeds."""
        jobs = [(prompts[k % len(prompts)], seed + 1000 + k) for k in range(CONCURRENT)]
        q0, h0 = self.counters()
        start = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENT) as pool:
            recs = list(pool.map(lambda job: self._quiet_darwin(job[0], job[1], max_tokens), jobs))
        wall = time.perf_counter() - start
        q1, h1 = self.counters()
        return {
            "wall_s": wall,
            "generated": sum(r["generated"] for r in recs),
            "server_queried": q1 - q0,
            "server_computed": (q1 - q0) - (h1 - h0),
            "search_wall_s": [r["wall_s"] for r in recs],
        }

    def _quiet_darwin(self, prompt: str, seed: int, max_tokens: int) -> dict[str, Any]:
        start = time.perf_counter()
        state = self.search(prompt, max_tokens, seed, served=True)
        return {
            "wall_s": time.perf_counter() - start,
            "generated": generated_tokens(state["usage"]),
        }


def run_vllm(args: argparse.Namespace) -> None:
    questions = load_first_turns(args.questions, args.prompts)
    server = None
    base_url = args.base_url
    if base_url is None:
        logfile = Path(tempfile.mkdtemp(prefix="speed-vllm-")) / "policy.log"
        server = VLLMServer(policy_dir(), args.served_model, logfile)
        log(f"starting a vLLM server on port {server.port} (log {logfile})")
        t0 = time.perf_counter()
        server.start()
        server.wait_ready()
        log(f"server ready in {time.perf_counter() - t0:.0f} s")
        base_url = server.base_url
    try:
        print(vllm_report(measure_vllm(args, base_url, questions), args, base_url))
    finally:
        if server is not None:
            server.stop()


def measure_vllm(
    args: argparse.Namespace, base_url: str, questions: list[dict[str, Any]]
) -> dict[str, Any]:
    load = {"start": os.getloadavg()}
    bench = ServedBench(base_url, args.served_model, args.reward)
    log("warming up: every method once at 8 tokens (and the in-process weights load)")
    warm = WARM_PROMPT
    bench.darwin(warm, 8, args.seed + 10_000)
    bench.best_of_n(warm, 8, args.seed + 10_000)
    bench.darwin(warm, 8, args.seed + 10_000, served=False)
    records: dict[str, list[dict[str, Any]]] = {
        "darwin_vllm": [],
        "bon_vllm": [],
        "darwin_local": [],
    }
    for i, q in enumerate(questions):
        seed = args.seed + i
        # methods take turns on each prompt, so other load on the machine hits them alike
        for name in ("darwin_vllm", "bon_vllm", "darwin_local"):
            before = os.getloadavg()[0]
            if name == "bon_vllm":
                rec = bench.best_of_n(q["prompt"], args.max_tokens, seed)
            else:
                rec = bench.darwin(q["prompt"], args.max_tokens, seed, name == "darwin_vllm")
            rec.update(question_id=q["id"], loadavg=[before, os.getloadavg()[0]])
            records[name].append(rec)
            log(
                f"[{name}] q{q['id']}: {rec['wall_s']:.1f} s, {rec['generated']} generated, "
                f"server computed {rec.get('server_computed', 0):.0f} prompt tokens, "
                f"load {before:.1f}"
            )
    log(f"{CONCURRENT} concurrent DARWIN searches on the server")
    before = os.getloadavg()[0]
    conc = bench.concurrent([q["prompt"] for q in questions], args.max_tokens, args.seed)
    conc["loadavg"] = [before, os.getloadavg()[0]]
    log(f"[concurrent{CONCURRENT}] {conc['wall_s']:.1f} s, {conc['generated']} generated")
    load["end"] = os.getloadavg()
    return {"records": records, "concurrent": conc, "load": load}


def vllm_report(result: dict[str, Any], args: argparse.Namespace, base_url: str) -> str:
    recs = result["records"]
    conc = result["concurrent"]

    def total(name: str, key: str) -> float:
        return float(sum(r.get(key, 0.0) for r in recs[name]))

    n = args.prompts
    rows = [
        [
            "method",
            "s/prompt",
            "generated tok/prompt",
            "tok/s",
            "server computed prompt tok/gen tok",
            "server prefix-cache hit rate",
            "load avg",
        ]
    ]
    for name in recs:
        wall, gen = total(name, "wall_s"), total(name, "generated")
        queried, computed = total(name, "server_queried"), total(name, "server_computed")
        served = name != "darwin_local"
        rows.append(
            [
                name,
                f"{wall / n:.1f}",
                f"{gen / n:.0f}",
                f"{gen / wall:.1f}",
                f"{computed / gen:.3f}" if served else "-",
                f"{1 - computed / queried:.3f}" if served and queried else "-",
                f"{sum(sum(r['loadavg']) / 2 for r in recs[name]) / n:.1f}",
            ]
        )
    rows.append(
        [
            f"{CONCURRENT} x darwin_vllm at once",
            f"{conc['wall_s']:.1f} (all)",
            f"{conc['generated']:.0f} (all)",
            f"{conc['generated'] / conc['wall_s']:.1f}",
            f"{conc['server_computed'] / conc['generated']:.3f}",
            f"{1 - conc['server_computed'] / conc['server_queried']:.3f}"
            if conc["server_queried"]
            else "-",
            f"{sum(conc['loadavg']) / 2:.1f}",
        ]
    )
    a = ratio(total("darwin_vllm", "wall_s"), total("bon_vllm", "wall_s"))
    b = ratio(total("darwin_vllm", "server_computed"), total("darwin_vllm", "generated"))
    c = ratio(total("darwin_local", "wall_s"), total("darwin_vllm", "wall_s"))
    single_tps = ratio(total("darwin_vllm", "generated"), total("darwin_vllm", "wall_s"))
    d = ratio(ratio(conc["generated"], conc["wall_s"]), single_tps)
    bon_reward = total("bon_vllm", "reward_s") / n

    load = result["load"]
    out = [
        f"## speed, served engine: {n} MT-Bench prompt(s), {args.max_tokens} tokens/answer, "
        f"seed {args.seed}, server {base_url} (model {args.served_model}), reward "
        f"{args.reward!r}",
        "",
        table(rows),
        "",
        f"Best-of-5's reward pass: {bon_reward:.2f} s/prompt. Load average (1/5/15 min) "
        f"at the start {'/'.join(f'{x:.1f}' for x in load['start'])}, at the end "
        f"{'/'.join(f'{x:.1f}' for x in load['end'])}; "
        f"{CONCURRENT} concurrent searches: "
        f"{', '.join(f'{s:.0f}' for s in conc['search_wall_s'])} s each.",
        "",
        "Targets:",
        f"- DARWIN / Best-of-5 on the server = {a:.2f} (target <= 1.25): {verdict(a <= 1.25)}",
        f"- prompt tokens the server computed per generated token = {b:.3f} (target <= 1.0): "
        f"{verdict(b <= 1.0)}",
        f"- in-process DARWIN / served DARWIN = {c:.2f} (target >= 2.5): {verdict(c >= 2.5)}",
        f"- {CONCURRENT} concurrent searches / 1, throughput = {d:.2f} (target >= 2.5): "
        f"{verdict(d >= 2.5)}",
        "",
        f"engine=vllm ratio_darwin_over_bon={a:.3f} prefill_per_token={b:.3f} "
        f"speedup_vs_local={c:.3f} concurrent8_speedup={d:.3f}",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=3, help="MT-Bench first turns to run")
    parser.add_argument("--max-tokens", type=int, default=256, help="tokens per answer")
    parser.add_argument("--seed", type=int, default=0)
    add_questions_argument(parser)
    parser.add_argument(
        "--base-url",
        help="the server (http://host:port/v1); default: start one (tests.servers) and stop "
        "it at the end",
    )
    parser.add_argument(
        "--served-model",
        default=SERVED_MODEL,
        help="the name the server serves the embedded SmolLM2 under",
    )
    parser.add_argument(
        "--reward",
        choices=("cheap", "default"),
        default="cheap",
        help="the reward every method uses. cheap (default): distinct words per answer, "
        "microseconds; default: the offline default reward, whose ~30 s per scoring of 5 "
        "answers on a loaded 2-core machine would dominate every timing",
    )
    args = parser.parse_args(argv)
    if args.prompts < 1 or args.max_tokens < 1:
        parser.error("--prompts and --max-tokens must be positive")
    run_vllm(args)


if __name__ == "__main__":
    main()
