"""Mutation: the policy rewrites the instruction into clearer variants with the same intent.

The reference prompt asks for five numbered rewrites at once and falls back to five copies of
the instruction unless exactly five parse; small models almost never comply, so every beam
silently explores nothing. Here each sampled sequence is asked for *one* rewrite (a batch of
them decodes together), the parser accepts a numbered list too, and every candidate must be
non-empty, new, of sensible length and share content words with the instruction. What fails
falls back to the instruction, and the count of each is reported.

A small policy also "rewrites" a question into a statement or an answer ("The area of the
triangle is 1."); a beam given one answers something else (docs/quality.md). With
``must_ask`` such a candidate is rejected too: it has to read as a request, as the
instruction does.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

EXAMPLE_INSTRUCTION = "Tell me about dogs."
EXAMPLE_REWRITE = (
    "Describe dogs as pets, covering their temperament, the care they need and a few popular "
    "breeds."
)
MUTATION_PROMPT = f"""\
You improve instructions written for an AI assistant. Rewrite the instruction below so that \
it is clearer and more specific while asking for exactly the same thing. Answer with the \
rewritten instruction only, on one line.

Example
Instruction: {EXAMPLE_INSTRUCTION}
Rewritten instruction: {EXAMPLE_REWRITE}

Instruction: {{instruction}}
Rewritten instruction:"""

_LIST_ITEM = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022])\s+(.+?)\s*$")
_LABEL = re.compile(
    r"^\s*(?:\**\s*)?(?:rewritten|improved|new|revised|clearer)?\s*(?:instruction|prompt|version)"
    r"\s*(?:\d+)?\s*:\s*",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9]+")
_CLAUSE = re.compile(r"(?<=[.!?:;])\s+|\n+")
_CLAUSE_WORD = re.compile(r"[a-z']+")
#: Words that open a question (only at a clause's start: "..., which was" is no request).
_QUESTION_OPENERS = frozenset(
    "how what why which who whom whose where is are do does did should can could would will".split()
)
#: Imperatives a request opens with, at a clause's start or after a short leading phrase
#: ("In under 200 words, describe ...").
_IMPERATIVES = frozenset(
    """write describe explain compose provide give list create draft imagine pretend act suppose
    tell help summarize summarise compare discuss identify calculate find solve develop implement
    design evaluate analyze analyse suggest share please consider outline present rewrite edit
    craft generate propose offer define determine estimate name rank recommend illustrate show
    use assume read let let's elaborate construct choose select translate picture embody assess
    examine extract return output rate reply respond answer parse improve revise correct fix
    prove derive convert classify sort plan prepare predict demonstrate detail include focus
    highlight mention specify brainstorm debate argue justify reformulate rephrase paraphrase
    shorten expand continue complete fill make build draw sketch take rework modify update amend
    come pick express change turn put add remove count check print compute verify simulate
    interpret clarify investigate research optimize optimise start begin apply multiply divide
    simplify integrate differentiate""".split()
)
#: Words skipped before an imperative ("Now, find", "Briefly describe"); never a question
#: word after them ("Now is the time" is no request).
_LEADING = frozenset(
    "now then also next finally first kindly so and briefly clearly concisely carefully "
    "quickly simply".split()
)
#: A request in the first person, word by word.
_WANTS = tuple(
    (*who, *want)
    for who in (("i",), ("we",))
    for want in (("want",), ("need",), ("wish",), ("would", "like"))
) + (("i'd", "like"), ("we'd", "like"))
#: Words of a short phrase that may lead a request ("As a travel blogger, compose ...").
_LEAD_PHRASE_WORDS = 12
_STOPWORDS = frozenset(
    "the a an and or of to in on for with about from into your you me my is are be can could "
    "would should will this that these those it its as at by how what why when which who do "
    "does please tell give write make they them their there then than we our us his her "
    "she he also just some any few more most very need needs".split()
)

REWRITE = "rewrite"
FALLBACK = "fallback"
ORIGINAL = "original"
HINT = "hint"

#: Answering hints for ``mutation_source="hints"``: each asks for the same thing in a
#: different manner, so the beams differ in how they answer, never in what they answer.
HINTS = (
    "Answer step by step.",
    "Give specific details and examples.",
    "Start with the direct answer, then explain it.",
    "Keep the answer clear, accurate and well organised.",
    "Cover the most important points first.",
    "Use plain language that a beginner can follow.",
    "Write a complete answer and finish it.",
    "Be concise.",
)


def mutation_prompt(instruction: str) -> str:
    return MUTATION_PROMPT.format(instruction=instruction.strip())


def _clean(line: str) -> str:
    line = _LABEL.sub("", line).strip()
    return line.strip("\"'`*").strip()


def parse_rewrites(text: str) -> list[str]:
    """Candidate rewrites in a model's reply: the items of a numbered or bulleted list if
    there is one, otherwise the first non-empty line."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    items = [_clean(m.group(1)) for ln in lines if (m := _LIST_ITEM.match(ln))]
    items = [it for it in items if it]
    if items:
        return items
    for line in lines:
        cleaned = _clean(line)
        if cleaned:
            return [cleaned]
    return []


