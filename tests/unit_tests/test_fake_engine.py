"""The graph on a third engine (tests/fake_engine.py): nodes speak only the protocol, so a
pure-Python engine runs whole searches, without torch, and the guard can be checked exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from langchain_darwin.config import DarwinConfig
from langchain_darwin.graph.builder import compiled_graph, recursion_limit
from langchain_darwin.graph.state import DarwinContext
from langchain_darwin.rewards import CallableReward
from tests.fake_engine import LIKELY, FakeEngine, token_logprob

ROOT = Path(__file__).resolve().parents[2]
CONVERSATION = [{"role": "user", "content": "How do I boil an egg?"}]


def rare_share(conversation: Any, answer: str) -> float:
    """A reward that overrates what the policy finds unlikely: the share of rare bytes."""
    return sum(ch not in LIKELY for ch in answer) / max(len(answer), 1)


def search(**knobs: Any) -> dict[str, Any]:
    config = DarwinConfig(max_tokens=24, replacement_period=8, **knobs)
    engine = FakeEngine()
    context = DarwinContext(engine, CallableReward(rare_share), engine.new_session())
    return compiled_graph().invoke(
        {"conversation": CONVERSATION, "config": config.model_dump()},
        {"recursion_limit": recursion_limit(config)},
        context=context,
    )


def mean_logprob(text: str) -> float:
    tokens = text.encode()
    return sum(token_logprob(t) for t in tokens) / len(tokens)


def test_a_whole_search_runs_on_the_fake_engine_without_importing_torch() -> None:
    code = (
        "import json, sys\n"
        "from tests.unit_tests.test_fake_engine import search\n"
        "out = search(seed=1, iterations=2)\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'answer': out['answer'],"
        " 'cycles': len(out['cycle_rewards']), 'usage': out['usage']}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["torch"] is False
    assert out["answer"] and out["cycles"] == 2
    assert out["usage"]["beams"]["decoded"] > 0 and out["usage"]["mutation"]["decoded"] > 0


def test_same_seed_same_search_and_records_restart_per_run() -> None:
    first, second = search(seed=3), search(seed=3)
    assert first["answer"] == second["answer"]
    assert first["usage"] == second["usage"]
    # one cycle's record, not two runs' worth: seed resets the append-only records
    assert len(first["mutated_instructions"]) == 1 and len(first["cycle_rewards"]) == 1


def test_the_guard_trades_reward_for_what_the_policy_finds_likely() -> None:
    changed = 0
    for seed in range(4):
        plain = search(seed=seed, proximity_weight=0.0)
        guarded = search(seed=seed, proximity_weight=1.0)
        assert plain["usage"]["guard"]["prefilled"] == 0 < guarded["usage"]["guard"]["prefilled"]
        # same candidates (the guard acts only at the final choice), other winner
        assert plain["period_scores"] == guarded["period_scores"]
        assert mean_logprob(guarded["answer"]) >= mean_logprob(plain["answer"])
        assert guarded["final_reward"] <= plain["final_reward"]
        best = guarded["best"]
        assert abs(best["score"] - best["reward"] - mean_logprob(guarded["answer"])) < 1e-9
        changed += guarded["answer"] != plain["answer"]
    assert changed > 0
