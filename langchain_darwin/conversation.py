"""LangChain messages -> the plain conversation the graph searches over, with clear errors."""

from __future__ import annotations

from collections.abc import Sequence

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


def to_conversation(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """``[{"role", "content"}]`` ending with the user turn to answer.

    The last user turn is what DARWIN mutates; earlier turns stay as context.
    """
    if not messages:
        raise ConversationError("no messages: pass at least one user message to answer")
    converted = convert_to_openai_messages(list(messages))
    conversation: list[dict[str, str]] = []
    for index, message in enumerate(converted):
        role = message.get("role")
        if role not in ROLES:
            raise ConversationError(
                f"message {index} has role {role!r}; DARWIN answers conversations of "
                f"{', '.join(ROLES)} turns (tool results must be folded into a user turn)"
            )
        text = _text(message.get("content", ""), index, role)
        conversation.append({"role": role, "content": text})
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
