from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny import save_tiny_models, tiny_tokenizer


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(policy_dir, reward_model_dir): tiny random Llama models saved once per session."""
    return save_tiny_models(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()
