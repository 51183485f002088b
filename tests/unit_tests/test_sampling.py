"""Token draws: a tiny positive temperature is the greedy limit, not a NaN distribution."""

from __future__ import annotations

import pytest
import torch

from langchain_darwin.inprocess.sampling import TopKDraw, VocabularyDraw, token_draw
from langchain_darwin.policy import Sampling

LOGITS = torch.tensor([[1.0, 7.5, -3.0, 7.0, 2.0], [30.0, -1.0, 29.0, 0.0, 5.0]])


@pytest.mark.parametrize("temperature", [1e-30, 1e-45, 1e-201, 5e-324])
@pytest.mark.parametrize("top_k", [0, 3])
def test_a_tiny_temperature_draws_the_most_likely_token(temperature: float, top_k: int) -> None:
    draw = token_draw(Sampling(temperature, top_k, seed=0), LOGITS.shape[1], LOGITS.device)
    assert isinstance(draw, TopKDraw if top_k else VocabularyDraw)
    for _ in range(20):
        assert draw(LOGITS).tolist() == [1, 0]


def test_an_ordinary_temperature_still_samples() -> None:
    flat = torch.zeros(1, 5)
    for top_k in (0, 5 - 1):
        draw = token_draw(Sampling(0.7, top_k, seed=0), 5, flat.device)
        assert len({int(draw(flat)) for _ in range(200)}) > 1
