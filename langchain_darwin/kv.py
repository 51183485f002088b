"""Prefix-reusing KV caches for any decoder: the policy's beams and causal reward models.

A row's keys/values are the row of a batched buffer it was last forwarded in, plus the columns
of that buffer that hold its positions: cutting rows out of a batch copies nothing. Rows are
gathered into a fresh padded :class:`~transformers.DynamicCache` for the next batched forward,
layer by layer, letting go of each source layer once it is copied, so an old batch and its
successor never both exist whole. A row that shares a prefix with anything cached (its own
earlier tokens, another beam's prompt, a donor's answer) forwards only the rest: in a batch of
its own (:func:`prefill`), or in place in the caller's batch (``tails`` + :func:`row_cache`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from langchain_darwin.memory import release_freed_host_memory

#: ``forward(input_ids, attention_mask, position_ids, cache) -> per-position output or None``.
Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, DynamicCache], torch.Tensor | None]


class RowKV:
    """Keys and values of one row: per layer a ``(key, value)`` pair shaped
    ``(heads, width, dim)``, of which ``columns`` (in order) hold this row's positions.

    The pairs are usually views of a batch's buffers, shared with the other rows cut from it;
    ``layers[i]`` becomes ``None`` once a stacking that owns the row has copied layer ``i``.
    """

    __slots__ = ("_span", "columns", "layers")

    def __init__(
        self, layers: list[tuple[torch.Tensor, torch.Tensor] | None], columns: torch.Tensor
    ) -> None:
        self.layers = layers
        self.columns = columns
        n = len(columns)
        first = int(columns[0]) if n else 0
        contiguous = n == 0 or int(columns[-1]) - first + 1 == n
        # contiguous columns are sliced (a view); others are gathered
        self._span = (first, first + n) if contiguous else None

    @classmethod
    def compact(cls, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> RowKV:
        width = layers[0][0].shape[1] if layers else 0
        device = layers[0][0].device if layers else None
        return cls(list(layers), torch.arange(width, device=device))

    def __len__(self) -> int:
        return len(self.columns)

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pair = self.layers[index]
        if pair is None:
            raise RuntimeError(f"layer {index} of this row was released by a stacking")
        k, v = pair
        if self._span is not None:
            a, b = self._span
            return k[:, a:b], v[:, a:b]
        cols = self.columns.to(k.device)
        return k[:, cols], v[:, cols]

    def prefix(self, length: int) -> RowKV:
        """The first ``length`` positions; shares the buffers, owns its own layer list."""
        return RowKV(list(self.layers), self.columns[:length])

    def copy(self) -> RowKV:
        """A compact copy that holds no other row's buffer."""
        return RowKV.compact(
            [tuple(t.clone() for t in self.layer(i)) for i in range(len(self.layers))]
        )


@dataclass
class CachedRow:
    tokens: list[int]
    kv: RowKV

    def prefix(self, length: int) -> RowKV:
        return self.kv.prefix(length)


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


EMPTY_ROW_COLUMNS = torch.zeros(0, dtype=torch.long)


def empty_row() -> RowKV:
    return RowKV([], EMPTY_ROW_COLUMNS)


