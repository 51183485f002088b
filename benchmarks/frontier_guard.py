"""Issue 18: the final choice's guards (``DarwinConfig.consensus_weight`` and
``unfinished_penalty``) evaluated on stored searches.

Records of the ``cands`` variant keep every final candidate (the seed answer and each cycle's
beams, with their steering rewards), so the guard's choice at any weight is replayed exactly
as the graph makes it (``guard_pick``), without searching again; its consensus values come
from the library's own ``consensus`` and are kept in the answers sidecar. Best-of-N with the
same guard is replayed on the pools (random N-subsets, each sample's cosine to the others in
its subset), so the report can say whether the search or the guard buys what it shows.

Each guard's setting is chosen on the tuning half and judged on the held-out half by a rule
written before its replay was read (consensus: ``choose_weight``, seventh pass; finishing:
``choose_penalty``, eighth pass; both judged by ``verdict``; docs/quality.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.frontier_stats import bon_at, bon_curve, fmt_ci, mean_ci
from benchmarks.frontier_store import answer_key

#: Weights the report replays (0: today's choice, the reward alone).
GUARD_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
#: Unfinished penalties the report replays; 10 exceeds the steering reward's whole range on
#: these records (the report prints the range), so it stands for "every finished answer first".
PENALTIES = (0.0, 0.1, 0.25, 0.5, 1.0, 10.0)
#: A guard's setting: (consensus_weight, unfinished_penalty).
Setting = tuple[float, float]
#: Every setting the report replays (and the sidecar holds held-out scores for).
SETTINGS: tuple[Setting, ...] = tuple(
    dict.fromkeys([*((w, 0.0) for w in GUARD_WEIGHTS), *((0.0, p) for p in PENALTIES)])
)
#: Random N-subsets per question and N for Best-of-N with the guard (fixed seeds: the report
#: prints the same numbers every time).
POOL_DRAWS = 200
#: The searches the guard is replayed on: today's default DARWIN at 1x, 2x, 4x.
GUARDED = {k: f"darwin:1:{k}:40:cands" for k in (1, 2, 4)}


def record_key(r: dict[str, Any]) -> str:
    return f"{r['qid']}|{r['config']}"


def cycle_consensus(cycle: Sequence[dict[str, Any]]) -> list[float | None]:
    """The library's consensus over a cycle's scored candidates (None: never scored, not a
    candidate), in candidate order."""
    from langchain_darwin.graph.guard import consensus

    scored = {str(i): c["answer"] for i, c in enumerate(cycle) if c["reward"] is not None}
    values, _ = consensus(scored)
    return [values.get(str(i)) for i in range(len(cycle))]


def cut_short(candidate: dict[str, Any], cap: int | None) -> bool:
    """The graph's ``cut_short`` on a stored candidate: it did not end by itself. Records
    from before candidates kept ``ended`` read it from their length: the frontier sets no
    stop strings or budgets, so an answer ended unless it reached the token cap ``cap``."""
    if "ended" in candidate:
        return not candidate["ended"]
    return not candidate.get("finished", True) or (cap is not None and candidate["tokens"] >= cap)


def guard_pick(
    cycles: Sequence[Sequence[dict[str, Any]]],
    agreement: Sequence[Sequence[float | None]],
    weight: float,
    penalty: float = 0.0,
    cap: int | None = None,
) -> dict[str, Any]:
    """The answer the graph returns with ``consensus_weight=weight`` and
    ``unfinished_penalty=penalty`` (answers of ``cap`` tokens were cut): per cycle the seed
    answer is offered first, then the cycle's best beam by guarded score; each replaces the
    best so far only if its score is strictly higher (``update_archive``)."""

    def score(offer: tuple[dict[str, Any], float | None]) -> float:
        cand, value = offer
        cut = penalty * cut_short(cand, cap) if penalty else 0.0
        return float(cand["reward"]) + weight * (value or 0.0) - cut

    best: dict[str, Any] | None = None
    best_score = -np.inf
    for cycle, values in zip(cycles, agreement, strict=True):
        offers = [(cycle[0], values[0])]  # the seed answer first
        beams = [
            (c, v) for c, v in zip(cycle[1:], values[1:], strict=True) if c["reward"] is not None
        ]
        if beams:
            offers.append(max(beams, key=score))
        for offer in offers:
            if offer[0]["reward"] is not None and score(offer) > best_score:
                best, best_score = offer[0], score(offer)
    if best is None:
        raise ValueError("no scored candidate in the record")
    return best


def fill(records: list[dict[str, Any]], scores: dict[str, Any], held_out: Any) -> int:
    """Add to the sidecar ``scores`` what the guard's replay needs: each ``cands`` record's
    consensus values, the pools' cosine matrices, and the held-out score (``held_out(qid,
    text)``, stored in ``scores["held_out"]``) of every answer some weight picks. Returns how
    many answers were embedded or scored."""
    from langchain_darwin.inprocess.default_reward import embed

    done = 0
    agreement = scores.setdefault("consensus", {})
    similarity = scores.setdefault("pool_similarity", {})
    for r in records:
        if "candidates" not in r:
            continue
        key = record_key(r)
        if key not in agreement:
            agreement[key] = [cycle_consensus(c) for c in r["candidates"]]
            done += sum(len(c) for c in r["candidates"])
        held = scores["held_out"].setdefault(str(r["qid"]), {})
        for weight, penalty in SETTINGS:
            pick = guard_pick(r["candidates"], agreement[key], weight, penalty, r["max_tokens"])
            text = pick["answer"]
            if answer_key(text) not in held:
                held[answer_key(text)] = held_out(r["qid"], text)
                done += 1
    for pool in (r for r in records if r["config"] == "bon"):  # joined by ``load`` already
        qid = str(pool["qid"])
        answers = pool.get("answers") or []
        if qid in similarity or not answers or None in answers:
            continue
        vectors = embed(answers)
        similarity[qid] = np.round((vectors @ vectors.T).numpy(), 4).tolist()
        done += len(answers)
    return done


def attach(records: list[dict[str, Any]], scores: dict[str, Any]) -> None:
    """Put the sidecar's consensus values and pool cosines on the records."""
    agreement = scores.get("consensus", {})
    similarity = scores.get("pool_similarity", {})
    for r in records:
        if r["config"] == "bon" and str(r["qid"]) in similarity:
            r["similarity"] = np.asarray(similarity[str(r["qid"])])
        elif record_key(r) in agreement:
            r["consensus"] = agreement[record_key(r)]
            r["answer_held_out"] = scores["held_out"].get(str(r["qid"]), {})


