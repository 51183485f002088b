"""The graph's wiring and the select_replace / update_archive rules, node by node."""

from __future__ import annotations

import copy
import math

import pytest
from langgraph.runtime import Runtime

from langchain_darwin import build_darwin_graph
from langchain_darwin.config import DarwinConfig
from langchain_darwin.graph import nodes
from langchain_darwin.graph.builder import after_select_replace, after_update_archive
from langchain_darwin.graph.state import Beam, DarwinState, new_beam

RUNTIME = Runtime(context=None)


def beam(instruction: int, answer: list[int], reward: float | None, finished: bool = False) -> Beam:
    b = new_beam([100 + instruction], instruction)
    b.update(
        answer=list(answer),
        reward=reward,
        finished=finished,
        scored=len(answer),
        lineage=[[instruction, len(answer)]] if answer else [],
    )
    return b


def state_with(beams: list[Beam], **config: object) -> DarwinState:
    """A state whose donor rule is the paper's top-k unless a test names another: these
    tests pin that rule (softmax selection, the default, has its own tests below)."""
    return DarwinState(
        config=DarwinConfig(**{"selection": "top_k", **config}).model_dump(),
        seed_value=7,
        cycle=0,
        period=1,
        beams=beams,
        wins=[0.0] * 5,
        instructions=[f"instruction {i}" for i in range(5)],
        seed=beam(-1, [9], 0.0, finished=True),
    )


def test_graph_has_the_method_nodes_and_both_cycle_edges() -> None:
    graph = build_darwin_graph().compile().get_graph()
    names = set(graph.nodes)
    assert {"mutate", "decode_chunk", "score", "select_replace"} <= names
    edges = {(e.source, e.target) for e in graph.edges}
    assert ("select_replace", "decode_chunk") in edges  # replacement-period loop
    assert ("update_archive", "mutate") in edges  # mutation-cycle loop
    assert ("mutate", "decode_chunk") in edges and ("decode_chunk", "score") in edges
    assert ("score", "select_replace") in edges
    conditional = {(e.source, e.target) for e in graph.edges if e.conditional}
    assert {("select_replace", "decode_chunk"), ("update_archive", "mutate")} <= conditional


def test_survivors_are_kept_and_the_rest_copy_a_survivor_but_keep_their_instruction() -> None:
    beams = [beam(i, [i] * 4, float(10 - i)) for i in range(5)]
    state = state_with(beams)
    out = nodes.select_replace(state, RUNTIME)
    new = out["beams"]
    for i in range(3):
        assert new[i] == beams[i]  # survivors untouched
    for i in (3, 4):
        donor = new[i]["answer"][0]
        assert donor in (0, 1, 2) and new[i]["answer"] == beams[donor]["answer"]
        assert new[i]["instruction"] == i and new[i]["prompt"] == beams[i]["prompt"]
        assert new[i]["lineage"] == beams[donor]["lineage"]  # credit follows the tokens
        assert new[i]["reward"] == beams[donor]["reward"]  # same text, same original conversation
    assert state["beams"] == beams  # the input state is not mutated


def test_finished_beams_are_never_overwritten_and_not_donors_by_default() -> None:
    beams = [
        beam(0, [0] * 3, 10.0, finished=True),  # best, finished: survives, but donates nothing
        beam(1, [1] * 4, 9.0),
        beam(2, [2] * 4, 8.0),
        beam(3, [3] * 2, 1.0, finished=True),  # loser, finished: never overwritten
        beam(4, [4] * 4, 0.0),
    ]
    for period in range(20):
        state = state_with(copy.deepcopy(beams))
        state["period"] = period
        new = nodes.select_replace(state, RUNTIME)["beams"]
        assert new[3] == beams[3]
        assert new[4]["answer"] in (beams[1]["answer"], beams[2]["answer"])


