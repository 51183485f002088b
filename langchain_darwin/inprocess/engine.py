"""The local transformers engine: batched decoding over per-row KV caches."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence

import torch
from transformers import (
    DynamicCache,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
)

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
        plans: list[Plan],
        sampling: Sampling,
        outcome: ExtendOutcome,
    ) -> dict[str, CachedRow]:
        """Sample token by token; rows leave the batch as they finish or use their budget.
        Rows with ``plans`` are prefilled first: in place in the decode batch, or in a batch
        of their own when no row has a cache to build it on."""
        device = self.model.device
        pending: dict[str, list[int]] = {}
        twin_of: dict[str, str] = {}  # a row whose context equals an earlier row's
        for plan in plans:
            for key in plan.keys:
                kvs[key], pending[key] = plan.kv, plan.pending
                if key != plan.keys[0]:
                    twin_of[key] = plan.keys[0]

        def in_batch() -> list[str]:
            return [k for k in keys if rows[k].max_new > 0 or k in pending]

        if pending and not any(len(kvs[k]) for k in in_batch()):
            # nothing cached to build the batch on (a first call): prefill in a batch of its
            # own; otherwise the pending rows are forwarded in place, in the decode batch (no
            # second batch to build and copy, the largest transient of a period)
            filled = Prefilled(kv=kvs)
            forward_plans(self._forward, plans, filled, pad_id=self.pad_token_id, device=device)
            for key, n in filled.forwarded.items():
                outcome.work.add_prefill(key, n)
            pending.clear()
            twin_of.clear()
        plans.clear()
        # Rows to prefill come first, in groups that one forward each fills in place (see
        # _prefill_groups); twins (a context an earlier row has) next; then the rows that
        # only decode. Sampling still draws in request order.
        width = max((len(rows[k].tokens) - 1 for k in in_batch()), default=0)
        groups = self._prefill_groups(
            [k for k in keys if k in pending and k not in twin_of], rows, pending, width
        )
        tail_of = {key: len(pending[group[0]]) for group in groups for key in group}
        tail_of.update({key: tail_of[twin] for key, twin in twin_of.items()})
        batch = [key for group in groups for key in group] + [k for k in keys if k in twin_of]
        batch += [k for k in keys if k not in pending and rows[k].max_new > 0]
        stored: dict[str, CachedRow] = {}
        for key in keys:
            outcome.rows[key] = RowResult(new_tokens=[], ended=False)
            if key not in batch:
                # a copy: a view would keep the whole old batch alive while the new is built
                stored[key] = CachedRow(list(rows[key].tokens[:-1]), kvs.pop(key).copy())
        if not batch:
            return stored
        tails = [tail_of.get(k, 0) for k in batch]
        # room for this call's positions, written in place; riders stop with the last non-rider
        budgets = [rows[k].max_new for k in batch if rows[k].max_new > 0 and not rows[k].rider]
        spare = max(budgets, default=1)
        # the rows are this call's own (prefixes cut for it): the batch they came from is
        # freed layer by layer as this one is built
        cache, mask = stack_rows(
            [kvs[k] for k in batch], width, spare=spare, release=True, tails=tails
        )
        kvs.clear()  # stack_rows let go of the batch they came from, layer by layer
        mask = mask.to(device)
        if pending:
            if session.cancelled.is_set():
                session.clear()
                raise SearchCancelled("the DARWIN search was cancelled")
            self._prefill_rows(cache, mask, batch, groups, rows, pending, twin_of)
            for key in (key for group in groups for key in group):
                outcome.work.add_prefill(key, len(pending[key]))
        idle = [i for i, k in enumerate(batch) if rows[k].max_new <= 0]
        for i in idle:  # rows that only needed their context cached
            stored[batch[i]] = self._stored(
                rows[batch[i]], outcome.rows[batch[i]], unstack_row(cache, mask, i)
            )
        active = [k for k in batch if rows[k].max_new > 0]
        if not active:
            return stored
        if idle:
            index = torch.tensor([i for i, k in enumerate(batch) if rows[k].max_new > 0])
            cache.batch_select_indices(index.to(device))
            mask = mask[index.to(device)]
        last = torch.tensor([[rows[k].tokens[-1]] for k in active], device=device)
        positions = torch.tensor([[len(rows[k].tokens) - 1] for k in active], device=device)
        generator = torch.Generator(device=device).manual_seed(sampling.seed)
        warpers = self._warpers(sampling)
        order_of = {key: i for i, key in enumerate(keys)}
        perm = self._request_order(active, order_of, device)
        step = 0
        while active:
            if session.cancelled.is_set():
                session.clear()
                raise SearchCancelled("the DARWIN search was cancelled")
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
            logits = (
                self.model(
                    input_ids=last,
                    attention_mask=mask,
                    position_ids=positions,
                    use_cache=True,
                    **{self._cache_arg: cache},
                )
                .logits[:, -1, :]
                .float()
            )
            for key in active:
                outcome.work.add_decode(key, 1)
            if perm is None:
                nxt = self._sample(logits, sampling, warpers, generator)
            else:  # draw in request order, whatever the batch order
                drawn = self._sample(logits[perm], sampling, warpers, generator)
                nxt = torch.empty_like(drawn)
                nxt[perm] = drawn
            keep: list[int] = []
            full: list[int] = []  # rows that used their budget this step
            for i, key in enumerate(active):
                token = int(nxt[i])
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
            if not any(not rows[active[i]].rider for i in keep):
                # the period ends: every row still holding a cache leaves the batch at once
                leaving = full + keep
                for i, kv in zip(leaving, unstack_rows(cache, mask, leaving), strict=True):
                    key = active[i]
                    stored[key] = self._stored(rows[key], outcome.rows[key], kv)
                break
            for i in full:
                key = active[i]
                kv = unstack_row(cache, mask, i)
                stored[key] = self._stored(rows[key], outcome.rows[key], kv)
            if len(keep) < len(active):
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                mask, nxt, positions = mask[index], nxt[index], positions[index]
                active = [active[i] for i in keep]
                perm = self._request_order(active, order_of, device)
            last = nxt.view(-1, 1)
            positions = positions + 1
            step += 1
            if step % TRIM_EVERY == 0:
                release_freed_host_memory(device)
        return {key: stored[key] for key in keys if key in stored}

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
        batch: list[str],
        groups: list[list[str]],
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
        for group in groups:
            tail = len(pending[group[0]])
            ids = torch.full((len(group), tail), self.pad_token_id, dtype=torch.long)
            new = torch.zeros(len(group), tail, dtype=torch.long)
            pos = torch.zeros(len(group), tail, dtype=torch.long)
            for i, key in enumerate(group):
                tokens = pending[key]
                n, start = len(tokens), len(rows[key].tokens) - 1 - len(tokens)
                ids[i, tail - n :] = torch.tensor(tokens)
                new[i, tail - n :] = 1
                pos[i, tail - n :] = torch.arange(start, start + n)
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
        index = {key: i for i, key in enumerate(batch)}
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

    @staticmethod
    def _warpers(sampling: Sampling) -> LogitsProcessorList:
        """transformers' warpers, for sampling without a top-k cut (see :meth:`_sample`)."""
        warpers = LogitsProcessorList()
        if sampling.temperature > 0:
            if sampling.temperature != 1.0:
                warpers.append(TemperatureLogitsWarper(sampling.temperature))
            if sampling.top_k > 0:
                warpers.append(TopKLogitsWarper(sampling.top_k))
        return warpers

    @staticmethod
    def _sample(
        logits: torch.Tensor,
        sampling: Sampling,
        warpers: LogitsProcessorList,
        generator: torch.Generator,
    ) -> torch.Tensor:
        if sampling.temperature == 0:
            return logits.argmax(dim=-1)
        if 0 < sampling.top_k < logits.shape[-1]:
            # Same distribution as masking all but the top k and sampling the vocabulary,
            # but the draw runs over k candidates instead of the whole vocabulary.
            top, index = logits.topk(sampling.top_k, dim=-1)
            probs = torch.softmax(top / sampling.temperature, dim=-1)
            pick = torch.multinomial(probs, 1, generator=generator)
            return index.gather(-1, pick).view(-1)
        scores = warpers(None, logits)
        probs = torch.softmax(scores, dim=-1)
        return torch.multinomial(probs, 1, generator=generator).view(-1)