def pool_guard_curve(
    pool: dict[str, Any], weight: float, penalty: float = 0.0
) -> list[dict[str, float]]:
    """Best-of-N with the guards for N = 1..pool: the expected steering reward and held-out
    score of its pick (each sample's consensus taken over its own subset; a sample that did
    not end on EOS charged ``penalty``), against the same expected generated tokens as plain
    Best-of-N."""
    rewards, held = np.asarray(pool["rewards"]), np.asarray(pool["held_out"])
    cut = penalty * ~np.asarray(pool["ended"], dtype=bool) if penalty else np.zeros(len(rewards))
    sim, size = pool["similarity"], len(pool["rewards"])
    nonempty = np.asarray([bool(a.strip()) for a in pool["answers"]])
    per_token = float(np.mean(pool["tokens"]))
    rng = np.random.default_rng(int(pool["qid"]))
    curve = []
    for n in range(1, size + 1):
        draws = 1 if n == size else POOL_DRAWS
        picks = []
        for _ in range(draws):
            idx = np.sort(rng.choice(size, n, replace=False))
            agree = np.zeros(n)
            refs = nonempty[idx]
            if weight and refs.sum() > 1:
                sub = sim[np.ix_(idx, idx)] * refs[None, :]
                agree = (sub.sum(1) - np.diag(sub)) / (refs.sum() - 1) * refs
            picks.append(idx[int(np.argmax(rewards[idx] + weight * agree - cut[idx]))])
        curve.append(
            {
                "n": n,
                "generated": n * per_token,
                "reward": float(rewards[picks].mean()),
                "held_out": float(held[picks].mean()),
            }
        )
    return curve


def _diffs(
    records: list[dict[str, Any]], pools: dict[Any, dict[str, Any]], setting: Setting, k: int
) -> dict[str, list[float]]:
    """Per question: the guarded pick minus plain Best-of-N and minus guarded Best-of-N, on
    the steering reward and the held-out score, at the search's generated tokens; and
    whether the pick ended by itself."""
    out: dict[str, list[float]] = {"steer": [], "held": [], "steer_g": [], "held_g": []}
    out["ended"] = []
    for r in records:
        pool = pools.get(r["qid"])
        if r["config"] != GUARDED[k] or "consensus" not in r or pool is None:
            continue
        pick = guard_pick(r["candidates"], r["consensus"], *setting, r["max_tokens"])
        held = r["answer_held_out"].get(answer_key(pick["answer"]))
        if held is None:
            continue
        plain, guarded = pool["plain_curve"], pool["guard_curves"][setting]
        at = r["generated"]
        out["ended"].append(float(not cut_short(pick, r["max_tokens"])))
        out["steer"].append(pick["reward"] - bon_at(plain, at)[0])
        out["held"].append(held - bon_at(plain, at, "held_out")[0])
        out["steer_g"].append(pick["reward"] - bon_at(guarded, at)[0])
        out["held_g"].append(held - bon_at(guarded, at, "held_out")[0])
    return out


