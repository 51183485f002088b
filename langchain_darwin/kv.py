"""Prefix-reusing KV caches for any decoder: the policy's beams and causal reward models.

Every row keeps its own compact keys/values (one ``(heads, length, head_dim)`` pair per layer).
Rows are stacked into a padded :class:`~transformers.DynamicCache` for one batched forward and
cut back into compact rows afterwards, so a row that shares a prefix with anything cached
(its own earlier tokens, another beam's prompt, a donor's answer) forwards only the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

#: Keys and values of one row: a ``(key, value)`` pair per layer, each ``(heads, length, dim)``.
RowKV = list[tuple[torch.Tensor, torch.Tensor]]
#: ``forward(input_ids, attention_mask, position_ids, cache) -> per-position output or None``.
Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, DynamicCache], torch.Tensor | None]


@dataclass
class CachedRow:
    tokens: list[int]
    kv: RowKV

    def prefix(self, length: int) -> RowKV:
        return [(k[:, :length], v[:, :length]) for k, v in self.kv]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = (torch.as_tensor(a[:n]) != torch.as_tensor(b[:n])).nonzero()
    return n if diff.numel() == 0 else int(diff[0])


@dataclass
class PrefixStore:
    """Cached rows, searched by longest common prefix."""

    rows: dict[Hashable, CachedRow] = field(default_factory=dict)

    def clear(self) -> None:
        self.rows.clear()

    def best_prefix(self, context: Sequence[int]) -> tuple[CachedRow | None, int]:
        best, best_len = None, 0
        for row in self.rows.values():
            n = common_prefix(row.tokens, context)
            if n > best_len:
                best, best_len = row, n
        return best, best_len


def kv_length(kv: RowKV) -> int:
    return kv[0][0].shape[1] if kv else 0


class BufferedLayer(DynamicLayer):
    """A :class:`DynamicLayer` that writes new positions into spare room reserved up front.

    ``DynamicLayer`` concatenates on every step: a fresh, one-position-longer copy of the whole
    batch per layer, whose freed predecessors fragment the heap (resident memory grew to twice
    the live cache in a 256-token search). Here a period's positions land in place; the layer
    only reallocates, doubling, if a caller forwards more than it reserved.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()
        self.device, self.is_initialized = keys.device, True
        self._k, self._v, self._length = keys, values, length
        self._expose()

    def _expose(self) -> None:
        self.keys = self._k[:, :, : self._length]
        self.values = self._v[:, :, : self._length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._length + key_states.shape[-2]
        if end > self._k.shape[2]:
            room = max(end, 2 * self._k.shape[2])
            self._k, self._v = (self._grown(t, room) for t in (self._k, self._v))
        self._k[:, :, self._length : end] = key_states
        self._v[:, :, self._length : end] = value_states
        self._length = end
        self._expose()
        return self.keys, self.values

    def _grown(self, buffer: torch.Tensor, room: int) -> torch.Tensor:
        more = buffer.new_empty(*buffer.shape[:2], room - self._length, buffer.shape[3])
        return torch.cat([buffer[:, :, : self._length], more], dim=2)

    def reset(self) -> None:
        self._k = self._v = None
        super().reset()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove < 0:
            self._length = max(0, self._length + tokens_to_remove)
            self._expose()
        else:
            super().crop(tokens_to_remove)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._k, self._v = self._k[indices], self._v[indices]
        self._expose()

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._k = self._k.repeat_interleave(repeats, dim=0)
        self._v = self._v.repeat_interleave(repeats, dim=0)
        self._expose()


def stack_rows(
    kvs: Sequence[RowKV], width: int, spare: int = 0
) -> tuple[DynamicCache, torch.Tensor]:
    """Left-pad rows to ``width`` positions and stack them into one batched cache + mask,
    with room for ``spare`` more positions per row (the tokens about to be forwarded)."""
    lengths = [kv_length(kv) for kv in kvs]
    ref = next((kv for kv in kvs if kv), None)
    if ref is None or width == 0:
        return DynamicCache(), torch.zeros(len(kvs), width, dtype=torch.long)
    layers: list[DynamicLayer] = []
    for layer in range(len(ref)):
        heads, _, dim = ref[layer][0].shape
        k_all = ref[layer][0].new_zeros(len(kvs), heads, width + spare, dim)
        v_all = ref[layer][1].new_zeros(len(kvs), heads, width + spare, dim)
        for i, kv in enumerate(kvs):
            if lengths[i]:
                k_all[i, :, width - lengths[i] : width] = kv[layer][0]
                v_all[i, :, width - lengths[i] : width] = kv[layer][1]
        layers.append(BufferedLayer(k_all, v_all, width))
    mask = torch.zeros(len(kvs), width, dtype=torch.long, device=ref[0][0].device)
    for i, n in enumerate(lengths):
        if n:
            mask[i, width - n :] = 1
    cache = DynamicCache()
    cache.layers, cache.layer_class_to_replicate = layers, None
    return cache, mask


def unstack_row(cache: DynamicCache, mask: torch.Tensor, index: int) -> RowKV:
    """The compact keys/values of batch row ``index`` (padding columns dropped)."""
    keep = mask[index].bool()[: cache.layers[0].keys.shape[2]]
    return [(layer.keys[index][:, keep], layer.values[index][:, keep]) for layer in cache.layers]


def unstack_rows(cache: DynamicCache, mask: torch.Tensor, indices: Sequence[int]) -> list[RowKV]:
    """Compact copies of several rows, emptying ``cache`` layer by layer as it goes, so the
    batch and its copies are never both held whole (the cache is unusable afterwards)."""
    width = cache.layers[0].keys.shape[2]
    keeps = [mask[i].bool()[:width] for i in indices]
    rows: list[RowKV] = [[] for _ in indices]
    for layer in cache.layers:
        for row, i, keep in zip(rows, indices, keeps, strict=True):
            row.append((layer.keys[i][:, keep], layer.values[i][:, keep]))
        layer.reset()
    return rows


@dataclass
class Prefilled:
    """Per row: its cache after the forward, its last position's output (when asked for),
    and how many positions were forwarded for it (rows sharing a context are charged once)."""

    kv: dict[Hashable, RowKV] = field(default_factory=dict)
    last: dict[Hashable, torch.Tensor] = field(default_factory=dict)
    forwarded: dict[Hashable, int] = field(default_factory=dict)


#: A shared prefix is forwarded once, on its own, only when that saves at least this many
#: positions: below it the extra forward call costs more than the positions it saves.
MIN_SHARED_SAVING = 32


class _Shared:
    """Key of the temporary row that holds a prefix several new rows share."""


def _shared_prefix(contexts: Sequence[Sequence[int]], store: PrefixStore, need_last: bool) -> int:
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
    store: PrefixStore,
    contexts: Mapping[Hashable, Sequence[int]],
    *,
    pad_id: int,
    device: torch.device,
    need_last: bool = False,
    consume: bool = False,
) -> Prefilled:
    """Bring each row's cache up to its whole context, reusing the longest cached prefix.

    With ``need_last`` at least the final position is forwarded, so its output is known.
    Identical contexts are forwarded once. One batched forward serves every row: each is
    left-padded twice (before its cached part and before its new part); the mask hides both.
    With ``consume`` a cached row that a new row continues from to within its last few
    positions (see :data:`SUPERSEDED_TAIL`) leaves ``store`` as soon as the batch holds that
    prefix, so it and the batch never coexist in memory.
    """
    caller = store
    out = Prefilled()
    groups: dict[tuple[int, ...], list[Hashable]] = {}
    for key, context in contexts.items():
        groups.setdefault(tuple(context), []).append(key)
    shared_cost = 0
    shared = _shared_prefix(list(groups), store, need_last)
    if shared:
        # Rows that share a prefix nothing cached covers (a prompt read by several beams for
        # the first time): forward it once, then let every row continue from it.
        head = list(next(iter(groups))[:shared])
        first = prefill(forward, store, {_Shared: head}, pad_id=pad_id, device=device)
        shared_cost = first.forwarded.get(_Shared, 0)
        store = PrefixStore({**store.rows, _Shared: CachedRow(head, first.kv[_Shared])})
    plans: list[tuple[list[Hashable], RowKV, list[int]]] = []
    reused: dict[int, int] = {}  # id of a cached row -> most positions a new row took from it
    for context, keys in groups.items():
        source, kept = store.best_prefix(context)
        kept = min(kept, len(context) - 1) if need_last else kept
        kv = source.prefix(kept) if source is not None and kept > 0 else []
        if source is not None and kept > 0 and source is not store.rows.get(_Shared):
            reused[id(source)] = max(reused.get(id(source), 0), kept)
        if kept == len(context):
            for key in keys:
                out.kv[key] = kv
        else:
            plans.append((keys, kv, list(context[kept:])))
    if not plans:
        if consume:
            _consume(caller, reused)
        _charge(out, shared_cost, contexts)
        return out
    kept = [kv_length(kv) for _, kv, _ in plans]
    width_new = max(len(p) for _, _, p in plans)
    cache, mask_kept = stack_rows([kv for _, kv, _ in plans], max(kept), spare=width_new)
    plans = [(keys, [], pending) for keys, _, pending in plans]  # the batch holds them now
    if consume:
        _consume(caller, reused)
    ids = torch.full((len(plans), width_new), pad_id, dtype=torch.long)
    mask_new = torch.zeros(len(plans), width_new, dtype=torch.long)
    pos = torch.zeros(len(plans), width_new, dtype=torch.long)
    for i, (keys, _, pending) in enumerate(plans):
        ids[i, width_new - len(pending) :] = torch.tensor(pending)
        mask_new[i, width_new - len(pending) :] = 1
        pos[i, width_new - len(pending) :] = torch.arange(kept[i], kept[i] + len(pending))
        out.forwarded[keys[0]] = len(pending)
    mask = torch.cat([mask_kept.to(device), mask_new.to(device)], dim=1)
    result = forward(ids.to(device), mask, pos.to(device), cache)
    kvs = unstack_rows(cache, mask, range(len(plans)))
    for i, ((keys, _, _), kv) in enumerate(zip(plans, kvs, strict=True)):
        for key in keys:
            out.kv[key] = kv
            if need_last and result is not None:
                out.last[key] = result[i, -1]
    _charge(out, shared_cost, contexts)
    return out


#: A row continued from is superseded when at most this many of its positions (a template's
#: closing tokens after an answer) were not reused: the new row holds all the rest.
SUPERSEDED_TAIL = 16


def _consume(store: PrefixStore, kept: Mapping[int, int]) -> None:
    def superseded(row: CachedRow) -> bool:
        n = kept.get(id(row), 0)
        return n >= len(row.tokens) - SUPERSEDED_TAIL and 2 * n >= len(row.tokens)

    for key in [k for k, row in store.rows.items() if superseded(row)]:
        del store.rows[key]


def _charge(out: Prefilled, positions: int, contexts: Mapping[Hashable, Sequence[int]]) -> None:
    """Book a shared prefix's positions to the first row, so totals stay exact."""
    if positions:
        first = next(iter(contexts))
        out.forwarded[first] = out.forwarded.get(first, 0) + positions
