"""The policy's own log-likelihood of answers to a conversation: log pi(answer | conversation).

One function, shared by the default reward's fluency term and by anything else that needs
pi_ref (a regularised Best-of-N guard, for instance). It reads the answer tokens only: the
rendered conversation is the condition, never scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

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
