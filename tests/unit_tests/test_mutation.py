"""Mutation prompt parsing, validation and fallback."""

from __future__ import annotations

import random

from langchain_darwin.mutation import (
    FALLBACK,
    HINT,
    HINTS,
    REWRITE,
    hinted_instructions,
    mutation_prompt,
    parse_rewrites,
    reads_as_request,
    rejection_reason,
    select_instructions,
)

EGG = "How do I boil an egg?"


def test_prompt_carries_the_instruction_and_an_example() -> None:
    prompt = mutation_prompt("  " + EGG + "\n")
    assert prompt.rstrip().endswith(f"Instruction: {EGG}\nRewritten instruction:")
    assert "Example" in prompt


def test_parse_single_line_with_label_and_quotes() -> None:
    reply = 'Rewritten instruction: "Explain, step by step, how to boil an egg."\nMore chatter'
    assert parse_rewrites(reply) == ["Explain, step by step, how to boil an egg."]


def test_parse_numbered_and_bulleted_lists_loosely() -> None:
    reply = "Here are some:\n1. Boil an egg how?\n2) Explain egg boiling\n- Steps to boil eggs\n"
    assert parse_rewrites(reply) == [
        "Boil an egg how?",
        "Explain egg boiling",
        "Steps to boil eggs",
    ]


def test_parse_nothing() -> None:
    assert parse_rewrites("") == []
    assert parse_rewrites("\n  \n") == []


def test_rejection_reasons() -> None:
    assert rejection_reason("", EGG) == "empty"
    assert rejection_reason("how do i  boil an EGG?", EGG) == "same as the instruction"
    assert rejection_reason("Eggs?", EGG) == "implausible length"
    assert "off topic" in (rejection_reason("Write a poem about the ocean at night.", EGG) or "")
    assert rejection_reason("Explain step by step how to boil an egg until firm.", EGG) is None


def test_select_instructions_dedupes_validates_and_falls_back() -> None:
    replies = [
        "Explain step by step how to boil an egg.",
        "explain step by step how to boil an  egg.",  # duplicate
        "Write a poem about the ocean.",  # off topic
        "",  # empty
        "1. What is the best way to boil an egg?\n2. Describe boiling an egg for beginners.",
    ]
    instructions, kinds = select_instructions(replies, EGG, 5)
    assert instructions[:3] == [
        "Explain step by step how to boil an egg.",
        "What is the best way to boil an egg?",
        "Describe boiling an egg for beginners.",
    ]
    assert instructions[3:] == [EGG, EGG]
    assert kinds == [REWRITE] * 3 + [FALLBACK] * 2


def test_select_instructions_caps_at_count() -> None:
    replies = [f"Explain how to boil an egg, variant {i}." for i in range(9)]
    instructions, kinds = select_instructions(replies, EGG, 5)
    assert len(instructions) == 5 and kinds == [REWRITE] * 5


EMAIL = (
    "Draft a professional email seeking your supervisor's feedback on the Quarterly Financial "
    "Report you prepared. Keep the email short."
)


def test_long_instruction_needs_two_shared_content_words() -> None:
    assert "off topic" in (
        rejection_reason("Write a short poem about their garden, the flowers and the trees.", EMAIL)
        or ""
    )
    ok = "Write a brief, polite email asking your supervisor for feedback on the financial report."
    assert rejection_reason(ok, EMAIL) is None


def test_rewrite_of_the_prompts_worked_example_is_rejected() -> None:
    # seen from SmolLM2-135M: the example's dogs replaced the user's instruction
    leak = "Describe dogs as pets in a short email, covering their temperament and breeds."
    assert rejection_reason(leak, EMAIL) == "copies the mutation prompt's worked example"
    # the example's words are fine where the instruction itself is about them
    dog = "How should I care for my new dog?"
    assert rejection_reason("Describe the care a new dog needs, week by week.", dog) is None


def test_example_leak_is_caught_in_the_singular_too() -> None:
    # seen in the 40-question run: "a dog, a beloved pet" got past a plural-only match
    leak = "Describe a vivid character: a dog, a beloved pet with a calm temperament."
    instruction = "Describe the most unique character you have ever met, with vivid detail."
    assert rejection_reason(leak, instruction) == "copies the mutation prompt's worked example"


TRIANGLE = "The vertices of a triangle are at points (0, 0), (-1, 1), and (3, 3). What is the area?"