def test_reference_rule_lets_finished_beams_donate() -> None:
    beams = [beam(0, [0] * 3, 10.0, finished=True), beam(1, [1] * 4, 9.0)]
    beams += [beam(i, [i] * 4, 1.0 - i) for i in range(2, 5)]
    donors = set()
    for period in range(30):
        state = state_with(copy.deepcopy(beams), finished_donors=True)
        state["period"] = period
        new = nodes.select_replace(state, RUNTIME)["beams"]
        donors.add(new[4]["answer"][0])
        if new[4]["answer"][0] == 0:
            assert new[4]["finished"]  # a copy of a finished answer is finished
    assert 0 in donors


def test_no_replacement_configuration_keeps_every_beam() -> None:
    beams = [beam(i, [i] * 4, float(10 - i)) for i in range(5)]
    out = nodes.select_replace(state_with(beams, replacement=False), RUNTIME)
    assert out["beams"] == beams


def test_wins_are_credited_through_lineage() -> None:
    beams = [beam(i, [i] * 4, float(10 - i)) for i in range(5)]
    beams[0]["lineage"] = [[3, 2], [0, 2]]  # tokens written half by instruction 3
    out = nodes.select_replace(state_with(beams), RUNTIME)
    assert out["wins"] == [0.5, 1.0, 1.0, 0.5, 0.0]


def test_unscored_or_nan_rewards_rank_last() -> None:
    beams = [beam(i, [i] * 4, float(i)) for i in range(5)]
    beams[4]["reward"] = -math.inf  # what score() stores for NaN / inf
    beams[3]["reward"] = None
    out = nodes.select_replace(state_with(beams), RUNTIME)
    assert out["beams"][2]["answer"] == beams[2]["answer"]  # 2, 1, 0 survive
    assert out["beams"][4]["answer"] != beams[4]["answer"]


def test_replacement_loop_runs_while_any_beam_or_the_seed_is_unfinished() -> None:
    done = [beam(i, [i], 1.0, finished=True) for i in range(5)]
    state = state_with(done)
    assert after_select_replace(state) == "update_archive"
    state["seed"] = beam(-1, [1], 0.0, finished=False)
    assert after_select_replace(state) == "decode_chunk"
    state["beams"][2] = beam(2, [2], 1.0, finished=False)
    state["seed"]["finished"] = True
    assert after_select_replace(state) == "decode_chunk"


@pytest.mark.parametrize(
    ("cycle", "iterations", "stopped", "route"),
    [
        (1, 1, None, "finish"),
        (1, 3, None, "mutate"),
        (3, 3, None, "finish"),
        (1, 3, "max_time", "finish"),
    ],
)
def test_mutation_cycle_loop(cycle: int, iterations: int, stopped: str | None, route: str) -> None:
    state = state_with([], iterations=iterations)
    state.update(cycle=cycle, stopped=stopped)
    assert after_update_archive(state) == route


def test_update_archive_adds_the_most_winning_instructions_that_beat_the_picked() -> None:
    beams = [beam(i, [i] * 4, float(i), finished=True) for i in range(5)]
    state = state_with(beams)
    state.update(
        archive=[{"instruction": "orig", "reward": None}],
        archive_history=[],
        picked=0,
        wins=[0.0, 0.0, 1.0, 3.0, 2.0],
        best=None,
        cycle_rewards=[],
        seed=beam(-1, [7], 2.5, finished=True),
    )
    out = nodes.update_archive(state, RUNTIME)
    # seed reward 2.5 becomes the original's reward; winners 3 (3.0) and 4 (4.0) beat it
    assert out["archive"] == [
        {"instruction": "instruction 3", "reward": 3.0},
        {"instruction": "instruction 4", "reward": 4.0},
    ]
    assert out["best"] == {
        "answer": [4] * 4,
        "reward": 4.0,
        "score": 4.0,
        "source": "cycle 0 beam 4",
        "kind": "original",  # the state names no kinds: instructions count as the original
        "instruction": "instruction 4",
    }
    assert out["cycle_rewards"] == [4.0] and out["cycle"] == 1


