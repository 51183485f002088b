"""Tools and structured output, the DARWIN way: prompt, validity reward, parsing, agent loops.

Real models only: the tiny random policy (it writes random bytes, so its winner is text) and,
marked ``embedded``, SmolLM2. The tool-call path of a message is checked on hand-written
answers through the same parser and message builder a search uses.
"""

from __future__ import annotations

import json

import pytest

from langchain_darwin import DarwinChatModel
from langchain_darwin.tools import (
    parse_tool_call,
    tool_spec,
)
from tests.unit_tests.test_tools import TOOLS, add, get_weather

FAST = {"max_tokens": 16, "replacement_period": 8, "seed": 0}


@pytest.mark.embedded
def test_embedded_policy_answers_a_forced_call_with_a_call_or_text() -> None:
    llm = DarwinChatModel(model="default", max_tokens=32, replacement_period=16, seed=0)
    message = llm.bind_tools(TOOLS, tool_choice="any").invoke("What is 17 plus 25?")
    tools_meta = message.response_metadata["darwin"]["tools"]
    if message.tool_calls:
        [call] = message.tool_calls
        assert tools_meta["valid_call"] is True and call["name"] in {"get_weather", "add"}
        spec = tool_spec(add if call["name"] == "add" else get_weather)
        text = json.dumps({"name": call["name"], "arguments": call["args"]})
        assert parse_tool_call(text, [spec]) is not None
    else:
        assert tools_meta["valid_call"] is False and isinstance(message.content, str)
