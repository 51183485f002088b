"""The served policy engine and reward model against real vLLM servers (tests/servers.py):
the PolicyEngine protocol's behaviour, and agreement with the in-process models."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from langchain_darwin.policy.base import RowRequest, Sampling
from langchain_darwin.served.client import normalize_base_url
from langchain_darwin.served.policy import ServedPolicy

CONVERSATION = [{"role": "user", "content": "How do I boil an egg?"}]
SAMPLED = Sampling(temperature=1.0, top_k=0, seed=7)


@pytest.fixture(scope="module")
def policy(vllm_policy_server: Any) -> ServedPolicy:
    return ServedPolicy(vllm_policy_server.base_url, vllm_policy_server.model)


def test_no_torch_in_the_served_backend() -> None:
    """The served backend is an HTTP client: importing it must not import torch."""
    import subprocess

    code = (
        "import sys, langchain_darwin.served.policy, langchain_darwin.served.reward; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_base_url_forms_name_one_server(vllm_policy_server: Any) -> None:
    root = vllm_policy_server.base_url.removesuffix("/v1")
    assert {normalize_base_url(u) for u in (root, root + "/v1", root + "/v1/")} == {root}
    for url in (root, root + "/v1/"):
        engine = ServedPolicy(url, vllm_policy_server.model)
        assert engine.context_window == vllm_policy_server.max_model_len


def test_text_and_chat_match_transformers(policy: ServedPolicy, vllm_policy_server: Any) -> None:
    """Render, tokenize, detokenize and line breaks as the model's transformers tokenizer."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(vllm_policy_server.folder)
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi!\n  How are you? café 🙂"},
    ]
    text = hf.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert policy.render(conversation) == hf(text, add_special_tokens=False)["input_ids"]
    ids = policy.render(conversation) + policy.tokenize("Fine.\n\nThanks") + [2]
    assert policy.detokenize(ids) == hf.decode(ids, skip_special_tokens=True)
    expected = {i for i in hf.get_vocab().values() if "\n" in hf.decode([i])}
    assert policy.line_break_ids == expected
    assert policy.eos_token_ids == {hf.eos_token_id}


def test_fixed_seed_reproduces_and_copied_rows_diverge(policy: ServedPolicy) -> None:
    prompt = policy.render(CONVERSATION)
    rows = {f"beam{i}": RowRequest(prompt, 12) for i in range(4)}  # four copies of one row
    one = policy.extend(policy.new_session(), rows, SAMPLED)
    again = policy.extend(policy.new_session(), rows, SAMPLED)
    tokens = {k: r.new_tokens for k, r in one.rows.items()}
    assert tokens == {k: r.new_tokens for k, r in again.rows.items()}
    assert len({tuple(t) for t in tokens.values()}) == 4  # each row its own seed
    other = policy.extend(policy.new_session(), rows, Sampling(1.0, 0, seed=8))
    assert {k: r.new_tokens for k, r in other.rows.items()} != tokens
    assert all(len(r.new_tokens) == 12 or r.ended for r in one.rows.values())


def test_end_of_sequence_ends_a_row_without_its_id(policy: ServedPolicy) -> None:
    prompt = policy.render([{"role": "user", "content": "Reply with just the word: yes"}])
    greedy = Sampling(temperature=0.0, top_k=0, seed=0)
    result = policy.extend(policy.new_session(), {"a": RowRequest(prompt, 48)}, greedy).rows["a"]
    assert result.ended and 0 < len(result.new_tokens) < 48
    assert not set(result.new_tokens) & policy.eos_token_ids
    # ignore_eos: the row writes through its end-of-sequence, keeping the id, to its budget
    through = Sampling(0.0, 0, 0, ignore_eos=True)
    longer = policy.extend(policy.new_session(), {"a": RowRequest(prompt, 48)}, through).rows["a"]
    assert not longer.ended and len(longer.new_tokens) == 48
    assert longer.new_tokens[: len(result.new_tokens)] == result.new_tokens
    assert longer.new_tokens[len(result.new_tokens)] in policy.eos_token_ids