def steering_diffs(records: list[dict[str, Any]], weight: float, k: int) -> list[float]:
    """Per question: the steering reward of DARWIN's pick at ``weight`` (replayed on the
    ``cands`` records at ``k``x) minus plain Best-of-N at the search's generated tokens."""
    pools = {r["qid"]: r for r in records if r["config"] == "bon"}
    return [
        guard_pick(r["candidates"], r["consensus"], weight)["reward"]
        - bon_at(bon_curve(pools[r["qid"]]), r["generated"])[0]
        for r in records
        if r["config"] == GUARDED[k] and "consensus" in r and r["qid"] in pools
    ]


Table = dict[tuple[float, int], dict[str, list[float]]]


def choose_weight(table: Table) -> float:
    """The rule fixed before the searches ran, on the tuning half: the smallest weight whose
    held-out-score minus Best-of-N mean is >= 0 and steering minus Best-of-N mean > 0 at all
    three budgets; else, among weights with steering > 0 at all three, the one whose worst
    held-out-score difference is highest."""
    mean = lambda v: float(np.mean(v)) if v else -np.inf  # noqa: E731
    steering_ok = [w for w in GUARD_WEIGHTS if all(mean(table[w, k]["steer"]) > 0 for k in GUARDED)]
    for w in steering_ok:
        if all(mean(table[w, k]["held"]) >= 0 for k in GUARDED):
            return w
    if not steering_ok:
        return 0.0
    return max(steering_ok, key=lambda w: min(mean(table[w, k]["held"]) for k in GUARDED))


def choose_penalty(table: Table) -> float:
    """The finishing guard's rule, fixed before its replay was read (eighth pass), on the
    tuning half: the penalty meeting most of the target's six conditions on the means
    (steering minus Best-of-N > 0 and held-out minus Best-of-N >= 0, at each budget), ties to
    the smaller penalty."""
    mean = lambda v: float(np.mean(v)) if v else -np.inf  # noqa: E731

    def met(p: float) -> int:
        return sum(
            (mean(table[p, k]["steer"]) > 0) + (mean(table[p, k]["held"]) >= 0) for k in GUARDED
        )

    return max(PENALTIES, key=lambda p: (met(p), -p))


def verdict(table: Table, value: float) -> str:
    """The adoption test on the held-out half: steering mean > 0 at all three budgets with
    the interval above 0 at two at least, and held-out-score mean >= 0 at all three."""
    steer = [mean_ci(table[value, k]["steer"]) for k in GUARDED]
    held = [mean_ci(table[value, k]["held"]) for k in GUARDED]
    ok = (
        all(m > 0 for m, _, _ in steer)
        and sum(lo > 0 for _, lo, _ in steer) >= 2
        and all(m >= 0 for m, _, _ in held)
    )
    return "passes" if ok else "fails"


def replicated_line(records: list[dict[str, Any]]) -> str:
    """How many ``cands`` searches gave the same answer from the same tokens as the stored
    run they repeat (the default's ``softmax`` records: same knobs, question and seed)."""
    stored = {(r["qid"], r["config"]): r for r in records if r["config"] != "bon"}
    same = total = 0
    for r in records:
        if r["config"] not in GUARDED.values():
            continue
        twin = stored.get((r["qid"], r["config"].replace(":cands", ":softmax")))
        if twin is not None:
            total += 1
            same += twin["answer"] == r["answer"] and twin["generated"] == r["generated"]
    return f"    replayed searches identical to the stored run they repeat: {same} of {total}"


