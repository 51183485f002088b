"""The frontier's report, from the store alone: Best-of-N's curve from each question's pool,
every searched configuration against it at equal generated tokens, the search's own
diagnostics of issue 18 item 3 (partial against final rewards, mutation, beams by kind, knob
pairs), the plot, and the machine-readable last line. The held-out score's diagnosis is
``frontier_held_out``, the guards' replay ``frontier_guard``, the arithmetic
``frontier_stats``, reading the store ``frontier_store``."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.frontier_stats import bon_at, bon_curve, expected_best, fmt_ci, mean_ci, spearman
from benchmarks.frontier_store import (
    RECORDS_CANDIDATES,
    VARIANTS,
    attach_answer_scores,
    load,
    load_scores,
    variant_of,
)

#: Budgets of the last line, in multiples of Best-of-5's beams (DARWIN MC x nb).
MULTIPLES = (1, 2, 4)


def family(config: str) -> str:
    """A curve of the plot: the config without its nb, spelled out, so a method's budgets
    bought with beams per instruction (the last line's 1x, 2x, 4x) form one curve, and more
    mutation cycles (MC) a curve of their own."""
    method, mc, _, m, *variant = config.split(":")
    return f"{method} MC={mc} m={m}" + (f" {variant[0]}" if variant else "")


def beams_multiple(config: str) -> int:
    _, mc, nb, *_ = config.split(":")
    return int(mc) * int(nb)


def config_rows(records: list[dict[str, Any]], half: str | None) -> list[dict[str, Any]]:
    """Per searched configuration: reward, compute, and the paired difference to
    Best-of-N at the same question's generated tokens."""
    pools = {r["qid"]: r for r in records if r["config"] == "bon"}
    curves = {q: bon_curve(p) for q, p in pools.items()}
    by_config: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["config"] != "bon" and r["qid"] in pools and (half is None or r["half"] == half):
            by_config[r["config"]].append(r)
    rows = []
    for config, rs in sorted(by_config.items()):
        diffs, clamped = [], 0
        for r in rs:
            ref, out = bon_at(curves[r["qid"]], r["generated"])
            diffs.append(r["final_reward"] - ref)
            clamped += out
        rows.append(
            {
                "config": config,
                "n": len(rs),
                "reward": mean_ci([r["final_reward"] for r in rs]),
                "diff": mean_ci(diffs),
                "clamped": clamped,
                "generated": statistics.fmean(r["generated"] for r in rs),
                "positions": statistics.fmean(r["prefilled"] + r["generated"] for r in rs),
                "reward_answers": statistics.fmean(r["reward_answers"] for r in rs),
                "wall_s": statistics.fmean(r["wall_s"] for r in rs),
                "reward_share": sum(r["reward_s"] for r in rs) / sum(r["wall_s"] for r in rs),
                "seed_wins": sum(r["winner"] == "seed" for r in rs) / len(rs),
                "ended": sum(r["answer_ended"] for r in rs) / len(rs),
            }
        )
    return rows


def bon_rows(records: list[dict[str, Any]], half: str | None, ns: Sequence[int]) -> list[str]:
    """Best-of-N rows from the pools; "ended on EOS" is the share of Best-of-N's picks (the
    expectation over N-subsets, as for the reward), comparable with a search's winner."""
    pools = [r for r in records if r["config"] == "bon" and (half is None or r["half"] == half)]
    if not pools:
        return []
    curves = [bon_curve(p) for p in pools]
    lines = []
    for n in ns:
        if n > min(len(c) for c in curves):
            continue
        pts = [c[n - 1] for c in curves]
        gen, pos, wall = (
            statistics.fmean(p[k] for p in pts) for k in ("generated", "positions", "wall_s")
        )
        ended = statistics.fmean(expected_best(p["rewards"], n, p["ended"]) for p in pools)
        lines.append(
            f"| Best-of-{n} (pool) | {len(pts)} "
            f"| {fmt_ci(mean_ci([p['reward'] for p in pts]))} | — | {gen:.0f} "
            f"| {pos:.0f} | {n} | {wall:.1f} | — | — | {ended:.2f} (pick) |"
        )
    return lines


def table(records: list[dict[str, Any]], half: str | None) -> list[str]:
    lines = [
        "| method (method:MC:nb:m) | n | steering reward | minus Best-of-N at equal tokens "
        "| generated tokens | positions computed | answers scored | wall s | reward share "
        "of time | winner = seed answer | winner ended on EOS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += bon_rows(records, half, (1, 2, 4, 5, 8, 10, 16, 20, 32))
    for row in config_rows(records, half):
        clamp = f" ({row['clamped']} past the pool)" if row["clamped"] else ""
        lines.append(
            f"| {row['config']} | {row['n']} | {fmt_ci(row['reward'])} "
            f"| {fmt_ci(row['diff'])}{clamp} "
            f"| {row['generated']:.0f} | {row['positions']:.0f} | {row['reward_answers']:.0f} "
            f"| {row['wall_s']:.1f} | {row['reward_share']:.2f} | {row['seed_wins']:.2f} "
            f"| {row['ended']:.2f} |"
        )
    return lines


def default_knobs(config: str) -> bool:
    """Whether a config's variant leaves every knob at today's ``DarwinConfig`` default (a
    record's name says what it ran with: records run before a default changed carry the
    variant that names their knobs, e.g. ``topk``). A replicate that records candidates
    (``cands``) is not one: the last line and the pairings keep the runs it repeats."""
    from langchain_darwin.config import DarwinConfig

    variant = variant_of(config)
    if variant in RECORDS_CANDIDATES:  # a later replicate, read against the runs it repeats
        return False
    fields = DarwinConfig.model_fields
    return all(fields[k].default == v for k, v in VARIANTS[variant].items())


def last_line(records: list[dict[str, Any]], consensus_weight: float | None = None) -> str:
    """``frontier n=Q darwin_minus_bon@1x=.. @2x=.. @4x=.. lo@..``: DARWIN (default knobs,
    m=40) at 1x, 2x, 4x Best-of-5's beams, minus Best-of-N interpolated at DARWIN's own
    generated tokens per question; ``lo`` the interval's lower bound; ``n`` the fewest
    questions behind any of them. A budget is bought with beams per instruction (MC = 1
    preferred: one cycle, nb = 1, 2, 4), so more cycles (MC = 2, 3) never change this line.
    When today's default guards its final choice (``consensus_weight`` > 0), DARWIN's numbers
    are that choice replayed on the ``cands`` records (``frontier_guard``); ``consensus_weight``
    names another weight."""
    from benchmarks import frontier_guard
    from langchain_darwin.config import DarwinConfig

    rows = {r["config"]: r for r in config_rows(records, None)}
    counts = []  # n: the fewest questions behind any of the three (a capped run may differ)
    diffs, los = [], []
    weight = consensus_weight
    if weight is None:
        weight = DarwinConfig.model_fields["consensus_weight"].default
    for k in MULTIPLES:
        guarded = frontier_guard.steering_diffs(records, weight, k) if weight else []
        if guarded:  # today's default guards its final choice: replayed on the cands records
            m, lo, _ = mean_ci(guarded)
            counts.append(len(guarded))
            diffs.append(f"darwin_minus_bon@{k}x={m:.4f}")
            los.append(f"lo@{k}x={lo:.4f}")
            continue
        names = [
            c
            for c in rows
            if c.startswith("darwin:")
            and c.split(":")[3] == "40"
            and beams_multiple(c) == k
            and default_knobs(c)
        ]
        names.sort(key=lambda c: int(c.split(":")[1]))  # MC=1 first
        if names:
            m, lo, _ = rows[names[0]]["diff"]
            counts.append(rows[names[0]]["n"])
            diffs.append(f"darwin_minus_bon@{k}x={m:.4f}")
            los.append(f"lo@{k}x={lo:.4f}")
        else:
            diffs.append(f"darwin_minus_bon@{k}x=na")
            los.append(f"lo@{k}x=na")
    return f"frontier n={min(counts, default=0)} " + " ".join(diffs + los)


def held_out_table(records: list[dict[str, Any]], half: str | None) -> list[str]:
    """The held-out score (reverse likelihood) of what each method returns: Best-of-N's pick
    from random N-subsets of the pool (exact expectation), and each search's answer against
    Best-of-N's pick at the same question's generated tokens."""
    pools = {
        r["qid"]: r
        for r in records
        if r["config"] == "bon" and "held_out" in r and (half is None or r["half"] == half)
    }
    if not pools:
        return []
    curves = {q: bon_curve(p) for q, p in pools.items()}
    lines = [
        "| method | n | held-out score | minus Best-of-N at equal tokens | steering reward "
        "| minus Best-of-N at equal steering reward |",
        "|---|---|---|---|---|---|",
    ]
    size = min(len(c) for c in curves.values())
    for n in (1, 2, 4, 5, 8, 10, 16, 20, 24, 32):
        if n <= size:
            held = mean_ci([c[n - 1]["held_out"] for c in curves.values()])
            steer = mean_ci([c[n - 1]["reward"] for c in curves.values()])
            lines.append(
                f"| Best-of-{n} (pool) | {len(curves)} | {fmt_ci(held)} | — | {fmt_ci(steer)} | — |"
            )
    by_config: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["config"] != "bon" and r["qid"] in pools and "held_out" in r:
            by_config[r["config"]].append(r)
    for config, rs in sorted(by_config.items()):
        diffs = [
            r["held_out"] - bon_at(curves[r["qid"]], r["generated"], "held_out")[0] for r in rs
        ]
        # the trade-off: Best-of-N's pick where its expected reward equals the search's
        at_reward = [
            bon_at(curves[r["qid"]], r["final_reward"], "held_out", axis="reward") for r in rs
        ]
        same = [r["held_out"] - held for r, (held, _) in zip(rs, at_reward, strict=True)]
        past = sum(out for _, out in at_reward)
        lines.append(
            f"| {config} | {len(rs)} | {fmt_ci(mean_ci([r['held_out'] for r in rs]))} "
            f"| {fmt_ci(mean_ci(diffs))} | {fmt_ci(mean_ci([r['final_reward'] for r in rs]))} "
            f"| {fmt_ci(mean_ci(same))}" + (f" ({past} past the pool)" if past else "") + " |"
        )
    return lines


# -- diagnostics (issue 18 item 3) --------------------------------------------------------------


def prefix_vs_final(records: list[dict[str, Any]], period: int = 40) -> list[str]:
    """(a) on plain samples: Spearman, per question, of the pool's rewards after p periods of
    ``period`` tokens (a sample that ended earlier keeps its final reward, as a search sees
    it) with their final rewards."""
    per_cut: dict[int, list[float]] = defaultdict(list)
    running: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # cut -> [still going, all]
    for r in records:
        if r["config"] != "bon" or "prefix" not in r:
            continue
        finals = [scores[-1] for scores in r["prefix"]]
        longest = max(len(scores) for scores in r["prefix"]) - 1
        for cut in range(longest):
            going = [cut < len(scores) - 1 for scores in r["prefix"]]
            partial = [s[cut] if g else s[-1] for s, g in zip(r["prefix"], going, strict=True)]
            running[cut + 1][0] += sum(going)
            running[cut + 1][1] += len(going)
            rho = spearman(partial, finals)
            if rho is not None:
                per_cut[cut + 1].append(rho)
    if not per_cut:
        return []
    lines = [
        "(a) Spearman of partial vs final reward, Best-of-N pool samples, per question (a sample"
        " that has ended counts with its final reward; 'still going': the share that has not):"
    ]
    for cut, rhos in sorted(per_cut.items()):
        going, total = running[cut]
        lines.append(
            f"    after {cut * period} tokens: {fmt_ci(mean_ci(rhos))} over {len(rhos)} questions,"
            f" {going / total:.0%} still going"
        )
    return lines


def partial_vs_final(records: list[dict[str, Any]]) -> list[str]:
    """(a) Spearman of each beam's reward after period p with its final reward, on searches
    without replacement (a slot keeps its own answer, so its partial and final rewards are
    the same answer's)."""
    per_period: dict[int, list[float]] = defaultdict(list)
    for r in records:
        if not r["config"].startswith("mutate_best_of_n"):
            continue
        for cycle in r["period_scores"]:
            final = cycle[-1]
            for p, rewards in enumerate(cycle[:-1]):
                rho = spearman(rewards, final)
                if rho is not None:
                    per_period[p + 1].append(rho)
    if not per_period:
        return ["(a) no run without replacement (mutate_best_of_n) in the records"]
    m = records[0].get("max_tokens")
    lines = [f"(a) Spearman of partial vs final reward, beams of mutate_best_of_n ({m} tokens):"]
    for p, rhos in sorted(per_period.items()):
        lines.append(f"    after period {p}: {fmt_ci(mean_ci(rhos))} over {len(rhos)} cycles")
    return lines


def distinct_finals(records: list[dict[str, Any]]) -> list[str]:
    """Share of a cycle's final beams whose reward no other final beam of that cycle has:
    a copy the reward cannot tell from its donor is a beam spent twice on one candidate."""
    shares: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r["config"] == "bon":
            continue
        for cycle in r["period_scores"]:
            final = [round(x, 9) for x in cycle[-1] if x is not None]
            if final:
                shares[r["config"]].append(sum(final.count(x) == 1 for x in final) / len(final))
    lines = [
        "(b') final beams with a reward no other beam of their cycle has (distinct candidates):"
    ]
    for config, values in sorted(shares.items()):
        lines.append(f"    {config}: {fmt_ci(mean_ci(values))} over {len(values)} cycles")
    return lines


def mutation_stats(records: list[dict[str, Any]]) -> list[str]:
    """(c) share of real rewrites, and the winner's instruction kind."""
    rewrites = sum(r["mutation_stats"]["rewrites"] for r in records if "mutation_stats" in r)
    fallbacks = sum(r["mutation_stats"]["fallbacks"] for r in records if "mutation_stats" in r)
    hints = sum(r["mutation_stats"].get("hints", 0) for r in records if "mutation_stats" in r)
    kinds: dict[str, int] = defaultdict(int)
    for r in records:
        if r["config"].startswith("darwin:") or r["config"].startswith("mutate"):
            kinds[(r.get("summary") or {}).get("kind") or "none"] += 1
    lines = []
    if rewrites + fallbacks:
        lines.append(
            f"(c) real rewrites {rewrites}/{rewrites + fallbacks} "
            f"({rewrites / (rewrites + fallbacks):.0%}); winners by kind (mutating methods): "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
            + (f"; hinted instructions {hints}" if hints else "")
        )
    return lines


def beams_by_kind(records: list[dict[str, Any]]) -> list[str]:
    """(c) Each beam's final reward by the kind of its instruction, minus the mean of its
    cycle's beams, averaged per question (a question searched by two configs of a method
    counts once), interval over questions, per method; records from before ``cycle_beams``
    was kept have none. ``mutate_best_of_n`` never replaces, so its beams measure the
    instruction alone; a DARWIN slot may end on a donor's copied answer."""
    diffs: dict[str, dict[str, dict[Any, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for r in records:
        for beams in r.get("cycle_beams") or []:
            scored = [b for b in beams if b["reward"] is not None]
            if len({b["kind"] for b in scored}) < 2:
                continue  # one kind only: nothing to set against
            mean = statistics.fmean(b["reward"] for b in scored)
            for b in scored:
                diffs[r["config"].split(":")[0]][b["kind"]][r["qid"]].append(b["reward"] - mean)
    lines = []
    for method, kinds in sorted(diffs.items()):
        parts = []
        for kind, by_question in sorted(kinds.items()):
            means = [statistics.fmean(v) for v in by_question.values()]
            parts.append(f"{kind} {fmt_ci(mean_ci(means))} ({len(means)})")
        lines.append(f"    {method}: " + "; ".join(parts))
    if lines:
        lines.insert(
            0, "(c) final reward of beams by instruction kind minus their cycle's mean (questions):"
        )
    return lines


#: Searches by config name, then by question id.
ByConfig = dict[str, dict[Any, dict[str, Any]]]


def _by_config(records: list[dict[str, Any]]) -> ByConfig:
    by_config: ByConfig = defaultdict(dict)
    for r in records:
        if r["config"] != "bon":
            by_config[r["config"]][r["qid"]] = r
    return by_config


def _paired_halves(runs: dict[Any, dict[str, Any]], ref: dict[Any, dict[str, Any]]) -> str:
    """``tune (n): steering .., held-out ..; held_out (n): ..``: one config minus another on
    the questions both ran, per half. The held-out score's difference counts the questions
    whose two answers both have one."""
    parts = []
    for half in ("tune", "held_out"):
        qids = [q for q, r in runs.items() if q in ref and r["half"] == half]
        if not qids:
            continue
        steer = [runs[q]["final_reward"] - ref[q]["final_reward"] for q in qids]
        held = [
            runs[q]["held_out"] - ref[q]["held_out"]
            for q in qids
            if "held_out" in runs[q] and "held_out" in ref[q]
        ]
        part = f"{half} ({len(qids)}): steering {fmt_ci(mean_ci(steer))}"
        if held:
            part += f", held-out {fmt_ci(mean_ci(held))} ({len(held)})"
        parts.append(part)
    return "; ".join(parts)


def _default_in(by_config: ByConfig, cell: list[str]) -> str | None:
    """The run of ``cell`` (method, MC, nb, m) with today's default knobs: the name without a
    variant first, then by name, a stable choice; None if there is none."""
    names = sorted(
        (c for c in by_config if c.split(":")[:4] == cell and default_knobs(c)),
        key=lambda c: (c.count(":"), c),
    )
    return names[0] if names else None


def _pair_lines(
    records: list[dict[str, Any]], title: str, reference: Callable[[str, ByConfig], str | None]
) -> list[str]:
    """``title``, then each config minus ``reference(config, by_config)`` paired by question,
    per half (configs without a reference, or sharing no question with it, have no line)."""
    by_config = _by_config(records)
    lines = []
    for config in sorted(by_config):
        ref = reference(config, by_config)
        parts = _paired_halves(by_config[config], by_config[ref]) if ref in by_config else ""
        if parts:
            lines.append(f"    {config} minus {ref}: {parts}")
    return [title, *lines] if lines else []


def knob_pairs(records: list[dict[str, Any]]) -> list[str]:
    """(4) Each variant against the default knobs at the same method:MC:nb:m, paired by
    question, per half: knobs are chosen on the tuning half and reported on the other."""

    def reference(config: str, by_config: ByConfig) -> str | None:
        return None if default_knobs(config) else _default_in(by_config, config.split(":")[:4])

    title = "(4) knobs against today's defaults, paired by question, per half:"
    return _pair_lines(records, title, reference)


def against_darwin(records: list[dict[str, Any]]) -> list[str]:
    """(4) Every other method, and DARWIN with more cycles, against default DARWIN bought with
    the same beams (MC x nb) through nb at MC = 1, m = 40, paired by question, per half: what
    replacement alone (``sample_replace``), mutation alone (``mutate_best_of_n``) or more
    cycles buy against the search as it ships. DARWIN at MC = 1 (its variants and periods)
    is in ``knob_pairs`` and ``period_pairs``; a setting with no such DARWIN run (MC = 3 at
    nb = 1: no nb = 3 run) has no line and is read against Best-of-N in the table."""

    def reference(config: str, by_config: ByConfig) -> str | None:
        if config.split(":")[:2] == ["darwin", "1"]:
            return None
        return _default_in(by_config, ["darwin", "1", str(beams_multiple(config)), "40"])

    title = "(4) each setting against default DARWIN with as many beams, per half:"
    return _pair_lines(records, title, reference)


def period_pairs(records: list[dict[str, Any]]) -> list[str]:
    """(4) A longer replacement period against m = 40 with every other setting the same
    (method, MC, nb, variant), paired by question, per half."""

    def reference(config: str, by_config: ByConfig) -> str | None:
        fields = config.split(":")
        return None if fields[3] == "40" else ":".join([*fields[:3], "40", *fields[4:]])

    title = "(4) replacement period m against m = 40, paired by question, per half:"
    return _pair_lines(records, title, reference)


def _question_counts(points: list[dict[str, Any]]) -> str:
    """``40`` or ``16-40``: how many questions stand behind a curve's points."""
    counts = sorted({p["n"] for p in points})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def plot(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    curves = [bon_curve(r) for r in records if r["config"] == "bon"]
    if curves:
        size = min(len(c) for c in curves)
        x = [statistics.fmean(c[n]["generated"] for c in curves) for n in range(size)]
        cis = [mean_ci([c[n]["reward"] for c in curves]) for n in range(size)]
        ax.plot(x, [c[0] for c in cis], "k-", label=f"Best-of-N (N=1..{size}, pool subsets)")
        ax.fill_between(x, [c[1] for c in cis], [c[2] for c in cis], color="k", alpha=0.12)
    rows = config_rows(records, None)
    fams: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        fams[family(row["config"])].append(row)
    colours = plt.get_cmap("tab20").colors  # type: ignore[attr-defined]
    markers = "osD^v<>ph*"
    for i, (fam, pts) in enumerate(sorted(fams.items())):  # no two share colour and marker
        pts.sort(key=lambda r: r["generated"])
        y = [p["reward"][0] for p in pts]
        err = [
            [p["reward"][0] - p["reward"][1] for p in pts],
            [p["reward"][2] - p["reward"][0] for p in pts],
        ]
        err = [[0 if math.isnan(e) else e for e in side] for side in err]
        ax.errorbar(
            [p["generated"] for p in pts],
            y,
            yerr=err,
            fmt=f"{markers[i % len(markers)]}-",
            color=colours[i % len(colours)],
            capsize=3,
            label=f"{fam} ({_question_counts(pts)} q)",
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())  # log-axis minor labels overlap
    ax.set_xlabel("policy tokens generated per question (log)")
    ax.set_ylabel("steering reward (mean, 95% CI over questions)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(store: Path, plot_path: Path) -> None:
    from benchmarks import frontier_guard, frontier_held_out

    everything = load(store)
    scores = load_scores(store)
    attach_answer_scores(everything, scores)
    frontier_guard.attach(everything, scores)
    # replicates kept for the guard's replay repeat searches already stored: counted once
    records = [r for r in everything if variant_of(r["config"]) not in RECORDS_CANDIDATES]
    halves = sorted({r["half"] for r in records})
    print(f"## All questions (n={len({r['qid'] for r in records})})")
    print("\n".join(table(records, None)))
    for half in halves:
        print(f"\n## {half} half (n={len({r['qid'] for r in records if r['half'] == half})})")
        print("\n".join(table(records, half)))
    print()
    for half in (None, *halves):
        lines = held_out_table(records, half)
        if lines:
            label = "all questions" if half is None else f"{half} half"
            print(f"\n## Held-out score (reverse likelihood), {label}")
            print("\n".join(lines))
    print()
    print("\n".join(prefix_vs_final(records)))
    print("\n".join(partial_vs_final(records)))
    print("\n".join(distinct_finals(records)))
    print("\n".join(mutation_stats(records)))
    print("\n".join(beams_by_kind(records)))
    print("\n".join(frontier_held_out.held_out_links(records)))
    print("\n".join(frontier_held_out.agreement_link(records)))
    print("\n".join(frontier_held_out.kind_against_bon(records)))
    print("\n".join(frontier_held_out.rewrite_drift(records)))
    print("\n".join(frontier_held_out.overrates(records)))
    print("\n".join(knob_pairs(records)))
    print("\n".join(period_pairs(records)))
    print("\n".join(against_darwin(records)))
    print("\n".join(frontier_guard.section(everything)))
    plot(records, plot_path)
    print(f"plot: {plot_path}")
    print(last_line(everything))
