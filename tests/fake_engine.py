"""A pure-Python policy engine: the third implementer of the PolicyEngine protocol.

Bytes are tokens (256 is end-of-sequence), the chat template is ``role: content`` lines, and
the next token is drawn from a fixed distribution seeded by (sampling seed, row key, length),
so runs are deterministic and fast. It keeps the graph honest: nodes that only speak the
protocol run on it unchanged, without torch.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Mapping, Sequence

from langchain_darwin.policy.base import ExtendOutcome, RowRequest, RowResult, Sampling, Work

EOS = 256
#: What the fake policy writes, and how likely it finds each byte: common letters are likely,
#: everything else (digits, punctuation, "z") rare.
LIKELY = "etaoin srh"
_P_LIKELY = 0.9 / len(LIKELY)
_P_OTHER = 0.1 / (256 - len(LIKELY))


def token_logprob(token: int) -> float:
    return math.log(_P_LIKELY if chr(token) in LIKELY else _P_OTHER)


class FakeSession:
    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def clear(self) -> None:
        pass

    def cancel(self) -> None:
        self.cancelled.set()


class FakeEngine:
    """Deterministic sampler over bytes; charges every row a full prefill (it caches nothing)."""

    eos_token_ids = frozenset({EOS})
    context_window: int | None = 4096
    line_break_ids = frozenset({ord("\n")})

    def render(self, conversation: Sequence[Mapping[str, str]]) -> list[int]:
        text = "".join(f"{m['role']}: {m['content']}\n" for m in conversation) + "assistant: "
        return self.tokenize(text)

    def tokenize(self, text: str) -> list[int]:
        return list(text.encode())

    def detokenize(self, tokens: Sequence[int]) -> str:
        return bytes(t for t in tokens if t != EOS).decode(errors="replace")

    def new_session(self, reuse_cache: bool = True) -> FakeSession:
        return FakeSession()

    def _next(self, rng: random.Random, length: int, sampling: Sampling) -> int:
        if not sampling.ignore_eos and length >= 4 and rng.random() < 0.05:
            return EOS
        if rng.random() < 0.9 or sampling.temperature == 0:
            return ord(rng.choice(LIKELY))
        return rng.choice([c for c in range(33, 127) if chr(c) not in LIKELY])

    def extend(
        self,
        session: FakeSession,
        rows: Mapping[str, RowRequest],
        sampling: Sampling,
        *,
        commit: bool = True,
    ) -> ExtendOutcome:
        out = ExtendOutcome(work=Work())
        for key, req in rows.items():
            rng = random.Random(f"{sampling.seed}:{key}:{len(req.tokens)}")
            new: list[int] = []
            ended = False
            while len(new) < req.max_new:
                token = self._next(rng, len(new), sampling)
                if token == EOS:
                    ended = True
                    break
                new.append(token)
                if token in req.stop_ids and self.detokenize(new).strip():
                    ended = True
                    break
            out.rows[key] = RowResult(new, ended)
            out.work.add_prefill(key, len(req.tokens))
            out.work.add_decode(key, len(new) + ended)
        return out

    def answer_logprobs(
        self,
        session: FakeSession,
        rows: Mapping[str, tuple[Sequence[int], Sequence[int]]],
    ) -> dict[str, list[float]]:
        return {k: [token_logprob(t) for t in answer] for k, (_, answer) in rows.items()}
