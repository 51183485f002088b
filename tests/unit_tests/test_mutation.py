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
