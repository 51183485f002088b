"""Property-based: any message list and knob values give an answer or a documented error."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import ValidationError

from langchain_darwin import DarwinChatModel
from langchain_darwin.conversation import ConversationError

DOCUMENTED = (ConversationError, ValidationError)

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
message = st.one_of(
    text.map(HumanMessage),
    text.map(SystemMessage),
    text.map(AIMessage),
    st.lists(
        st.one_of(
            st.builds(lambda t: {"type": "text", "text": t}, text),
            st.just({"type": "image_url", "image_url": {"url": "http://x/y.png"}}),
        ),
        max_size=2,
    ).map(lambda blocks: HumanMessage(content=blocks)),
)
knobs = st.fixed_dictionaries(
    {},
    optional={
        "survivors": st.integers(-1, 6),
        "replacement_period": st.integers(-2, 12),
        "temperature": st.floats(-1, 2, allow_nan=False),
        "max_tokens": st.integers(-1, 12),
        "look_ahead": st.integers(-1, 3),
        "top_k": st.integers(-1, 50),
        "iterations": st.integers(-1, 2),
    },
)


def vowels(conversation, answer: str) -> float:
    return float(sum(ch in "aeiou " for ch in answer))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(messages=st.lists(message, max_size=4), call_knobs=knobs)
def test_answer_or_documented_error(tiny_dirs, messages, call_knobs) -> None:
    llm = DarwinChatModel(model=str(tiny_dirs[0]), reward_model=vowels, seed=0, max_tokens=6)
    try:
        msg = llm.invoke(messages, **call_knobs)
    except DOCUMENTED:
        return
    assert isinstance(msg, AIMessage) and isinstance(msg.content, str)
    assert msg.response_metadata["darwin"]["generated_tokens"] >= 0
