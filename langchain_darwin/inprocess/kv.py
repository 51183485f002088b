"""Batched KV caches whose rows outlive their batch: the policy's beams and causal reward
models.

A row's keys/values are the row of a batched buffer it was last forwarded in, plus the columns
of that buffer that hold its positions: cutting rows out of a batch copies nothing. Rows are
gathered into a fresh padded :class:`~transformers.DynamicCache` for the next batched forward,
layer by layer, letting go of each source layer once it is copied, so an old batch and its
successor never both exist whole. Rows can also be written in place in a stacked batch
(``tails`` + :func:`row_cache`). Which rows to reuse is the job of
:mod:`langchain_darwin.inprocess.prefix`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from langchain_darwin.inprocess.memory import release_freed_host_memory


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
        # a sliced layer is a view and needs its own copy; a gathered one already is one
        own = (lambda t: t.clone()) if self._span is not None else (lambda t: t)
        return RowKV.compact(
            [tuple(own(t) for t in self.layer(i)) for i in range(len(self.layers))]
        )


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
    """Copy ``columns`` of batch row ``source`` into row ``target``: a row whose context
    equals another's takes that row's prefill instead of forwarding it again."""
    for layer in cache.layers:
        layer.keys[target, :, columns] = layer.keys[source, :, columns]
        layer.values[target, :, columns] = layer.values[source, :, columns]
