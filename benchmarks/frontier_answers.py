"""Scores of the frontier's stored answers that a search did not compute, kept beside its
records (``frontier-REWARD-answers.json.gz``, committed) so ``--report-only`` reads them:

- ``held_out``: the reverse likelihood (``benchmarks.quality_registry.reverse_likelihood``,
  validity in docs/quality.md) of every pool sample and every search's answer: does a search
  that wins on its steering reward lose on a score it never saw?
- ``prefix``: the steering reward of a question's first 16 pool samples (``--prefix-samples``)
  cut after 40, 80, ... policy tokens: how well a partial answer's reward ranks final
  rewards, period by period, on plain samples (nothing replaced, so partial and final are the
  same answer's).
- ``consensus``, ``pool_similarity`` and the held-out score of every answer the consensus
  guard picks at some weight (``benchmarks.frontier_guard``): the guard replayed on stored
  searches and pools.

    python -m benchmarks.frontier_answers --reward whole
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import load_first_turns, log
from benchmarks.frontier_store import REWARDS, answer_key, load, load_scores, sidecar, store_path

#: Policy tokens per cut of the prefix rewards (the frontier's replacement period, m = 40).
PERIOD = 40


def _save(store: Path, scores: dict[str, Any]) -> None:
    with gzip.open(sidecar(store), "wt", encoding="utf-8") as fh:
        json.dump(scores, fh, sort_keys=True)


def fill(store: Path, budget_s: float, prefix_samples: int = 16) -> None:
    """Score what the sidecar lacks, saving as it goes (resumable), for ``budget_s`` at most.
    The prefix rewards are the steering reward the records were searched with, on the first
    ``prefix_samples`` of each question's pool (each a reward call on about seven texts: its
    cuts and itself)."""
    from benchmarks.frontier import build_reward
    from benchmarks.quality_registry import reverse_likelihood
    from langchain_darwin.inprocess.models import load_policy

    records = load(store)
    kinds = {r.get("reward") for r in records}
    if len(kinds) != 1 or None in kinds:
        raise SystemExit(f"{store} holds records of rewards {kinds}: one named reward expected")
    (kind,) = kinds
    prompts = {str(q["id"]): q["prompt"] for q in load_first_turns(None, 80)}
    scores = load_scores(store)
    if scores.setdefault("reward", kind) != kind:
        raise SystemExit(f"{sidecar(store)} holds {scores['reward']} scores, not {kind}")
    reward = build_reward(kind)
    _, tokenizer = load_policy("default")
    start, done = time.perf_counter(), 0
    for r in records:
        qid = str(r["qid"])
        question = prompts[qid]
        held = scores["held_out"].setdefault(qid, {})
        texts = r.get("answers", []) if r["config"] == "bon" else [r.get("answer")]
        texts = [t for t in texts if t is not None]  # records from before answers were stored
        for text in texts:
            if answer_key(text) not in held:
                held[answer_key(text)] = reverse_likelihood(question, text)
                done += 1
        if r["config"] == "bon":
            prefix = scores["prefix"].setdefault(qid, {})
            conversation = [{"role": "user", "content": question}]
            for index, text in enumerate(texts, start=r.get("pool_start", 0)):
                if answer_key(text) in prefix or index >= prefix_samples:
                    continue
                tokens = tokenizer.encode(text, add_special_tokens=False)
                cuts = [tokenizer.decode(tokens[:n]) for n in range(PERIOD, len(tokens), PERIOD)]
                prefix[answer_key(text)] = reward.score(conversation, [*cuts, text])
                done += 1
        _save(store, scores)
        if time.perf_counter() - start > budget_s:
            log(f"stopped at the budget after {done} answers; run again to go on")
            return
    from benchmarks import frontier_guard

    done += frontier_guard.fill(
        records, scores, lambda qid, text: reverse_likelihood(prompts[str(qid)], text)
    )
    _save(store, scores)
    log(f"scored {done} answers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reward", choices=REWARDS, default="whole", help="whose records")
    parser.add_argument("--store", help="default: results/frontier-REWARD.jsonl.gz")
    parser.add_argument("--budget-s", type=float, default=3600)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--prefix-samples", type=int, default=16, help="pool samples per question cut to prefixes"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    store = Path(args.store) if args.store else store_path(args.reward)
    fill(store, args.budget_s, args.prefix_samples)


if __name__ == "__main__":
    main()
