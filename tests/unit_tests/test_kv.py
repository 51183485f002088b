"""The batched cache helpers (in-place layers, row (un)stacking, buffer lifetimes) and
prefix reuse on top of them."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from langchain_darwin.inprocess.kv import (
    RowKV,
    copy_columns,
    row_cache,
    stack_rows,
    unstack_row,
    unstack_rows,
)
from langchain_darwin.inprocess.prefix import CachedRow, PrefixStore, prefill


def _rows(lengths: list[int], seed: int = 0, layers: int = 1) -> list[RowKV]:
    g = torch.Generator().manual_seed(seed)
    return [
        RowKV.compact(
            [
                (torch.randn(2, n, 4, generator=g), torch.randn(2, n, 4, generator=g))
                for _ in range(layers)
            ]
        )
        for n in lengths
    ]


def test_buffered_layer_behaves_like_dynamic_layer_past_its_spare_room() -> None:
    rows = _rows([5, 5, 5])
    ref = DynamicLayer()
    ref.update(
        torch.stack([r.layer(0)[0] for r in rows]), torch.stack([r.layer(0)[1] for r in rows])
    )
    cache, mask = stack_rows(rows, 5, spare=2)
    assert mask.all()
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


def test_padding_is_zero_and_rows_come_back_as_they_went_in() -> None:
    rows = _rows([3, 6, 1])
    cache, mask = stack_rows(rows, 6, spare=4)
    assert torch.equal(mask.sum(dim=1), torch.tensor([3, 6, 1]))
    assert not cache.layers[0].keys[0, :, :3].any()  # padding zeroed, not left uninitialised
    singles = [unstack_row(cache, mask, i) for i in range(3)]
    for single, row in zip(singles, rows, strict=True):
        assert torch.equal(single.layer(0)[0], row.layer(0)[0])
    together = unstack_rows(cache, mask, [2, 0, 1])
    for got, want in zip(together, [singles[2], singles[0], singles[1]], strict=True):
        assert torch.equal(got.layer(0)[0], want.layer(0)[0])
        assert torch.equal(got.layer(0)[1], want.layer(0)[1])
    assert cache.layers[0].keys is None  # the cache let go; the rows hold the buffer


def test_rows_cut_from_a_batch_share_it_until_a_consuming_stack_frees_it() -> None:
    cache, mask = stack_rows(_rows([4, 2, 3], layers=3), 4, spare=3)
    buffers = [weakref.ref(layer._k) for layer in cache.layers]
    views = unstack_rows(cache, mask, [0, 1, 2])
    del cache
    gc.collect()
    assert all(b() is not None for b in buffers)  # no copy was made: the rows are views
    prefixes = [v.prefix(len(v) - 1) for v in views]
    kept = stack_rows(prefixes, 3, release=False)[0]
    assert all(b() is not None for b in buffers)  # without release the sources stay whole
    assert all(p.layers[0] is not None for p in prefixes)
    new, _ = stack_rows(prefixes + views, 4, spare=1, release=True)
    assert all(p.layers == [None] * 3 for p in prefixes + views)
    del views, prefixes
    gc.collect()
    assert all(b() is None for b in buffers)
    assert torch.equal(new.layers[1].keys[0, :, 1:], kept.layers[1].keys[0])


def test_prefill_with_holes_matches_compact_rows_and_evicts_before_building() -> None:
    layers = 2
    seen: list[int] = []

    def forward(ids, mask, pos, cache):  # noqa: ANN001, ANN202 - a toy decoder
        seen.append(len(store.rows))
        for i in range(layers):
            x = (ids.float() + 10 * i)[:, None, :, None].expand(-1, 2, -1, 4).clone()
            cache.update(x, -x, i)
        return None

    store = PrefixStore()
    first = prefill(forward, store, {"a": [1, 2, 3], "b": [7]}, pad_id=0, device="cpu")
    for key, ctx in {"a": [1, 2, 3], "b": [7]}.items():
        store.rows[key] = CachedRow(ctx, first.kv[key])
    out = prefill(
        forward,
        store,
        {"x": [1, 2, 3, 4, 5], "y": [7, 8]},
        pad_id=0,
        device="cpu",
        evict=lambda key: key == "a",
    )
    assert list(store.rows) == ["b"] and seen[-1] == 1  # "a" left before the forward
    assert out.forwarded == {"x": 2, "y": 1}
    assert out.kv["y"].columns.tolist() == [2, 4]  # a hole between its kept and new parts
    for key, ctx in {"x": [1, 2, 3, 4, 5], "y": [7, 8]}.items():
        k, v = out.kv[key].layer(1)
        want = torch.tensor(ctx, dtype=torch.float)[None, :, None].expand(2, -1, 4) + 10
        assert torch.equal(k, want) and torch.equal(v, -want)


def test_tails_are_left_for_rows_written_in_place_and_twins_copy_them() -> None:
    rows = _rows([2, 3, 2], layers=2)
    cache, mask = stack_rows(rows, 5, spare=1, tails=[3, 0, 3])
    # a row's cached part ends where its tail begins; the tail stays masked until written
    assert mask.tolist() == [[1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert torch.equal(cache.layers[1].keys[0, :, :2], rows[0].layer(1)[0])
    single = row_cache(cache, slice(0, 1), 2)
    new_k, new_v = torch.ones(1, 2, 3, 4), -torch.ones(1, 2, 3, 4)
    for i in range(2):
        single.update(new_k * (i + 1), new_v, i)
    # the one-row cache wrote into the batch's own buffers
    assert torch.equal(cache.layers[1].keys[0, :, 2:], (new_k * 2)[0])
    copy_columns(cache, 0, 2, slice(2, 5))
    assert torch.equal(cache.layers[1].keys[2, :, 2:], cache.layers[1].keys[0, :, 2:])
    assert torch.equal(cache.layers[0].values[2, :, 2:], new_v[0])
    # in place, a row cannot grow past its room: that would write somewhere else
    with pytest.raises(ValueError, match="do not fit"):
        row_cache(cache, slice(1, 2), 5).update(torch.ones(1, 2, 2, 4), torch.ones(1, 2, 2, 4), 0)
