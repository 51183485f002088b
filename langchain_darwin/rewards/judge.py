"""Any LangChain chat model as the reward: an LLM judge (``reward_model=ChatOpenAI(...)``).

Pointwise by default: the judge reads the conversation and one answer and replies with a
score from 1 to 10. Pairwise on request: it compares each answer with a reference answer
(both orders, to cancel the judge's position bias) and the score is the answer's share of
wins. Replies are parsed leniently ("8", "Score: 8/10", "**7**", ``{"score": 7}``); a reply
that still cannot be read scores ``unparsed_score`` (below every real score, so it ranks last),
warns, and is counted in ``unparsed``.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from langchain_darwin.rewards.base import Conversation, RewardModel, Scored

POINTWISE_SYSTEM = (
    "You are a strict, impartial judge of answers written by an AI assistant. Judge whether "
    "the answer actually helps the user: correct, complete, on topic, clear and polite. "
    "Restating the question, padding, cheerfulness and length earn nothing."
)
POINTWISE_PROMPT = (
    "{transcript}\n\n[Answer to judge]\n{answer}\n[End of answer]\n\n"
    "Rate the answer from 1 (useless) to 10 (excellent). Reply with only: Score: <number>"
)
PAIRWISE_SYSTEM = (
    "You are a strict, impartial judge comparing two answers written by AI assistants. Prefer "
    "the answer that actually helps the user: correct, complete, on topic, clear and polite. "
    "Position, length and cheerfulness must not sway you."
)
PAIRWISE_PROMPT = (
    "{transcript}\n\n[Answer A]\n{first}\n[End of answer A]\n\n[Answer B]\n{second}\n"
    "[End of answer B]\n\nWhich answer is better? Reply with only: Winner: A, Winner: B or "
    "Winner: tie"
)

_NUMBER = r"(\d+(?:\.\d+)?)"
_SCORE_PATTERNS = (
    re.compile(rf"(?:score|rating)\W{{0,4}}(?:of|is|=)?\W{{0,4}}{_NUMBER}", re.IGNORECASE),
    re.compile(rf"{_NUMBER}\s*(?:/|out of)\s*10\b", re.IGNORECASE),
    re.compile(rf"\*\*\s*{_NUMBER}\s*\*\*"),
    re.compile(rf"^\W*{_NUMBER}\W*$"),
)
_WINNER = re.compile(
    r"(?:winner|better)(?:\s+answer)?\W{0,4}(?:is\W{0,4})?(?:answer\s+)?\b(A|B|tie)\b", re.I
)
_BARE_WINNER = re.compile(r"^\W*(?:answer\s+)?(A|B|tie)\W*$", re.IGNORECASE)


def parse_score(reply: str, low: float = 1.0, high: float = 10.0) -> float | None:
    """The score in a judge's reply, or None: JSON ``{"score": n}``, ``Score: n``, ``n/10``,
    ``**n**``, a bare number, or the only number on the last line; it must lie in [low, high].
    """
    text = reply.strip()
    for blob in re.findall(r"\{[^{}]*\}", text):
        try:
            data = json.loads(blob)
        except ValueError:
            continue
        if isinstance(data, dict):
            for key, value in data.items():
                if key.lower() in ("score", "rating") and isinstance(value, int | float | str):
                    return _in_range(value, low, high)
    for pattern in _SCORE_PATTERNS:
        match = pattern.search(text)
        if match:
            return _in_range(match.group(1), low, high)
    last = text.splitlines()[-1] if text else ""
    numbers = re.findall(rf"(?<![\w.]){_NUMBER}(?![\w.])", last)
    return _in_range(numbers[0], low, high) if len(numbers) == 1 else None


def parse_winner(reply: str) -> Literal["A", "B", "tie"] | None:
    """ "A", "B" or "tie" from a pairwise judge's reply, or None."""
    text = reply.strip()
    match = _WINNER.search(text) or _BARE_WINNER.match(text)
    if not match:
        return None
    word = match.group(1)
    return "tie" if word.lower() == "tie" else word.upper()  # type: ignore[return-value]


def _in_range(value: object, low: float, high: float) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if low <= number <= high else None


def transcript(conversation: Conversation) -> str:
    """The conversation as the judge reads it: every turn, labelled by role."""
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    return "\n\n".join(
        f"[{names.get(m.get('role', ''), m.get('role', '').title())}]\n{m.get('content', '')}"
        for m in conversation
    )


def at_temperature_zero(model: BaseChatModel) -> BaseChatModel:
    """A copy of ``model`` with ``temperature=0`` when it has that field (ChatOpenAI,
    ChatOllama, ChatAnthropic ...); otherwise the model as is, with a warning, since its own
    sampling settings then decide how repeatable the judge is."""
    if "temperature" in type(model).model_fields:
        return model.model_copy(update={"temperature": 0.0})
    warnings.warn(
        f"judge {type(model).__name__} has no temperature field; its own sampling settings "
        "apply, so its scores may vary from call to call",
        RuntimeWarning,
        stacklevel=3,
    )
    return model


