"""Cancelling an ainvoke stops the search promptly and frees its caches."""

from __future__ import annotations

import asyncio
import time

import pytest

from langchain_darwin import DarwinChatModel
from langchain_darwin.policy import SearchCancelled


async def test_cancelled_ainvoke_stops_decoding_and_frees_caches(tiny_dirs, monkeypatch) -> None:
    sessions, calls = [], []

    def reward(conversation, answer: str) -> float:
        calls.append(time.monotonic())
        return float(len(answer))

    llm = DarwinChatModel(
        model=str(tiny_dirs[0]), reward_model=reward, seed=0, max_tokens=3000, replacement_period=4
    )
    prepare = DarwinChatModel.prepare_search

    def spy(self, *args, **kwargs):
        search = prepare(self, *args, **kwargs)
        sessions.append(search.context.session)
        return search

    monkeypatch.setattr(DarwinChatModel, "prepare_search", spy)
    task = asyncio.create_task(llm.ainvoke("Tell me about eggs", iterations=3))
    while len(calls) < 3:  # the search is under way
        await asyncio.sleep(0.05)
    task.cancel()
    cancelled_at = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - cancelled_at < 5
    session = sessions[0]
    assert session.cancelled.is_set() and session.rows == {}
    await asyncio.sleep(2.0)  # the executor thread must have stopped: no more scoring
    assert not [t for t in calls if t > cancelled_at + 1.0]


def test_a_cancelled_session_refuses_to_decode(tiny_dirs) -> None:
    llm = DarwinChatModel(model=str(tiny_dirs[0]), reward_model=lambda c, a: 0.0)
    policy = llm.search_service.engine(str(tiny_dirs[0]))
    session = policy.new_session()
    session.cancel()
    from langchain_darwin.policy import RowRequest, Sampling

    with pytest.raises(SearchCancelled):
        policy.extend(session, {"r": RowRequest([1, 2, 3], 4)}, Sampling(0.7, 40, 0))
