"""Seams the benchmarks build on: an engine built elsewhere registered under a spec, and the
served engine's request payload as one public function."""

from __future__ import annotations

import pytest

from langchain_darwin import DarwinChatModel
from langchain_darwin.engines import EngineSpec, clear_engines, get_engine, register_engine
from langchain_darwin.inprocess.engine import TransformersPolicy
from langchain_darwin.policy import Sampling
from langchain_darwin.served.policy import completion_payload
from tests.tiny import tiny_policy, tiny_tokenizer


@pytest.fixture()
def _fresh_engines():
    clear_engines()
    yield
    clear_engines()


@pytest.mark.usefixtures("_fresh_engines")
def test_a_registered_engine_runs_the_searches_that_name_it() -> None:
    tok = tiny_tokenizer()
    engine = TransformersPolicy(tiny_policy(tok, seed=5), tok)
    spec = EngineSpec(model="random-tiny", device="cpu")
    register_engine(spec, engine)
    register_engine(spec, engine)  # the same engine again is no change
    assert get_engine(spec) is engine
    chat = DarwinChatModel(
        model="random-tiny",
        device="cpu",
        reward_model=lambda conversation, answer: float(len(answer)),
        max_tokens=6,
        replacement_period=3,
        temperature=0,
        seed=0,
    )
    darwin = chat.invoke("Hi").response_metadata["darwin"]
    assert darwin["winner"] is not None
    assert darwin["usage"]["beams"]["decoded"] > 0
    other = TransformersPolicy(tiny_policy(tok, seed=6), tok)
    with pytest.raises(ValueError, match="already names another engine"):
        register_engine(spec, other)


def test_completion_payload_sets_every_sampling_field() -> None:
    sampled = completion_payload("m", [1, 2], 8, Sampling(0.7, 40, 0, ignore_eos=True), 9, n=5)
    assert sampled["temperature"] == 0.7 and sampled["top_k"] == 40
    assert sampled["n"] == 5 and sampled["seed"] == 9 and sampled["ignore_eos"] is True
    assert sampled["prompt"] == [1, 2] and sampled["max_tokens"] == 8
    assert {"top_p", "min_p", "repetition_penalty", "presence_penalty"} <= set(sampled)
    greedy = completion_payload("m", [1], 1, Sampling(0.0, 40, 0), 0)
    assert greedy["temperature"] == 0.0 and greedy["top_k"] == -1 and greedy["n"] == 1
    with pytest.raises(ValueError, match="n must be >= 1"):
        completion_payload("m", [1], 1, Sampling(0.7, 40, 0), 0, n=0)
