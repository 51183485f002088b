"""Tools and structured output, the DARWIN way: prompt, validity reward, parsing, agent loops.

Real models only: the tiny random policy (it writes random bytes, so its winner is text) and,
marked ``embedded``, SmolLM2. The tool-call path of a message is checked on hand-written
answers through the same parser and message builder a search uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from langchain_darwin import DarwinChatModel
from langchain_darwin.chat_model import message_chunks
from langchain_darwin.config import DarwinConfig
from langchain_darwin.conversation import ConversationError, to_conversation
from langchain_darwin.rewards import CallableReward
from langchain_darwin.tools import (
    ToolCallValidity,
    ToolSetup,
    parse_tool_call,
    tool_prompt,
    tool_spec,
    with_tool_prompt,
)
from langchain_darwin.usage import PHASES

FAST = {"max_tokens": 16, "replacement_period": 8, "seed": 0}


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny, 21 C in {city}"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(description="their full name")
    age: int | None = None


PERSON_SCHEMA = {
    "title": "person",
    "description": "A person mentioned in the text.",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name"],
}
TOOLS = [get_weather, add]


def vowels(conversation, answer: str) -> float:
    return float(sum(ch in "aeiou " for ch in answer))


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Small models gain nothing from intra-op threads on a shared 2-core machine (see
    tests/integration_tests/conftest.py), and lose a lot."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def llm(tiny_dirs) -> DarwinChatModel:
    return DarwinChatModel(model=str(tiny_dirs[0]), reward_model=vowels, **FAST)


# -- parsing and validating ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "add", "arguments": {"a": 1, "b": 2}}',
        '{"name": "add", "parameters": {"a": 1, "b": 2}}',
        '{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}',
        'Sure! ```json\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n``` Done.',
        '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>',
        '{"name": "add", "arguments": {"a": 1}} or {"name": "add", "arguments": {"a": 1, "b": 2}}',
    ],
)
def test_valid_calls_parse_into_tool_calls(text: str) -> None:
    call = parse_tool_call(text, TOOLS)
    assert call is not None
    assert call["name"] == "add" and call["args"] == {"a": 1, "b": 2}
    assert call["id"].startswith("call_") and call["type"] == "tool_call"


@pytest.mark.parametrize(
    "text",
    [
        "The sum is 3.",
        '{"name": "add", "arguments": {"a": 1, "b": 2}',  # truncated
        '{"name": "subtract", "arguments": {"a": 1, "b": 2}}',  # no such tool
        '{"name": "add", "arguments": {"a": 1}}',  # missing a required argument
        '{"name": "add", "arguments": {"a": "one", "b": 2}}',  # wrong type
        '{"name": "add", "arguments": [1, 2]}',  # arguments not an object
        '{"a": 1, "b": 2}',  # bare arguments: ambiguous with two tools
    ],
)
def test_invalid_calls_do_not_parse(text: str) -> None:
    assert parse_tool_call(text, TOOLS) is None


def test_bare_arguments_count_when_one_tool_is_offered() -> None:
    call = parse_tool_call('Here: {"name": "Ada Lovelace", "age": 36}', [Person])
    assert call is not None and call["name"] == "Person"
    assert call["args"] == {"name": "Ada Lovelace", "age": 36}
    assert parse_tool_call('{"name": "Ada", "age": "old"}', [Person]) is None
    nested = '{"name": "person", "arguments": {"name": "Ada"}}'
    assert parse_tool_call(nested, [PERSON_SCHEMA])["args"] == {"name": "Ada"}


def test_tool_choice_forms() -> None:
    specs = [tool_spec(t) for t in TOOLS]
    assert ToolSetup.of(specs).required is False
    assert ToolSetup.of(specs, "auto").required is False
    for forcing in ("any", "required", True):
        setup = ToolSetup.of(specs, forcing)
        assert setup.required and setup.names == ["get_weather", "add"]
    assert ToolSetup.of(specs, "add").names == ["add"]
    assert ToolSetup.of(specs, {"type": "function", "function": {"name": "add"}}).names == ["add"]
    assert ToolSetup.of(specs, "none") is None
    assert ToolSetup.of(None) is None
    with pytest.raises(ValueError, match="not a bound tool"):
        ToolSetup.of(specs, "subtract")
    with pytest.raises(ValueError, match="no tools are bound"):
        ToolSetup.of([], "any")
    # a call of a tool that tool_choice excluded is not valid
    assert (
        parse_tool_call(
            '{"name": "get_weather", "arguments": {"city": "Oslo"}}', ToolSetup.of(specs, "add")
        )
        is None
    )


def test_tool_prompt_lists_tools_schemas_and_the_reply_format() -> None:
    text = tool_prompt(TOOLS)
    for needle in ("get_weather", "Get the current weather in a city.", "add", '"city"'):
        assert needle in text
    assert '"required":["a","b"]' in text
    assert '{"name": <tool name>, "arguments":' in text
    assert "plain text" in text  # auto: a call is optional
    assert "You must call one of these tools" in tool_prompt(TOOLS, "any")
    assert "You must call the tool add" in tool_prompt(TOOLS, "add")
    assert tool_prompt(TOOLS, "none") == ""
    # the example in the prompt is itself a valid call
    example = text.rsplit("Example: ", 1)[1]
    assert parse_tool_call(example, TOOLS) is not None


def test_tool_prompt_joins_the_system_turn() -> None:
    user = [{"role": "user", "content": "hi"}]
    assert with_tool_prompt(user, "TOOLS") == [{"role": "system", "content": "TOOLS"}, *user]
    system = [{"role": "system", "content": "Be brief."}, *user]
    assert with_tool_prompt(system, "TOOLS")[0]["content"] == "Be brief.\n\nTOOLS"
    assert system[0]["content"] == "Be brief."  # the input is untouched


# -- the validity reward ------------------------------------------------------------------


def test_validity_ranks_valid_calls_above_invalid_ones() -> None:
    answers = [
        '{"name": "add", "arguments": {"a": 1, "b": 2}}',
        '{"name": "add", "arguments": {"a": 1, "b": ',
        '{"name": "add", "arguments": {"a": "x", "b": 2}}',
        "It is 3.",
    ]
    conversation = [{"role": "user", "content": "What is 1 + 2?"}]
    assert ToolCallValidity(TOOLS, required=True).score(conversation, answers) == [1, 0, 0, 0]
    # with tool_choice auto a plain answer (no JSON attempt) is as valid as a call
    assert ToolCallValidity(TOOLS).score(conversation, answers) == [1, 0, 0, 1]


def test_validity_added_to_a_user_reward_lets_a_valid_call_win() -> None:
    conversation = [{"role": "user", "content": "What is 1 + 2?"}]
    valid = '{"name": "add", "arguments": {"a": 1, "b": 2}}'
    invalid = '{"name": "add", "arguments": {"a": 1, "b": 2, oops'
    reward = CallableReward(lambda c, a: len(a) / 100) + 1.0 * ToolCallValidity(TOOLS, True)
    good, bad = reward.score(conversation, [valid, invalid])
    assert good > bad and len(invalid) > len(valid)


# -- conversations of an agent loop --------------------------------------------------------------

CALL = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}
LOOP = [
    SystemMessage("Be brief."),
    HumanMessage("What's the weather in Paris?"),
    AIMessage("", tool_calls=[CALL]),
    ToolMessage("Sunny, 21 C", tool_call_id="call_1"),
]


def test_trailing_tool_exchange_folds_into_the_last_user_turn() -> None:
    conversation = to_conversation(LOOP, tool_turns=True)
    assert [m["role"] for m in conversation] == ["system", "user"]
    text = conversation[-1]["content"]
    assert text.startswith("What's the weather in Paris?")
    assert '{"name": "get_weather", "arguments": {"city": "Paris"}}' in text
    assert "Result of tool get_weather: Sunny, 21 C" in text


def test_earlier_tool_exchanges_stay_as_context_turns() -> None:
    second = ToolMessage("3", tool_call_id="call_2", name="add")
    messages = [
        *LOOP,
        AIMessage("It is sunny.", tool_calls=[]),
        HumanMessage("And 1 + 2?"),
        AIMessage(
            "Let me add.", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "c2"}]
        ),
        second,
    ]
    conversation = to_conversation(messages, tool_turns=True)
    roles = [m["role"] for m in conversation]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert conversation[2]["content"].endswith('"arguments": {"city": "Paris"}}')
    assert conversation[3]["content"] == "Result of tool get_weather: Sunny, 21 C"
    last = conversation[-1]["content"]
    assert last.startswith("And 1 + 2?") and "Let me add." in last
    assert "Result of tool add: 3" in last


def test_without_tools_the_old_errors_stand() -> None:
    with pytest.raises(ConversationError, match="role 'tool'.*bind_tools"):
        to_conversation(LOOP)
    with pytest.raises(ConversationError, match="ends with a assistant turn"):
        to_conversation(LOOP[:3], tool_turns=True)
    with pytest.raises(ConversationError, match="no user message"):
        to_conversation([AIMessage("", tool_calls=[CALL]), LOOP[-1]], tool_turns=True)


# -- the chat model ------------------------------------------------------------------------


def test_bind_tools_puts_the_tools_in_the_rendered_prompt(llm) -> None:
    bound = llm.bind_tools(TOOLS, tool_choice="any")
    assert bound.kwargs["tool_choice"] == "any"
    assert [t["function"]["name"] for t in bound.kwargs["tools"]] == ["get_weather", "add"]
    search = llm.prepare_search([HumanMessage("What is 1 + 2?")], **bound.kwargs)
    try:
        policy = search.context.policy
        rendered = policy.detokenize(policy.render(search.graph_input["conversation"]))
        assert "get_weather" in rendered and '"required":["a","b"]' in rendered
        assert "You must call one of these tools" in rendered
        assert rendered.index("get_weather") < rendered.index("What is 1 + 2?")
        assert search.tools is not None and search.tools.required
        assert "ToolCallValidity" in repr(search.context.reward)
    finally:
        search.close()
    with pytest.raises(ValueError, match="not a bound tool"):
        llm.bind_tools(TOOLS, tool_choice="subtract")


def test_validity_weight_zero_leaves_the_user_reward(llm) -> None:
    search = llm.prepare_search([HumanMessage("hi")], tools=[tool_spec(add)], validity_weight=0.0)
    search.close()
    assert "ToolCallValidity" not in repr(search.context.reward)


def test_tiny_policy_with_tools_answers_in_text_and_the_reward_saw_validity(tiny_dirs) -> None:
    seen: list[list[dict[str, str]]] = []

    def reward(conversation, answer: str) -> float:
        seen.append([dict(m) for m in conversation])
        return vowels(conversation, answer)

    llm = DarwinChatModel(model=str(tiny_dirs[0]), reward_model=reward, **FAST)
    message = llm.bind_tools(TOOLS, tool_choice="any").invoke("What is 1 + 2?")
    assert isinstance(message, AIMessage)
    # random bytes are no valid call: the winner comes back as text
    assert message.tool_calls == [] and isinstance(message.content, str)
    meta = message.response_metadata
    assert meta["darwin"]["tools"] == {
        "offered": ["get_weather", "add"],
        "required": True,
        "valid_call": False,
    }
    assert meta["finish_reason"] in {"stop", "length"}
    # the user reward scored against the conversation with the tool prompt; a forced call's
    # validity term is 0 for text, so the final reward is the user reward of the winner
    assert all(c[0]["role"] == "system" and "add" in c[0]["content"] for c in seen)
    assert meta["darwin"]["final_reward"] == vowels(None, message.content)


def _finished_state(answer: str) -> dict[str, Any]:
    """A finished search's state, its winner being ``answer`` (as if the policy wrote it)."""
    usage = {p: {"prefilled": 10, "decoded": 3} for p in PHASES}
    usage["reward"] = {"positions": 0, "answers": 0}
    seed = {"answer": [5, 6], "reward": 1.0, "finished": True}
    return {
        "answer": answer,
        "best": {"answer": [5, 6], "reward": 1.0, "score": 1.0, "source": "seed"},
        "final_reward": 1.0,
        "seed": seed,
        "seed_value": 0,
        "cycle_rewards": [],
        "period_scores": [],
        "mutated_instructions": [],
        "mutation_stats": {"rewrites": 0, "fallbacks": 0, "original": 0},
        "archive": [],
        "usage": usage,
        "stopped": None,
        "config": DarwinConfig(max_tokens=64).model_dump(),
    }