class BufferedLayer(DynamicLayer):
    """A :class:`DynamicLayer` that writes new positions into spare room reserved up front.

    ``DynamicLayer`` concatenates on every step: a fresh, one-position-longer copy of the whole
    batch per layer, whose freed predecessors fragment the heap (resident memory grew to twice
    the live cache in a 256-token search). Here a period's positions land in place; the layer
    only reallocates, doubling, if a caller forwards more than it reserved.
    """

    def __init__(
        self, keys: torch.Tensor, values: torch.Tensor, length: int, *, fixed: bool = False
    ) -> None:
        super().__init__()
        self.device, self.is_initialized = keys.device, True
        self._k, self._v, self._length = keys, values, length
        #: a view into another batch's buffers: growing would write somewhere else
        self._fixed = fixed
        self._expose()

    def _expose(self) -> None:
        self.keys = self._k[:, :, : self._length]
        self.values = self._v[:, :, : self._length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._length + key_states.shape[-2]
        if end > self._k.shape[2] and self._fixed:
            raise ValueError(
                f"{end} positions do not fit the {self._k.shape[2]} this batch row has room for"
            )
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
    kvs: Sequence[RowKV],
    width: int,
    spare: int = 0,
    *,
    release: bool = False,
    tails: Sequence[int] | None = None,
) -> tuple[DynamicCache, torch.Tensor]:
    """Left-pad rows to ``width`` positions and stack them into one batched cache + mask,
    with room for ``spare`` more positions per row (the tokens about to be forwarded).

    ``tails[i]`` columns at the end of row ``i`` are left for positions the caller writes in
    place (:func:`row_cache`) before unmasking them; the row's cached part ends before them.
    With ``release`` the rows are the caller's to consume: each layer of theirs is let go as
    soon as it is copied, so a source batch whose rows are all stacked here is freed layer by
    layer while its successor is built (never both whole in memory).
    """
    tails = list(tails) if tails is not None else [0] * len(kvs)
    lengths = [len(kv) for kv in kvs]
    ends = [width - t for t in tails]
    ref = next((kv for kv in kvs if len(kv)), None)
    if ref is None or width == 0:
        return DynamicCache(), torch.zeros(len(kvs), width, dtype=torch.long)
    owners = list({id(kv): kv for kv in kvs if len(kv)}.values())
    layers: list[DynamicLayer] = []
    for layer in range(len(ref.layers)):
        k_ref, v_ref = ref.layers[layer]  # type: ignore[misc]  # shapes only, never copied
        heads, dim, device = k_ref.shape[0], k_ref.shape[2], k_ref.device
        # the spare columns are written before they are ever read; only padding needs zeros
        k_all = k_ref.new_empty(len(kvs), heads, width + spare, dim)
        v_all = v_ref.new_empty(len(kvs), heads, width + spare, dim)
        del k_ref, v_ref  # no local may keep a source layer alive past its release
        for i, kv in enumerate(kvs):
            start, end = ends[i] - lengths[i], ends[i]
            k_all[i, :, :start] = 0
            v_all[i, :, :start] = 0
            if lengths[i]:
                k_all[i, :, start:end], v_all[i, :, start:end] = kv.layer(layer)
        if release:
            for kv in owners:
                kv.layers[layer] = None
            # the next layer's buffer is a little larger than the one just freed, so the heap
            # cannot reuse the hole: give its pages back now, not after the whole batch
            release_freed_host_memory(device)
        layers.append(BufferedLayer(k_all, v_all, width))
    mask = torch.zeros(len(kvs), width, dtype=torch.long, device=device)
    for i, n in enumerate(lengths):
        if n:
            mask[i, ends[i] - n : ends[i]] = 1
    cache = DynamicCache()
    cache.layers, cache.layer_class_to_replicate = layers, None
    return cache, mask


def unstack_row(cache: DynamicCache, mask: torch.Tensor, index: int) -> RowKV:
    """A compact copy of batch row ``index`` (padding dropped), for a row leaving a batch
    that goes on without it."""
    keep = mask[index].bool()[: cache.layers[0].keys.shape[2]]
    return RowKV.compact(
        [(layer.keys[index][:, keep], layer.values[index][:, keep]) for layer in cache.layers]
    )


def unstack_rows(cache: DynamicCache, mask: torch.Tensor, indices: Sequence[int]) -> list[RowKV]:
    """Several rows of a batch that is done, as views of its buffers (no copy); ``cache``
    lets go of them, so the buffers live exactly as long as some row still needs them."""
    width = cache.layers[0].keys.shape[2]
    buffers = [(layer.keys, layer.values) for layer in cache.layers]
    rows = [
        RowKV([(k[i], v[i]) for k, v in buffers], mask[i, :width].nonzero().view(-1))
        for i in indices
    ]
    for layer in cache.layers:  # dropped, not reset: some versions zero tensors on reset
        if isinstance(layer, BufferedLayer):
            layer._k = layer._v = None
        layer.keys = layer.values = None
    return rows


