"""The batched cache helpers: in-place layers and row (un)stacking."""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

from langchain_darwin.kv import stack_rows, unstack_row, unstack_rows


def _rows(lengths: list[int], seed: int = 0) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(seed)
    return [
        [(torch.randn(2, n, 4, generator=g), torch.randn(2, n, 4, generator=g))] for n in lengths
    ]


def test_buffered_layer_behaves_like_dynamic_layer_past_its_spare_room() -> None:
    rows = _rows([5, 5, 5])
    cache, mask = stack_rows(rows, 5, spare=2)
    assert mask.all()
    ref = DynamicLayer()
    ref.update(torch.stack([r[0][0] for r in rows]), torch.stack([r[0][1] for r in rows]))
    g = torch.Generator().manual_seed(1)
    for _ in range(4):  # two steps fit the spare room, two make it grow
        k, v = torch.randn(3, 2, 1, 4, generator=g), torch.randn(3, 2, 1, 4, generator=g)
        got, want = cache.layers[0].update(k, v), ref.update(k, v)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert cache.get_seq_length() == 9
    index = torch.tensor([2, 0])
    cache.layers[0].batch_select_indices(index)
    ref.batch_select_indices(index)
    k, v = torch.randn(2, 2, 3, 4, generator=g), torch.randn(2, 2, 3, 4, generator=g)
    got, want = cache.layers[0].update(k, v), ref.update(k, v)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_unstack_rows_returns_what_unstack_row_does_and_empties_the_batch() -> None:
    rows = _rows([3, 6, 1])
    cache, mask = stack_rows(rows, 6, spare=4)
    singles = [unstack_row(cache, mask, i) for i in range(3)]
    for i, row in enumerate(rows):  # padding dropped: each row comes back as it went in
        assert torch.equal(singles[i][0][0], row[0][0])
    together = unstack_rows(cache, mask, [2, 0, 1])
    for got, want in zip(together, [singles[2], singles[0], singles[1]], strict=True):
        assert torch.equal(got[0][0], want[0][0]) and torch.equal(got[0][1], want[0][1])
    assert cache.layers[0].keys is None  # freed as it went
