"""The over-optimisation guards of the final choice: answers the policy itself finds likely
(``proximity``), and answers that agree with the other candidates (``consensus``).

DARWIN optimises whatever reward it is given, so a search that pushes hard finds what the
reward overrates (stubs, restatements, flattery). Regularised Best-of-N (Jinnai et al. 2024,
KL form) counters it for any reward: rank candidates by

    reward + proximity_weight * mean log pi(answer token | original conversation, earlier tokens)

where pi is the policy. Text far from what the policy would write for the *original*
instruction (degenerate repetition, word salad, drift toward a mutated instruction) loses
ground. The mean, not the sum, keeps long answers from being punished for their length.

The consensus guard (Regularised Best-of-N, MBR form: Jinnai et al., NAACL 2025) ranks by

    reward + consensus_weight * mean cosine(answer, each other candidate)

on MiniLM sentence embeddings (the default reward's embedder): an answer unlike what the other
candidates say (an answer to a drifted rewrite, a reward hack only one beam found) must win by
more. It reads no policy, so it works the same on every engine.

Both act at the final choice only (each cycle's candidates and the seed answer, once per
cycle): one batched prefill of a handful of answers for proximity, one MiniLM pass over them
for consensus. Acting at every replacement would prefill every changed beam under the original
conversation every period, about as many positions as the whole search decodes, for a signal
that matters only where an answer is picked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

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


def consensus(
    answers: Mapping[str, str],
    embed: Callable[[Sequence[str]], tuple[Any, int]] | None = None,
) -> tuple[dict[str, float], int]:
    """Each answer's mean cosine to the other non-empty answers (0 for an empty answer, which
    says nothing, and for an answer with no other to agree with), and the embedder positions
    read. ``embed``: texts -> (unit-length embeddings as rows, positions); MiniLM when None."""
    if embed is None:
        from langchain_darwin.inprocess.default_reward import embed_counted

        embed = embed_counted
    keys = [k for k, text in answers.items() if text.strip()]
    values = dict.fromkeys(answers, 0.0)
    if len(keys) < 2:
        return values, 0
    vectors, positions = embed([answers[k] for k in keys])
    similarity = (vectors @ vectors.T).tolist()
    for i, key in enumerate(keys):
        values[key] = (sum(similarity[i]) - similarity[i][i]) / (len(keys) - 1)
    return values, positions
