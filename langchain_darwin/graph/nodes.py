"""The steps of DARWIN, one node each: seed, mutate, decode_chunk, score, select_replace,
update_archive, finish. Nodes read and return plain data; models and caches come from the
run context. The loops live in ``builder.py``."""

from __future__ import annotations

import copy
import math
import random
import statistics
import time
import warnings
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Overwrite

from langchain_darwin import archive as archive_ops
from langchain_darwin.config import DarwinConfig
from langchain_darwin.graph.draws import keyed_rng, keyed_seed
from langchain_darwin.graph.guard import consensus, proximity
from langchain_darwin.graph.progress import emit, preview
from langchain_darwin.graph.state import (
    Beam,
    Best,
    CycleBeam,
    DarwinContext,
    DarwinState,
    new_beam,
)
from langchain_darwin.mutation import (
    FALLBACK,
    HINT,
    ORIGINAL,
    hinted_instructions,
    mutation_prompt,
    select_instructions,
)
from langchain_darwin.policy.base import EngineError, ExtendOutcome, RowRequest, Sampling
from langchain_darwin.policy.text import answer_text
from langchain_darwin.rewards.base import RewardError
from langchain_darwin.usage import (
    CONSENSUS,
    Usage,
    add_usage,
    charge,
    empty_usage,
    generated_tokens,
    reward_charge,
)

SEED_ROW = "seed"
#: Ceiling on a mutation reply: twice the user's instruction's tokens plus this slack. A reply
#: also ends at its first line break (a rewrite is one line).
MUTATION_SLACK = 16


def config_of(state: DarwinState) -> DarwinConfig:
    return DarwinConfig.model_validate(state.get("config") or {})


def with_instruction(conversation: list[dict[str, str]], instruction: str) -> list[dict[str, str]]:
    """The conversation with its last user turn replaced: earlier turns stay as context."""
    out = [dict(m) for m in conversation]
    out[-1]["content"] = instruction
    return out


def _sampling(cfg: DarwinConfig, state: DarwinState, *purpose: object) -> Sampling:
    seed = keyed_seed(state["seed_value"], state.get("cycle", 0), state.get("period", 0), *purpose)
    return Sampling(cfg.temperature, cfg.top_k, seed, ignore_eos=cfg.ignore_eos)


def _extend(
    ctx: DarwinContext,
    state: DarwinState,
    step: str,
    rows: dict[str, RowRequest],
    sampling: Sampling,
    commit: bool = True,
) -> ExtendOutcome:
    """The policy extends ``rows``; an engine failure is re-raised naming where it happened,
    so a user of a served policy knows which period of which cycle the server failed in."""
    try:
        return ctx.policy.extend(ctx.session, rows, sampling, commit=commit)
    except EngineError as err:
        raise EngineError(
            f"the policy engine failed in {step} (cycle {state.get('cycle', 0)}, period "
            f"{state.get('period', 0)}): {err}"
        ) from err


def _grow(beam: Beam, new: list[int], ended: bool, cfg: DarwinConfig, ctx: DarwinContext) -> Beam:
    beam = copy.deepcopy(beam)
    beam["answer"].extend(new)
    if new:
        if beam["lineage"] and beam["lineage"][-1][0] == beam["instruction"]:
            beam["lineage"][-1][1] += len(new)
        else:
            beam["lineage"].append([beam["instruction"], len(new)])
    stopped = bool(cfg.stop) and answer_text(ctx.policy, beam["answer"], None) != answer_text(
        ctx.policy, beam["answer"], cfg.stop
    )
    beam["ended"] = ended or stopped
    beam["finished"] = beam["ended"] or len(beam["answer"]) >= cfg.max_tokens
    return beam


def cut_short(beam: Beam) -> bool:
    """The answer did not end by itself (EOS or a stop string): the token cap or a budget cut
    it, so a user reads it stopping mid-thought. (A beam stored before ``ended`` existed
    counts as cut.)"""
    return not beam.get("ended", False)


def _budget_reason(state: DarwinState, cfg: DarwinConfig) -> str | None:
    if cfg.max_time is not None and time.time() - state["started_at"] >= cfg.max_time:
        return "max_time"
    if cfg.max_generated_tokens is not None:
        if generated_tokens(state["usage"]) >= cfg.max_generated_tokens:
            return "max_generated_tokens"
    return None


