"""End to end through DarwinChatModel on tiny random models (real transformers, real LangGraph)."""

from __future__ import annotations

import statistics

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langchain_darwin import DarwinChatModel
from tests.full_state import full_state

FAST = {"max_tokens": 24, "replacement_period": 8}
REQUIRED = {
    "final_reward",
    "seed_reward",
    "cycle_rewards",
    "period_scores",
    "mutated_instructions",
    "archive",
    "winner",
    "generated_tokens",
    "mutation_stats",
    "usage",
}


def vowels(conversation, answer: str) -> float:
    """A reward that favours chosen tokens: vowels and spaces."""
    return float(sum(ch in "aeiou " for ch in answer))


def test_path_reward_model_end_to_end(tiny_dirs) -> None:
    policy_dir, rm_dir = tiny_dirs
    llm = DarwinChatModel(model=str(policy_dir), reward_model=str(rm_dir), seed=1, **FAST)
    msg = llm.invoke("Tell me about eggs")
    assert isinstance(msg, AIMessage) and isinstance(msg.content, str) and msg.content
    darwin = msg.response_metadata["darwin"]
    assert REQUIRED <= set(darwin)
    assert msg.response_metadata["model_name"] == str(policy_dir)
    assert darwin["final_reward"] >= darwin["seed_reward"]
    assert len(darwin["period_scores"]) == 1 and all(
        len(p) == 5 for p in darwin["period_scores"][0]
    )
    assert len(darwin["mutated_instructions"]) == 1 and len(darwin["mutated_instructions"][0]) == 5
    stats = darwin["mutation_stats"]
    assert stats["rewrites"] + stats["fallbacks"] == 5
    usage = msg.usage_metadata
    assert usage is not None and usage["output_tokens"] == darwin["generated_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert darwin["usage"]["reward"]["positions"] > 0  # the HF reward model counts its work
    assert darwin["usage"]["reward"]["answers"] >= 6


def test_callable_reward_end_to_end(tiny_dirs) -> None:
    seen = []

    def reward(conversation, answer: str) -> float:
        seen.append(conversation)
        return vowels(conversation, answer)

    llm = DarwinChatModel(model=str(tiny_dirs[0]), reward_model=reward, seed=2, **FAST)
    msg = llm.invoke("Tell me about eggs")
    darwin = msg.response_metadata["darwin"]
    assert darwin["final_reward"] == vowels(None, msg.content)
    assert seen and all(c == [{"role": "user", "content": "Tell me about eggs"}] for c in seen)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_final_reward_is_never_below_the_seed_answers(tiny_dirs, seed: int) -> None:
    llm = DarwinChatModel(model=str(tiny_dirs[0]), reward_model=vowels, seed=seed, **FAST)
    darwin = llm.invoke("Describe a cat", iterations=2).response_metadata["darwin"]
    assert darwin["final_reward"] >= darwin["seed_reward"]
    assert darwin["final_reward"] == max([darwin["seed_reward"], *darwin["cycle_rewards"]])
    assert len(darwin["cycle_rewards"]) == 2


def test_darwin_beats_plain_sampling_with_the_same_model(tiny_dirs) -> None:
    llm = DarwinChatModel(model=str(tiny_dirs[0]), reward_model=vowels, **FAST)
    darwin, plain = [], []
    for seed in range(6):
        darwin.append(llm.invoke("Tell me about eggs", seed=seed).response_metadata["darwin"])
        plain.append(
            llm.invoke("Tell me about eggs", seed=seed, iterations=0).response_metadata["darwin"]
        )
    assert all(p["cycle_rewards"] == [] and p["mutated_instructions"] == [] for p in plain)
    mean_darwin = statistics.mean(d["final_reward"] for d in darwin)
    mean_plain = statistics.mean(p["final_reward"] for p in plain)
    assert mean_darwin > mean_plain


def test_multi_turn_mutates_the_last_user_turn_and_rewards_see_the_original(tiny_dirs) -> None:
    conversations = []

    def reward(conversation, answer: str) -> float:
        conversations.append(conversation)
        return vowels(conversation, answer)

    llm = DarwinChatModel(model=str(tiny_dirs[0]), reward_model=reward, seed=3, **FAST)
    messages = [
        SystemMessage("You are terse."),
        HumanMessage("What is an egg?"),
        AIMessage("An egg is a reproductive body."),
        HumanMessage("How do I boil one?"),
    ]
    original = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is an egg?"},
        {"role": "assistant", "content": "An egg is a reproductive body."},
        {"role": "user", "content": "How do I boil one?"},
    ]
    state = full_state(llm, messages)
    assert state["conversation"] == original
    assert all(c == original for c in conversations)
    policy = llm.search_service.engine(str(tiny_dirs[0]))
    for beam in state["beams"]:
        prompt = policy.detokenize(beam["prompt"])
        assert "You are terse." in prompt and "An egg is a reproductive body." in prompt
        assert state["instructions"][beam["instruction"]] in prompt
    assert state["archive"][0]["instruction"] in {"How do I boil one?"} | set(state["instructions"])


