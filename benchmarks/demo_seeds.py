"""Does the demo show DARWIN honestly? Over many seeds of the demo prompt, the share of DARWIN
answers that fail to answer against plain sampling's (same seeds), and how many are complete.

An answer **fails to answer** "How do I boil an egg?" when it has under 25 words, or when it
names neither of the two things any boiling instruction needs: water, and a time in minutes.
The definition uses no term of the steering reward (no MiniLM relevance, no substance count,
no fluency, no sentiment), so the search cannot have optimised towards it. For another prompt
(``--prompt``) only the word count applies unless ``--needs`` lists its own required words
(an answer must contain at least one of them).

An answer is **complete** when it ended on end-of-sequence before ``max_tokens`` (not cut).

    .venv/bin/python benchmarks/demo_seeds.py --seeds 20             # the cli's --demo settings
    .venv/bin/python benchmarks/demo_seeds.py --seeds 20 --max-tokens 192 --replacement-period 48
    .venv/bin/python benchmarks/demo_seeds.py --seeds 20 --no-plain --knob rewrites_must_ask=true

Each seed runs DARWIN and a plain sample (``iterations=0``, the same seed), as ``darwin PROMPT
--demo --compare`` does; ``--no-plain`` runs DARWIN alone (then nothing is compared). The
table also gives the share of runs whose winner is not the seed answer. Rows go to ``--out``
(JSON Lines, resumable, one file per settings and default reward); ``--shard i/k`` splits the
seeds across worker processes that write their own files. Exit status 1 when DARWIN's failure
share exceeds plain sampling's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import REPO_ROOT, log

from langchain_darwin.cli.run import DEMO

DEMO_PROMPT = "How do I boil an egg?"
MIN_WORDS = 25
#: For the demo prompt: an answer must name at least one of these stems.
EGG_NEEDS = ("water", "minute")
OUT = REPO_ROOT / "benchmarks" / "out" / "demo_seeds"


def fails(answer: str, needs: Sequence[str]) -> bool:
    """Under ``MIN_WORDS`` words, or (when ``needs`` is given) none of its stems present."""
    if len(answer.split()) < MIN_WORDS:
        return True
    low = answer.lower()
    return bool(needs) and not any(re.search(rf"\b{re.escape(n)}", low) for n in needs)


def run_seed(prompt: str, seed: int, knobs: dict[str, Any], plain: bool = True) -> dict[str, Any]:
    from langchain_core.messages import HumanMessage

    from langchain_darwin import DarwinChatModel

    llm = DarwinChatModel(**knobs)
    row: dict[str, Any] = {"seed": seed, "prompt": prompt, "knobs": knobs}
    runs: list[tuple[str, dict[str, Any]]] = [("darwin", {})]
    runs += [("plain", {"iterations": 0})] if plain else []
    for name, extra in runs:
        t0 = time.perf_counter()
        message = llm.invoke([HumanMessage(prompt)], seed=seed, **extra)
        meta = message.response_metadata["darwin"]
        row[name] = {
            "answer": message.content,
            "reward": meta["final_reward"],
            "tokens": meta["winner"]["tokens"],
            "complete": meta["winner"]["tokens"] < knobs["max_tokens"],
            "winner": meta["winner"]["source"],
            "seconds": round(time.perf_counter() - t0, 1),
        }
    return row


def summary(rows: list[dict[str, Any]], needs: Sequence[str]) -> tuple[str, bool | None]:
    """The table, and whether DARWIN fails to answer no more often than plain sampling (None:
    no plain samples to compare with)."""
    lines, share = [], {}
    lines.append(
        "| | fails to answer | complete (EOS) | winner not the seed answer | words (median) "
        "| reward (mean) | s (median) |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    names = ["darwin"] + (["plain"] if all("plain" in r for r in rows) else [])
    for name in names:
        got = [r[name] for r in rows]
        failed = sum(fails(g["answer"], needs) for g in got)
        share[name] = failed / len(got)
        beams = (
            f"{sum(g.get('winner') not in (None, 'seed') for g in got)}/{len(got)}"
            if name == "darwin" and all("winner" in g for g in got)
            else "—"
        )
        lines.append(
            f"| {'DARWIN' if name == 'darwin' else 'plain sampling'} | {failed}/{len(got)} "
            f"| {sum(g['complete'] for g in got)}/{len(got)} | {beams} "
            f"| {statistics.median(len(g['answer'].split()) for g in got):.0f} "
            f"| {statistics.fmean(g['reward'] for g in got if g['reward'] is not None):.3f} "
            f"| {statistics.median(g['seconds'] for g in got):.0f} |"
        )
    if "plain" not in names:
        return "\n".join(lines), None
    both = sum(
        fails(r["darwin"]["answer"], needs) and fails(r["plain"]["answer"], needs) for r in rows
    )
    lines.append(
        f"(seeds where both fail: {both}; DARWIN reward > plain on "
        f"{sum(r['darwin']['reward'] > r['plain']['reward'] for r in rows)}/{len(rows)})"
    )
    return "\n".join(lines), share["darwin"] <= share["plain"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default=DEMO_PROMPT)
    parser.add_argument("--needs", nargs="*", help="stems an answer must name (one of them)")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=DEMO["max_tokens"])
    parser.add_argument("--replacement-period", type=int, default=DEMO["replacement_period"])
    parser.add_argument("--shard", default="0/1", help="i/k: every k-th seed from the i-th")
    parser.add_argument("--threads", type=int, help="torch threads (shared CPU: 1)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--no-plain", action="store_true", help="DARWIN only: no plain sample per seed"
    )
    parser.add_argument(
        "--knob",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another DarwinConfig knob (a JSON value), e.g. rewrites_must_ask=true; the plain "
        "sample runs with it too (iterations=0: it decodes no beams)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    needs = (
        args.needs if args.needs is not None else (EGG_NEEDS if args.prompt == DEMO_PROMPT else ())
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    knobs = {**DEMO, "max_tokens": args.max_tokens, "replacement_period": args.replacement_period}
    for item in args.knob:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--knob {item!r}: write NAME=VALUE")
        if name in DEMO:
            parser.error(f"--knob {name}: use --{name.replace('_', '-')}")
        try:
            knobs[name] = json.loads(value)
        except json.JSONDecodeError:
            knobs[name] = value  # a bare string such as top_k for selection
    from langchain_darwin.config import DarwinConfig
    from langchain_darwin.rewards import default_reward

    # rows of another default reward or other default knobs are not these: the tag names both
    # (every DarwinConfig field, so a new knob, even one that changes nothing, starts afresh)
    reward = hashlib.sha1(repr(default_reward()).encode()).hexdigest()[:8]
    config = DarwinConfig().merged(**knobs)
    search = hashlib.sha1(config.model_dump_json().encode()).hexdigest()[:8]
    tag = f"{args.max_tokens}t-m{args.replacement_period}-r{reward}-c{search}"
    args.out.mkdir(parents=True, exist_ok=True)
    shard, shards = (int(x) for x in args.shard.split("/"))
    store = args.out / f"{tag}-shard{shard}.jsonl"
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if not args.report_only:
        done = (
            {json.loads(x)["seed"] for x in store.read_text().splitlines()}
            if store.exists()
            else set()
        )
        runs = ("darwin",) if args.no_plain else ("darwin", "plain")
        for seed in seeds:
            if seed % shards != shard or seed in done:
                continue
            row = run_seed(args.prompt, seed, knobs, plain=not args.no_plain)
            with store.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            log(f"seed {seed}: " + ", ".join(f"{k} {row[k]['seconds']} s" for k in runs))
    rows = {}
    for path in args.out.glob(f"{tag}-shard*.jsonl"):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r["seed"] in seeds and r["prompt"] == args.prompt:
                rows[r["seed"]] = r
    if not rows:
        print("no runs yet")
        return 1
    table, ok = summary([rows[s] for s in sorted(rows)], needs)
    print(
        f"{args.prompt!r}, {len(rows)} seeds, max_tokens {args.max_tokens}, "
        f"replacement_period {args.replacement_period}; fails = under {MIN_WORDS} words"
        + (f" or none of {list(needs)}" if needs else "")
    )
    print(table)
    if ok is None:
        print("DARWIN's failure share against plain sampling's: not compared (no plain samples)")
        return 0
    print("DARWIN's failure share <= plain sampling's:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
