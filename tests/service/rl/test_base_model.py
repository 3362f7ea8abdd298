"""Which model adapters are trained on (rl.base_model) and when they get a GGUF copy."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from service.config import ConfigError, build_run_config
from service.rl.grpo import serves_gguf, trainable_base
from service.settings import Settings


def test_a_named_base_model_folder_is_used_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')
    cfg = build_run_config({"llm": {"backend": "openai", "model": "qwen"},
                            "rl": {"base_model": str(tmp_path)}})
    assert trainable_base(cfg, Settings(home=tmp_path / "home")) == tmp_path


def test_a_base_model_that_is_not_a_model_folder_is_refused_naming_it(tmp_path: Path) -> None:
    cfg = build_run_config({"rl": {"base_model": str(tmp_path / "nowhere")}})
    with pytest.raises(ConfigError, match=r"nowhere' is not a Hugging Face model folder .* nor a"):
        trainable_base(cfg, Settings(home=tmp_path / "home"))


def test_a_hub_id_that_is_not_cached_offline_is_refused_with_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cfg = build_run_config({"rl": {"base_model": "nobody/not-a-model"}})
    with pytest.raises(ConfigError,
                       match=r"not in the Hugging Face cache.*huggingface-cli download"):
        trainable_base(cfg, Settings(home=tmp_path / "home"))


def test_a_server_without_a_base_model_gets_the_embedded_one_and_a_warning(
        base_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = build_run_config({"llm": {"backend": "openai", "model": "Qwen/Qwen2.5-7B"}})
    with caplog.at_level(logging.WARNING, logger="evoforge.trainer"):
        assert trainable_base(cfg, Settings(home=tmp_path / "home")) == base_dir
    assert "rl.base_model is not set" in caplog.text and "Qwen2.5-7B" in caplog.text


@pytest.mark.parametrize(("llm", "gguf"), [
    ({}, True),
    ({"backend": "openai", "model": "m"}, False),
    ({"backend": "transformers"}, False),
    ({"backend": "openai", "models": [{"name": "a", "backend": "openai"},
                                      {"name": "b", "backend": "llamacpp"}]}, True),
    ({"models": [{"name": "a", "backend": "openai"}]}, False),
])
def test_only_runs_served_by_llama_cpp_get_a_gguf_adapter(llm: dict, gguf: bool) -> None:
    assert serves_gguf(build_run_config({"llm": llm})) is gguf
