"""The local transformers engine: batched decoding over per-row KV caches."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
from langchain_darwin.inprocess.layout import (
    BatchLayout,
    batch_rows,
    claim_plans,
    lay_out,
    store_rows_outside_batch,
)
from langchain_darwin.inprocess.memory import release_freed_host_memory
from langchain_darwin.inprocess.prefix import (
    CachedRow,
    Plan,
    Prefilled,
    forward_plans,
    left_padded,
    plan_prefill,
)
from langchain_darwin.inprocess.sampling import draw_in_request_order, request_order, token_draw
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
        self.vocabulary_size: int = (
            head.weight.shape[0] if head is not None else model.config.vocab_size
        )

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
            self.prefill_forward, session, contexts, pad_id=self.pad_token_id, device=device
        )
        for key, n in planned.forwarded.items():
            outcome.work.add_prefill(key, n)
        if commit:  # the old rows are no longer needed: free them before the batch grows
            session.rows = {}
        call = _ExtendCall(self, session, rows, sampling, outcome)
        stored = call.run(planned.kv, plans)
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

    # -- the two forwards a call makes ---------------------------------------------------
    def prefill_forward(
        self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: DynamicCache
    ) -> None:
        """Forward context tokens into ``cache``; only the cache is wanted, not logits."""
        self._forward(ids, mask, pos, cache, **self._prefill_kwargs)

    def next_token_logits(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: DynamicCache
    ) -> torch.Tensor:
        """One decoding step: feed each row its last token (``ids``, one column); the next
        token's logits, in float32."""
        return self.forward_logits(ids, mask, positions, cache)[:, -1, :].float()

    def forward_logits(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: DynamicCache
    ) -> torch.Tensor:
        """Forward ``ids`` into ``cache``; the logits of every position (a decoding step
        keeps the last, a likelihood scorer reads them all)."""
        return self._forward(ids, mask, positions, cache).logits

    def _forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: DynamicCache,
        **extra: Any,
    ) -> Any:
        """The one model call every forward shares (the cache argument's name differs
        between transformers versions)."""
        return self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{self._cache_arg: cache},
            **extra,
        )