# -- nodes ---------------------------------------------------------------------------


def seed(state: DarwinState, runtime: Runtime[DarwinContext]) -> dict[str, Any]:
    """Set up the run: the seed answer's row and the archive holding the original instruction."""
    cfg = config_of(state)
    conversation = state["conversation"]
    prompt = runtime.context.policy.render(conversation)
    window = runtime.context.policy.context_window
    if window is not None and len(prompt) + cfg.max_tokens > window:
        raise ValueError(
            f"the prompt is {len(prompt)} tokens and max_tokens={cfg.max_tokens}, more than the "
            f"policy's context window of {window} tokens; shorten the conversation or lower "
            "max_tokens"
        )
    seed_value = cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(2**31)
    seed_beam = new_beam(prompt, -1)
    if not cfg.seed_answer:  # nothing to decode or score: the budget goes to the beams
        seed_beam["finished"], seed_beam["scored"] = True, 0
    # Overwrite: the records restart with every run, also on a thread that ran before.
    return {
        "config": cfg.model_dump(),
        "seed_value": seed_value,
        "started_at": time.time(),
        "cycle": 0,
        "period": 0,
        "archive": [{"instruction": conversation[-1]["content"], "reward": None}],
        "archive_history": Overwrite([]),
        "seed": seed_beam,
        "beams": [],
        "instructions": [],
        "instruction_kinds": [],
        "wins": [],
        "best": None,
        "stopped": None,
        "cycle_rewards": Overwrite([]),
        "period_scores": Overwrite([]),
        "cycle_beams": Overwrite([]),
        "mutated_instructions": Overwrite([]),
        "mutation_stats": {"rewrites": 0, "fallbacks": 0, "original": 0},
        "usage": Overwrite(empty_usage()),
    }


def _mutation_budget(ctx: DarwinContext, state: DarwinState, prompt: list[int]) -> int:
    """Tokens a rewrite may take: twice the user's instruction (not the picked one: a rewrite
    of a rewrite would double every cycle, and by the third outgrow the context), and no more
    than fits after the mutation prompt in the policy's context window (0: nothing fits)."""
    user = state["conversation"][-1]["content"]
    budget = 2 * len(ctx.policy.tokenize(user)) + MUTATION_SLACK
    window = ctx.policy.context_window
    return budget if window is None else max(0, min(budget, window - len(prompt)))


