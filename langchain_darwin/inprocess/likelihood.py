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
    """Sum of the answer tokens' log-probabilities and how many tokens were scored."""

    total: float
    tokens: int

    @property
    def mean(self) -> float | None:
        """Mean log-probability per answer token; None for an empty answer (nothing read)."""
        return self.total / self.tokens if self.tokens else None


def prompt_ids(tokenizer: PreTrainedTokenizerBase, conversation: Conversation) -> list[int]:
    """The conversation rendered with the policy's chat template, up to the assistant turn."""
    text = tokenizer.apply_chat_template(
        [dict(m) for m in conversation], tokenize=False, add_generation_prompt=True
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def answer_log_likelihoods(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversation: Conversation,
    answers: Sequence[str],
    *,
    batch_size: int = 8,
    max_answer_tokens: int | None = None,
) -> list[AnswerLikelihood]:
    """log pi(answer | conversation) for each answer, in order, in padded batches.

    Answers are tokenized on their own after the rendered prompt (as the engine appends
    generated ids to the prompt ids). Rows are sorted by length before batching so a batch
    pads little. ``max_answer_tokens`` reads only each answer's first tokens (cheaper; the
    tail is then unseen). The end-of-turn token is not scored: partial answers are scored
    mid-search, and they would all pay for not ending.
    """
    prompt = prompt_ids(tokenizer, conversation)
    rows = [list(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]
    if max_answer_tokens is not None:
        rows = [r[:max_answer_tokens] for r in rows]
    results = [AnswerLikelihood(0.0, 0)] * len(answers)
    order = sorted((i for i, r in enumerate(rows) if r), key=lambda i: len(rows[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = len(prompt) + max(len(rows[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for b, i in enumerate(chunk):
            seq = prompt + rows[i]
            ids[b, : len(seq)] = torch.tensor(seq)
            mask[b, : len(seq)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        # position t predicts token t + 1: answer token k is predicted at len(prompt) - 1 + k
        first = len(prompt) - 1
        for b, i in enumerate(chunk):
            n = len(rows[i])
            logprobs = torch.log_softmax(logits[b, first : first + n].float(), dim=-1)
            target = torch.tensor(rows[i], device=logprobs.device).unsqueeze(-1)
            picked = logprobs.gather(-1, target).squeeze(-1)
            results[i] = AnswerLikelihood(float(picked.sum()), n)
    return results
