"""The transformers policy engine: KV reuse must never change what is decoded."""

from __future__ import annotations

import pytest
import torch

from langchain_darwin.inprocess import engine as transformers_engine
from langchain_darwin.inprocess.engine import TransformersPolicy
from langchain_darwin.inprocess.kv import row_cache
from langchain_darwin.inprocess.layout import prefill_groups
from langchain_darwin.policy import RowRequest, Sampling
from tests.tiny import tiny_policy, tiny_tokenizer

GREEDY = Sampling(temperature=0.0, top_k=0, seed=0)


@pytest.fixture(scope="module")
def engine() -> TransformersPolicy:
    tok = tiny_tokenizer()
    return TransformersPolicy(tiny_policy(tok), tok)


def full_forward_greedy(engine: TransformersPolicy, tokens: list[int], n: int) -> list[int]:
    """Reference: re-run the whole sequence for every token (no cache at all)."""
    seq = list(tokens)
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(engine.model(torch.tensor([seq])).logits[0, -1].argmax()))
    return seq[len(tokens) :]


def run_periods(
    engine: TransformersPolicy, reuse: bool
) -> tuple[dict[str, list[int]], list[int], int]:
    """Three periods of 6 tokens over rows with different prompts; after period 1 row "a"
    takes row "b"'s answer under its own prompt and "c" clones "b" entirely."""
    p1 = engine.render([{"role": "user", "content": "Hello there"}])
    p2 = engine.render([{"role": "user", "content": "Write a long poem about cats"}])
    rows = {"a": list(p1), "b": list(p2), "c": list(p1)}
    prompts = {"a": p1, "b": p2, "c": p1}
    session = engine.new_session(reuse_cache=reuse)
    prefilled = []
    for period in range(3):
        out = engine.extend(session, {k: RowRequest(v, 6) for k, v in rows.items()}, GREEDY)
        prefilled.append(out.work.as_dict()["prefilled"])
        for key in rows:
            rows[key] = rows[key] + out.rows[key].new_tokens
        if period == 0:
            answer_a, answer_b = rows["a"][len(p1) :], rows["b"][len(p2) :]
            shared = next(
                (i for i, (x, y) in enumerate(zip(answer_a, answer_b, strict=False)) if x != y), 6
            )
            rows["a"] = list(p1) + answer_b
            rows["c"] = list(p2) + answer_b
            prompts["c"] = p2
    return {k: v[len(prompts[k]) :] for k, v in rows.items()}, prefilled, shared


def test_cached_and_reprefilled_decoding_agree_with_a_full_forward(engine) -> None:
    cached, prefilled_kv, shared = run_periods(engine, reuse=True)
    plain, prefilled_none, _ = run_periods(engine, reuse=False)
    assert cached == plain
    # row "b" was never replaced: its 18 tokens are what a full greedy forward produces
    p2 = engine.render([{"role": "user", "content": "Write a long poem about cats"}])
    assert cached["b"] == full_forward_greedy(engine, p2, 18)
    # row "a" kept its prompt and continued b's copied answer
    assert cached["a"][:6] == cached["b"][:6] and cached["a"] != cached["b"]
    # KV reuse: after the first prefill only the replaced row's copied answer is prefilled
    # (beyond what its old answer shared with it; the last token is fed by the decode step),
    # and "c", now identical to "b", is cloned from b's cache without any prefill.
    assert prefilled_kv[1] == 6 - 1 - shared and prefilled_kv[2] == 0
    assert prefilled_none[1] > prefilled_none[0] > prefilled_kv[1]


def test_identical_contexts_are_prefilled_once(engine) -> None:
    prompt = engine.render([{"role": "user", "content": "Same prompt for everyone"}])
    session = engine.new_session()
    rows = {f"r{i}": RowRequest(prompt, 2) for i in range(4)}
    out = engine.extend(session, rows, Sampling(0.7, 40, seed=1))
    assert out.work.as_dict()["prefilled"] == len(prompt) - 1
    assert out.work.as_dict()["decoded"] == 8


def test_shared_prefix_with_a_cached_row_is_reused(engine) -> None:
    session = engine.new_session()
    conv = [{"role": "system", "content": "A long shared system prompt " * 3}]
    first = engine.render([*conv, {"role": "user", "content": "one"}])
    second = engine.render([*conv, {"role": "user", "content": "another question"}])
    engine.extend(session, {"x": RowRequest(first, 1)}, GREEDY)
    out = engine.extend(session, {"x": RowRequest(first, 1), "y": RowRequest(second, 1)}, GREEDY)
    shared = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    assert out.work.prefilled.get("y") == len(second) - 1 - shared


