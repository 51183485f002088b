"""Usage stays each search's own when searches share one reward (issue 19 item 5).

Eight searches run at once on the fake engine, all scoring with ONE real reward object (a tiny
sequence classifier in a weighted sum); each one's usage must equal its solo run. Charging from
the reward's lifetime counters (read before and after a call) charged each search its
neighbours' positions too.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from langchain_darwin.config import DarwinConfig
from langchain_darwin.graph.builder import compiled_graph, recursion_limit
from langchain_darwin.graph.state import DarwinContext
from langchain_darwin.rewards import (
    CallableReward,
    HFSequenceClassifierReward,
    RewardModel,
    Scored,
)
from tests.fake_engine import FakeEngine

CONVERSATION = [{"role": "user", "content": "How do I boil an egg?"}]


def _search(reward: RewardModel, seed: int) -> dict[str, Any]:
    config = DarwinConfig(max_tokens=24, replacement_period=8, seed=seed)
    engine = FakeEngine()
    context = DarwinContext(engine, reward, engine.new_session())
    return compiled_graph().invoke(
        {"conversation": CONVERSATION, "config": config.model_dump()},
        {"recursion_limit": recursion_limit(config)},
        context=context,
    )


def test_score_with_usage_reports_the_call_alone(tiny_dirs: tuple[Path, Path]) -> None:
    rm = HFSequenceClassifierReward(tiny_dirs[1], prefix_cache=False)
    summed = rm + 0.5 * CallableReward(lambda c, a: len(a))
    scored = summed.score_with_usage(CONVERSATION, ["Boil it.", "Put it in water."])
    assert isinstance(scored, Scored) and len(scored.scores) == 2
    assert scored.positions == rm.positions_scored > 0
    again = summed.score_with_usage(CONVERSATION, ["Boil it.", "Put it in water."])
    assert again.positions == scored.positions  # its own call, not the lifetime total
    assert rm.positions_scored == 2 * scored.positions
    assert again.scores == summed.score(CONVERSATION, ["Boil it.", "Put it in water."])


def test_concurrent_searches_sharing_a_reward_are_each_charged_their_own_usage(
    tiny_dirs: tuple[Path, Path],
) -> None:
    reward = HFSequenceClassifierReward(tiny_dirs[1], prefix_cache=False) + 0.5 * CallableReward(
        lambda c, a: len(set(a))
    )
    seeds = range(8)
    solo = {seed: _search(reward, seed) for seed in seeds}
    with ThreadPoolExecutor(8) as pool:
        together = dict(zip(seeds, pool.map(lambda s: _search(reward, s), seeds), strict=True))
    for seed in seeds:
        assert solo[seed]["usage"]["reward"]["positions"] > 0
        assert together[seed]["usage"] == solo[seed]["usage"], seed
        assert together[seed]["answer"] == solo[seed]["answer"], seed