def mutate(state: DarwinState, runtime: Runtime[DarwinContext]) -> dict[str, Any]:
    """Pick an archived instruction and have the policy rewrite it, one rewrite per sampled
    sequence, the unfinished seed answer decoding in the same batch (``mutation_source=
    "hints"``: no policy call, the picked instruction plus a hint per slot, and the seed
    answer decodes with the beams)."""
    cfg, ctx = config_of(state), runtime.context
    usage: Usage = {}
    picked = archive_ops.pick(
        state["archive"], keyed_rng(state["seed_value"], state["cycle"], "pick")
    )
    instruction = state["archive"][picked]["instruction"]
    seed_beam = state["seed"]
    updates: dict[str, Any] = {}
    kept = 1 if cfg.mutation and cfg.keep_picked else 0  # slot 0 keeps the picked instruction
    if cfg.mutation and cfg.mutation_source == "hints":
        rng = keyed_rng(state["seed_value"], state["cycle"], "hints")
        instructions, kinds = hinted_instructions(instruction, cfg.n_instructions - kept, rng)
        instructions, kinds = [instruction] * kept + instructions, [ORIGINAL] * kept + kinds
    elif cfg.mutation:
        prompt = ctx.policy.render([{"role": "user", "content": mutation_prompt(instruction)}])
        budget = _mutation_budget(ctx, state, prompt)
        line_end = ctx.policy.line_break_ids
        rows = {
            f"mutation{i}": RowRequest(prompt, budget, stop_ids=line_end)
            for i in range(cfg.n_instructions - kept if budget > 0 else 0)
        }
        if not seed_beam["finished"]:
            rows[SEED_ROW] = RowRequest(
                seed_beam["prompt"] + seed_beam["answer"],
                cfg.max_tokens - len(seed_beam["answer"]),
                background=True,
            )
        outcome = (
            _extend(ctx, state, "mutate", rows, _sampling(cfg, state, "mutate"))
            if rows
            else ExtendOutcome()
        )
        # a reply that used its whole budget before a line break or the end is cut mid-rewrite:
        # it may still pass the checks, but it is not what the policy meant to ask
        replies = [
            ctx.policy.detokenize(outcome.rows[k].new_tokens)
            for k in rows
            if k != SEED_ROW and outcome.rows[k].ended
        ]
        instructions, kinds = select_instructions(
            replies, instruction, cfg.n_instructions - kept, cfg.rewrites_must_ask
        )
        instructions, kinds = [instruction] * kept + instructions, [ORIGINAL] * kept + kinds
        usage = charge("mutation", outcome, (k for k in rows if k != SEED_ROW))
        if SEED_ROW in rows:
            usage = add_usage(usage, charge("seed", outcome, [SEED_ROW]))
            res = outcome.rows[SEED_ROW]
            updates["seed"] = _grow(seed_beam, res.new_tokens, res.ended, cfg, ctx)
    else:
        instructions, kinds = [instruction] * cfg.n_instructions, [ORIGINAL] * cfg.n_instructions
    prompts = [ctx.policy.render(with_instruction(state["conversation"], t)) for t in instructions]
    window = ctx.policy.context_window
    too_long = [window is not None and len(p) + cfg.max_tokens > window for p in prompts]
    if any(too_long):  # a rewrite too long for its answer to fit falls back to the picked one
        picked_prompt = ctx.policy.render(with_instruction(state["conversation"], instruction))
        for index in (i for i, over in enumerate(too_long) if over):
            instructions[index], kinds[index], prompts[index] = instruction, FALLBACK, picked_prompt
    stats = dict(state["mutation_stats"])
    stats["rewrites"] += kinds.count("rewrite")
    stats["fallbacks"] += kinds.count("fallback")
    stats["original"] += kinds.count(ORIGINAL)
    if HINT in kinds:
        stats["hints"] = stats.get("hints", 0) + kinds.count(HINT)
    beams: list[Beam] = [
        new_beam(beam_prompt, index)
        for index, beam_prompt in enumerate(prompts)
        for _ in range(cfg.beams_per_instruction)
    ]
    emit(
        runtime,
        "mutate",
        cycle=state["cycle"],
        picked=instruction,
        instructions=instructions,
        kinds=kinds,
    )
    return {
        **updates,
        "picked": picked,
        "instructions": instructions,
        "instruction_kinds": kinds,
        "beams": beams,
        "wins": [0.0] * len(instructions),
        "period": 0,
        "mutated_instructions": [instructions],
        "mutation_stats": stats,
        "usage": usage,
    }


def decode_chunk(state: DarwinState, runtime: Runtime[DarwinContext]) -> dict[str, Any]:
    """Every unfinished beam decodes ``replacement_period`` more tokens under its own
    instruction; the seed answer, if unfinished, decodes alongside."""
    cfg, ctx = config_of(state), runtime.context
    reason = _budget_reason(state, cfg)
    beams = [copy.deepcopy(b) for b in state["beams"]]
    seed_beam = copy.deepcopy(state["seed"])
    if reason is not None:
        for beam in [*beams, seed_beam]:
            beam["finished"] = True
        emit(runtime, "budget", reason=reason)
        return {"beams": beams, "seed": seed_beam, "stopped": reason}
    rows: dict[str, RowRequest] = {}
    for i, beam in enumerate(beams):
        if not beam["finished"]:
            room = min(cfg.replacement_period, cfg.max_tokens - len(beam["answer"]))
            rows[f"beam{i}"] = RowRequest(beam["prompt"] + beam["answer"], room)
    if not seed_beam["finished"]:
        room = min(cfg.replacement_period, cfg.max_tokens - len(seed_beam["answer"]))
        rows[SEED_ROW] = RowRequest(seed_beam["prompt"] + seed_beam["answer"], room)
    outcome = _extend(ctx, state, "decode_chunk", rows, _sampling(cfg, state, "decode"))
    for key, res in outcome.rows.items():
        if key == SEED_ROW:
            seed_beam = _grow(seed_beam, res.new_tokens, res.ended, cfg, ctx)
        else:
            i = int(key.removeprefix("beam"))
            beams[i] = _grow(beams[i], res.new_tokens, res.ended, cfg, ctx)
    usage = add_usage(
        charge("beams", outcome, (k for k in rows if k != SEED_ROW)),
        charge("seed", outcome, [SEED_ROW]),
    )
    emit(
        runtime,
        "decode_chunk",
        cycle=state["cycle"],
        period=state["period"] + 1,
        alive=sum(not b["finished"] for b in beams),
        generated_tokens=generated_tokens(add_usage(state["usage"], usage)),
    )
    return {"beams": beams, "seed": seed_beam, "period": state["period"] + 1, "usage": usage}