@pytest.mark.parametrize(
    ("temperature", "knobs"),
    [
        (0.0, {}),
        (0.7, {}),
        (0.7, {"selection": "softmax", "seed_answer": False, "replacement_horizon": 16}),
    ],
)
def test_reprefill_mode_yields_exactly_the_same_tokens(
    tiny_dirs, temperature: float, knobs: dict[str, object]
) -> None:
    """On the paper's method (its preset, whatever the defaults) and on the extensions."""
    from langchain_darwin import DarwinConfig

    config = DarwinConfig.preset("paper", seed=4, temperature=temperature, **FAST, **knobs)
    llm = DarwinChatModel(model=str(tiny_dirs[0]), reward_model=vowels, config=config)
    fast = full_state(llm, [HumanMessage("Tell me about eggs")], iterations=2)
    slow = full_state(llm, [HumanMessage("Tell me about eggs")], iterations=2, cache="none")
    for key in ("beams", "seed", "best", "period_scores", "archive", "answer"):
        assert fast[key] == slow[key], key
    assert slow["usage"]["beams"]["prefilled"] > fast["usage"]["beams"]["prefilled"]
    assert slow["usage"]["beams"]["decoded"] == fast["usage"]["beams"]["decoded"]


def test_per_call_knobs_and_config_object(tiny_dirs) -> None:
    from langchain_darwin import DarwinConfig

    llm = DarwinChatModel(
        model=str(tiny_dirs[0]), reward_model=vowels, config=DarwinConfig(seed=5, **FAST)
    )
    darwin = llm.invoke("Hi there", replacement_period=12).response_metadata["darwin"]
    assert darwin["config"]["replacement_period"] == 12 and darwin["config"]["seed"] == 5
    assert llm.config.replacement_period == 8  # the instance is unchanged
    with pytest.raises(ValueError, match="unknown argument"):
        llm.invoke("Hi there", replacment_period=12)


def test_batch_and_stream_work(tiny_dirs) -> None:
    llm = DarwinChatModel(model=str(tiny_dirs[0]), reward_model=vowels, seed=6, **FAST)
    answers = llm.batch(["Hi", "Tell me about cats"])
    assert len(answers) == 2 and all(isinstance(a, AIMessage) for a in answers)
    chunks = list(llm.stream("Hi"))
    assert "".join(c.content for c in chunks) == answers[0].content


def test_hint_mutation_asks_the_policy_nothing_and_keeps_the_question(tiny_dirs) -> None:
    """mutation_source='hints': every beam's instruction is the question plus a hint, no
    mutation tokens are generated, and the winner's kind says which wrote it."""
    policy_dir, _ = tiny_dirs
    hinted = DarwinChatModel(
        model=str(policy_dir), reward_model=vowels, seed=3, mutation_source="hints", **FAST
    ).invoke("Tell me about eggs")
    darwin = hinted.response_metadata["darwin"]
    (instructions,) = darwin["mutated_instructions"]
    assert len(set(instructions)) == 5
    assert all(text.startswith("Tell me about eggs ") for text in instructions)
    assert darwin["mutation_stats"] == {"rewrites": 0, "fallbacks": 0, "original": 0, "hints": 5}
    assert darwin["usage"]["mutation"] == {"prefilled": 0, "decoded": 0}
    assert darwin["winner"] is not None


def test_keep_picked_holds_one_slot_for_the_unmutated_instruction(tiny_dirs) -> None:
    policy_dir, _ = tiny_dirs
    kept = DarwinChatModel(
        model=str(policy_dir), reward_model=vowels, seed=3, keep_picked=True, **FAST
    ).invoke("Tell me about eggs")
    darwin = kept.response_metadata["darwin"]
    (instructions,) = darwin["mutated_instructions"]
    assert len(instructions) == 5 and instructions[0] == "Tell me about eggs"
    stats = darwin["mutation_stats"]
    assert stats["original"] == 1 and stats["rewrites"] + stats["fallbacks"] == 4