class _ExtendCall:
    """One :meth:`TransformersPolicy.extend` call: its rows, their results, and the caches
    stored for the session as rows leave the decode batch. Rows with pending tokens (their
    plans) are prefilled first: in place in the decode batch, or in a batch of their own
    when no row has a cache to build it on; then every row with a budget samples, token by
    token, leaving the batch as it finishes or uses its budget."""

    def __init__(
        self,
        policy: TransformersPolicy,
        session: KVSession,
        rows: Mapping[str, RowRequest],
        sampling: Sampling,
        outcome: ExtendOutcome,
    ) -> None:
        self.policy, self.session, self.rows = policy, session, rows
        self.sampling, self.outcome = sampling, outcome
        #: the rows in request order
        self.keys = list(rows)
        #: the caches of the rows done so far, as the session will keep them
        self.stored: dict[str, CachedRow] = {}
        self.device = policy.model.device
        for key in self.keys:
            outcome.rows[key] = RowResult(new_tokens=[], ended=False)

    def run(self, kvs: dict[str, RowKV], plans: list[Plan[str]]) -> dict[str, CachedRow]:
        """Decode; returns every row's cache, in request order. ``kvs`` (the rows' starting
        caches) and ``plans`` are consumed: the batch built from them holds them now."""
        pending = claim_plans(plans, kvs)
        if pending and not any(len(kvs[k]) for k in batch_rows(self.keys, self.rows, pending)):
            # nothing cached to build the batch on (a first call): prefill in a batch of its
            # own; otherwise the pending rows are forwarded in place, in the decode batch (no
            # second batch to build and copy, the largest transient of a period)
            self._prefill_apart(plans, kvs)
            pending.clear()
        plans.clear()
        layout = lay_out(self.keys, self.rows, pending)
        self.stored = store_rows_outside_batch(self.keys, layout, self.rows, kvs)
        if layout.order:
            cache, mask = self._stack(layout, kvs)
            if pending:
                self._check_cancelled()
                self._prefill_in_place(cache, mask, layout)
            batch = self._store_rows_without_budget(layout.order, cache, mask)
            if batch is not None:
                self._sample(batch)
        return {key: self.stored[key] for key in self.keys if key in self.stored}

    # -- the batch ----------------------------------------------------------------------
    def _prefill_apart(self, plans: list[Plan[str]], kvs: dict[str, RowKV]) -> None:
        """Prefill ``plans`` in a batch of their own, into ``kvs``."""
        filled = Prefilled(kv=kvs)
        forward, pad_id = self.policy.prefill_forward, self.policy.pad_token_id
        forward_plans(forward, plans, filled, pad_id=pad_id, device=self.device)
        for key, n in filled.forwarded.items():
            self.outcome.work.add_prefill(key, n)

    def _stack(
        self, layout: BatchLayout, kvs: dict[str, RowKV]
    ) -> tuple[DynamicCache, torch.Tensor]:
        """The batch's cache and mask, with room for this call's positions written in place
        (rows that ride along stop with the last row that does not, so only those size it).
        The rows are this call's own (prefixes cut for it): the batch they came from is
        freed layer by layer as this one is built."""
        rows = self.rows
        budgets = [
            rows[k].max_new for k in layout.order if rows[k].max_new > 0 and not rows[k].background
        ]
        spare = max(budgets, default=1)
        cache, mask = stack_rows(
            [kvs[k] for k in layout.order],
            layout.width,
            spare=spare,
            release=True,
            tails=layout.tails,
        )
        kvs.clear()  # stack_rows let go of the batch they came from, layer by layer
        return cache, mask.to(self.device)

    def _prefill_in_place(
        self, cache: DynamicCache, mask: torch.Tensor, layout: BatchLayout
    ) -> None:
        """Forward each group's pending tokens, one forward per group, into the tail columns
        :func:`stack_rows` left for them (left-padded within the tail); the groups are the
        first rows of the batch, in order. A row with the same context as a forwarded one
        then copies its tail."""
        pending = layout.pending.tokens
        width = mask.shape[1]
        first = 0
        for group in layout.groups:
            tail = len(pending[group[0]])
            starts = [len(self.rows[k].tokens) - 1 - len(pending[k]) for k in group]
            runs = [pending[k] for k in group]
            ids, new, pos = left_padded(runs, starts, tail, self.policy.pad_token_id)
            block = slice(first, first + len(group))
            new = new.to(mask.device)
            self.policy.prefill_forward(
                ids.to(mask.device),
                torch.cat([mask[block, : width - tail], new], dim=1),
                pos.to(mask.device),
                row_cache(cache, block, width - tail),
            )
            mask[block, width - tail :] = new
            first += len(group)
            for key in group:
                self.outcome.work.add_prefill(key, len(pending[key]))
        index = {key: i for i, key in enumerate(layout.order)}
        for key, source in layout.pending.same_context_as.items():
            columns = slice(width - len(pending[key]), width)
            copy_columns(cache, index[source], index[key], columns)
            mask[index[key], columns] = mask[index[source], columns]

    def _store_rows_without_budget(
        self, order: list[str], cache: DynamicCache, mask: torch.Tensor
    ) -> _DecodeBatch | None:
        """Store the rows that were in the batch only to have their context prefilled and
        take them out of it; the rows left to decode (``None``: none)."""
        rows = self.rows
        for i, key in enumerate(order):
            if rows[key].max_new <= 0:
                self._store(key, unstack_row(cache, mask, i))
        active = [k for k in order if rows[k].max_new > 0]
        if not active:
            return None
        if len(active) < len(order):
            index = torch.tensor([i for i, k in enumerate(order) if rows[k].max_new > 0])
            cache.batch_select_indices(index.to(self.device))
            mask = mask[index.to(self.device)]
        return _DecodeBatch(
            keys=active,
            cache=cache,
            mask=mask,
            last=torch.tensor([[rows[k].tokens[-1]] for k in active], device=self.device),
            positions=torch.tensor([[len(rows[k].tokens) - 1] for k in active], device=self.device),
        )

    # -- the sampling loop --------------------------------------------------------------
    def _sample(self, batch: _DecodeBatch) -> None:
        """One token per active row per step until the period ends (no row that does not
        ride along can grow); a row leaves the batch, its cache stored, when it ends or
        fills its budget."""
        draw = token_draw(self.sampling, self.policy.vocabulary_size, self.device)
        order_of = {key: i for i, key in enumerate(self.keys)}
        order = request_order(batch.keys, order_of, self.device)
        step = 0
        while True:
            self._check_cancelled()
            logits = self._step_logits(batch)
            for key in batch.keys:
                self.outcome.work.add_decode(key, 1)
            tokens = draw_in_request_order(draw, logits, order)
            keep, full = self._take_tokens(batch.keys, tokens.tolist())
            if not any(not self.rows[batch.keys[i]].background for i in keep):
                # the period ends: every row still holding a cache leaves the batch at once
                leaving = full + keep
                kvs = unstack_rows(batch.cache, batch.mask, leaving)
                for i, kv in zip(leaving, kvs, strict=True):
                    self._store(batch.keys[i], kv)
                return
            for i in full:
                self._store(batch.keys[i], unstack_row(batch.cache, batch.mask, i))
            if len(keep) < len(batch.keys):
                tokens = batch.select(keep, tokens)
                order = request_order(batch.keys, order_of, self.device)
            batch.advance(tokens)
            step += 1
            if step % TRIM_EVERY == 0:
                release_freed_host_memory(self.device)

    def _step_logits(self, batch: _DecodeBatch) -> torch.Tensor:
        """Feed every active row its last token; the next token's logits, in float32."""
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones(len(batch.keys), 1)], dim=1)
        return self.policy.next_token_logits(batch.last, batch.mask, batch.positions, batch.cache)

    def _take_tokens(self, keys: list[str], tokens: list[int]) -> tuple[list[int], list[int]]:
        """Give each row its drawn token; returns the batch indices of the rows that go on
        and of those that used their budget with it. A row ends (and is dropped) on
        end-of-sequence, not kept, or on one of its stop tokens once it has text, kept."""
        keep: list[int] = []
        full: list[int] = []
        eos, ignore_eos = self.policy.eos_token_ids, self.sampling.ignore_eos
        for i, (key, token) in enumerate(zip(keys, tokens, strict=True)):
            result, req = self.outcome.rows[key], self.rows[key]
            if token in eos and not ignore_eos:
                result.ended = True
                continue
            result.new_tokens.append(token)
            if token in req.stop_ids and self.policy.detokenize(result.new_tokens).strip():
                result.ended = True
                continue
            if len(result.new_tokens) < req.max_new:
                keep.append(i)
            else:
                full.append(i)
        return keep, full

    def _store(self, key: str, kv: RowKV) -> None:
        """Keep a row's cache as the session will: with its tokens but the last, which the
        next call's first step feeds."""
        tokens = list(self.rows[key].tokens) + self.outcome.rows[key].new_tokens
        self.stored[key] = CachedRow(tokens[:-1], kv)

    def _check_cancelled(self) -> None:
        """Stop a cancelled run: its caches are dropped, and the search sees the error."""
        if self.session.cancelled.is_set():
            self.session.clear()
            raise SearchCancelled("the DARWIN search was cancelled")


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
