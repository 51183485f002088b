"""The over-optimisation guard: the final choice prefers answers the policy itself finds likely.

DARWIN optimises whatever reward it is given, so a search that pushes hard finds what the
reward overrates (stubs, restatements, flattery). Regularised Best-of-N (Jinnai et al. 2024,
KL form) counters it for any reward: rank candidates by

    reward + proximity_weight * mean log pi(answer token | original conversation, earlier tokens)

where pi is the policy. Text far from what the policy would write for the *original*
instruction (degenerate repetition, word salad, drift toward a mutated instruction) loses
ground. The mean, not the sum, keeps long answers from being punished for their length.

It acts at the final choice (each cycle's candidates and the seed answer, once per cycle):
one batched prefill of a handful of answers. Acting at every replacement would prefill every
changed beam under the original conversation every period, about as many positions as the
whole search decodes, for a signal that matters only where an answer is picked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from langchain_darwin.policy.base import PolicyEngine, PolicySession

#: Mean log-probability charged to an empty answer: it says nothing, so nothing vouches for it.
EMPTY_ANSWER_LOGPROB = -20.0


def proximity(
    policy: PolicyEngine,
    session: PolicySession,
    prompt: Sequence[int],
    answers: Mapping[str, Sequence[int]],
) -> tuple[dict[str, float], int]:
    """Mean token log-probability of each answer under ``prompt`` (the original conversation),
    and the positions the policy read to find them."""
    rows = {k: (list(prompt), list(a)) for k, a in answers.items() if a}
    logprobs = policy.answer_logprobs(session, rows) if rows else {}
    means = {
        k: sum(logprobs[k]) / len(logprobs[k]) if k in logprobs else EMPTY_ANSWER_LOGPROB
        for k in answers
    }
    return means, sum(len(p) + len(a) for p, a in rows.values())
