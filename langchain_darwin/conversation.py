"""LangChain messages -> the plain conversation the graph searches over, with clear errors.

With tools bound, an agent loop's turns are accepted too: an assistant turn's tool calls become
its text, in the JSON format the policy is asked to write, and tool results become text. The
graph's invariant holds: the conversation ends with the user turn to answer. Tool exchanges
that follow the last user message are folded into it (the request, then each call and its
result); tool results before it become user turns of their own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_openai_messages

ROLES = ("system", "user", "assistant")


class ConversationError(ValueError):
    """The messages cannot be answered as given; the message says what to fix."""


def _text(content: object, index: int, role: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            else:
                kind = block.get("type") if isinstance(block, dict) else type(block).__name__
                raise ConversationError(
                    f"message {index} ({role}) has a {kind!r} content block; the policy reads "
                    "text only. Send text blocks or a string."
                )
        return "".join(parts)
    raise ConversationError(
        f"message {index} ({role}) has content of type {type(content).__name__}"
    )


def to_conversation(
    messages: Sequence[BaseMessage], *, tool_turns: bool = False
) -> list[dict[str, str]]:
    """``[{"role", "content"}]`` ending with the user turn to answer.

    The last user turn is what DARWIN mutates; earlier turns stay as context. ``tool_turns``
    (tools are bound) accepts assistant tool calls and tool results (see the module doc).
    """
    if not messages:
        raise ConversationError("no messages: pass at least one user message to answer")
    converted = convert_to_openai_messages(list(messages))
    if tool_turns:
        return _checked(_with_tool_turns(converted))
    conversation: list[dict[str, str]] = []
    for index, message in enumerate(converted):
        role = message.get("role")
        if role not in ROLES:
            raise ConversationError(
                f"message {index} has role {role!r}; DARWIN answers conversations of "
                f"{', '.join(ROLES)} turns (bind the tools with bind_tools() to send tool "
                "results, or fold them into a user turn)"
            )
        text = _text(message.get("content", ""), index, role)
        conversation.append({"role": role, "content": text})
    return _checked(conversation)


def _checked(conversation: list[dict[str, str]]) -> list[dict[str, str]]:
    if all(m["role"] == "system" for m in conversation):
        raise ConversationError("only system messages: add a user message to answer")
    last = conversation[-1]
    if last["role"] != "user":
        raise ConversationError(
            f"the conversation ends with a {last['role']} turn; DARWIN answers the last user "
            "turn, so end with a user message"
        )
    if not last["content"].strip():
        raise ConversationError("the last user message is empty; give it an instruction to answer")
    return conversation


# -- tool turns (tools bound) ------------------------------------------------------------------


def call_text(name: str, arguments: object) -> str:
    """A tool call as the policy is asked to write it."""
    return json.dumps({"name": name, "arguments": arguments})


def _arguments(raw: object) -> object:
    if isinstance(raw, str):
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            return raw
    return raw


def _assistant_text(message: dict[str, Any], index: int, names: dict[str, str]) -> str:
    text = _text(message.get("content") or "", index, "assistant")
    calls = message.get("tool_calls") or []
    if not calls:
        return text
    lines = [text.strip()] if text.strip() else []
    for call in calls:
        function = call.get("function", {})
        name = str(function.get("name", ""))
        names[str(call.get("id"))] = name
        lines.append(call_text(name, _arguments(function.get("arguments"))))
    return "\n".join(lines)


def _result_text(message: dict[str, Any], index: int, names: dict[str, str]) -> str:
    name = message.get("name") or names.get(str(message.get("tool_call_id")), "")
    text = _text(message.get("content", ""), index, "tool")
    return f"Result of tool {name}: {text}" if name else f"Tool result: {text}"


def _fold(request: str, exchange: list[tuple[str, str]]) -> str:
    """The last user request followed by the tool calls made for it and their results."""
    lines = [request.rstrip(), "", "Tool calls made so far, and their results:"]
    lines.extend(text for _, text in exchange)
    lines.append("Use these results in your reply.")
    return "\n".join(lines).lstrip()


def _with_tool_turns(converted: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Plain turns for a conversation with tool calls and results (an agent loop)."""
    names: dict[str, str] = {}  # tool_call_id -> tool name
    turns: list[tuple[str, str]] = []  # (role as sent, text)
    for index, message in enumerate(converted):
        role = message.get("role")
        if role == "assistant":
            turns.append(("assistant", _assistant_text(message, index, names)))
        elif role == "tool":
            turns.append(("tool", _result_text(message, index, names)))
        elif role in ROLES:
            turns.append((role, _text(message.get("content", ""), index, role)))
        else:
            raise ConversationError(
                f"message {index} has role {role!r}; DARWIN answers conversations of "
                f"{', '.join(ROLES)} and tool turns"
            )
    last_user = max((i for i, (role, _) in enumerate(turns) if role == "user"), default=None)
    if turns and turns[-1][0] == "tool":
        if last_user is None:
            raise ConversationError("tool results but no user message: add the user's request")
        head, request, tail = turns[:last_user], turns[last_user][1], turns[last_user + 1 :]
        turns = [*head, ("user", _fold(request, tail))]
    conversation: list[dict[str, str]] = []
    for role, text in turns:
        if role == "tool":  # a result answered before the last user turn: context
            if conversation and conversation[-1]["role"] == "user":
                conversation[-1]["content"] += "\n" + text
                continue
            role = "user"
        conversation.append({"role": role, "content": text})
    return conversation
