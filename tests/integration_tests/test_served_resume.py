"""A checkpointed search whose vLLM server dies mid-way fails naming where, then resumes
from its checkpoint once the server is back, and finishes with the answer it would have given.

Named to run after the other served tests: it restarts the policy server (~90 s).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from langchain_darwin import DarwinConfig, build_darwin_graph
from langchain_darwin.graph.builder import recursion_limit
from langchain_darwin.graph.state import DarwinContext
from langchain_darwin.policy.base import EngineError
from langchain_darwin.rewards import CallableReward
from langchain_darwin.served import ServerUnreachable
from langchain_darwin.served.policy import ServedPolicy

CONFIG = DarwinConfig(seed=11, max_tokens=24, replacement_period=8, iterations=1)
CONVERSATION = [{"role": "user", "content": "Tell me about eggs"}]


class Vowels:
    """A reward that counts what it scored, and can kill the server at its n-th answer."""

    def __init__(self, server: Any = None, kill_at: int = 0) -> None:
        self.scored = 0
        self.server, self.kill_at = server, kill_at

    def __call__(self, conversation: Any, answer: str) -> float:
        self.scored += 1
        if self.server is not None and self.scored == self.kill_at:
            self.server.kill()
        return float(sum(ch in "aeiou " for ch in answer))


def test_search_resumes_after_the_server_restarts(vllm_policy_server: Any, tmp_path: Path) -> None:
    engine = ServedPolicy(
        vllm_policy_server.base_url, vllm_policy_server.model, timeout=120, max_retries=1
    )
    graph = build_darwin_graph()
    start = {"conversation": CONVERSATION, "config": CONFIG.model_dump()}

    def context(reward: Vowels) -> DarwinContext:
        return DarwinContext(engine, CallableReward(reward), engine.new_session())

    plain = Vowels()
    reference = graph.compile().invoke(
        start, config={"recursion_limit": recursion_limit(CONFIG)}, context=context(plain)
    )
    assert plain.scored >= 10  # several periods: room to die in the middle

    saver = SqliteSaver(sqlite3.connect(tmp_path / "run.sqlite", check_same_thread=False))
    compiled = graph.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "t1"}, "recursion_limit": recursion_limit(CONFIG)}
    killer = Vowels(vllm_policy_server, kill_at=plain.scored // 3)
    with pytest.raises(EngineError, match=r"decode_chunk \(cycle \d+, period \d+\)") as err:
        compiled.invoke(start, config=config, context=context(killer), durability="sync")
    assert isinstance(err.value.__cause__, ServerUnreachable)
    assert vllm_policy_server.root in str(err.value)
    assert compiled.get_state(config).next  # checkpointed mid-search

    vllm_policy_server.restart()
    resumed = Vowels()
    final = compiled.invoke(None, config=config, context=context(resumed), durability="sync")
    assert resumed.scored < plain.scored  # it went on from the checkpoint, not from scratch
    assert final["answer"] == reference["answer"]
    assert final["best"] == reference["best"]
