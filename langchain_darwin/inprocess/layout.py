"""The decode batch of one ``extend`` call: which rows it holds, in what order, how many
columns wide, and which of them are prefilled in place first.

:mod:`~langchain_darwin.inprocess.prefix` says what each row still has to forward (its
plans); this module decides where those rows sit so that one forward per group fills them in
the decode batch itself, with no batch of their own. Bookkeeping only: the engine runs the
forwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from langchain_darwin.inprocess.kv import RowKV
from langchain_darwin.inprocess.prefix import CachedRow, Plan
from langchain_darwin.policy.base import RowRequest


@dataclass
class PendingPrefill:
    """What this call's planned rows still have to forward on top of their starting caches.

    Rows with the same context share a plan: the first is forwarded, the others copy its
    columns (``same_context_as`` maps each of them to that first row).
    """

    tokens: dict[str, list[int]] = field(default_factory=dict)
    same_context_as: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def clear(self) -> None:
        self.tokens.clear()
        self.same_context_as.clear()


def claim_plans(plans: list[Plan[str]], kvs: dict[str, RowKV]) -> PendingPrefill:
    """Each planned row's starting cache into ``kvs``; returns what each still forwards."""
    pending = PendingPrefill()
    for plan in plans:
        for key in plan.keys:
            kvs[key], pending.tokens[key] = plan.kv, plan.pending
            if key != plan.keys[0]:
                pending.same_context_as[key] = plan.keys[0]
    return pending


@dataclass
class BatchLayout:
    """Where this call's rows sit in the decode batch: the rows to prefill first, in groups
    that one forward each fills in place (see :func:`prefill_groups`); rows with the same
    context as one of those next (they copy its columns); then the rows that only decode."""

    #: row keys in batch order
    order: list[str]
    groups: list[list[str]]
    #: columns of the batch's cache: the longest context but its last token
    width: int
    #: per batch row, the columns left free at its end for its pending tokens
    tails: list[int]
    pending: PendingPrefill


def batch_rows(
    keys: list[str], rows: Mapping[str, RowRequest], pending: PendingPrefill
) -> list[str]:
    """Rows the decode batch holds: those with a budget and those with tokens to prefill."""
    return [k for k in keys if rows[k].max_new > 0 or k in pending.tokens]


def lay_out(
    keys: list[str], rows: Mapping[str, RowRequest], pending: PendingPrefill
) -> BatchLayout:
    """Order the batch (sampling still draws in request order) and size its columns."""
    width = max((len(rows[k].tokens) - 1 for k in batch_rows(keys, rows, pending)), default=0)
    copies = pending.same_context_as
    firsts = [k for k in keys if k in pending.tokens and k not in copies]
    groups = prefill_groups(firsts, rows, pending.tokens, width)
    tail_of = {key: len(pending.tokens[group[0]]) for group in groups for key in group}
    tail_of.update({key: tail_of[first] for key, first in copies.items()})
    order = [key for group in groups for key in group] + [k for k in keys if k in copies]
    order += [k for k in keys if k not in pending.tokens and rows[k].max_new > 0]
    return BatchLayout(order, groups, width, [tail_of.get(k, 0) for k in order], pending)


def prefill_groups(
    keys: list[str],
    rows: Mapping[str, RowRequest],
    pending: Mapping[str, list[int]],
    width: int,
) -> list[list[str]]:
    """Rows to prefill, grouped for one forward per group: a forward writes the same
    tail columns for every row it holds (left-padded to its longest pending run), so a
    row joins a group only if its cached part plus that tail still fits the batch's
    ``width``; otherwise the batch would widen for every row. A period's replaced beams
    usually make one group."""
    groups: list[list[str]] = []
    for key in sorted(keys, key=lambda k: -len(pending[k])):  # stable: request order
        kept = len(rows[key].tokens) - 1 - len(pending[key])
        fits = (g for g in groups if kept + len(pending[g[0]]) <= width)
        group = next(fits, None)
        if group is None:
            groups.append([key])
        else:
            group.append(key)
    return groups


def store_rows_outside_batch(
    keys: list[str], layout: BatchLayout, rows: Mapping[str, RowRequest], kvs: dict[str, RowKV]
) -> dict[str, CachedRow]:
    """Store the rows that take no part in the batch (no budget, nothing to prefill) as
    they are: copies, since a view would keep the whole old batch alive while the new is
    built."""
    in_batch = set(layout.order)
    stored: dict[str, CachedRow] = {}
    for key in keys:
        if key not in in_batch:
            stored[key] = CachedRow(list(rows[key].tokens[:-1]), kvs.pop(key).copy())
    return stored
