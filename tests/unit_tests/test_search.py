"""The search service (search.py): one way to build, run, stream and cancel a search, with
both machines readied before any decoding."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from langchain_darwin import DarwinChatModel
from langchain_darwin.config import DarwinConfig
from langchain_darwin.policy.base import EngineError, RowRequest, RowResult, Sampling
from langchain_darwin.rewards import CallableReward, RewardModel
from langchain_darwin.search import SearchService
from tests.fake_engine import FakeEngine, FakeSession

CONVERSATION = [{"role": "user", "content": "How do I boil an egg?"}]
CONFIG = DarwinConfig(max_tokens=24, replacement_period=8, seed=3)


def vowels(conversation: Any, answer: str) -> float:
    return float(sum(ch in "aeiou" for ch in answer))


class CountingEngine(FakeEngine):
    """The fake engine, counting the rows it was asked to decode."""

    def __init__(self) -> None:
        self.rows_decoded = 0
        self.sessions: list[FakeSession] = []
        self._lock = threading.Lock()

    def new_session(self, reuse_cache: bool = True) -> FakeSession:
        session = super().new_session(reuse_cache)
        self.sessions.append(session)
        return session

    def extend(
        self,
        session: FakeSession,
        rows: Mapping[str, RowRequest],
        sampling: Sampling,
        *,
        commit: bool = True,
    ) -> Any:
        with self._lock:
            self.rows_decoded += len(rows)
        return super().extend(session, rows, sampling, commit=commit)


class UnloadableReward(RewardModel):
    def ready(self) -> None:
        raise OSError("reward weights are not here: pass a folder that holds them")

    def score(self, conversation: Any, answers: Sequence[str]) -> list[float]:
        raise AssertionError("never scored: ready() failed first")


def test_run_and_stream_give_the_same_seeded_search() -> None:
    engine = CountingEngine()
    service = SearchService(engine, CallableReward(vowels))
    ran = service.run(service.prepare(CONVERSATION, CONFIG))
    events = list(service.stream(service.prepare(CONVERSATION, CONFIG)))
    assert not engine.sessions[-1].cancelled.is_set()  # a finished stream is not cancelled
    modes = {mode for mode, _ in events}
    assert modes == {"custom", "values"}
    final = [chunk for mode, chunk in events if mode == "values"][-1]
    assert final["answer"] == ran["answer"] and final["final_reward"] == ran["final_reward"]
    assert final["usage"] == ran["usage"]


def test_a_reward_that_cannot_load_fails_before_any_decoding() -> None:
    engine = CountingEngine()
    service = SearchService(engine, UnloadableReward())
    with pytest.raises(OSError, match="pass a folder"):
        service.prepare(CONVERSATION, CONFIG)
    assert engine.rows_decoded == 0 and engine.sessions == []


def test_an_unknown_reward_model_fails_at_once_with_what_to_fix(tiny_dirs) -> None:
    llm = DarwinChatModel(
        model=str(tiny_dirs[0]), reward_model="no-such-org/no-such-reward-model", max_tokens=8
    )
    with pytest.raises(OSError, match="could not load reward model 'no-such-org/no-such"):
        llm.invoke([HumanMessage("hi")])


def test_closing_a_stream_early_cancels_its_search() -> None:
    engine = CountingEngine()
    service = SearchService(engine, CallableReward(vowels))
    stream = service.stream(service.prepare(CONVERSATION, CONFIG.merged(iterations=2)))
    next(stream)
    stream.close()
    assert engine.sessions[-1].cancelled.is_set()


def test_an_engine_object_cannot_be_switched_per_call() -> None:
    service = SearchService(FakeEngine(), CallableReward(vowels))
    with pytest.raises(ValueError, match="cannot switch to model 'other'"):
        service.prepare(CONVERSATION, CONFIG, model="other")


def test_tools_join_the_prompt_and_the_reward() -> None:
    from langchain_darwin.tools import ToolSetup

    spec = {
        "name": "boil",
        "description": "Boil an egg",
        "parameters": {"type": "object", "properties": {"minutes": {"type": "integer"}}},
    }
    tools = ToolSetup.of([spec], None)
    assert tools is not None
    service = SearchService(FakeEngine(), CallableReward(vowels))
    search = service.prepare(CONVERSATION, CONFIG, tools=tools)
    system = search.graph_input["conversation"][0]
    assert system["role"] == "system" and "boil" in system["content"]
    assert "ToolCallValidity" in repr(search.context.reward)
    search.close()


class ScriptedMutator(FakeEngine):
    """The fake engine, except that mutation rows reply with fixed rewrites in turn: a
    statement, then a request, like SmolLM2-135M's mix."""

    REPLIES = (
        "Boiling an egg is easy, and the water does the work.",
        "Explain how long to boil an egg in water for a firm yolk.",
    )

    def extend(
        self,
        session: FakeSession,
        rows: Mapping[str, RowRequest],
        sampling: Sampling,
        *,
        commit: bool = True,
    ) -> Any:
        out = super().extend(session, rows, sampling, commit=commit)
        for i, key in enumerate(k for k in rows if k.startswith("mutation")):
            out.rows[key] = self.reply(self.REPLIES[i % len(self.REPLIES)])
        return out

    def reply(self, text: str) -> RowResult:
        """A mutation row's result: the rewrite, ended by its line break."""
        return RowResult(self.tokenize(text + "\n"), True)