def row_cache(cache: DynamicCache, rows: slice, length: int) -> DynamicCache:
    """A cache over a contiguous block of rows of a stacked batch, ``length`` positions long,
    whose writes land in the batch's own buffers: rows can be prefilled in place, without a
    batch of their own (see ``tails`` in :func:`stack_rows`)."""
    layers: list[DynamicLayer] = []
    for layer in cache.layers:
        if not isinstance(layer, BufferedLayer) or length > layer._k.shape[2]:
            raise ValueError("row_cache needs a batch from stack_rows with room for the rows")
        layers.append(BufferedLayer(layer._k[rows], layer._v[rows], length, fixed=True))
    block = DynamicCache()
    block.layers, block.layer_class_to_replicate = layers, None
    return block


def copy_columns(cache: DynamicCache, source: int, target: int, columns: slice) -> None:
    """Copy ``columns`` of batch row ``source`` into row ``target`` (a twin's prefill)."""
    for layer in cache.layers:
        layer.keys[target, :, columns] = layer.keys[source, :, columns]
        layer.values[target, :, columns] = layer.values[source, :, columns]


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
    evict: Callable[[Hashable], bool] | None = None,
) -> Prefilled:
    """Bring each row's cache up to its whole context, reusing the longest cached prefix.

    With ``need_last`` at least the final position is forwarded, so its output is known.
    Identical contexts are forwarded once. One batched forward serves every row: each is
    left-padded twice (before its cached part and before its new part); the mask hides both.
    Rows of ``store`` can leave it once the plan holds what it reuses from them, before the
    batch is built, so their buffers are freed while it is: with ``consume`` a cached row that
    a new row continues from to within its last few positions (see :data:`SUPERSEDED_TAIL`),
    and every row whose key ``evict`` selects.
    """
    out, plans, reused = _plan(
        forward, store, contexts, pad_id=pad_id, device=device, need_last=need_last
    )
    if consume:
        _consume(store, reused)
    if evict is not None:
        for key in [k for k in store.rows if evict(k)]:
            del store.rows[key]
    reused.clear()
    if plans:
        forward_plans(forward, plans, out, pad_id=pad_id, device=device, need_last=need_last)
    return out


@dataclass
class Plan:
    """What rows with one context still need: the cache they start from and the tokens to
    forward on top of it (``keys`` share the context, so it is forwarded once)."""

    keys: list[Hashable]
    kv: RowKV
    pending: list[int]


def plan_prefill(
    forward: Forward,
    store: PrefixStore,
    contexts: Mapping[Hashable, Sequence[int]],
    *,
    pad_id: int,
    device: torch.device,
) -> tuple[Prefilled, list[Plan]]:
    """:func:`prefill` up to its batched forward: rows fully cached (or covered by a shared
    head, forwarded here) are in the result; the rest are plans for the caller to forward,
    in place in its own batch or with :func:`forward_plans`."""
    out, plans, _ = _plan(forward, store, contexts, pad_id=pad_id, device=device, need_last=False)
    return out, plans


