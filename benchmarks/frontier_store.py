"""The frontier's records and what names them: where a run keeps its store, the questions and
their halves, the config names' variants, reading the store (pools joined), and the answers
sidecar's keys. Everything that reads or writes the frontier's records imports this, and it
imports none of them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_QUESTIONS, REPO_ROOT, pick_prompts

#: Where the frontier's stores and sidecars live (committed).
RESULTS = REPO_ROOT / "benchmarks" / "results"
#: The steering rewards a run may use: ``whole`` is today's ``default_reward()``, which reads
#: every answer token; ``first64`` is the one before it (``whole_answer=False``: fluency read
#: 64 tokens, relevance one capped cosine of the whole answer), kept for the first run's records.
REWARDS = ("whole", "first64")


def store_path(kind: str) -> Path:
    """Where a run steered by reward ``kind`` keeps its records (committed)."""
    return RESULTS / f"frontier-{kind}.jsonl.gz"


#: Extra knobs a config name may carry after a fourth colon.
VARIANTS: dict[str, dict[str, Any]] = {
    "": {},
    "topk": {"selection": "top_k"},  # the paper's selection (the default until softmax won)
    "softmax": {"selection": "softmax", "selection_temperature": 0.5},
    # rewrites that read as statements or answers fall back to the instruction
    "asks": {"selection": "softmax", "selection_temperature": 0.5, "rewrites_must_ask": True},
    "noseed": {"seed_answer": False},
    "until120": {"replacement_horizon": 120},
    "hints": {"mutation_source": "hints"},  # fixed answering hints instead of policy rewrites
    # today's default, its records also holding every final candidate's text (``candidates``),
    # so a rule for the final choice can be evaluated on them afterwards (the consensus guard)
    "cands": {},
}
#: Variants whose records hold every final candidate (the seed answer and each cycle's beams).
RECORDS_CANDIDATES = frozenset({"cands"})


def variant_of(name: str) -> str:
    """The variant a config name carries after its fourth colon ("" for none)."""
    return name.split(":")[4] if name.count(":") == 4 else ""


def questions(count: int) -> list[dict[str, Any]]:
    """The first ``count`` stratified MT-Bench questions (one per category in turn); even
    positions form the tuning half, odd ones the held-out half."""
    items = pick_prompts(DEFAULT_QUESTIONS, count, stratified=True)
    return [{**q, "half": "tune" if i % 2 == 0 else "held_out"} for i, q in enumerate(items)]


def read_rows(store: Path) -> list[dict[str, Any]]:
    """A gzip store's JSON lines as written (none if there is no store yet)."""
    if not store.exists():
        return []
    with gzip.open(store, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load(store: Path) -> list[dict[str, Any]]:
    """The store's records with each question's pool joined into one."""
    if not store.exists():
        raise SystemExit(f"no records at {store}: run python -m benchmarks.frontier first")
    return join_pools(read_rows(store))


def attach_answer_scores(records: list[dict[str, Any]], scores: dict[str, Any]) -> None:
    """Put the sidecar's scores (benchmarks/frontier_answers.py) on the records: ``held_out``
    per pool sample (only if every sample has one) or the search's answer; ``prefix`` rewards
    for the pool's first samples, as far as they are cut (the sidecar cuts the first 16)."""
    for r in records:
        qid = str(r["qid"])
        held, prefix = scores["held_out"].get(qid, {}), scores["prefix"].get(qid, {})
        if r["config"] == "bon":
            answers = r.get("answers") or []
            if len(answers) != len(r["rewards"]) or None in answers:
                continue
            keys = [answer_key(a) for a in answers]
            if all(k in held for k in keys):
                r["held_out"] = [held[k] for k in keys]
            cut = next((i for i, k in enumerate(keys) if k not in prefix), len(keys))
            if cut >= 2:
                r["prefix"] = [prefix[k] for k in keys[:cut]]
        elif r.get("answer") is not None and answer_key(r["answer"]) in held:
            r["held_out"] = held[answer_key(r["answer"])]


def join_pools(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One Best-of-N pool per question: records of later, larger ``--pool`` runs join it."""
    pools: dict[Any, dict[str, Any]] = {}
    for r in sorted(
        (r for r in rows if r["config"] == "bon"), key=lambda r: r.get("pool_start", 0)
    ):
        if r["qid"] not in pools:
            pools[r["qid"]] = {**r, **{k: list(r[k]) for k in ("rewards", "tokens", "ended")}}
            continue
        pool = pools[r["qid"]]
        if "answers" in pool or "answers" in r:  # records from before answers were stored: None
            before = pool.get("answers", [None] * len(pool["rewards"]))
            pool["answers"] = before + r.get("answers", [None] * len(r["rewards"]))
        for key in ("rewards", "tokens", "ended"):
            pool[key] = pool[key] + r[key]
        for key in ("prefilled", "decoded", "wall_s", "reward_s"):
            pool[key] += r[key]
    return [r for r in rows if r["config"] != "bon"] + list(pools.values())


def answer_key(text: str) -> str:
    """The sidecar's key for an answer's text."""
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def sidecar(store: Path) -> Path:
    """The answers sidecar beside a store (scores a search did not compute)."""
    return store.with_name(store.name.replace(".jsonl.gz", "-answers.json.gz"))


def load_scores(store: Path) -> dict[str, Any]:
    """The sidecar's scores (empty before ``frontier_answers`` first ran)."""
    path = sidecar(store)
    if not path.exists():
        return {"held_out": {}, "prefix": {}}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        scores: dict[str, Any] = json.load(fh)
    return scores
