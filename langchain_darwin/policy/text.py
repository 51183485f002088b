"""Answer tokens as the text a user sees: detokenized, cut before the first stop string."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_darwin.policy.base import PolicyEngine


def answer_text(policy: PolicyEngine, tokens: Sequence[int], stop: Sequence[str] | None) -> str:
    text = policy.detokenize(tokens)
    for s in stop or ():
        cut = text.find(s)
        if cut >= 0:
            text = text[:cut]
    return text