def test_the_seed_answer_stays_best_when_no_beam_beats_it() -> None:
    beams = [beam(i, [i] * 4, float(i), finished=True) for i in range(5)]
    state = state_with(beams)
    state.update(
        archive=[{"instruction": "orig", "reward": None}],
        archive_history=[],
        picked=0,
        best=None,
        cycle_rewards=[],
        seed=beam(-1, [7], 9.0, finished=True),
    )
    out = nodes.update_archive(state, RUNTIME)
    assert out["best"]["source"] == "seed" and out["best"]["reward"] == 9.0
    assert out["archive"] == [{"instruction": "orig", "reward": 9.0}]


def test_softmax_selection_keeps_survivors_and_copies_in_proportion_to_reward() -> None:
    """Particle-filter resampling: the top ``survivors`` stay; a replaced beam draws among all
    unfinished beams (itself included) by softmax of its standardised reward."""
    rewards = [4.0, 3.0, 2.0, 1.0, 0.0]  # standard deviation sqrt(2)
    drawn: dict[int, int] = {}
    for period in range(400):
        beams = [beam(i, [i] * 4, rewards[i]) for i in range(5)]
        state = state_with(beams, selection="softmax", selection_temperature=1.0)
        state["period"] = period
        new = nodes.select_replace(state, RUNTIME)["beams"]
        for i in range(3):
            assert new[i]["answer"] == [i] * 4  # survivors untouched
        drawn[new[4]["answer"][0]] = drawn.get(new[4]["answer"][0], 0) + 1
    weights = [math.exp((r - 4.0) / math.sqrt(2)) for r in rewards]
    expected = [w / sum(weights) for w in weights]
    for donor, p in enumerate(expected):
        assert abs(drawn.get(donor, 0) / 400 - p) < 0.07, (donor, drawn, expected)


def test_softmax_temperature_moves_from_copying_the_best_to_keeping_every_answer() -> None:
    rewards = [4.0, 3.0, 2.0, 1.0, 0.0]

    def kept_own(temperature: float) -> int:
        kept = 0
        for period in range(400):
            beams = [beam(i, [i] * 4, rewards[i]) for i in range(5)]
            state = state_with(beams, selection="softmax", selection_temperature=temperature)
            state["period"] = period
            kept += nodes.select_replace(state, RUNTIME)["beams"][4]["answer"] == [4] * 4
        return kept

    assert kept_own(0.05) == 0  # cold: the best is always copied
    assert 50 < kept_own(100.0) < 110  # hot: uniform over five (80 of 400), itself included


def test_softmax_never_draws_unscored_or_finished_donors() -> None:
    beams = [beam(i, [i] * 4, float(10 - i)) for i in range(5)]
    beams[0]["finished"] = True
    beams[1]["reward"] = None
    for period in range(50):
        state = state_with(copy.deepcopy(beams), selection="softmax", survivors=1)
        state["period"] = period
        new = nodes.select_replace(state, RUNTIME)["beams"]
        assert all(b["answer"][0] not in (0, 1) for b in new[1:])


@pytest.mark.parametrize(("period", "replaces"), [(1, True), (2, True), (3, False), (5, False)])
def test_no_replacement_past_the_horizon(period: int, replaces: bool) -> None:
    """With m = 40 and a horizon of 120 tokens, periods ending at 40 and 80 tokens replace,
    those at 120 and later do not (wins are still credited)."""
    beams = [beam(i, [i] * 4, float(10 - i)) for i in range(5)]
    state = state_with(beams, replacement_period=40, replacement_horizon=120)
    state["period"] = period
    out = nodes.select_replace(state, RUNTIME)
    assert (out["beams"] != beams) is replaces
    assert out["wins"] == [1.0, 1.0, 1.0, 0.0, 0.0]
