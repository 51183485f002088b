"""A finished search as OpenAI's ``chat.completion``, and as ``chat.completion.chunk``s.

Usage is what the policy computed (``usage.token_usage``): ``prompt_tokens`` the positions it
prefilled over the whole search, ``completion_tokens`` the tokens it sampled (every beam,
mutation and seed answer, not only the answer returned). The search's record
(``graph.report.search_metadata``) rides along under ``darwin``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain_darwin.graph.report import plain_json
from langchain_darwin.graph.state import DarwinOutput
from langchain_darwin.search import winner_of
from langchain_darwin.tools import ToolSetup
from langchain_darwin.usage import token_usage

#: Progress fields passed on from the graph's custom events (a compact view, no beam texts).
PROGRESS_FIELDS = (
    "step",
    "cycle",
    "period",
    "alive",
    "generated_tokens",
    "best",
    "best_reward",
    "seed_reward",
    "reason",
)
#: A word with the whitespace after it (or leading whitespace): one content delta.
_PIECE = re.compile(r"\S+\s*|\s+")


@dataclass
class Answer:
    """The winning answer as OpenAI sees it."""

    content: str
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    usage: dict[str, int]
    darwin: dict[str, Any]


@dataclass
class Envelope:
    """What every object of one response shares."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


def answer_of(state: DarwinOutput, tools: ToolSetup | None) -> Answer:
    """The answer, its finish reason (``tool_calls`` for a valid call of an offered tool,
    ``length`` when it reached max_tokens) and usage, from the search's final state."""
    winner = winner_of(state, tools)
    call, calls = winner.call, []
    if call is not None:
        calls = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
            }
        ]
    used = token_usage(state["usage"])
    return Answer(
        content="" if calls else state["answer"],
        tool_calls=calls,
        finish_reason=winner.finish_reason,
        usage={
            "prompt_tokens": used["input_tokens"],
            "completion_tokens": used["output_tokens"],
            "total_tokens": used["total_tokens"],
        },
        darwin=plain_json(winner.metadata),
    )


def completion(envelope: Envelope, answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content or None}
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    else:
        message["content"] = answer.content
    return {
        "id": envelope.id,
        "object": "chat.completion",
        "created": envelope.created,
        "model": envelope.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": answer.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": answer.usage,
        "darwin": answer.darwin,
    }


def chunk(envelope: Envelope, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": envelope.id,
        "object": "chat.completion.chunk",
        "created": envelope.created,
        "model": envelope.model,
        "choices": choices,
        **extra,
    }


def progress_chunk(envelope: Envelope, event: dict[str, Any]) -> dict[str, Any]:
    """A search event as a chunk with no choices (clients that read only choices skip it) and
    the progress under ``darwin.progress``."""
    progress = {k: event[k] for k in PROGRESS_FIELDS if k in event}
    return chunk(envelope, [], darwin={"progress": plain_json(progress)})


def _delta(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
    return [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]


def answer_chunks(
    envelope: Envelope, answer: Answer, include_usage: bool
) -> Iterator[dict[str, Any]]:
    """The chosen answer: the role, word-sized content deltas (or the tool call), the finish
    reason with the search's record, then usage if asked for."""
    usage: dict[str, Any] = {"usage": None} if include_usage else {}
    yield chunk(envelope, _delta({"role": "assistant", "content": ""}), **usage)
    if answer.tool_calls:
        calls = [{"index": i, **c} for i, c in enumerate(answer.tool_calls)]
        yield chunk(envelope, _delta({"tool_calls": calls}), **usage)
    for piece in _PIECE.findall(answer.content):
        yield chunk(envelope, _delta({"content": piece}), **usage)
    yield chunk(envelope, _delta({}, answer.finish_reason), darwin=answer.darwin, **usage)
    if include_usage:
        yield chunk(envelope, [], usage=answer.usage)


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()