def _plan(
    forward: Forward,
    store: PrefixStore,
    contexts: Mapping[Hashable, Sequence[int]],
    *,
    pad_id: int,
    device: torch.device,
    need_last: bool,
) -> tuple[Prefilled, list[Plan], dict[int, int]]:
    """Pick each context's cached prefix. Rows fully cached go straight into the result; the
    rest come back as plans, with the most positions taken from each cached row (by id).
    Its own function so that no local outlives the plan (it would pin a batch)."""
    out = Prefilled()
    groups: dict[tuple[int, ...], list[Hashable]] = {}
    for key, context in contexts.items():
        groups.setdefault(tuple(context), []).append(key)
    rows = store.rows
    shared = _shared_prefix(list(groups), store, need_last)
    if shared:
        # Rows that share a prefix nothing cached covers (a prompt read by several beams for
        # the first time): forward it once, then let every row continue from it.
        head = list(next(iter(groups))[:shared])
        first = prefill(forward, store, {_Shared: head}, pad_id=pad_id, device=device)
        _charge(out, next(iter(contexts)), first.forwarded.get(_Shared, 0))
        rows = {**rows, _Shared: CachedRow(head, first.kv[_Shared])}
    search = PrefixStore(rows)
    plans: list[Plan] = []
    reused: dict[int, int] = {}
    for context, keys in groups.items():
        source, kept = search.best_prefix(context)
        kept = min(kept, len(context) - 1) if need_last else kept
        kv = source.prefix(kept) if source is not None and kept > 0 else empty_row()
        if source is not None and kept > 0 and source is not rows.get(_Shared):
            reused[id(source)] = max(reused.get(id(source), 0), kept)
        if kept == len(context):
            for key in keys:
                out.kv[key] = kv
        else:
            plans.append(Plan(keys, kv, list(context[kept:])))
    return out, plans, reused


def forward_plans(
    forward: Forward,
    plans: list[Plan],
    out: Prefilled,
    *,
    pad_id: int,
    device: torch.device,
    need_last: bool = False,
) -> None:
    """One batched forward of every plan's pending tokens on top of its cached prefix, in a
    batch of their own; empties ``plans`` (the batch holds their prefixes now)."""
    kept = [len(plan.kv) for plan in plans]
    width_new = max(len(plan.pending) for plan in plans)
    starts = [plan.kv for plan in plans]
    cache, mask_kept = stack_rows(starts, max(kept), spare=width_new, release=True)
    starts.clear()
    pending_rows = [(plan.keys, plan.pending) for plan in plans]
    plans.clear()
    ids = torch.full((len(pending_rows), width_new), pad_id, dtype=torch.long)
    mask_new = torch.zeros(len(pending_rows), width_new, dtype=torch.long)
    pos = torch.zeros(len(pending_rows), width_new, dtype=torch.long)
    for i, (keys, pending) in enumerate(pending_rows):
        ids[i, width_new - len(pending) :] = torch.tensor(pending)
        mask_new[i, width_new - len(pending) :] = 1
        pos[i, width_new - len(pending) :] = torch.arange(kept[i], kept[i] + len(pending))
        _charge(out, keys[0], len(pending))
    mask = torch.cat([mask_kept.to(device), mask_new.to(device)], dim=1)
    result = forward(ids.to(device), mask, pos.to(device), cache)
    kvs = unstack_rows(cache, mask, range(len(pending_rows)))
    for i, ((keys, _), kv) in enumerate(zip(pending_rows, kvs, strict=True)):
        for key in keys:
            out.kv[key] = kv
            if need_last and result is not None:
                out.last[key] = result[i, -1]


#: A row continued from is superseded when at most this many of its positions (a template's
#: closing tokens after an answer) were not reused: the new row holds all the rest.
SUPERSEDED_TAIL = 16


def _consume(store: PrefixStore, kept: Mapping[int, int]) -> None:
    def superseded(row: CachedRow) -> bool:
        n = kept.get(id(row), 0)
        return n >= len(row.tokens) - SUPERSEDED_TAIL and 2 * n >= len(row.tokens)

    for key in [k for k, row in store.rows.items() if superseded(row)]:
        del store.rows[key]


def _charge(out: Prefilled, key: Hashable, positions: int) -> None:
    """Book forwarded positions to a row (a shared head goes to the first row)."""
    if positions:
        out.forwarded[key] = out.forwarded.get(key, 0) + positions
