"""The policy's own log-likelihood of answers to a conversation: log pi(answer | conversation).

One function, shared by the default reward's fluency term and by anything else that needs
pi_ref (a regularised Best-of-N guard, for instance). It reads the answer tokens only: the
rendered conversation is the condition, never scored.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from langchain_darwin.inprocess.memory import release_freed_host_memory
from langchain_darwin.rewards.base import Conversation


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

    At most ``rows`` answers are kept, least recently used first out; one call at a time."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rows: int = 32
    ) -> None:
        from langchain_darwin.inprocess.engine import TransformersPolicy
        from langchain_darwin.inprocess.prefix import PrefixStore

        if rows < 1:
            raise ValueError(f"rows must be at least 1, got {rows}")
        self.policy = TransformersPolicy(model, tokenizer)
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self.rows = rows
        self._store: PrefixStore[tuple[int, ...]] = PrefixStore()
        self._lock = threading.Lock()

    def __call__(
        self,
        conversation: Conversation,
        answers: Sequence[str],
        *,
        batch_size: int = 8,
        max_answer_tokens: int | None = None,
    ) -> list[AnswerLikelihood]:
        """Like :func:`answer_log_likelihoods`; ``positions`` counts what was forwarded
        (the prompt, read once, is charged to the first answer that needed it)."""
        prompt = self.policy.render(conversation)
        rows = [self.policy.tokenize(a)[:max_answer_tokens] for a in answers]
        results = [AnswerLikelihood(0.0, 0)] * len(answers)
        order = [i for i, r in enumerate(rows) if r]
        with self._lock, torch.inference_mode():
            _, warm = self._read({-1: prompt})
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                read, forwarded = self._read({i: prompt + rows[i] for i in chunk})
                for i in chunk:
                    answer = read[i][len(prompt) - 1 :]  # the prompt's own tokens are no answer
                    cost = forwarded.get(i, 0) + (warm.pop(-1, 0) if i == chunk[0] else 0)
                    results[i] = AnswerLikelihood(sum(answer), len(answer), cost)
        release_freed_host_memory(self.policy.model.device)
        return results

    def _read(
        self, contexts: dict[int, list[int]]
    ) -> tuple[dict[int, list[float]], dict[int, int]]:
        """Per context, log p(token t | tokens before it) for t = 1..len - 1, and the
        positions forwarded for it; the contexts join the store."""
        from langchain_darwin.inprocess.prefix import CachedRow, prefill

        filled = prefill(
            self._next_token_logprobs,
            self._store,
            contexts,
            pad_id=self.policy.pad_token_id,
            device=self.policy.model.device,
            read_all=True,
            consume=True,
        )
        read: dict[int, list[float]] = {}
        for key, context in contexts.items():
            source, kept = filled.sources[key]
            head = source.meta[: min(kept, len(context) - 1)] if source is not None else []
            new = filled.outputs[key][:-1].tolist() if key in filled.outputs else []
            read[key] = head + new
            row = tuple(context)
            self._store.rows.pop(row, None)  # most recently used last
            self._store.rows[row] = CachedRow(list(context), filled.kv[key], meta=read[key])
        while len(self._store.rows) > self.rows:
            self._store.rows.pop(next(iter(self._store.rows)))
        return read, dict(filled.forwarded)

    def _next_token_logprobs(
        self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: DynamicCache
    ) -> torch.Tensor:
        """The prefill's forward: per position, the log-probability of the row's next token
        (the last column's is a placeholder: its next token is not in the batch)."""
        policy = self.policy
        logits = policy.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            **{self._cache_arg: cache},
        ).logits
        following = torch.cat([ids[:, 1:], ids[:, -1:]], dim=1)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        return logprobs.gather(-1, following.unsqueeze(-1)).squeeze(-1).cpu()