@pytest.mark.parametrize("must_ask", [False, True])
def test_rewrites_must_ask_reaches_the_mutate_node(must_ask: bool) -> None:
    service = SearchService(ScriptedMutator(), CallableReward(vowels))
    ran = service.run(service.prepare(CONVERSATION, CONFIG.merged(rewrites_must_ask=must_ask)))
    statement, request = ScriptedMutator.REPLIES
    egg = CONVERSATION[0]["content"]
    kept = [request] if must_ask else [statement, request]  # the replies repeat: deduplicated
    assert ran["mutated_instructions"] == [kept + [egg] * (5 - len(kept))]
    stats = {"rewrites": len(kept), "fallbacks": 5 - len(kept), "original": 0}
    assert ran["mutation_stats"] == stats


def test_each_cycle_records_its_beams_instruction_kind_and_final_reward() -> None:
    """``cycle_beams`` (item 3c's beams by instruction kind): one entry per beam per cycle,
    the kind of the slot's instruction and the reward the cycle ended with."""
    config = CONFIG.merged(iterations=2, beams_per_instruction=2)
    service = SearchService(ScriptedMutator(), CallableReward(vowels))
    ran = service.run(service.prepare(CONVERSATION, config))
    assert len(ran["cycle_beams"]) == 2
    for cycle, beams in enumerate(ran["cycle_beams"]):
        assert len(beams) == config.n_beams == 10
        assert {b["kind"] for b in beams} <= {"rewrite", "fallback", "original"}
        finals = [p for p in ran["period_scores"] if p["cycle"] == cycle][-1]["rewards"]
        assert [b["reward"] for b in beams] == finals
        assert max(b["reward"] for b in beams) == ran["cycle_rewards"][cycle]
    # cycle 0 rewrites the question itself: two distinct replies, then fallbacks to it; each
    # instruction's kind, in order, on both of its beams
    egg = CONVERSATION[0]["content"]
    kinds = ["fallback" if i == egg else "rewrite" for i in ran["mutated_instructions"][0]]
    assert kinds.count("rewrite") == 2
    assert [b["kind"] for b in ran["cycle_beams"][0]] == [k for k in kinds for _ in range(2)]


class WindowedMutator(ScriptedMutator):
    """The scripted mutator with a context window it enforces as the served engine does, and
    a record of every mutation row's context length and budget."""

    def __init__(self, window: int | None) -> None:
        self.context_window = window
        self.mutation_rows: list[tuple[int, int]] = []

    def extend(
        self,
        session: FakeSession,
        rows: Mapping[str, RowRequest],
        sampling: Sampling,
        *,
        commit: bool = True,
    ) -> Any:
        for key, req in rows.items():
            if self.context_window and len(req.tokens) + req.max_new > self.context_window:
                raise EngineError(f"row {key!r} is over the context window")
            if key.startswith("mutation"):
                self.mutation_rows.append((len(req.tokens), req.max_new))
        return super().extend(session, rows, sampling, commit=commit)