def test_requests_and_statements() -> None:
    # requests: a question, an imperative (after a label or a preamble), a first-person want
    for text in (
        EGG,
        "Explain step by step how to boil an egg.",
        "Instructions: Share a list of 4 jokes with a humorous twist.",
        "Photosynthesis is vital for life on Earth. Could you explain its two main stages",
        "I'd like a short recipe for boiled eggs.",
        "Please provide a detailed narrative of the financial report.",
        "As a travel blogger, compose a post about Hawaii.",  # a short leading phrase
        "In under 200 words, describe a recent trip to Hawaii.",
        "Briefly describe how to boil an egg.",  # a leading adverb
        "Now, find the area of the triangle.",
        "Let's write a poem about the sea.",
        "Apply the formula to both sides.",  # an imperative that ends in -ly
        "Reply in French, please.",
    ):
        assert reads_as_request(text), text
    # statements and answers, as SmolLM2-135M "rewrote" MT-Bench questions (frontier records)
    for text in (
        "The vertices of a triangle are at points (0, 0), (1, 1), and (3, 3) are equidistant "
        "from the origin (1, 1) and (3, 3). The area of the triangle is 1.",
        "In quantum physics, superposition refers to a phenomenon where a system can exist in "
        "multiple states simultaneously.",
        "I'm excited to share my travel blog post about a recent trip to Hawaii.",
        "I like boiled eggs.",
        "I wanted to share my trip.",
        "Answer: The area of the triangle is 1.",  # a label is no imperative
        "This phenomenon, which Einstein first observed, is odd.",  # a relative clause
        "The area is 3. Let me know if you need anything else.",
        "Italy is a country in Europe.",  # a noun in -ly, then "is"
        "Now is the time to boil the egg.",
        "",
    ):
        assert not reads_as_request(text), text


def test_must_ask_rejects_a_statement_only_when_the_instruction_asks() -> None:
    answer = "The area of the triangle is 1, since its vertices lie on one line through (0, 0)."
    assert rejection_reason(answer, TRIANGLE) is None  # off by default (the paper has no check)
    reason = rejection_reason(answer, TRIANGLE, must_ask=True)
    assert reason is not None and reason.startswith("not a request")
    ok = "Find the area of the triangle with vertices (0, 0), (-1, 1) and (3, 3)."
    assert rejection_reason(ok, TRIANGLE, must_ask=True) is None
    # an instruction that is itself a statement puts no such demand on its rewrites
    task = "Each problem consists of three statements about the prices of oranges and apples."
    restated = "Three statements compare the prices of oranges, apples and bananas."
    assert rejection_reason(restated, task, must_ask=True) is None


def test_select_instructions_with_must_ask_falls_back_on_statements() -> None:
    replies = [
        "The area of the triangle is 1, as the vertices (0, 0) and (3, 3) lie on a line.",
        "Compute the area of the triangle whose vertices are (0, 0), (-1, 1) and (3, 3).",
    ]
    instructions, kinds = select_instructions(replies, TRIANGLE, 3, must_ask=True)
    assert instructions == [replies[1], TRIANGLE, TRIANGLE]
    assert kinds == [REWRITE, FALLBACK, FALLBACK]
    loose, loose_kinds = select_instructions(replies, TRIANGLE, 3)
    assert loose[:2] == replies and loose_kinds == [REWRITE, REWRITE, FALLBACK]


def test_hints_keep_the_instruction_and_add_one_unused_hint_each() -> None:
    instructions, kinds = hinted_instructions(EGG, 4, random.Random(0))
    assert kinds == [HINT] * 4
    hints = [text.removeprefix(EGG + " ") for text in instructions]
    assert all(text.startswith(EGG + " ") for text in instructions)
    assert len(set(hints)) == 4 and set(hints) <= set(HINTS)
    # a hinted instruction mutated again gets a hint it does not carry yet
    again, _ = hinted_instructions(instructions[0], 3, random.Random(1))
    assert all(text.startswith(instructions[0] + " ") for text in again)
    assert hints[0] not in {text.removeprefix(instructions[0] + " ") for text in again}


def test_hints_fall_back_to_the_instruction_once_used_up() -> None:
    every = " ".join([EGG, *HINTS])
    instructions, kinds = hinted_instructions(every, 2, random.Random(0))
    assert instructions == [every, every] and kinds == [FALLBACK, FALLBACK]
    instructions, kinds = hinted_instructions(EGG, len(HINTS) + 2, random.Random(0))
    assert kinds == [HINT] * len(HINTS) + [FALLBACK] * 2 and instructions[-1] == EGG