def test_end_of_sequence_ends_a_row_and_riders_do_not_keep_the_batch(engine) -> None:
    prompt = engine.render([{"role": "user", "content": "Hello there"}])
    greedy = full_forward_greedy(engine, prompt, 4)
    stopper = TransformersPolicy(engine.model, engine.tokenizer)
    stopper.eos_token_ids = frozenset({greedy[2]})
    session = stopper.new_session()
    rows = {"main": RowRequest(prompt, 10), "rider": RowRequest(prompt, 10, rider=True)}
    out = stopper.extend(session, rows, GREEDY)
    first_eos = greedy.index(greedy[2])
    assert out.rows["main"].ended and out.rows["main"].new_tokens == greedy[:first_eos]
    # the rider decoded in lockstep and stopped when the last non-rider did
    assert out.rows["rider"].new_tokens == greedy[:first_eos]
    assert set(session.rows) == set()  # both ended on end-of-sequence: nothing left to grow


def test_seeded_sampling_is_reproducible_and_seed_dependent(engine) -> None:
    prompt = engine.render([{"role": "user", "content": "Hello there"}])

    def sample(seed: int) -> list[int]:
        session = engine.new_session()
        return (
            engine.extend(session, {"r": RowRequest(prompt, 12)}, Sampling(0.9, 40, seed))
            .rows["r"]
            .new_tokens
        )

    assert sample(5) == sample(5)
    assert sample(5) != sample(6)


def test_look_ahead_does_not_commit(engine) -> None:
    prompt = engine.render([{"role": "user", "content": "Hello there"}])
    session = engine.new_session()
    engine.extend(session, {"r": RowRequest(prompt, 3)}, GREEDY)
    before = {k: list(v.tokens) for k, v in session.rows.items()}
    engine.extend(session, {"r": RowRequest(prompt, 5)}, GREEDY, commit=False)
    assert {k: list(v.tokens) for k, v in session.rows.items()} == before


def test_rows_prefilled_in_place_twins_and_idle_rows_match_a_full_forward(
    engine, monkeypatch
) -> None:
    """A period where a minority of rows has tokens to prefill: they are forwarded inside the
    decode batch (twins once, the second copying the first), and a row with no budget is
    prefilled, stored, and continues correctly in the next call."""
    p1 = engine.render([{"role": "user", "content": "Hello there"}])
    p2 = engine.render([{"role": "user", "content": "Write a long poem about cats"}])
    p3 = engine.render([{"role": "user", "content": "Name three colours"}])
    session = engine.new_session()
    first = engine.extend(
        session, {k: RowRequest(p, 5) for k, p in {"a": p1, "b": p2, "c": p3}.items()}, GREEDY
    )
    grown = {k: p + first.rows[k].new_tokens for k, p in {"a": p1, "b": p2, "c": p3}.items()}
    copied = list(p1) + first.rows["b"].new_tokens  # b's answer under a's prompt
    rows = {
        **{k: RowRequest(v, 4) for k, v in grown.items()},
        "x1": RowRequest(copied, 4),
        "x2": RowRequest(copied, 4),
        # longer than x1's copied answer: its pending run is too (at least 5 vs at most 4)
        "idle": RowRequest(list(p2) + first.rows["c"].new_tokens + first.rows["a"].new_tokens, 0),
    }
    in_place: list[slice] = []

    def spy(cache, rows, length):  # noqa: ANN001, ANN202
        in_place.append(rows)
        return row_cache(cache, rows, length)

    monkeypatch.setattr(transformers_engine, "row_cache", spy)
    out = engine.extend(session, rows, GREEDY)
    # one forward in the decode batch for x1 and idle (x1 left-padded); x2 copied x1
    assert in_place == [slice(0, 2)]
    want = full_forward_greedy(engine, copied, 4)
    assert out.rows["x1"].new_tokens == out.rows["x2"].new_tokens == want
    for key, context in grown.items():
        assert out.rows[key].new_tokens == full_forward_greedy(engine, context, 4)
    assert out.rows["idle"].new_tokens == []
    assert "x2" not in out.work.prefilled  # the twin copied its columns
    idle_context = rows["idle"].tokens
    again = engine.extend(session, {"idle": RowRequest(idle_context, 3)}, GREEDY)
    assert again.work.as_dict()["prefilled"] == 0  # its cache was stored by the idle call
    assert again.rows["idle"].new_tokens == full_forward_greedy(engine, idle_context, 3)