def _as_float(value: object, who: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise RewardError(f"the reward for {who} is {value!r}, not a number") from err


def _finite(value: float, who: str) -> float:
    if math.isfinite(value):
        return value
    warnings.warn(f"reward for {who} is {value}; it ranks last", RuntimeWarning, stacklevel=3)
    return -math.inf


def score(state: DarwinState, runtime: Runtime[DarwinContext]) -> dict[str, Any]:
    """Score, against the original conversation, every answer that changed since its last
    score (with optional look-ahead tokens that are decoded for scoring only)."""
    cfg, ctx = config_of(state), runtime.context
    usage: Usage = {}
    beams = [copy.deepcopy(b) for b in state["beams"]]
    seed_beam = copy.deepcopy(state["seed"])
    pending: dict[str, Beam] = {f"beam{i}": b for i, b in enumerate(beams)}
    pending[SEED_ROW] = seed_beam
    pending = {k: b for k, b in pending.items() if b["scored"] != len(b["answer"])}
    tails: dict[str, list[int]] = {}
    if cfg.look_ahead and pending:
        rows = {
            k: RowRequest(b["prompt"] + b["answer"], cfg.look_ahead)
            for k, b in pending.items()
            if not b["finished"]
        }
        if rows:
            sampling = _sampling(cfg, state, "look_ahead")
            outcome = _extend(ctx, state, "score (look-ahead)", rows, sampling, commit=False)
            tails = {k: r.new_tokens for k, r in outcome.rows.items()}
            usage = charge("look_ahead", outcome, rows)
    if pending:
        texts = [
            answer_text(ctx.policy, b["answer"] + tails.get(k, []), cfg.stop)
            for k, b in pending.items()
        ]
        try:
            # the call reports its own cost: the reward may be shared with other searches
            scored = ctx.reward.score_with_usage(state["conversation"], texts)
            rewards = list(scored.scores)
        except Exception as err:
            raise RewardError(
                f"the reward model failed while scoring {len(texts)} answers "
                f"({', '.join(pending)}) in cycle {state['cycle']}, period {state['period']}: "
                f"{type(err).__name__}: {err}"
            ) from err
        if len(rewards) != len(texts):
            raise RewardError(
                f"reward model returned {len(rewards)} scores for {len(texts)} answers; "
                "it must return exactly one float per answer"
            )
        usage = add_usage(usage, reward_charge(scored.positions, len(texts), scored.unparsed))
        for (key, beam), value in zip(pending.items(), rewards, strict=True):
            beam["reward"] = _finite(_as_float(value, key), key)
            beam["scored"] = len(beam["answer"])
    period_scores = []
    if beams:
        beam_rewards = [b["reward"] for b in beams]
        period_scores.append(
            {"cycle": state["cycle"], "period": state["period"], "rewards": beam_rewards}
        )
    leader = max([*beams, seed_beam], key=_rank_key)
    emit(
        runtime,
        "score",
        cycle=state["cycle"],
        period=state["period"],
        rewards=[b["reward"] for b in beams],
        seed_reward=seed_beam["reward"],
        best=leader["reward"],
        leader=preview(answer_text(ctx.policy, leader["answer"], cfg.stop)),
    )
    return {"beams": beams, "seed": seed_beam, "usage": usage, "period_scores": period_scores}


def _rank_key(beam: Beam) -> float:
    return -math.inf if beam["reward"] is None else beam["reward"]


def _selection_weights(beams: list[Beam], donors: list[int], temperature: float) -> list[float]:
    """Softmax weights of ``donors`` by reward, the reward in standard deviations of this
    period's finite rewards (so one temperature fits any reward's scale); an unscored or
    non-finite reward weighs 0, equal rewards weigh the same."""
    finite = [r for b in beams if (r := _rank_key(b)) > -math.inf]
    if not finite:
        return [0.0] * len(donors)
    spread, top = statistics.pstdev(finite) * temperature, max(finite)
    weights = []
    for i in donors:
        r = _rank_key(beams[i])
        if r == -math.inf:
            weights.append(0.0)
        else:
            weights.append(math.exp((r - top) / spread) if spread > 0 else 1.0)
    return weights


def select_replace(state: DarwinState, runtime: Runtime[DarwinContext]) -> dict[str, Any]:
    """Keep the top ``survivors`` beams; every other unfinished beam takes a copy of a random
    survivor's answer tokens and keeps its own instruction (``selection="softmax"``: of a
    beam drawn by softmax of reward among all that may donate, itself included). Finished
    beams are never overwritten and, unless ``finished_donors``, never donate. Wins go to
    the instructions that wrote the survivors' tokens."""
    cfg = config_of(state)
    beams = [copy.deepcopy(b) for b in state["beams"]]
    if not beams:
        return {}
    order = sorted(range(len(beams)), key=lambda i: _rank_key(beams[i]), reverse=True)
    top = order[: cfg.survivors]
    wins = list(state["wins"])
    for i in top:
        lineage = beams[i]["lineage"] or [[beams[i]["instruction"], 1]]
        total = sum(n for _, n in lineage) or 1
        for instruction, n in lineage:
            wins[instruction] += n / total
    replaced: list[list[int]] = []
    may_donate = [i for i in order if cfg.finished_donors or not beams[i]["finished"]]
    donors = [i for i in top if i in may_donate] if cfg.selection == "top_k" else may_donate
    weights = _selection_weights(beams, donors, cfg.selection_temperature)
    horizon = cfg.replacement_horizon
    acting = horizon is None or state["period"] * cfg.replacement_period < horizon
    if cfg.replacement and acting and donors:
        rng = keyed_rng(state["seed_value"], state["cycle"], state["period"], "donor")
        for i in order[cfg.survivors :]:
            if beams[i]["finished"]:
                continue
            if cfg.selection == "top_k":
                j = rng.choice(donors)
            elif any(weights):
                j = rng.choices(donors, weights)[0]
            else:
                continue
            if j == i:  # softmax: a beam may draw its own answer and keep it
                continue
            donor = state["beams"][j]
            beams[i].update(
                {
                    "answer": list(donor["answer"]),
                    "lineage": copy.deepcopy(donor["lineage"]),
                    "reward": donor["reward"],
                    "scored": donor["scored"],
                    "finished": donor["finished"],
                    "ended": donor.get("ended", False),
                }
            )
            replaced.append([i, j])
    emit(
        runtime,
        "select_replace",
        cycle=state["cycle"],
        period=state["period"],
        top=top,
        replaced=replaced,
    )
    return {"beams": beams, "wins": wins}


def _offer(
    best: Best | None,
    answer: list[int],
    reward: float | None,
    score: float,
    source: str,
    written_by: tuple[str, str | None] = ("seed", None),
) -> Best | None:
    """``answer`` becomes the best if its score (reward, plus the guard's term when on) is
    higher; a reward of None (never scored) never wins. ``written_by``: (kind, instruction)."""
    if reward is None or (best is not None and not score > best["score"]):
        return best
    kind, instruction = written_by
    return Best(
        answer=list(answer),
        reward=reward,
        score=score,
        source=source,
        kind=kind,
        instruction=instruction,
    )


def _guarded_scores(
    state: DarwinState, ctx: DarwinContext, cfg: DarwinConfig, candidates: dict[str, Beam]
) -> tuple[dict[str, float], Usage]:
    """Each scored candidate's reward, plus ``proximity_weight`` times its proximity to the
    policy under the original conversation and ``consensus_weight`` times its agreement with
    the other scored candidates (see ``guard.py``), minus ``unfinished_penalty`` if it was cut
    short; the reward alone when all three are off."""
    scored = {k: b for k, b in candidates.items() if b["reward"] is not None}
    scores = {k: float(b["reward"]) for k, b in scored.items()}  # type: ignore[arg-type]
    usage: Usage = {}
    if cfg.proximity_weight and scored:
        answers = {k: b["answer"] for k, b in scored.items()}
        means, positions = proximity(ctx.policy, ctx.session, state["seed"]["prompt"], answers)
        scores = {k: r + cfg.proximity_weight * means[k] for k, r in scores.items()}
        usage = {"guard": {"prefilled": positions, "decoded": 0}}
    if cfg.consensus_weight and len(scored) > 1:
        texts = {k: ctx.policy.detokenize(b["answer"]) for k, b in scored.items()}
        agreement, read = consensus(texts)
        scores = {k: r + cfg.consensus_weight * agreement[k] for k, r in scores.items()}
        usage = add_usage(usage, {CONSENSUS: {"positions": read, "answers": len(texts)}})
    if cfg.unfinished_penalty:
        scores = {k: r - cfg.unfinished_penalty * cut_short(scored[k]) for k, r in scores.items()}
    return scores, usage


def update_archive(state: DarwinState, runtime: Runtime[DarwinContext]) -> dict[str, Any]:
    """End of a mutation cycle: the best answer competes with the best so far, and the
    instructions that won most often enter the archive if they beat the picked one."""
    cfg, ctx = config_of(state), runtime.context
    beams, cycle = state["beams"], state["cycle"]
    archive = [e.copy() for e in state["archive"]]
    best = state["best"]
    seed_beam = state["seed"]
    if cycle == 0 and archive and archive[0]["reward"] is None:
        archive[0]["reward"] = seed_beam["reward"]
    candidates = {SEED_ROW: seed_beam, **{f"beam{i}": b for i, b in enumerate(beams)}}
    scores, usage = _guarded_scores(state, ctx, cfg, candidates)
    best = _offer(
        best, seed_beam["answer"], seed_beam["reward"], scores.get(SEED_ROW, -math.inf), "seed"
    )
    cycle_rewards: list[float | None] = []
    history: list[list[archive_ops.ArchiveEntry]] = []
    cycle_beams: list[list[CycleBeam]] = []
    if beams:
        kinds = state.get("instruction_kinds") or []
        kind_of = [
            kinds[b["instruction"]] if b["instruction"] < len(kinds) else "original" for b in beams
        ]
        cycle_beams.append(
            [CycleBeam(kind=k, reward=b["reward"]) for k, b in zip(kind_of, beams, strict=True)]
        )
        i = max(range(len(beams)), key=lambda k: scores.get(f"beam{k}", -math.inf))
        source = f"cycle {cycle} beam {i}"
        written_by = (kind_of[i], state["instructions"][beams[i]["instruction"]])
        best = _offer(
            best,
            beams[i]["answer"],
            beams[i]["reward"],
            scores.get(f"beam{i}", 0),
            source,
            written_by,
        )
        # the cycle's best reward (None: a budget ended it before any score)
        cycle_rewards.append(max(beams, key=_rank_key)["reward"])
        own: dict[int, float] = {}
        for beam in beams:
            own[beam["instruction"]] = max(own.get(beam["instruction"], -math.inf), _rank_key(beam))
        wins = state["wins"]
        leaders = sorted(
            range(len(wins)), key=lambda k: (wins[k], own.get(k, -math.inf)), reverse=True
        )
        winners = [(state["instructions"][k], own[k]) for k in leaders[:2] if k in own]
        archive = archive_ops.update(archive, state["picked"], winners)
        history.append(archive)
    emit(
        runtime, "update_archive", cycle=cycle, archive=archive, best_reward=best and best["reward"]
    )
    return {
        "archive": archive,
        "archive_history": history,
        "best": best,
        "cycle_rewards": cycle_rewards,
        "cycle_beams": cycle_beams,
        "cycle": cycle + 1,
        "usage": usage,
    }


def finish(state: DarwinState, runtime: Runtime[DarwinContext]) -> dict[str, Any]:
    """The best answer over the seed and every cycle, as text."""
    cfg, ctx = config_of(state), runtime.context
    best = state["best"]
    seed_answer = answer_text(ctx.policy, state["seed"]["answer"], cfg.stop)
    if best is None:  # nothing was scored: a budget ended the search before the first score
        return {"answer": seed_answer, "final_reward": None, "seed_answer": seed_answer}
    return {
        "answer": answer_text(ctx.policy, best["answer"], cfg.stop),
        "final_reward": best["reward"],
        "seed_answer": seed_answer,
    }