def agreement_line(searched: list[dict[str, Any]], pools: dict[Any, dict[str, Any]]) -> str:
    """How alike a search's final candidates are (mean consensus) against a pool's plain
    samples (mean pairwise cosine): replacement copies prefixes, so agreement among DARWIN's
    candidates partly counts copies of one lineage rather than independent answers."""
    parts = []
    for k, config in GUARDED.items():
        rs = [r for r in searched if r["config"] == config and r["qid"] in pools]
        if not rs:
            continue
        alike = [np.mean([v for v in r["consensus"][0] if v is not None]) for r in rs]
        sims = [pools[r["qid"]]["similarity"] for r in rs]
        plain = [(m.sum() - np.trace(m)) / (len(m) * (len(m) - 1)) for m in sims]
        parts.append(f"{k}x {fmt_ci(mean_ci(alike))} against {fmt_ci(mean_ci(plain))}")
    return "    mean cosine among the final candidates, DARWIN against the pool's samples: " + (
        "; ".join(parts)
    )


def _table(
    tables: dict[str | None, Table], values: Sequence[float], label: str, ended: bool
) -> list[str]:
    """Markdown rows of each half's differences at each of a guard's values, against plain
    and against equally guarded Best-of-N (and the pick's share that ended by itself)."""
    lines = []
    for against, suffix in (("plain Best-of-N", ""), ("Best-of-N with the same guard", "_g")):
        extra = " | pick ended 1x | 2x | 4x" if ended and not suffix else ""
        lines += [
            f"against {against}:",
            f"| half | {label} | n | steering 1x | steering 2x | steering 4x "
            f"| held-out 1x | held-out 2x | held-out 4x{extra} |",
            "|---|---|---|---|---|---|---|---|---|" + "---|" * (3 if extra else 0),
        ]
        for half, table in tables.items():
            for v in values:
                n = min(len(table[v, k]["steer"]) for k in GUARDED)
                cells = [
                    fmt_ci(mean_ci(table[v, k][score + suffix]))
                    for score in ("steer", "held")
                    for k in GUARDED
                ]
                if extra:
                    cells += [f"{np.mean(table[v, k]['ended']):.2f}" for k in GUARDED]
                lines.append(f"| {half or 'all'} | {v:g} | {n} | " + " | ".join(cells) + " |")
    return lines


def section(records: list[dict[str, Any]]) -> list[str]:
    """(h) the consensus guard and (i) the finishing guard, each at every value against plain
    and guarded Best-of-N, per half, with the value its rule picks on the tuning half and the
    verdict on the held-out half."""
    pools = {
        r["qid"]: r
        for r in records
        if r["config"] == "bon" and "held_out" in r and "similarity" in r and "answers" in r
    }
    searched = [r for r in records if "consensus" in r]
    if not pools or not searched:
        return []
    for pool in pools.values():
        pool["plain_curve"] = bon_curve(pool)
        pool["guard_curves"] = {st: pool_guard_curve(pool, *st) for st in SETTINGS}

    def tables(setting_of: Any, values: Sequence[float]) -> dict[str | None, Table]:
        return {
            half: {
                (v, k): _diffs(
                    [r for r in searched if half is None or r["half"] == half],
                    pools,
                    setting_of(v),
                    k,
                )
                for v in values
                for k in GUARDED
            }
            for half in ("tune", "held_out", None)
        }

    consensus = tables(lambda w: (w, 0.0), GUARD_WEIGHTS)
    lines = [
        "(h) the consensus guard replayed on today's default (darwin:1:k:40:cands): the pick at "
        "each weight minus Best-of-N at equal generated tokens",
        *_table(consensus, GUARD_WEIGHTS, "weight", ended=False),
        replicated_line(records),
        agreement_line(searched, pools),
    ]
    weight = choose_weight(consensus["tune"])
    lines.append(
        f"    rule: weight {weight:g} (tuning half); on the held-out half it "
        f"{verdict(consensus['held_out'], weight)}"
    )
    finishing = tables(lambda p: (0.0, p), PENALTIES)
    rewards = [c["reward"] for r in searched for cyc in r["candidates"] for c in cyc]
    span = max(x for x in rewards if x is not None) - min(x for x in rewards if x is not None)
    lines += [
        "",
        "(i) the finishing guard replayed on the same searches: the pick at each unfinished "
        "penalty minus Best-of-N at equal generated tokens (an answer at the token cap was cut)",
        *_table(finishing, PENALTIES, "penalty", ended=True),
        f"    steering reward's range over these candidates: {span:.3f} "
        f"(a penalty of {PENALTIES[-1]:g} puts every finished answer first)",
    ]
    penalty = choose_penalty(finishing["tune"])
    lines.append(
        f"    rule: penalty {penalty:g} (tuning half); on the held-out half it "
        f"{verdict(finishing['held_out'], penalty)}"
    )
    return lines
