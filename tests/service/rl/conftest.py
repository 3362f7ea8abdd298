"""Fixtures for the RL tests: the converted base model (cached across runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.llm.models import base_model_dir


@pytest.fixture(scope="session")
def base_dir() -> Path:
    """Returns the HF folder converted from the embedded SmolLM2 GGUF (converted once, cached)."""
    return base_model_dir()