class ChatModelJudge(RewardModel):
    """Scores answers by asking a LangChain chat model to judge them (an LLM as judge).

    ``mode="pointwise"``: score = the judge's 1-10 rating of each answer on its own.
    ``mode="pairwise"``: score = the answer's share of wins (tie = half) against ``reference``
    (a string, or a function of the conversation, e.g. returning the current best answer),
    judged in both orders, in [0, 1]. Calls go through ``batch`` (``ascore``: ``abatch``) with
    at most ``max_concurrency`` requests in flight; a failed request raises. ``unparsed``
    counts the replies that could not be read, over this judge's lifetime.
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        mode: Literal["pointwise", "pairwise"] = "pointwise",
        reference: str | Callable[[Conversation], str] | None = None,
        max_concurrency: int = 4,
        unparsed_score: float = 0.0,
        system_prompt: str | None = None,
    ) -> None:
        if not isinstance(model, BaseChatModel):
            raise TypeError(f"the judge must be a LangChain BaseChatModel, got {model!r}")
        if mode not in ("pointwise", "pairwise"):
            raise ValueError(f"mode must be 'pointwise' or 'pairwise', got {mode!r}")
        if mode == "pairwise" and reference is None:
            raise ValueError("pairwise judging needs a reference answer (a string or function)")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.model = at_temperature_zero(model)
        self.mode = mode
        self.reference = reference
        self.max_concurrency = max_concurrency
        self.unparsed_score = unparsed_score
        self.system_prompt = system_prompt or (
            POINTWISE_SYSTEM if mode == "pointwise" else PAIRWISE_SYSTEM
        )
        self.unparsed = 0
        self.judged = 0
        self._lock = threading.Lock()

    # -- prompts and parsing ------------------------------------------------------------------

    def _requests(self, conversation: Conversation, answers: Sequence[str]) -> list[list[str]]:
        """Per answer, the user prompts sent for it (one pointwise, two pairwise)."""
        context = transcript(conversation)
        if self.mode == "pointwise":
            return [[POINTWISE_PROMPT.format(transcript=context, answer=a)] for a in answers]
        ref = self.reference(conversation) if callable(self.reference) else str(self.reference)
        return [
            [
                PAIRWISE_PROMPT.format(transcript=context, first=ref, second=a),
                PAIRWISE_PROMPT.format(transcript=context, first=a, second=ref),
            ]
            for a in answers
        ]

    def _messages(self, prompt: str) -> list[BaseMessage]:
        return [SystemMessage(self.system_prompt), HumanMessage(prompt)]

    def _read(self, replies: Sequence[str]) -> float | None:
        if self.mode == "pointwise":
            return parse_score(replies[0])
        # prompt 0 shows the answer as B, prompt 1 as A
        wins = {"B": 1.0, "tie": 0.5, "A": 0.0}, {"A": 1.0, "tie": 0.5, "B": 0.0}
        winners = [parse_winner(r) for r in replies]
        picked = [w for w in winners if w is not None]
        if len(picked) < len(winners):
            return None
        return sum(table[w] for table, w in zip(wins, picked, strict=True)) / 2

    def _scores(self, per_answer: list[list[str]]) -> Scored:
        """The scores, and how many of this call's replies could not be read."""
        scores, missed = [], []
        for i, replies in enumerate(per_answer):
            value = self._read(replies)
            if value is None:
                missed.append((i, replies))
                value = self.unparsed_score
            scores.append(value)
        with self._lock:
            self.judged += len(per_answer)
            self.unparsed += len(missed)
        for i, replies in missed:
            warnings.warn(
                f"judge reply for answer {i} could not be parsed ({' | '.join(replies)[:200]!r}); "
                f"it scores {self.unparsed_score} and ranks last",
                RuntimeWarning,
                stacklevel=3,
            )
        return Scored(scores, 0, len(missed))

    # -- scoring --------------------------------------------------------------------------------

    def _flat(self, conversation: Conversation, answers: Sequence[str]) -> tuple[list, list[int]]:
        requests = self._requests(conversation, answers)
        flat = [self._messages(p) for prompts in requests for p in prompts]
        return flat, [len(p) for p in requests]

    @staticmethod
    def _regroup(replies: Sequence[BaseMessage], sizes: Sequence[int]) -> list[list[str]]:
        texts = [str(r.text) for r in replies]
        grouped, at = [], 0
        for size in sizes:
            grouped.append(texts[at : at + size])
            at += size
        return grouped

    def _config(self) -> RunnableConfig:
        return {"max_concurrency": self.max_concurrency, "run_name": "darwin_judge"}

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        return self.score_with_usage(conversation, answers).scores

    def score_with_usage(self, conversation: Conversation, answers: Sequence[str]) -> Scored:
        """Scores and this call's unparsed replies (the judge's positions are its server's)."""
        if not answers:
            return Scored()
        flat, sizes = self._flat(conversation, answers)
        replies = self.model.batch(flat, config=self._config())
        return self._scores(self._regroup(replies, sizes))

    async def ascore(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        """``score`` through ``abatch``, for callers that run in an event loop."""
        if not answers:
            return []
        flat, sizes = self._flat(conversation, answers)
        replies = await self.model.abatch(flat, config=self._config())
        return self._scores(self._regroup(replies, sizes)).scores

    def __repr__(self) -> str:
        return f"ChatModelJudge({type(self.model).__name__}, mode={self.mode!r})"
