"""The policy interface the graph drives: render, extend beams, detokenize.

Nodes only speak token ids and row keys; how an engine reuses work between calls (KV caches
here, prefix caching on a server) is its own business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar


@dataclass(frozen=True)
class Sampling:
    """How the next token is drawn. ``temperature == 0`` means greedy."""

    temperature: float
    top_k: int
    seed: int
    ignore_eos: bool = False


@dataclass(frozen=True)
class RowRequest:
    """One row to extend: its full context (prompt + answer so far) and its token budget.

    A ``background`` row decodes alongside the others but does not keep the batch alive: the seed
    answer rides in the mutation batch, using slots that would otherwise idle.
    """

    tokens: Sequence[int]
    max_new: int
    background: bool = False
    #: Tokens that end this row (kept in its answer) once it has some non-blank text:
    #: a mutation request ends at its first line break.
    stop_ids: frozenset[int] = frozenset()


@dataclass
class RowResult:
    """Tokens a row gained (end-of-sequence excluded) and whether it ended, on an
    end-of-sequence or on one of its stop ids (kept), rather than by using its budget."""

    new_tokens: list[int]
    ended: bool


@dataclass
class Work:
    """Positions a call pushed through the model, per row: prefilled (context) and decoded
    (one per sampling step the row took part in). Rows sharing a prefill are charged once."""

    prefilled: dict[str, int] = field(default_factory=dict)
    decoded: dict[str, int] = field(default_factory=dict)

    def add_prefill(self, key: str, n: int) -> None:
        self.prefilled[key] = self.prefilled.get(key, 0) + n

    def add_decode(self, key: str, n: int) -> None:
        self.decoded[key] = self.decoded.get(key, 0) + n

    def as_dict(self) -> dict[str, int]:
        return {"prefilled": sum(self.prefilled.values()), "decoded": sum(self.decoded.values())}


@dataclass
class ExtendOutcome:
    rows: dict[str, RowResult] = field(default_factory=dict)
    work: Work = field(default_factory=Work)


class EngineError(RuntimeError):
    """The policy engine could not do what was asked (a server unreachable or failing after
    its retries, a model it does not serve). Engines raise subclasses with the cause; the
    graph re-raises it naming the step, cycle and period it happened in."""


class SearchCancelled(RuntimeError):
    """The run was cancelled (its session's ``cancel()`` was called) while decoding."""


class PolicySession(Protocol):
    """Per-run scratch space of an engine (caches); never part of graph state."""

    def clear(self) -> None: ...

    def cancel(self) -> None:
        """Make the engine stop this run at the next token and drop its caches."""


#: The session type an engine makes and takes back (its own: a bare ``PolicyEngine`` is any).
SessionT = TypeVar("SessionT", bound=PolicySession)


class PolicyEngine(Protocol[SessionT]):
    """What the DARWIN graph needs from a language model that writes."""

    eos_token_ids: frozenset[int]
    context_window: int | None

    @property
    def line_break_ids(self) -> frozenset[int]:
        """Token ids whose text contains a line break."""

    def render(self, conversation: Sequence[Mapping[str, str]]) -> list[int]:
        """Prompt token ids of a conversation, ending where the assistant's answer starts."""

    def tokenize(self, text: str) -> list[int]:
        """Token ids of plain text (no template, no special tokens)."""

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def new_session(self, reuse_cache: bool = True) -> SessionT: ...

    def extend(
        self,
        session: SessionT,
        rows: Mapping[str, RowRequest],
        sampling: Sampling,
        *,
        commit: bool = True,
    ) -> ExtendOutcome:
        """Decode up to ``max_new`` tokens for every row, in one batch.

        With ``commit`` the session afterwards holds exactly the requested rows that can
        still grow; without it (look-ahead) the session is left as it was.
        """

    def answer_logprobs(
        self,
        session: SessionT,
        rows: Mapping[str, tuple[Sequence[int], Sequence[int]]],
    ) -> dict[str, list[float]]:
        """Per row ``(prompt ids, answer ids)``: the policy's log-probability of each answer
        token given the prompt and the answer tokens before it (an empty answer gives an
        empty list). Batched; leaves the session's caches as they were."""
