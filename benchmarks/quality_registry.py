"""What the quality benchmark measures, declared in one place: the steering rewards a search
can maximise, the scores every answer gets after its search, the methods and the one they
are compared with, and the paper's ablations. A new method or score is one entry here; the
runner, statistics, plots and report read these tables."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from langchain_darwin.baselines import LABELS, METHODS
from langchain_darwin.rewards import RelevanceReward, RewardModel, ToneReward, default_reward

__all__ = [
    "ABLATIONS",
    "ANSWER_SCORES",
    "HELD_OUT",
    "LABELS",
    "METHODS",
    "PERIOD_COLOURS",
    "REFERENCE",
    "STEERING",
    "STEERS",
    "UNBUDGETED",
    "AnswerScore",
    "echo",
]

# -- methods ------------------------------------------------------------------------------

#: The method every other is compared with at the same budget (win rates, paired diffs).
REFERENCE = "best_of_n"
#: Methods that make one answer whatever the budget: they run once, at budget 1.
UNBUDGETED = ("sample",)
#: Methods drawn in the per-period plot, with their colours.
PERIOD_COLOURS = {
    "darwin": "C4",
    "sample_replace": "C2",
    "best_of_n": "C1",
    "mutate_best_of_n": "C3",
}

#: Ablations of the paper, each one knob away from DARWIN at the base budget.
#: nb=2 doubles the beams of each cycle, so it is compared with Best-of-N at twice the budget.
ABLATIONS: dict[str, dict[str, Any]] = {
    # DARWIN's defaults (m=40, k=3, nb=1, l=0) run again with the ablations, so that every
    # ablation is compared with a reference made by the same code and in the same session
    "m=40": {},
    "m=20": {"replacement_period": 20},
    "m=80": {"replacement_period": 80},
    "k=1": {"survivors": 1},
    "nb=2": {"beams_per_instruction": 2},
    "l=25": {"look_ahead": 25},
    # not the paper's: one slot keeps the picked instruction (does a weak mutator cost us?)
    "keep=1": {"keep_picked": True},
}

# -- rewards and scores -------------------------------------------------------------------

#: What a search maximises (``--steer``), by name.
STEERING: dict[str, Callable[[], RewardModel]] = {
    "default": default_reward,
    # the default proxy with half its tone weight: harder to game
    "low-tone": lambda: default_reward(tone_weight=0.25),
    "tone": ToneReward,
    "relevance": RelevanceReward,
}
STEERS = tuple(STEERING)

#: A score of one answer to one question, computed after the search.
AnswerScore = Callable[[str, str], float]

_WORD = re.compile(r"[a-z0-9']+")


def trigrams(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def echo(question: str, answer: str) -> float:
    """Share of the question's word trigrams that the answer repeats (0: none, 1: all)."""
    grams = trigrams(question)
    return len(grams & trigrams(answer)) / len(grams) if grams else 0.0


def reward_score(model: RewardModel) -> AnswerScore:
    """A reward model as an answer score: the question is the conversation's one turn."""

    def score(question: str, answer: str) -> float:
        return model.score([{"role": "user", "content": question}], [answer])[0]

    return score


#: Scores every answer gets after its search, by the row field they fill (built once per
#: run). Each is summarised per method; the rewards among them can be the held-out score.
ANSWER_SCORES: dict[str, Callable[[], AnswerScore]] = {
    "relevance": lambda: reward_score(RelevanceReward()),
    "tone": lambda: reward_score(ToneReward()),
    "echo": lambda: echo,
}
#: The answer scores that can stand as the held-out score (``--held-out``).
HELD_OUT = ("relevance", "tone")


# -- the held-out score of issue 13 -------------------------------------------------------

#: The answer is shown, then the policy is asked which question it answers; the question is
#: the reply whose likelihood is read. Not a term of the default reward (its fluency term reads
#: the answer given the question, this the question given the answer).
REVERSE_PROMPT = "{answer}\n\nWhat question is the text above the answer to?"
#: Score of an empty answer: nothing in it points at the question.
REVERSE_EMPTY = -20.0


def reverse_likelihood(question: str, answer: str) -> float:
    """log pi(question | answer) per question token under the embedded policy: does the
    answer predict what was asked? An on-topic, specific answer does; an answer to another
    question, a stub or a word salad predict it less. A restatement of the question predicts
    it best of all (it contains it): this score cannot see that failure (validity measured by
    ``benchmarks/quality_guard.py validity``)."""
    if not answer.strip():
        return REVERSE_EMPTY
    from langchain_darwin.inprocess.likelihood import answer_log_likelihoods
    from langchain_darwin.inprocess.models import load_policy

    model, tokenizer = load_policy("default")
    conversation = [{"role": "user", "content": REVERSE_PROMPT.format(answer=answer.strip())}]
    (likelihood,) = answer_log_likelihoods(model, tokenizer, conversation, [question])
    return REVERSE_EMPTY if likelihood.mean is None else likelihood.mean


ANSWER_SCORES["reverse"] = lambda: reverse_likelihood
HELD_OUT = (*HELD_OUT, "reverse")
