"""The local transformers engine: batched decoding over per-row KV caches."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from langchain_darwin.inprocess.kv import (
    RowKV,
    copy_columns,
    row_cache,
    stack_rows,
    unstack_row,
    unstack_rows,
)
from langchain_darwin.inprocess.memory import release_freed_host_memory
from langchain_darwin.inprocess.prefix import (
    CachedRow,
    Plan,
    Prefilled,
    forward_plans,
    plan_prefill,
)
from langchain_darwin.inprocess.sampling import draw_in_request_order, token_draw
from langchain_darwin.inprocess.session import KVSession
from langchain_darwin.policy.base import (
    ExtendOutcome,
    RowRequest,
    RowResult,
    Sampling,
    SearchCancelled,
)

#: Decoding steps between returns of freed heap pages: each step's attention copies are one
#: position longer than the last step's, so their freed blocks pile up as holes otherwise.
TRIM_EVERY = 8


class TransformersPolicy:
    """A Hugging Face causal LM as DARWIN's policy. Thread-safe: all per-run state lives in
    the :class:`KVSession` a run owns; the model is only read."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model = model
        self.tokenizer = tokenizer
        eos = model.generation_config.eos_token_id if model.generation_config else None
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        self.eos_token_ids = frozenset(eos_ids)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.context_window: int | None = getattr(model.config, "max_position_embeddings", None)
        # transformers renamed the cache argument of ``forward``; use whichever this one takes.
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        # A prefill needs the cache, not logits: keep one position of them (not a
        # (rows x positions x vocabulary) tensor, which would dominate memory and time).
        self._prefill_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self._keeps_logits = "logits_to_keep" in params
        # the width of a step's logits, which decides whether a top-k cut cuts anything
        head = model.get_output_embeddings()
        self._vocabulary = head.weight.shape[0] if head is not None else model.config.vocab_size

    @functools.cached_property
    def line_break_ids(self) -> frozenset[int]:
        vocab = self.tokenizer.get_vocab().values()
        return frozenset(i for i in vocab if "\n" in self.tokenizer.decode([i]))

    # -- text <-> tokens -------------------------------------------------------------
    def render(
        self, conversation: Sequence[Mapping[str, str]], **template_kwargs: object
    ) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            list(conversation), add_generation_prompt=True, tokenize=False, **template_kwargs
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True)

    def new_session(self, reuse_cache: bool = True) -> KVSession:
        return KVSession(reuse_cache=reuse_cache)

    # -- decoding --------------------------------------------------------------------
    @torch.inference_mode()
    def extend(
        self,
        session: KVSession,
        rows: Mapping[str, RowRequest],
        sampling: Sampling,
        *,
        commit: bool = True,
    ) -> ExtendOutcome:
        outcome = ExtendOutcome()
        if not rows:
            if commit:
                session.clear()
            return outcome
        if session.cancelled.is_set():
            raise SearchCancelled("the DARWIN search was cancelled")
        if not session.reuse_cache:
            session.clear()
        for key, req in rows.items():
            if len(req.tokens) < 1:
                raise ValueError(f"row {key!r} has no context tokens to continue from")
        keys = list(rows)
        # every row's cache covers all of its context but the last token, which the first
        # decode step feeds
        contexts = {k: list(rows[k].tokens[:-1]) for k in keys}
        device = self.model.device
        planned, plans = plan_prefill(
            self._forward, session, contexts, pad_id=self.pad_token_id, device=device
        )
        for key, n in planned.forwarded.items():
            outcome.work.add_prefill(key, n)
        if commit:  # the old rows are no longer needed: free them before the batch grows
            session.rows = {}
        stored = self._decode(session, keys, rows, planned.kv, plans, sampling, outcome)
        if commit:
            session.rows = stored
        release_freed_host_memory(device)
        return outcome

    @torch.inference_mode()
    def answer_logprobs(
        self,
        session: KVSession,
        rows: Mapping[str, tuple[Sequence[int], Sequence[int]]],
    ) -> dict[str, list[float]]:
        """Per row ``(prompt ids, answer ids)``: the log-probability of each answer token
        given the prompt and the answer before it. One left-padded forward for all rows,
        so every answer ends at the right edge and only the last columns' logits are made;
        the session's caches are neither read nor changed."""
        if session.cancelled.is_set():
            raise SearchCancelled("the DARWIN search was cancelled")
        out: dict[str, list[float]] = {key: [] for key in rows}
        scored = {k: (list(p), list(a)) for k, (p, a) in rows.items() if len(a)}
        for key, (prompt, _) in scored.items():
            if not prompt:
                raise ValueError(f"row {key!r} has no prompt to condition its answer on")
        if not scored:
            return out
        device = self.model.device
        runs = [prompt + answer for prompt, answer in scored.values()]
        width = max(len(run) for run in runs)
        ids, mask, pos = left_padded(runs, [0] * len(runs), width, self.pad_token_id)
        # position j's logits predict token j + 1: the answers' are the last ``longest``
        longest = max(len(answer) for _, answer in scored.values())
        keep = {"logits_to_keep": longest + 1} if self._keeps_logits else {}
        logits = self.model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=pos.to(device),
            use_cache=False,
            **keep,
        ).logits[:, -longest - 1 : -1, :]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        targets = ids[:, width - longest :].to(device).unsqueeze(-1)
        picked = logprobs.gather(-1, targets).squeeze(-1).cpu()
        for i, (key, (_, answer)) in enumerate(scored.items()):
            out[key] = picked[i, longest - len(answer) :].tolist()
        return out

    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: DynamicCache
    ) -> None:
        self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            **{self._cache_arg: cache},
            **self._prefill_kwargs,
        )

    def _decode(
        self,
        session: KVSession,
        keys: list[str],
        rows: Mapping[str, RowRequest],
        kvs: dict[str, RowKV],
        plans: list[Plan[str]],
        sampling: Sampling,
        outcome: ExtendOutcome,
    ) -> dict[str, CachedRow]:
        """Sample token by token; rows leave the batch as they finish or use their budget.
        Rows with ``plans`` are prefilled first: in place in the decode batch, or in a batch
        of their own when no row has a cache to build it on."""
        pending, twin_of = self._claim_plans(plans, kvs)
        if pending and not any(len(kvs[k]) for k in _in_batch(keys, rows, pending)):
            # nothing cached to build the batch on (a first call): prefill in a batch of its
            # own; otherwise the pending rows are forwarded in place, in the decode batch (no
            # second batch to build and copy, the largest transient of a period)
            self._prefill_apart(plans, kvs, outcome)
            pending.clear()
            twin_of.clear()
        plans.clear()
        layout = _layout(keys, rows, pending, twin_of)
        for key in keys:
            outcome.rows[key] = RowResult(new_tokens=[], ended=False)
        stored = _set_aside(keys, layout.batch, rows, kvs)
        if not layout.batch:
            return stored
        cache, mask = self._stack(layout, rows, kvs)
        if pending:
            _check_cancelled(session)
            self._prefill_rows(cache, mask, layout, rows, pending, twin_of)
            for key in (key for group in layout.groups for key in group):
                outcome.work.add_prefill(key, len(pending[key]))
        batch = self._store_idle(layout.batch, rows, cache, mask, outcome, stored)
        if batch is None:
            return stored
        self._sample_rows(session, keys, rows, batch, sampling, outcome, stored)
        return {key: stored[key] for key in keys if key in stored}

    # -- decode: the batch --------------------------------------------------------------
    @staticmethod
    def _claim_plans(
        plans: list[Plan[str]], kvs: dict[str, RowKV]
    ) -> tuple[dict[str, list[int]], dict[str, str]]:
        """Each planned row's starting cache into ``kvs``; returns the tokens each still has
        to prefill and, for a row whose context equals an earlier row's, that row (its twin:
        prefilled once, its columns copied)."""
        pending: dict[str, list[int]] = {}
        twin_of: dict[str, str] = {}
        for plan in plans:
            for key in plan.keys:
                kvs[key], pending[key] = plan.kv, plan.pending
                if key != plan.keys[0]:
                    twin_of[key] = plan.keys[0]
        return pending, twin_of

    def _prefill_apart(
        self, plans: list[Plan[str]], kvs: dict[str, RowKV], outcome: ExtendOutcome
    ) -> None:
        """Prefill ``plans`` in a batch of their own, into ``kvs``."""
        filled = Prefilled(kv=kvs)
        device = self.model.device
        forward_plans(self._forward, plans, filled, pad_id=self.pad_token_id, device=device)
        for key, n in filled.forwarded.items():
            outcome.work.add_prefill(key, n)

    def _stack(
        self, layout: _Layout, rows: Mapping[str, RowRequest], kvs: dict[str, RowKV]
    ) -> tuple[DynamicCache, torch.Tensor]:
        """The batch's cache and mask, with room for this call's positions written in place
        (riders stop with the last non-rider, so only non-riders size it). The rows are this
        call's own (prefixes cut for it): the batch they came from is freed layer by layer
        as this one is built."""
        budgets = [
            rows[k].max_new for k in layout.batch if rows[k].max_new > 0 and not rows[k].rider
        ]
        spare = max(budgets, default=1)
        cache, mask = stack_rows(
            [kvs[k] for k in layout.batch],
            layout.width,
            spare=spare,
            release=True,
            tails=layout.tails,
        )
        kvs.clear()  # stack_rows let go of the batch they came from, layer by layer
        return cache, mask.to(self.model.device)

    def _store_idle(
        self,
        batch: list[str],
        rows: Mapping[str, RowRequest],
        cache: DynamicCache,
        mask: torch.Tensor,
        outcome: ExtendOutcome,
        stored: dict[str, CachedRow],
    ) -> _DecodeBatch | None:
        """Store the rows that only needed their context cached and take them out of the
        batch; the rows left to decode (``None``: none)."""
        idle = [i for i, k in enumerate(batch) if rows[k].max_new <= 0]
        for i in idle:
            key = batch[i]
            stored[key] = self._stored(rows[key], outcome.rows[key], unstack_row(cache, mask, i))
        active = [k for k in batch if rows[k].max_new > 0]
        if not active:
            return None
        device = self.model.device
        if idle:
            index = torch.tensor([i for i, k in enumerate(batch) if rows[k].max_new > 0])
            cache.batch_select_indices(index.to(device))
            mask = mask[index.to(device)]
        return _DecodeBatch(
            keys=active,
            cache=cache,
            mask=mask,
            last=torch.tensor([[rows[k].tokens[-1]] for k in active], device=device),
            positions=torch.tensor([[len(rows[k].tokens) - 1] for k in active], device=device),
        )

    # -- decode: the sampling loop ------------------------------------------------------
    def _sample_rows(
        self,
        session: KVSession,
        keys: list[str],
        rows: Mapping[str, RowRequest],
        batch: _DecodeBatch,
        sampling: Sampling,
        outcome: ExtendOutcome,
        stored: dict[str, CachedRow],
    ) -> None:
        """One token per active row per step until the period ends (no non-rider can
        grow); a row leaves the batch, its cache stored, when it ends or fills its budget."""
        device = self.model.device
        draw = token_draw(sampling, self._vocabulary, device)
        order_of = {key: i for i, key in enumerate(keys)}
        order = self._request_order(batch.keys, order_of, device)
        step = 0
        while True:
            _check_cancelled(session)
            logits = self._step_logits(batch)
            for key in batch.keys:
                outcome.work.add_decode(key, 1)
            tokens = draw_in_request_order(draw, logits, order)
            keep, full = self._take_tokens(batch.keys, tokens.tolist(), rows, outcome, sampling)
            if not any(not rows[batch.keys[i]].rider for i in keep):
                # the period ends: every row still holding a cache leaves the batch at once
                leaving = full + keep
                kvs = unstack_rows(batch.cache, batch.mask, leaving)
                for i, kv in zip(leaving, kvs, strict=True):
                    key = batch.keys[i]
                    stored[key] = self._stored(rows[key], outcome.rows[key], kv)
                return
            for i in full:
                key = batch.keys[i]
                kv = unstack_row(batch.cache, batch.mask, i)
                stored[key] = self._stored(rows[key], outcome.rows[key], kv)
            if len(keep) < len(batch.keys):
                tokens = batch.select(keep, tokens)
                order = self._request_order(batch.keys, order_of, device)
            batch.advance(tokens)
            step += 1
            if step % TRIM_EVERY == 0:
                release_freed_host_memory(device)

    def _step_logits(self, batch: _DecodeBatch) -> torch.Tensor:
        """Feed every active row its last token; the next token's logits, in float32."""
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones(len(batch.keys), 1)], dim=1)
        out = self.model(
            input_ids=batch.last,
            attention_mask=batch.mask,
            position_ids=batch.positions,
            use_cache=True,
            **{self._cache_arg: batch.cache},
        )
        return out.logits[:, -1, :].float()

    def _take_tokens(
        self,
        keys: list[str],
        tokens: list[int],
        rows: Mapping[str, RowRequest],
        outcome: ExtendOutcome,
        sampling: Sampling,
    ) -> tuple[list[int], list[int]]:
        """Give each row its drawn token; returns the batch indices of the rows that go on
        and of those that used their budget with it. A row ends (and is dropped) on
        end-of-sequence, not kept, or on one of its stop tokens once it has text, kept."""
        keep: list[int] = []
        full: list[int] = []
        for i, (key, token) in enumerate(zip(keys, tokens, strict=True)):
            result = outcome.rows[key]
            if token in self.eos_token_ids and not sampling.ignore_eos:
                result.ended = True
                continue
            result.new_tokens.append(token)
            if token in rows[key].stop_ids and self.detokenize(result.new_tokens).strip():
                result.ended = True
                continue
            if len(result.new_tokens) < rows[key].max_new:
                keep.append(i)
            else:
                full.append(i)
        return keep, full

    @staticmethod
    def _request_order(
        active: list[str], order_of: Mapping[str, int], device: torch.device
    ) -> torch.Tensor | None:
        """Batch indices of the active rows in request order (``None``: already in it)."""
        order = sorted(range(len(active)), key=lambda i: order_of[active[i]])
        return None if order == list(range(len(active))) else torch.tensor(order, device=device)

    @staticmethod
    def _prefill_groups(
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

    def _prefill_rows(
        self,
        cache: DynamicCache,
        mask: torch.Tensor,
        layout: _Layout,
        rows: Mapping[str, RowRequest],
        pending: Mapping[str, list[int]],
        twin_of: Mapping[str, str],
    ) -> None:
        """Forward each group's pending tokens, one forward per group, into the tail columns
        :func:`stack_rows` left for them (left-padded within the tail); the groups are the
        first rows of the batch, in order. A twin then copies its twin's tail."""
        device = mask.device
        width = mask.shape[1]
        first = 0
        for group in layout.groups:
            tail = len(pending[group[0]])
            starts = [len(rows[k].tokens) - 1 - len(pending[k]) for k in group]
            ids, new, pos = left_padded(
                [pending[k] for k in group], starts, tail, self.pad_token_id
            )
            block = slice(first, first + len(group))
            new = new.to(device)
            self._forward(
                ids.to(device),
                torch.cat([mask[block, : width - tail], new], dim=1),
                pos.to(device),
                row_cache(cache, block, width - tail),
            )
            mask[block, width - tail :] = new
            first += len(group)
        index = {key: i for i, key in enumerate(layout.batch)}
        for key, twin in twin_of.items():
            columns = slice(width - len(pending[key]), width)
            copy_columns(cache, index[twin], index[key], columns)
            mask[index[key], columns] = mask[index[twin], columns]

    @staticmethod
    def _stored(req: RowRequest, result: RowResult, kv: RowKV) -> CachedRow:
        """A row's cache as the session keeps it: its tokens but the last, which the next
        call's first step feeds."""
        tokens = list(req.tokens) + result.new_tokens
        return CachedRow(tokens[:-1], kv)


# -- decode: plain parts ---------------------------------------------------------------------


@dataclass
class _Layout:
    """Where this call's rows sit in the decode batch: the rows to prefill first, in groups
    that one forward each fills in place (see :meth:`TransformersPolicy._prefill_groups`);
    twins (a context an earlier row has) next; then the rows that only decode."""

    batch: list[str]
    groups: list[list[str]]
    #: columns of the batch's cache: the longest context but its last token
    width: int
    #: per batch row, the columns left free at its end for its pending tokens
    tails: list[int]


@dataclass
class _DecodeBatch:
    """The rows decoding together, in batch order: their cache and mask, and each row's
    next input token and position."""

    keys: list[str]
    cache: DynamicCache
    mask: torch.Tensor
    last: torch.Tensor
    positions: torch.Tensor

    def select(self, keep: list[int], tokens: torch.Tensor) -> torch.Tensor:
        """Keep only the rows at batch indices ``keep``; returns their ``tokens``."""
        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.positions = self.mask[index], self.positions[index]
        self.keys = [self.keys[i] for i in keep]
        return tokens[index]

    def advance(self, tokens: torch.Tensor) -> None:
        """The drawn ``tokens`` are the next step's inputs, one position further."""
        self.last = tokens.view(-1, 1)
        self.positions = self.positions + 1


def _in_batch(
    keys: list[str], rows: Mapping[str, RowRequest], pending: Mapping[str, list[int]]
) -> list[str]:
    """Rows the decode batch holds: those with a budget and those with tokens to prefill."""
    return [k for k in keys if rows[k].max_new > 0 or k in pending]


def _layout(
    keys: list[str],
    rows: Mapping[str, RowRequest],
    pending: Mapping[str, list[int]],
    twin_of: Mapping[str, str],
) -> _Layout:
    """Order the batch (sampling still draws in request order) and size its columns."""
    width = max((len(rows[k].tokens) - 1 for k in _in_batch(keys, rows, pending)), default=0)
    groups = TransformersPolicy._prefill_groups(
        [k for k in keys if k in pending and k not in twin_of], rows, pending, width
    )
    tail_of = {key: len(pending[group[0]]) for group in groups for key in group}
    tail_of.update({key: tail_of[twin] for key, twin in twin_of.items()})
    batch = [key for group in groups for key in group] + [k for k in keys if k in twin_of]
    batch += [k for k in keys if k not in pending and rows[k].max_new > 0]
    return _Layout(batch, groups, width, [tail_of.get(k, 0) for k in batch])


def _set_aside(
    keys: list[str], batch: list[str], rows: Mapping[str, RowRequest], kvs: dict[str, RowKV]
) -> dict[str, CachedRow]:
    """Store the rows that take no part in the batch (no budget, nothing to prefill) as
    they are: copies, since a view would keep the whole old batch alive while the new is
    built."""
    stored: dict[str, CachedRow] = {}
    for key in keys:
        if key not in batch:
            stored[key] = CachedRow(list(rows[key].tokens[:-1]), kvs.pop(key).copy())
    return stored


def _check_cancelled(session: KVSession) -> None:
    """Stop a cancelled run: its caches are dropped, and the search sees the error."""
    if session.cancelled.is_set():
        session.clear()
        raise SearchCancelled("the DARWIN search was cancelled")


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
