"""The policy's own log-likelihood of answers to a conversation: log pi(answer | conversation).

One function, shared by the default reward's fluency term and by anything else that needs
pi_ref (a regularised Best-of-N guard, for instance). It reads the answer tokens only: the
rendered conversation is the condition, never scored.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from langchain_darwin.inprocess.memory import release_freed_host_memory
from langchain_darwin.inprocess.prefix import CachedRow, PrefixStore, common_prefix, prefill
from langchain_darwin.rewards.base import Conversation

#: A row is continued by a longer one that shares all but at most this many of its last
#: tokens: text cut mid-word re-tokenizes differently at the cut.
RETOKENIZED_TAIL = 4


@dataclass(frozen=True)
class AnswerLikelihood:
    """Sum of the answer tokens' log-probabilities, how many tokens were scored, and how many
    positions the policy read to score them (the rendered conversation, then the answer)."""

    total: float
    tokens: int
    positions: int = 0

    @property
    def mean(self) -> float | None:
        """Mean log-probability per answer token; None for an empty answer (nothing read)."""
        return self.total / self.tokens if self.tokens else None


def answer_log_likelihoods(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversation: Conversation,
    answers: Sequence[str],
    *,
    batch_size: int = 8,
    max_answer_tokens: int | None = None,
) -> list[AnswerLikelihood]:
    """log pi(answer | conversation) for each answer, in order, in batches.

    The engine's own ``answer_logprobs`` does the reading (one implementation of the
    forward), on the conversation rendered with the policy's chat template; answers are
    tokenized on their own after it, as the engine appends generated ids. Rows are sorted by
    length before batching so a batch pads little. ``max_answer_tokens`` reads only each
    answer's first tokens (cheaper; the tail is then unseen). The end-of-turn token is not
    scored: partial answers are scored mid-search, and they would all pay for not ending.
    """
    from langchain_darwin.inprocess.engine import TransformersPolicy

    policy = TransformersPolicy(model, tokenizer)
    session = policy.new_session(reuse_cache=False)
    prompt = policy.render(conversation)
    rows = [policy.tokenize(a)[:max_answer_tokens] for a in answers]
    results = [AnswerLikelihood(0.0, 0)] * len(answers)
    order = sorted((i for i, r in enumerate(rows) if r), key=lambda i: len(rows[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        with torch.inference_mode():
            read = policy.answer_logprobs(session, {str(i): (prompt, rows[i]) for i in chunk})
        for i in chunk:
            results[i] = AnswerLikelihood(
                sum(read[str(i)]), len(rows[i]), len(prompt) + len(rows[i])
            )
    return results


class LikelihoodCache:
    """:func:`answer_log_likelihoods` that remembers what it read, for a scorer called every
    period on answers that only grow: it keeps each answer's KV cache and per-token
    log-probabilities, so a beam one period longer costs its new tokens (and one position
    before them), a copied answer nothing, and a conversation's prompt is read once. The
    text is tokenized afresh each call, so where a cut answer re-tokenizes differently
    (a word split at a period boundary) reading resumes from the first token that differs.

    Each kept row owns its buffers (no finished batch stays pinned); they fill at most
    ``max_bytes``, the least recently read row going first (a replaced beam's row, which
    nothing continues, ages out). Calls take turns."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_bytes: int = 512 * 2**20,
    ) -> None:
        from langchain_darwin.inprocess.engine import TransformersPolicy

        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.policy = TransformersPolicy(model, tokenizer)
        self.max_bytes = max_bytes
        self._sizes: dict[tuple[int, ...], int] = {}
        self._store: PrefixStore[tuple[int, ...]] = PrefixStore()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._store.clear()
            self._sizes.clear()

    def __call__(
        self,
        conversation: Conversation,
        answers: Sequence[str],
        *,
        batch_size: int = 8,
        max_answer_tokens: int | None = None,
    ) -> list[AnswerLikelihood]:
        """Like :func:`answer_log_likelihoods`; ``positions`` counts what was forwarded
        (the prompt, when read, is charged to the first answer)."""
        prompt = self.policy.render(conversation)
        rows = [self.policy.tokenize(a)[:max_answer_tokens] for a in answers]
        results = [AnswerLikelihood(0.0, 0)] * len(answers)
        order = [i for i, r in enumerate(rows) if r]
        if not order:
            return results
        with self._lock, torch.inference_mode():
            cost = {order[0]: self._read_prompt(prompt)}
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                read, forwarded = self._read({i: prompt + rows[i] for i in chunk})
                for i in chunk:
                    answer = read[i][len(prompt) - 1 :]  # the prompt's own tokens are no answer
                    spent = forwarded.get(i, 0) + cost.get(i, 0)
                    results[i] = AnswerLikelihood(sum(answer), len(answer), spent)
        release_freed_host_memory(self.policy.model.device)
        return results

    def _read_prompt(self, prompt: list[int]) -> int:
        """Cache the conversation's prompt once (its own log-probabilities are never wanted:
        their places hold NaN), so its answers continue from it; the positions forwarded."""
        if self._store.best_prefix(prompt)[1] == len(prompt):
            return 0
        filled = prefill(
            self.policy.prefill_forward,  # the cache only: no logits to speak of
            self._store,
            {0: prompt},
            pad_id=self.policy.pad_token_id,
            device=self.policy.model.device,
        )
        unread = [math.nan] * (len(prompt) - 1)
        self._keep(CachedRow(list(prompt), filled.kv[0].copy(), meta=unread))
        return sum(filled.forwarded.values())

    def _read(
        self, contexts: dict[int, list[int]]
    ) -> tuple[dict[int, list[float]], dict[int, int]]:
        """Per context, log p(token t | tokens before it) for t = 1..len - 1, and the
        positions forwarded for it; the contexts join the store, and the rows they continue
        (a beam's row of the period before) leave it."""

        def continued(row: tuple[int, ...]) -> bool:
            return any(
                len(c) > len(row) and common_prefix(row, c) >= len(row) - RETOKENIZED_TAIL
                for c in contexts.values()
            )

        filled = prefill(
            self._next_token_logprobs,
            self._store,
            contexts,
            pad_id=self.policy.pad_token_id,
            device=self.policy.model.device,
            read_all=True,
            evict=continued,
        )
        read: dict[int, list[float]] = {}
        for key, context in contexts.items():
            meta, kept = filled.sources[key]
            head = meta[: min(kept, len(context) - 1)] if meta is not None else []
            new = filled.outputs[key][:-1].tolist() if key in filled.outputs else []
            read[key] = head + new
            if len(read[key]) != len(context) - 1:
                raise RuntimeError(
                    f"read {len(read[key])} log-probabilities for a row of {len(context)} "
                    "tokens: the prefix cache lost track of a row"
                )
            self._keep(CachedRow(list(context), filled.kv[key].copy(), meta=read[key]))
        return read, dict(filled.forwarded)

    def _keep(self, row: CachedRow) -> None:
        """Add ``row`` as the most recently read; drop the least recent past ``max_bytes``
        (rows the prefill consumed are gone from the store already)."""
        key = tuple(row.tokens)
        self._store.rows.pop(key, None)
        self._store.rows[key] = row
        self._sizes = {k: self._sizes[k] for k in self._store.rows if k in self._sizes}
        self._sizes[key] = sum(
            t.numel() * t.element_size() for i in range(len(row.kv.layers)) for t in row.kv.layer(i)
        )
        while sum(self._sizes.values()) > self.max_bytes and len(self._store.rows) > 1:
            oldest = next(iter(self._store.rows))
            del self._store.rows[oldest], self._sizes[oldest]

    def _next_token_logprobs(
        self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: DynamicCache
    ) -> torch.Tensor:
        """The prefill's forward: per position, the log-probability of the row's next token
        (the last column's is a placeholder: its next token is not in the batch). Rows are
        normalised one at a time, so no second (rows x positions x vocabulary) tensor is made."""
        logits = self.policy.forward_logits(ids, mask, pos, cache)
        following = torch.cat([ids[:, 1:], ids[:, -1:]], dim=1).to(logits.device)
        picked = torch.empty(ids.shape, dtype=torch.float32)
        for i in range(ids.shape[0]):
            row = torch.log_softmax(logits[i].float(), dim=-1)
            picked[i] = row.gather(-1, following[i].unsqueeze(-1)).squeeze(-1).cpu()
        return picked
