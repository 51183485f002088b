"""LangChain's standard integration suite, against real tiny random models.

The tiny policy (tests/tiny.py) writes random bytes. Tool calling and structured output are
implemented (tools in the system prompt, a validity term in the reward, the winner parsed into
``tool_calls``; see langchain_darwin/tools.py), so their tests run: the ones that only need the
model to take tool-call histories, few-shot examples and tool results pass; the ones that need
the model to *write* a valid call fail on random bytes (0 valid calls measured), so they are
marked xfail with that reason (tests/test_tools.py covers the parsing path on hand-written
answers; docs/tools.md has SmolLM2's measured validity). JSON mode is not offered, the policy
reads text only (image, PDF, audio and video inputs: off), and VCR tests need HTTP.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_darwin import DarwinChatModel
from tests.integration_tests.conftest import FAST


class TestDarwinChatModelIntegration(ChatModelIntegrationTests):
    _params: dict[str, Any] = {}
    _override: str | None = None

    @pytest.fixture(autouse=True)
    def _tiny_models(self, tiny_dirs: tuple[Path, Path], other_policy_dir: Path) -> None:
        policy, reward = tiny_dirs
        type(self)._params = {"model": str(policy), "reward_model": str(reward), **FAST}
        type(self)._override = str(other_policy_dir)

    @property
    def chat_model_class(self) -> type[DarwinChatModel]:
        return DarwinChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def model_override_value(self) -> str | None:
        return self._override

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_image_urls(self) -> bool:
        return False

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_video_inputs(self) -> bool:
        return False

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True


#: Tests that need the model to *write* a valid tool call (or structured object). The tiny
#: random policy writes random bytes: 0 of 17 such runs produced one (measured with these
#: tests enabled), so they are expected to fail and are not run.
NO_VALID_CALL = (
    "the tiny random policy writes random bytes, never a valid tool call (0 of 17 runs); "
    "the tool-call path is tested on hand-written answers in tests/test_tools.py"
)
NEED_A_VALID_CALL = (
    "test_tool_calling",
    "test_tool_calling_async",
    "test_bind_runnables_as_tools",
    "test_tool_choice",
    "test_tool_calling_with_no_arguments",
    "test_structured_output",
    "test_structured_output_async",
    "test_structured_output_pydantic_2_v1",
    "test_structured_output_optional_param",
    "test_agent_loop",
    "test_unicode_tool_call_integration",
)


def _expected_to_fail(test: Callable[..., object]) -> Callable[..., object]:
    """The standard test, marked xfail (not run); its parametrization is kept."""
    if inspect.iscoroutinefunction(test):

        @functools.wraps(test)
        async def run_async(self: object, *args: object, **kwargs: object) -> object:
            return await test(self, *args, **kwargs)  # type: ignore[misc]

        wrapper: Callable[..., object] = run_async
    else:

        @functools.wraps(test)
        def run(self: object, *args: object, **kwargs: object) -> object:
            return test(self, *args, **kwargs)

        wrapper = run
    return pytest.mark.xfail(reason=NO_VALID_CALL, run=False)(wrapper)


for _name in NEED_A_VALID_CALL:
    setattr(
        TestDarwinChatModelIntegration,
        _name,
        _expected_to_fail(getattr(ChatModelIntegrationTests, _name)),
    )
