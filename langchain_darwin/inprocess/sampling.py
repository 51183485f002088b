"""How the next token is drawn from a decoding step's logits.

In the manner of transformers' ``generation/logits_process.py``: one small callable per rule,
chosen once per call to the engine, so the decode loop only says ``draw(logits)``.

A sampled draw divides logits by the temperature only after taking their row's largest away:
every score is then at most 0, so a tiny positive temperature gives 0 and -inf (the greedy
limit, ties shared) where it would give inf and a NaN distribution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from langchain_darwin.policy.base import Sampling


class TokenDraw(Protocol):
    """Picks one token id per row from ``(rows, vocabulary)`` logits."""

    def __call__(self, logits: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class GreedyDraw:
    """``temperature == 0``: the most likely token, no randomness."""

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=-1)


@dataclass(frozen=True)
class TopKDraw:
    """Samples among the ``top_k`` most likely tokens at ``temperature``: the distribution of
    masking the rest of the vocabulary to ``-inf``, but the draw runs over k candidates
    instead of the whole vocabulary."""

    top_k: int
    temperature: float
    generator: torch.Generator

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        top, index = logits.topk(self.top_k, dim=-1)  # sorted: the first is the largest
        probs = torch.softmax((top - top[:, :1]) / self.temperature, dim=-1)
        pick = torch.multinomial(probs, 1, generator=self.generator)
        return index.gather(-1, pick).view(-1)


@dataclass(frozen=True)
class VocabularyDraw:
    """Samples over the whole vocabulary at ``temperature`` (no top-k cut, or one at least
    as wide as the vocabulary)."""

    temperature: float
    generator: torch.Generator

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.temperature == 1.0:
            scores = logits
        else:
            scores = (logits - logits.amax(dim=-1, keepdim=True)) / self.temperature
        probs = torch.softmax(scores, dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator).view(-1)


def token_draw(sampling: Sampling, vocabulary: int, device: torch.device) -> TokenDraw:
    """The draw ``sampling`` asks for over logits ``vocabulary`` wide; a sampled draw owns a
    generator seeded with ``sampling.seed``, so one call's tokens depend on the seed alone."""
    if sampling.temperature == 0:
        return GreedyDraw()
    generator = torch.Generator(device=device).manual_seed(sampling.seed)
    # below float32's smallest normal a temperature would round to 0 and divide 0 by 0
    temperature = max(sampling.temperature, torch.finfo(torch.float32).tiny)
    if 0 < sampling.top_k < vocabulary:
        return TopKDraw(sampling.top_k, temperature, generator)
    return VocabularyDraw(temperature, generator)


def draw_in_request_order(
    draw: TokenDraw, logits: torch.Tensor, order: torch.Tensor | None
) -> torch.Tensor:
    """``draw`` over the rows taken in request order (``order``: their batch indices; ``None``
    when the batch is in it), returned in batch order: the random numbers a row gets do not
    depend on where the batch put it."""
    if order is None:
        return draw(logits)
    drawn = draw(logits[order])
    tokens = torch.empty_like(drawn)
    tokens[order] = drawn
    return tokens


def request_order(
    batch: Sequence[str], order_of: Mapping[str, int], device: torch.device
) -> torch.Tensor | None:
    """Batch indices of the ``batch`` rows in request order (``order_of``: each row's place
    in the request), for :func:`draw_in_request_order`; ``None`` when already in it."""
    order = sorted(range(len(batch)), key=lambda i: order_of[batch[i]])
    return None if order == list(range(len(batch))) else torch.tensor(order, device=device)