def run_windowed(window: int | None, config: DarwinConfig) -> tuple[WindowedMutator, Any]:
    engine = WindowedMutator(window)
    service = SearchService(engine, CallableReward(vowels))
    return engine, service.run(service.prepare(CONVERSATION, config))


def test_a_rewrite_of_a_rewrite_gets_the_budget_of_the_users_instruction() -> None:
    """Budgets follow the user's instruction, so rewrites cannot grow every cycle (a search
    at MC = 2 on a long MT-Bench question outgrew a 2,048-token server this way)."""
    engine, _ = run_windowed(None, CONFIG.merged(iterations=3, seed=0))
    contexts = {context for context, _ in engine.mutation_rows}
    assert len(contexts) > 1  # a later cycle rewrote a (longer) rewrite, not the question
    egg = CONVERSATION[0]["content"]
    assert {budget for _, budget in engine.mutation_rows} == {2 * len(egg.encode()) + 16}


def test_a_rewrites_budget_stops_at_the_context_window() -> None:
    first, _ = run_windowed(None, CONFIG)
    prompt = first.mutation_rows[0][0]
    engine, ran = run_windowed(prompt + 10, CONFIG)  # room for 10 of the 58 tokens
    assert {budget for _, budget in engine.mutation_rows} == {10} and ran["answer"]
    engine, ran = run_windowed(prompt - 1, CONFIG)  # not even the mutation prompt fits
    assert engine.mutation_rows == [] and ran["mutation_stats"]["fallbacks"] == 5


def test_an_instruction_too_long_for_its_answer_falls_back_to_the_picked_one() -> None:
    egg = CONVERSATION[0]["content"]
    window = len(FakeEngine().render(CONVERSATION)) + CONFIG.max_tokens  # the question just fits
    _, ran = run_windowed(window, CONFIG.merged(mutation_source="hints"))
    assert ran["mutated_instructions"] == [[egg] * 5] and ran["answer"]
    assert ran["mutation_stats"] == {"rewrites": 0, "fallbacks": 5, "original": 0}


class CutMutator(ScriptedMutator):
    """The scripted mutator, except that every request reply uses its whole budget before a
    line break: a rewrite cut mid-sentence (it still passes the rewrite checks)."""

    def reply(self, text: str) -> RowResult:
        if text == ScriptedMutator.REPLIES[1]:
            return RowResult(self.tokenize(text), False)
        return super().reply(text)


def test_a_rewrite_cut_by_its_budget_falls_back() -> None:
    service = SearchService(CutMutator(), CallableReward(vowels))
    ran = service.run(service.prepare(CONVERSATION, CONFIG))
    statement, _ = ScriptedMutator.REPLIES
    egg = CONVERSATION[0]["content"]
    assert ran["mutated_instructions"] == [[statement] + [egg] * 4]
    assert ran["mutation_stats"] == {"rewrites": 1, "fallbacks": 4, "original": 0}


def test_a_policy_rewrite_too_long_for_its_answer_falls_back_in_every_cycle() -> None:
    """The window check covers the policy's rewrites at every cycle, not only hints: both
    scripted rewrites are longer than the question, and only the question leaves room for a
    ``max_tokens`` answer."""
    window = 1200
    room = window - len(FakeEngine().render(CONVERSATION))
    config = CONFIG.merged(iterations=2, max_tokens=room, replacement_period=room // 2)
    engine, ran = run_windowed(window, config)
    egg = CONVERSATION[0]["content"]
    assert len(engine.mutation_rows) == 10  # the policy was asked in both cycles
    assert ran["mutated_instructions"] == [[egg] * 5, [egg] * 5] and ran["answer"]
    assert ran["mutation_stats"] == {"rewrites": 0, "fallbacks": 10, "original": 0}