def test_mutation_rows_end_at_their_first_line_break_after_text(policy: ServedPolicy) -> None:
    """The rewrite rule: a line break ends the row once it has non-blank text, and only then
    (a line break before any text does not). The context ends on a colon, after which
    SmolLM2 starts with a blank line."""
    lines = policy.line_break_ids
    prompt = policy.render([{"role": "user", "content": "List three fruits."}])
    context = prompt + policy.tokenize("Here are three fruits:")
    rows = {f"mutation{i}": RowRequest(context, 40, stop_ids=lines) for i in range(6)}
    out = policy.extend(policy.new_session(), rows, SAMPLED)
    leading_blank = at_line_break = 0
    for result in out.rows.values():
        new = result.new_tokens
        # ended at a line break after text or at an end of sequence, or used its budget
        assert result.ended or len(new) == 40
        for j, token in enumerate(new[:-1]):  # no earlier line break came after text
            assert token not in lines or not policy.detokenize(new[: j + 1]).strip()
        if new and new[-1] in lines:
            assert policy.detokenize(new).strip()
            at_line_break += 1
            leading_blank += not policy.detokenize(new[:1]).strip()
    assert at_line_break > 0 and leading_blank > 0  # both cases of the rule were exercised


def test_look_ahead_and_commit_give_the_same_rows(policy: ServedPolicy) -> None:
    prompt = policy.render(CONVERSATION)
    rows = {"beam0": RowRequest(prompt, 8), "beam1": RowRequest(prompt + [28], 8)}
    session = policy.new_session()
    ahead = policy.extend(session, rows, SAMPLED, commit=False)
    committed = policy.extend(session, rows, SAMPLED)
    assert ahead.rows == committed.rows


def test_work_counts_what_the_prefix_cache_saved(policy: ServedPolicy) -> None:
    """A period continuing a row costs its new part; with ``cache="none"`` (a fresh cache
    salt per call) it re-prefills the whole context."""
    prompt = policy.render([{"role": "user", "content": "Tell me a long story about a cat."}])
    first = policy.extend(policy.new_session(), {"r": RowRequest(prompt, 48)}, SAMPLED)
    context = prompt + first.rows["r"].new_tokens
    cached = policy.extend(policy.new_session(), {"r": RowRequest(context, 8)}, SAMPLED)
    fresh = policy.extend(policy.new_session(False), {"r": RowRequest(context, 8)}, SAMPLED)
    assert cached.work.prefilled["r"] <= 32  # all but the last partial block came from cache
    assert fresh.work.prefilled["r"] == len(context)
    assert cached.work.decoded["r"] == fresh.work.decoded["r"] == 8
    assert cached.rows == fresh.rows  # the salt changes the cost, not the tokens


def test_answer_logprobs_match_transformers(policy: ServedPolicy, vllm_policy_server: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    prompt = policy.render(CONVERSATION)
    answers = {
        "a": policy.tokenize("Put the egg in boiling water for nine minutes."),
        "b": policy.tokenize("Eggs? No idea."),
        "empty": [],
    }
    got = policy.answer_logprobs(policy.new_session(), {k: (prompt, a) for k, a in answers.items()})
    model = AutoModelForCausalLM.from_pretrained(vllm_policy_server.folder, dtype=torch.float32)
    for key, answer in answers.items():
        if not answer:
            assert got[key] == []
            continue
        ids = torch.tensor([prompt + answer])
        with torch.inference_mode():
            logprobs = model(ids).logits[0].float().log_softmax(-1)
        start = len(prompt)
        expected = [float(logprobs[start - 1 + i, t]) for i, t in enumerate(answer)]
        assert got[key] == pytest.approx(expected, abs=1e-4)


def test_served_reward_matches_the_in_process_classifier(vllm_reward_server: Any) -> None:
    from langchain_darwin.inprocess.reward import HFSequenceClassifierReward
    from langchain_darwin.rewards import ServedReward

    served = ServedReward(vllm_reward_server.base_url, vllm_reward_server.model)
    local = HFSequenceClassifierReward(str(vllm_reward_server.folder), prefix_cache=False)
    answers = ["Boil it for nine minutes, then cool it in cold water.", "No.", ""]
    assert served.render(CONVERSATION, answers[0]) == local.render(CONVERSATION, answers[0])
    scores = served.score(CONVERSATION, answers)
    assert scores == pytest.approx(local.score(CONVERSATION, answers), abs=2e-5)
    assert len(set(scores)) == 3
    assert served.positions_scored == local.positions_scored > 0


def test_reward_folder_is_a_one_label_classifier(vllm_reward_server: Any) -> None:
    import json

    config = json.loads((Path(vllm_reward_server.folder) / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"]
    assert config["num_labels"] == 1 if "num_labels" in config else len(config["id2label"]) == 1
