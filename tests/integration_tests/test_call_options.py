"""Per-call options reach the search: stop, temperature 0 (greedy), model override, knobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from langchain_core.messages import HumanMessage
from transformers import AutoModelForCausalLM, AutoTokenizer

from langchain_darwin import DarwinChatModel

Factory = Callable[..., DarwinChatModel]


def test_temperature_zero_without_search_is_greedy_decoding(
    make_chat: Factory, tiny_dirs: tuple[Path, Path]
) -> None:
    chat = make_chat(iterations=0, temperature=0, seed=None)
    answer = chat.invoke("How do I boil an egg?")
    tokenizer = AutoTokenizer.from_pretrained(tiny_dirs[0])
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs[0]).eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "How do I boil an egg?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        out = model.generate(prompt, do_sample=False, max_new_tokens=16)
    expected = tokenizer.decode(out[0, prompt.shape[1] :], skip_special_tokens=True)
    assert answer.content == expected
    # Greedy decoding ignores the seed (the full search still draws donors with it).
    assert make_chat(iterations=0, seed=1).invoke("Hi").content == (
        make_chat(iterations=0, seed=2).invoke("Hi").content
    )


def test_stop_strings_end_the_answer(make_chat: Factory) -> None:
    chat = make_chat()
    answer = chat.invoke("How do I boil an egg?").content
    stop = answer[len(answer) // 2]
    assert stop not in chat.invoke("How do I boil an egg?", stop=[stop]).content
    assert stop not in make_chat(stop=[stop]).invoke("How do I boil an egg?").content
    chunks = list(chat.stream("How do I boil an egg?", stop=[stop]))
    assert stop not in "".join(c.text for c in chunks)


def test_model_override_per_call(make_chat: Factory, other_policy_dir: Path) -> None:
    chat = make_chat()
    own = chat.invoke("Hello")
    other = chat.invoke("Hello", model=str(other_policy_dir))
    assert own.response_metadata["model_name"] == chat.model
    assert other.response_metadata["model_name"] == str(other_policy_dir)
    assert own.content != other.content  # other weights, other answer


def test_knobs_per_call_and_integer_usage(make_chat: Factory) -> None:
    chat = make_chat()
    result = chat.invoke([HumanMessage("Hello")], max_tokens=8, replacement_period=4)
    darwin = result.response_metadata["darwin"]
    assert darwin["config"]["max_tokens"] == 8 and darwin["winner"]["tokens"] <= 8
    assert len(darwin["period_scores"][0]) == 2  # 8 tokens, a replacement every 4
    usage = result.usage_metadata
    assert all(isinstance(usage[k], int) for k in ("input_tokens", "output_tokens"))
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert result.response_metadata["finish_reason"] in {"stop", "length"}
    assert chat.config.max_tokens == 16  # the instance is untouched
