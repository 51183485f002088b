"""What the fluency term's prefix cache saves: the default reward's ``FluencyReward`` scoring
beams period by period, with its cache and without it, side by side in one run.

The beams are real SmolLM2 answers from the frontier's Best-of-N pools (256 tokens at most),
cut where a search's periods end (every ``--period`` policy tokens, the text decoded from
those tokens as the search does); at each period the last ``--copies`` beams take the first
beam's text, as replaced beams copy a donor. Each period is scored by the fluency term with
its cache and without, and by the whole ``default_reward()`` with a cached and an uncached
fluency term, in turn (so a busy machine slows each alike). Printed: seconds and positions
read by each, their ratios, and the largest score difference (float noise only).

    python -m benchmarks.fluency_cache --questions 4 --beams 5 --period 40
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO_ROOT, log
from benchmarks.frontier_store import load, questions

STORE = REPO_ROOT / "benchmarks" / "results" / "frontier-whole.jsonl.gz"


def periods(answers: list[str], period: int, copies: int, tokenizer: Any) -> list[list[str]]:
    """The beams' texts at the end of each period."""
    ids = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers]
    longest = max(len(i) for i in ids)
    out = []
    for end in range(period, longest + period, period):
        texts = [tokenizer.decode(i[:end], skip_special_tokens=True) for i in ids]
        for k in range(1, copies + 1):
            texts[-k] = texts[0]
        out.append(texts)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--period", type=int, default=40)
    parser.add_argument("--copies", type=int, default=1, help="beams copying the first, per period")
    parser.add_argument("--store", type=Path, default=STORE)
    args = parser.parse_args()

    import torch

    from langchain_darwin.inprocess.default_reward import FluencyReward, default_reward
    from langchain_darwin.inprocess.models import load_policy
    from langchain_darwin.rewards.weighted import WeightedReward

    torch.set_num_threads(1)
    _, tokenizer = load_policy("default")
    pools = {r["qid"]: r for r in load(args.store) if r["config"] == "bon" and r.get("answers")}
    whole = default_reward()
    assert isinstance(whole, WeightedReward)
    uncached = WeightedReward(
        (w, FluencyReward(max_answer_tokens=None, prefix_cache=False))
        if isinstance(r, FluencyReward)
        else (w, r)
        for w, r in whole.terms
    )
    scorers = {
        "FluencyReward, prefix cache": FluencyReward(max_answer_tokens=None),
        "FluencyReward, no cache": FluencyReward(max_answer_tokens=None, prefix_cache=False),
        "default_reward(), fluency cached": whole,
        "default_reward(), fluency not cached": uncached,
    }
    totals = {name: [0.0, 0] for name in scorers}
    worst = 0.0
    for q in questions(args.questions):
        pool = pools.get(q["id"])
        if pool is None:
            raise SystemExit(f"no Best-of-N answers for question {q['id']} in {args.store}")
        conversation = [{"role": "user", "content": q["prompt"]}]
        for texts in periods(pool["answers"][: args.beams], args.period, args.copies, tokenizer):
            scores: dict[str, list[float]] = {}
            for name, scorer in scorers.items():
                t0 = time.perf_counter()
                used = scorer.score_with_usage(conversation, texts)
                totals[name][0] += time.perf_counter() - t0
                totals[name][1] += used.positions
                scores[name] = used.scores
            pairs = list(scores.values())
            for a, b in (pairs[:2], pairs[2:]):
                worst = max(worst, *(abs(x - y) for x, y in zip(a, b, strict=True)))
        log(f"q{q['id']}: " + ", ".join(f"{k}: {v[0]:.1f} s" for k, v in totals.items()))
    print("| scorer | seconds | positions read |\n|---|---|---|")
    for name, (seconds, positions) in totals.items():
        print(f"| {name} | {seconds:.1f} | {positions} |")
    (ct, cp), (pt, pp), (wt, _), (ut, _) = totals.values()
    print(
        f"fluency_cache questions={args.questions} beams={args.beams} period={args.period} "
        f"fluency_time_ratio={pt / ct:.2f} fluency_positions_ratio={pp / max(cp, 1):.2f} "
        f"reward_time_ratio={ut / wt:.2f} max_score_diff={worst:.2e}"
    )


if __name__ == "__main__":
    main()