def test_prefill_groups_never_widen_the_batch() -> None:
    rows = {
        "own_copy": RowRequest([0] * 300, 4),  # 250 cached + 49 pending
        "donor": RowRequest([0] * 300, 4),  # 60 cached + 239 pending
        "short": RowRequest([0] * 200, 4),  # 150 cached + 49 pending
    }
    pending = {"own_copy": [1] * 49, "donor": [1] * 239, "short": [1] * 49}
    groups = prefill_groups(list(rows), rows, pending, 299)
    # one forward would give every row the 239-column tail: own_copy would need 489 columns
    # and short 389, so both go into a second forward with a 49-column tail
    assert groups == [["donor"], ["own_copy", "short"]]
    for group in groups:
        tail = len(pending[group[0]])
        assert all(len(rows[k].tokens) - 1 - len(pending[k]) + tail <= 299 for k in group)


#: Tokens the engine drew on the tiny policy (seed 0) before the decode loop was split into
#: parts: two rows for 5 tokens, then both continue a's answer (b under its own prompt, so it
#: is prefilled in place and sits first in the batch: the draw must follow request order).
PINNED = {
    "top-k": (
        Sampling(0.7, 40, seed=1),
        [[84, 72, 16, 234, 258], [84, 187, 214, 171, 232]],
        [[61, 61, 164, 22, 60], [6, 63, 22, 190, 87]],
        3,
    ),
    "vocabulary": (
        Sampling(0.9, 0, seed=2),
        [[84, 40, 234, 234, 99], [225, 111, 214, 98, 129]],
        [[84, 143, 117, 145, 107], [148, 234, 84, 84, 219]],
        4,
    ),
    "greedy": (
        GREEDY,
        [[84, 72, 239, 84, 84], [84, 234, 88, 63, 84]],
        [[84, 51, 136, 168, 84], [19, 84, 155, 84, 234]],
        3,
    ),
}


@pytest.mark.parametrize("name", list(PINNED))
def test_fixed_seed_tokens_and_counters_are_pinned(engine, name: str) -> None:
    sampling, first_want, second_want, prefilled = PINNED[name]
    p1 = engine.render([{"role": "user", "content": "Hello there"}])
    p2 = engine.render([{"role": "user", "content": "Write a long poem about cats"}])
    session = engine.new_session()
    first = engine.extend(session, {"a": RowRequest(p1, 5), "b": RowRequest(p2, 5)}, sampling)
    a = first.rows["a"].new_tokens
    assert [a, first.rows["b"].new_tokens] == first_want
    rows = {"a": RowRequest(p1 + a, 5), "b": RowRequest(p2 + a, 5)}
    second = engine.extend(session, rows, sampling)
    assert [second.rows[k].new_tokens for k in "ab"] == second_want
    assert second.work.as_dict() == {"prefilled": prefilled, "decoded": 10}


def direct_logprobs(
    engine: TransformersPolicy, prompt: list[int], answer: list[int]
) -> list[float]:
    """Reference: one unpadded forward of prompt + answer, read at the answer's positions."""
    with torch.no_grad():
        logits = engine.model(torch.tensor([prompt + answer])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [float(logprobs[len(prompt) + j - 1, t]) for j, t in enumerate(answer)]


def test_answer_logprobs_match_a_direct_forward_and_leave_the_session(engine) -> None:
    p1 = engine.render([{"role": "user", "content": "Hello there"}])
    p2 = engine.render([{"role": "user", "content": "Write a long poem about cats"}])
    answer = engine.tokenize("Cats sleep a lot, and then some more.")
    session = engine.new_session()
    engine.extend(session, {"a": RowRequest(p1, 3)}, GREEDY)
    before = {k: (list(v.tokens), len(v.kv)) for k, v in session.rows.items()}
    rows = {
        "long": (p2, answer),  # the longest prompt and answer
        "short": (p1, answer[:3]),  # shorter in both: left-padded in the batch
        "one": (p1, answer[:1]),
        "empty": (p2, []),
    }
    got = engine.answer_logprobs(session, rows)
    assert set(got) == set(rows) and got["empty"] == []
    for key, (prompt, ans) in rows.items():
        want = direct_logprobs(engine, list(prompt), list(ans))
        assert len(got[key]) == len(ans)
        assert got[key] == pytest.approx(want, abs=1e-5), key
        assert all(v < 0 for v in got[key])
    assert {k: (list(v.tokens), len(v.kv)) for k, v in session.rows.items()} == before
    assert engine.answer_logprobs(session, {"e": (p1, [])}) == {"e": []}
