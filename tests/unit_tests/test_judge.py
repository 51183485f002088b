"""Any LangChain chat model as the reward: the judge, on langchain-core's fake chat models."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    ParrotFakeChatModel,
)
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_darwin import DarwinChatModel
from langchain_darwin.rewards import WeightedReward, as_reward_model
from langchain_darwin.rewards.judge import ChatModelJudge, parse_score, parse_winner

EGG = [{"role": "user", "content": "How do I boil an egg?"}]
NO_TEMPERATURE = pytest.mark.filterwarnings("ignore:judge .* has no temperature field")
FAST = {"n_mutations": 2, "max_tokens": 8, "replacement_period": 4, "iterations": 1}


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("8", 8.0),
        ("Score: 8/10", 8.0),
        ("**7**", 7.0),
        ('{"score": 7}', 7.0),
        ('```json\n{"Score": 6, "reason": "fine"}\n```', 6.0),
        ("I rate it 9 out of 10.", 9.0),
        ("Rating: 6.5", 6.5),
        ("The steps are right but terse.\n\n5", 5.0),
        ("It lists 3 steps. Score: 4", 4.0),
        ("score = 3", 3.0),
        ("Score: 85", None),  # out of the scale
        ("0", None),
        ("Good answer, I'd say 7 or 8", None),
        ("no idea", None),
        ("", None),
    ],
)
def test_parse_score(reply: str, score: float | None) -> None:
    assert parse_score(reply) == score


@pytest.mark.parametrize(
    ("reply", "winner"),
    [
        ("Winner: A", "A"),
        ("winner: b", "B"),
        ("B", "B"),
        ("Winner: tie", "tie"),
        ("The better answer is B.", "B"),
        ("**Answer A**", "A"),
        ("both are fine", None),
    ],
)
def test_parse_winner(reply: str, winner: str | None) -> None:
    assert parse_winner(reply) == winner


@NO_TEMPERATURE
def test_pointwise_scores_in_order_and_counts_unparsed() -> None:
    fake = FakeListChatModel(responses=["Score: 8/10", "**3**", "I cannot judge this.", "6"])
    judge = ChatModelJudge(fake, max_concurrency=1)
    with pytest.warns(RuntimeWarning, match="could not be parsed"):
        scores = judge.score(EGG, ["a", "b", "c", "d"])
    assert scores == [8.0, 3.0, 0.0, 6.0]  # the unreadable reply ranks last
    assert (judge.unparsed, judge.judged) == (1, 4)
    assert judge.score(EGG, []) == []


@NO_TEMPERATURE
def test_judge_prompt_holds_the_conversation_and_the_answer() -> None:
    judge = ChatModelJudge(ParrotFakeChatModel(), unparsed_score=-1.0)
    conversation = [{"role": "system", "content": "Be brief."}, *EGG]
    prompt = judge._requests(conversation, ["Boil it 9 minutes."])[0][0]
    assert "[System]\nBe brief." in prompt and "[User]\nHow do I boil an egg?" in prompt
    assert "Boil it 9 minutes." in prompt
    with pytest.warns(RuntimeWarning):  # the parrot echoes the prompt: no score in it
        assert judge.score(EGG, ["x"]) == [-1.0]
    assert judge.unparsed == 1
    with pytest.warns(RuntimeWarning):  # a call reports its own unparsed replies, not the total
        scored = judge.score_with_usage(EGG, ["x", "y"])
    assert (scored.scores, scored.unparsed, judge.unparsed) == ([-1.0, -1.0], 2, 3)


_COUNT_LOCK = threading.Lock()


class KeywordJudge(BaseChatModel):
    """A fake judge that scores the answer in its prompt: 9 if it mentions "water", else 2;
    it records the temperature it runs at and how many requests overlap."""

    temperature: float | None = 0.7
    delay: float = 0.0
    seen_temperatures: list[float | None] = []
    in_flight: int = 0
    peak: int = 0

    @property
    def _llm_type(self) -> str:
        return "keyword-judge"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with _COUNT_LOCK:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(self.delay)
        self.seen_temperatures.append(self.temperature)
        prompt = str(messages[-1].content)
        if "[Answer A]" in prompt:  # pairwise: the answer mentioning water wins
            a = re.search(r"\[Answer A\]\n(.*?)\n\[End", prompt, re.S).group(1)
            b = re.search(r"\[Answer B\]\n(.*?)\n\[End", prompt, re.S).group(1)
            wa, wb = "water" in a, "water" in b
            reply = "Winner: tie" if wa == wb else f"Winner: {'A' if wa else 'B'}"
        else:
            answer = prompt.split("[Answer to judge]\n", 1)[1].split("\n[End of answer]")[0]
            reply = "Score: 9/10" if "water" in answer else "**2**"
        with _COUNT_LOCK:
            self.in_flight -= 1
        return ChatResult(generations=[ChatGeneration(message=AIMessage(reply))])


def test_judge_runs_at_temperature_zero_with_bounded_concurrency() -> None:
    model = KeywordJudge(delay=0.05, seen_temperatures=[])
    judge = ChatModelJudge(model, max_concurrency=2)
    assert model.temperature == 0.7  # the user's model is not changed: the judge has a copy
    scores = judge.score(EGG, ["boil it in water", "just boil it"] * 3)
    assert scores == [9.0, 2.0] * 3 and judge.unparsed == 0
    assert set(judge.model.seen_temperatures) == {0.0}
    assert 1 <= judge.model.peak <= 2


def test_model_without_temperature_warns() -> None:
    with pytest.warns(RuntimeWarning, match="no temperature field"):
        ChatModelJudge(FakeListChatModel(responses=["5"]))


async def test_ascore_goes_through_abatch() -> None:
    judge = ChatModelJudge(KeywordJudge(seen_temperatures=[]), max_concurrency=3)
    assert await judge.ascore(EGG, ["water, 9 minutes", "no"]) == [9.0, 2.0]


def test_pairwise_against_a_reference_in_both_orders() -> None:
    judge = ChatModelJudge(
        KeywordJudge(seen_temperatures=[]), mode="pairwise", reference="Boil it in water."
    )
    assert judge.score(EGG, ["Put it in water", "Fry it", "Use hot water"]) == [0.5, 0.0, 0.5]
    versus_dry = ChatModelJudge(
        KeywordJudge(seen_temperatures=[]), mode="pairwise", reference=lambda c: "Fry it."
    )
    assert versus_dry.score(EGG, ["Put it in water", "Microwave it"]) == [1.0, 0.5]
    with pytest.raises(ValueError, match="reference"):
        ChatModelJudge(KeywordJudge(), mode="pairwise")


def test_as_reward_model_takes_a_chat_model_and_sums_count_unparsed() -> None:
    judge = as_reward_model(KeywordJudge(seen_temperatures=[]))
    assert isinstance(judge, ChatModelJudge)
    combined = judge + 0.1 * as_reward_model(lambda c, a: len(a))
    assert isinstance(combined, WeightedReward) and combined.unparsed == 0
    with pytest.raises(TypeError, match="BaseChatModel"):
        ChatModelJudge("gpt-4")  # type: ignore[arg-type]


@NO_TEMPERATURE
def test_darwin_end_to_end_with_a_judge_as_the_reward(tiny_dirs: tuple[Path, Path]) -> None:
    replies = FakeListChatModel(responses=["Score: 7", "oops", "**4**"])
    judge = ChatModelJudge(replies, max_concurrency=1)  # the fake's replies cycle in order
    llm = DarwinChatModel(model=str(tiny_dirs[0]), reward_model=judge, seed=1, **FAST)
    with pytest.warns(RuntimeWarning, match="could not be parsed"):
        msg = llm.invoke("Tell me about eggs")
    darwin = msg.response_metadata["darwin"]
    assert darwin["final_reward"] in (7.0, 4.0)  # never the unparsed floor while 7 exists
    assert judge.judged >= 3 and judge.unparsed == (judge.judged + 1) // 3
    # the unreadable replies of this search are counted in its metadata
    assert darwin["usage"]["reward"]["unparsed"] == judge.unparsed > 0
