"""Per-row KV storage for one DARWIN run, and batching of rows with different lengths.

Every row keeps its own compact keys/values (one ``(heads, length, head_dim)`` pair per layer)
for all of its tokens but the last, which the next decode step feeds. Rows are stacked into a
left-padded :class:`~transformers.DynamicCache` for a batched forward and cut back into compact
rows afterwards, so a replaced beam, a new beam that shares a prompt prefix, or a resumed run
simply find the longest cached prefix and prefill only the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

#: Keys and values of one row: a ``(key, value)`` pair per layer, each ``(heads, length, dim)``.
RowKV = list[tuple[torch.Tensor, torch.Tensor]]


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
    ta = torch.as_tensor(a[:n])
    tb = torch.as_tensor(b[:n])
    diff = (ta != tb).nonzero()
    return n if diff.numel() == 0 else int(diff[0])


class KVSession:
    """Cached rows of one run. ``reuse_cache=False`` forgets everything before each call,
    which reproduces the reference implementation's re-prefill cost."""

    def __init__(self, reuse_cache: bool = True) -> None:
        self.reuse_cache = reuse_cache
        self.rows: dict[str, CachedRow] = {}
        self.cancelled = threading.Event()

    def clear(self) -> None:
        self.rows.clear()

    def cancel(self) -> None:
        """Stop the run's decoding at the next token and free its caches."""
        self.cancelled.set()
        self.clear()

    def best_prefix(self, context: Sequence[int]) -> tuple[CachedRow | None, int]:
        """The stored row sharing the longest prefix with ``context``, and that length."""
        best, best_len = None, 0
        for row in self.rows.values():
            n = common_prefix(row.tokens, context)
            if n > best_len:
                best, best_len = row, n
        return best, best_len


def stack_rows(kvs: Sequence[RowKV], width: int) -> tuple[DynamicCache, torch.Tensor]:
    """Left-pad rows to ``width`` positions and stack them into one batched cache + mask."""
    lengths = [kv[0][0].shape[1] if kv else 0 for kv in kvs]
    ref = next((kv for kv in kvs if kv), None)
    if ref is None or width == 0:
        return DynamicCache(), torch.zeros(len(kvs), width, dtype=torch.long)
    device = ref[0][0].device
    layers = []
    for layer in range(len(ref)):
        heads, _, dim = ref[layer][0].shape
        k_all = ref[layer][0].new_zeros(len(kvs), heads, width, dim)
        v_all = ref[layer][1].new_zeros(len(kvs), heads, width, dim)
        for i, kv in enumerate(kvs):
            if lengths[i]:
                k_all[i, :, width - lengths[i] :] = kv[layer][0]
                v_all[i, :, width - lengths[i] :] = kv[layer][1]
        layers.append((k_all, v_all))
    mask = torch.zeros(len(kvs), width, dtype=torch.long, device=device)
    for i, n in enumerate(lengths):
        if n:
            mask[i, width - n :] = 1
    return DynamicCache(ddp_cache_data=layers), mask


def unstack_row(cache: DynamicCache, mask: torch.Tensor, index: int) -> RowKV:
    """The compact keys/values of batch row ``index`` (padding columns dropped)."""
    keep = mask[index].bool()
    keep = keep[: cache.layers[0].keys.shape[2]]
    return [(layer.keys[index][:, keep], layer.values[index][:, keep]) for layer in cache.layers]