def _content_words(text: str) -> set[str]:
    """Content words, a plural "s" stripped so that "dog" matches "dogs"."""
    words = (w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 2)
    return {w[:-1] if w.endswith("s") and not w.endswith("ss") and len(w) > 3 else w for w in words}


_EXAMPLE_WORDS = frozenset(_content_words(f"{EXAMPLE_INSTRUCTION} {EXAMPLE_REWRITE}"))


def _opens_request(clause: str, after_phrase: bool = False) -> bool:
    words = _CLAUSE_WORD.findall(clause.lower())
    if not _CLAUSE_WORD.match(clause.lower()):
        return False  # the clause opens with a number or a symbol, not a word
    if words[:3] == ["let", "me", "know"]:  # the close of an answer, not a request
        return False
    if not after_phrase and (
        words[0] in _QUESTION_OPENERS or any(tuple(words[: len(w)]) == w for w in _WANTS)
    ):
        return True
    while len(words) > 1 and words[0] in _LEADING:  # "Now, find", "Briefly describe"
        words = words[1:]
    return words[0] in _IMPERATIVES


def reads_as_request(text: str) -> bool:
    """Whether some clause of ``text`` asks for something: it ends with a question mark, opens
    with a question word, an imperative (also after "now", "briefly" and the like, or after
    a short leading phrase and a comma), or says "I want/need/would like". A label alone
    ("Answer:") is no clause."""
    for clause in _CLAUSE.split(text.strip()):
        clause = clause.strip().strip("\"'`*()[] ")
        if clause.endswith(":") and len(clause.split()) <= 2:
            continue
        if clause.endswith("?") or _opens_request(clause):
            return True
        lead, comma, rest = clause.partition(",")
        if comma and len(lead.split()) <= _LEAD_PHRASE_WORDS and _opens_request(rest.strip(), True):
            return True
    return False


def rejection_reason(candidate: str, instruction: str, must_ask: bool = False) -> str | None:
    """Why ``candidate`` is not a usable rewrite of ``instruction`` (None if it is). With
    ``must_ask``, a candidate must read as a request whenever ``instruction`` does."""
    cand, orig = candidate.strip(), instruction.strip()
    if not cand:
        return "empty"
    if " ".join(cand.lower().split()) == " ".join(orig.lower().split()):
        return "same as the instruction"
    if len(cand) < max(8, 0.3 * len(orig)) or len(cand) > max(200, 5 * len(orig)):
        return "implausible length"
    words, cand_words = _content_words(orig), _content_words(cand)
    needed = 1 if len(words) <= 3 else 2
    if len(words & cand_words) < min(needed, len(words)):
        return f"off topic (shares fewer than {needed} content words with the instruction)"
    # A small model often rewrites the prompt's worked example instead (dogs as pets).
    if len((_EXAMPLE_WORDS - words) & cand_words) >= 2:
        return "copies the mutation prompt's worked example"
    if must_ask and reads_as_request(orig) and not reads_as_request(cand):
        return "not a request (a statement or an answer instead of an instruction)"
    return None


def select_instructions(
    replies: Sequence[str], instruction: str, count: int, must_ask: bool = False
) -> tuple[list[str], list[str]]:
    """``count`` instructions for the beams and their kinds (rewrite or fallback):
    valid, deduplicated rewrites first (``must_ask``: see :func:`rejection_reason`), then
    copies of ``instruction``."""
    chosen: list[str] = []
    seen = {" ".join(instruction.lower().split())}
    for reply in replies:
        for candidate in parse_rewrites(reply):
            key = " ".join(candidate.lower().split())
            if key in seen or rejection_reason(candidate, instruction, must_ask):
                continue
            seen.add(key)
            chosen.append(candidate)
    chosen = chosen[:count]
    kinds = [REWRITE] * len(chosen) + [FALLBACK] * (count - len(chosen))
    return chosen + [instruction] * (count - len(chosen)), kinds


def hinted_instructions(
    instruction: str, count: int, rng: random.Random
) -> tuple[list[str], list[str]]:
    """``count`` instructions for the beams and their kinds (hint or fallback): ``instruction``
    followed by a hint it does not already carry, drawn without repetition; copies of
    ``instruction`` once the hints run out."""
    unused = [h for h in HINTS if h not in instruction]
    hints = rng.sample(unused, min(count, len(unused)))
    chosen = [f"{instruction.rstrip()} {hint}" for hint in hints]
    kinds = [HINT] * len(chosen) + [FALLBACK] * (count - len(chosen))
    return chosen + [instruction] * (count - len(chosen)), kinds
