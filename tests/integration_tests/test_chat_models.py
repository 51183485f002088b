"""LangChain's standard integration suite, against real tiny random models.

The tiny policy (tests/tiny.py) writes random bytes, so every capability that needs
meaningful text is off: tool calling, structured output and JSON mode are not implemented
(no ``bind_tools``/``with_structured_output`` override, so the suite skips them), and the
policy reads text only (image, PDF, audio and video inputs: off). VCR tests need HTTP.
"""

from __future__ import annotations

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

    # The policy reads and writes text only.
    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

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