def test_a_winning_valid_call_becomes_tool_calls_and_streams_as_one_chunk() -> None:
    setup = ToolSetup.of(TOOLS, "any")
    answer = 'Calling it. {"name": "add", "arguments": {"a": 1, "b": 2}}'
    message = DarwinChatModel()._to_message(_finished_state(answer), "m", tools=setup)
    assert message.content == ""
    [call] = message.tool_calls
    assert call["name"] == "add" and call["args"] == {"a": 1, "b": 2}
    assert message.response_metadata["finish_reason"] == "tool_calls"
    assert message.response_metadata["darwin"]["tools"]["valid_call"] is True
    [chunk] = message_chunks(message)
    assert chunk.tool_calls == message.tool_calls and chunk.chunk_position == "last"
    assert chunk.usage_metadata == message.usage_metadata
    text = DarwinChatModel()._to_message(_finished_state("It is 3."), "m", tools=setup)
    assert text.content == "It is 3." and text.tool_calls == []


@pytest.mark.parametrize("schema", [Person, PERSON_SCHEMA])
def test_with_structured_output_parses_a_winning_call(llm, schema) -> None:
    structured = llm.with_structured_output(schema)
    bound, parser = structured.first, structured.last
    assert bound.kwargs["tool_choice"] == "any"
    setup = ToolSetup.of(bound.kwargs["tools"], bound.kwargs["tool_choice"])
    answer = '{"name": "Ada Lovelace", "age": 36}'  # the bare object: valid with one tool
    message = DarwinChatModel()._to_message(_finished_state(answer), "m", tools=setup)
    parsed = parser.invoke(message)
    expected = {"name": "Ada Lovelace", "age": 36}
    assert (parsed.model_dump() if isinstance(parsed, BaseModel) else parsed) == expected


