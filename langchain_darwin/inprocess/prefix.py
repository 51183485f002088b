"""Prefix reuse: bring rows' caches up to their contexts, forwarding only what no cached row
shares (its own earlier tokens, another beam's prompt, a donor's answer), in a batch of its own
(:func:`prefill`) or, planned here, in place in the caller's batch (:func:`plan_prefill`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch
from transformers import DynamicCache

from langchain_darwin.inprocess.kv import RowKV, empty_row, stack_rows, unstack_rows

#: ``forward(input_ids, attention_mask, position_ids, cache) -> per-position output or None``.
Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, DynamicCache], torch.Tensor | None]

#: Row keys: of the rows asked for (``K``) and of a store's cached rows (``S``).
K = TypeVar("K", bound=Hashable)
S = TypeVar("S", bound=Hashable)


@dataclass
class CachedRow:
    """A cached row: its tokens, their keys and values, and whatever its owner keeps with it
    (``meta``: a reward's per-position scores, for instance)."""

    tokens: list[int]
    kv: RowKV
    meta: Any = None

    def prefix(self, length: int) -> RowKV:
        return self.kv.prefix(length)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = (torch.as_tensor(a[:n]) != torch.as_tensor(b[:n])).nonzero()
    return n if diff.numel() == 0 else int(diff[0])


@dataclass
class PrefixStore(Generic[S]):
    """Cached rows, searched by longest common prefix."""

    rows: dict[S, CachedRow] = field(default_factory=dict)

    def clear(self) -> None:
        self.rows.clear()

    def best_prefix(self, context: Sequence[int]) -> tuple[CachedRow | None, int]:
        best, best_len = None, 0
        for row in self.rows.values():
            n = common_prefix(row.tokens, context)
            if n > best_len:
                best, best_len = row, n
        return best, best_len


@dataclass
class Prefilled(Generic[K]):
    """Per row: its cache after the forward, its last position's output (when asked for),
    and how many positions were forwarded for it (rows sharing a context are charged once).
    With ``read_all``, also the output of every position forwarded for it (``outputs``), and
    the ``meta`` of the cached row it continued from with how many of that row's positions
    it reused (``sources``; the row itself is not held, so a consumed row's buffers go)."""

    kv: dict[K, RowKV] = field(default_factory=dict)
    last: dict[K, torch.Tensor] = field(default_factory=dict)
    forwarded: dict[K, int] = field(default_factory=dict)
    outputs: dict[K, torch.Tensor] = field(default_factory=dict)
    sources: dict[K, tuple[Any, int]] = field(default_factory=dict)


#: A shared prefix is forwarded once, on its own, only when that saves at least this many
#: positions: below it the extra forward call costs more than the positions it saves.
MIN_SHARED_SAVING = 32


class _SharedPrefixRow:
    """Key of the temporary row that holds a prefix several new rows share (forwarded once,
    then every one of them continues from it)."""


def _shared_prefix(
    contexts: Sequence[Sequence[int]], store: PrefixStore[S], need_last: bool
) -> int:
    """Length of the prefix all ``contexts`` share, when forwarding it once pays off."""
    if len(contexts) < 2:
        return 0
    n = min(common_prefix(contexts[0], c) for c in contexts[1:])
    if need_last:
        n = min(n, min(len(c) for c in contexts) - 1)
    covered = [store.best_prefix(c)[1] for c in contexts]
    saved = sum(max(0, n - k) for k in covered)
    cost = max(0, n - max(covered))  # the shared row continues from the best cached prefix
    return n if saved - cost >= MIN_SHARED_SAVING else 0


def prefill(
    forward: Forward,
    store: PrefixStore[S],
    contexts: Mapping[K, Sequence[int]],
    *,
    pad_id: int,
    device: torch.device,
    need_last: bool = False,
    read_all: bool = False,
    consume: bool = False,
    evict: Callable[[S], bool] | None = None,
) -> Prefilled[K]:
    """Bring each row's cache up to its whole context, reusing the longest cached prefix.

    With ``need_last`` at least the final position is forwarded, so its output is known.
    With ``read_all`` a row not wholly cached forwards its last reused position again, so
    the outputs kept for it (every forwarded position's) predict each of its new tokens;
    no shared head is forwarded apart, since its outputs would not reach the rows.
    Identical contexts are forwarded once. One batched forward serves every row: each is
    left-padded twice (before its cached part and before its new part); the mask hides both.
    Rows of ``store`` can leave it once the plan holds what it reuses from them, before the
    batch is built, so their buffers are freed while it is: with ``consume`` a cached row that
    a new row continues from to within its last few positions (see :data:`SUPERSEDED_TAIL`),
    and every row whose key ``evict`` selects.
    """
    out, plans, reused = _plan(
        forward,
        store,
        contexts,
        pad_id=pad_id,
        device=device,
        need_last=need_last,
        read_all=read_all,
    )
    if consume:
        _consume(store, reused)
    if evict is not None:
        for key in [k for k in store.rows if evict(k)]:
            del store.rows[key]
    reused.clear()
    if plans:
        forward_plans(
            forward,
            plans,
            out,
            pad_id=pad_id,
            device=device,
            need_last=need_last,
            read_all=read_all,
        )
    return out


@dataclass
class Plan(Generic[K]):
    """What rows with one context still need: the cache they start from and the tokens to
    forward on top of it (``keys`` share the context, so it is forwarded once)."""

    keys: list[K]
    kv: RowKV
    pending: list[int]


def plan_prefill(
    forward: Forward,
    store: PrefixStore[S],
    contexts: Mapping[K, Sequence[int]],
    *,
    pad_id: int,
    device: torch.device,
) -> tuple[Prefilled[K], list[Plan[K]]]:
    """:func:`prefill` up to its batched forward: rows fully cached (or covered by a shared
    head, forwarded here) are in the result; the rest are plans for the caller to forward,
    in place in its own batch or with :func:`forward_plans`."""
    out, plans, _ = _plan(forward, store, contexts, pad_id=pad_id, device=device, need_last=False)
    return out, plans


def _plan(
    forward: Forward,
    store: PrefixStore[S],
    contexts: Mapping[K, Sequence[int]],
    *,
    pad_id: int,
    device: torch.device,
    need_last: bool,
    read_all: bool = False,
) -> tuple[Prefilled[K], list[Plan[K]], dict[int, int]]:
    """Pick each context's cached prefix. Rows fully cached go straight into the result; the
    rest come back as plans, with the most positions taken from each cached row (by id).
    Its own function so that no local outlives the plan (it would pin a batch)."""
    out: Prefilled[K] = Prefilled()
    groups: dict[tuple[int, ...], list[K]] = {}
    for key, context in contexts.items():
        groups.setdefault(tuple(context), []).append(key)
    rows: dict[Any, CachedRow] = store.rows  # the store's keys, and _SharedPrefixRow below
    shared = 0 if read_all else _shared_prefix(list(groups), store, need_last)
    if shared:
        # Rows that share a prefix nothing cached covers (a prompt read by several beams for
        # the first time): forward it once, then let every row continue from it.
        head = list(next(iter(groups))[:shared])
        first = prefill(forward, store, {_SharedPrefixRow: head}, pad_id=pad_id, device=device)
        _charge(out, next(iter(contexts)), first.forwarded.get(_SharedPrefixRow, 0))
        rows = {**rows, _SharedPrefixRow: CachedRow(head, first.kv[_SharedPrefixRow])}
    search = PrefixStore(rows)
    plans: list[Plan[K]] = []
    reused: dict[int, int] = {}
    for context, keys in groups.items():
        source, kept = search.best_prefix(context)
        kept = min(kept, len(context) - 1) if need_last else kept
        if read_all and kept < len(context):
            kept = max(kept - 1, 0)  # the last reused position's output predicts a new token
        if read_all:
            for key in keys:
                out.sources[key] = (source.meta if source is not None and kept else None, kept)
        kv = source.prefix(kept) if source is not None and kept > 0 else empty_row()
        if source is not None and kept > 0 and source is not rows.get(_SharedPrefixRow):
            reused[id(source)] = max(reused.get(id(source), 0), kept)
        if kept == len(context):
            for key in keys:
                out.kv[key] = kv
        else:
            plans.append(Plan(keys, kv, list(context[kept:])))
    return out, plans, reused


def forward_plans(
    forward: Forward,
    plans: list[Plan[K]],
    out: Prefilled[K],
    *,
    pad_id: int,
    device: torch.device,
    need_last: bool = False,
    read_all: bool = False,
) -> None:
    """One batched forward of every plan's pending tokens on top of its cached prefix, in a
    batch of their own; empties ``plans`` (the batch holds their prefixes now). ``read_all``
    keeps the output of each pending position (rows are left-padded: they end at the right)."""
    kept = [len(plan.kv) for plan in plans]
    width_new = max(len(plan.pending) for plan in plans)
    starts = [plan.kv for plan in plans]
    cache, mask_kept = stack_rows(starts, max(kept), spare=width_new, release=True)
    starts.clear()
    pending_rows = [(plan.keys, plan.pending) for plan in plans]
    plans.clear()
    runs = [pending for _, pending in pending_rows]
    ids, mask_new, pos = left_padded(runs, kept, width_new, pad_id)
    for keys, pending in pending_rows:
        _charge(out, keys[0], len(pending))
    mask = torch.cat([mask_kept.to(device), mask_new.to(device)], dim=1)
    result = forward(ids.to(device), mask, pos.to(device), cache)
    kvs = unstack_rows(cache, mask, range(len(pending_rows)))
    for i, ((keys, pending), kv) in enumerate(zip(pending_rows, kvs, strict=True)):
        for key in keys:
            out.kv[key] = kv
            if need_last and result is not None:
                out.last[key] = result[i, -1]
            if read_all and result is not None:
                out.outputs[key] = result[i, width_new - len(pending) :]


#: A row continued from is superseded when at most this many of its positions (a template's
#: closing tokens after an answer) were not reused: the new row holds all the rest.
SUPERSEDED_TAIL = 16


def _consume(store: PrefixStore[S], kept: Mapping[int, int]) -> None:
    def superseded(row: CachedRow) -> bool:
        n = kept.get(id(row), 0)
        return n >= len(row.tokens) - SUPERSEDED_TAIL and 2 * n >= len(row.tokens)

    for key in [k for k, row in store.rows.items() if superseded(row)]:
        del store.rows[key]


def _charge(out: Prefilled[K], key: K, positions: int) -> None:
    """Book forwarded positions to a row (a shared head goes to the first row)."""
    if positions:
        out.forwarded[key] = out.forwarded.get(key, 0) + positions


def left_padded(
    runs: Sequence[Sequence[int]], starts: Sequence[int], width: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token runs as one left-padded ``(rows, width)`` block: ids, a mask of the real
    positions, and their position ids (row ``i`` counts from ``starts[i]``)."""
    ids = torch.full((len(runs), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(runs), width, dtype=torch.long)
    pos = torch.zeros(len(runs), width, dtype=torch.long)
    for i, (run, start) in enumerate(zip(runs, starts, strict=True)):
        n = len(run)
        if n:
            ids[i, width - n :] = torch.tensor(run)
            mask[i, width - n :] = 1
            pos[i, width - n :] = torch.arange(start, start + n)
    return ids, mask, pos