@pytest.mark.parametrize("schema", [Person, PERSON_SCHEMA])
def test_with_structured_output_runs_on_the_tiny_policy(llm, schema) -> None:
    # random bytes never validate: no call, so the parser gives None and no error
    assert llm.with_structured_output(schema).invoke("Ada Lovelace was 36.") is None
    out = llm.with_structured_output(schema, include_raw=True).invoke("Ada Lovelace was 36.")
    assert set(out) == {"raw", "parsed", "parsing_error"}
    assert isinstance(out["raw"], AIMessage) and out["parsed"] is None
    assert out["raw"].response_metadata["darwin"]["tools"]["required"] is True


def test_stream_with_tools_bound(llm) -> None:
    chunks = list(llm.bind_tools(TOOLS).stream("What is 1 + 2?"))
    assert chunks and chunks[-1].chunk_position == "last"
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert full.response_metadata["darwin"]["tools"]["required"] is False


# -- agent loops -----------------------------------------------------------------------------
# langgraph 1.x points create_react_agent to langchain.agents.create_agent (not installed here)
AGENT_DEPRECATION = "ignore:create_react_agent has been moved"


@pytest.mark.filterwarnings(AGENT_DEPRECATION)
def test_prebuilt_react_agent_runs_to_completion(llm) -> None:
    from langgraph.prebuilt import create_react_agent

    agent = create_react_agent(llm, tools=TOOLS)
    result = agent.invoke({"messages": [HumanMessage("What's the weather in Paris?")]})
    messages = result["messages"]
    assert isinstance(messages[0], HumanMessage) and isinstance(messages[-1], AIMessage)
    assert not messages[-1].tool_calls  # the loop ended on an answer


@pytest.mark.filterwarnings(AGENT_DEPRECATION)
def test_prebuilt_react_agent_answers_after_a_tool_result(llm) -> None:
    """The model's turn after a tool ran: the conversation ends with a ToolMessage."""
    from langgraph.prebuilt import create_react_agent

    agent = create_react_agent(llm, tools=TOOLS)
    result = agent.invoke({"messages": LOOP[1:]})
    messages = result["messages"]
    assert isinstance(messages[2], ToolMessage) and isinstance(messages[-1], AIMessage)
    assert len(messages) >= 4 and not messages[-1].tool_calls


# -- the embedded SmolLM2 ----------------------------------------------------------------------
