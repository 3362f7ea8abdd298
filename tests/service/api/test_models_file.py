"""The operator's models file: what it names, how a picked name becomes the operator's endpoint
for the backends and the trainer, and what the CLI keeps describing itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from service.cli.app import app
from service.config import ConfigError, build_run_config
from service.llm.factory import make_backend, resolve_models
from service.settings import Settings
from tests.service.engine_helpers import returns, tiny_problem

MODELS = """default = "qwen"

[models.qwen]
backend = "openai"
url = "http://vllm:8000/v1"
model = "Qwen/Qwen2.5-Coder-7B-Instruct"
api_key_env = "VLLM_API_KEY"
price_per_1k_tokens = 0.2
context_window = 8192
base_model = "Qwen/Qwen2.5-Coder-7B-Instruct"
description = "Qwen2.5-Coder 7B on the GPU pool"

[models.smollm]
description = "the embedded SmolLM2"
"""


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


def test_without_a_models_file_the_embedded_model_is_offered_as_smollm() -> None:
    settings = Settings()
    assert list(settings.models) == ["smollm"] and settings.default_model == "smollm"
    llm = resolve_models(build_run_config({"llm": {"use": "smollm"}}), settings).llm
    assert (llm.use, llm.backend, llm.model, llm.url) == (None, "llamacpp", None, None)


def test_a_models_file_from_the_environment_names_the_models_and_the_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOFORGE_MODELS_FILE", str(_file(tmp_path, MODELS)))
    settings = Settings()
    assert list(settings.models) == ["qwen", "smollm"] and settings.default_model == "qwen"
    monkeypatch.setenv("EVOFORGE_DEFAULT_MODEL", "smollm")
    assert Settings().default_model == "smollm"


@pytest.mark.parametrize(("text", "message"), [
    ('[models.qwen]\nbackend = "openai"\n', "backend 'openai' needs url"),
    ('[models.qwen]\nurll = "http://x"\n', "unknown key 'models.qwen.urll'"),
    ('default = "gpt"\n[models.qwen]\n', "the default model 'gpt' is not one of the models 'qwen'"),
    ("[models]\n", "'models'"),
    ('[models."../x"]\n', "models.../x"),
    ("[models.qwen\n", "invalid TOML"),
    ('[models.q]\nextra_body = {temperature = 0}\n', "extra_body sets temperature, which evoforge"),
], ids=["openai-without-url", "unknown-key", "unknown-default", "no-models", "bad-name", "toml",
        "request-field-in-extra-body"])
def test_a_bad_models_file_is_an_error_naming_the_file_and_the_key(
        tmp_path: Path, text: str, message: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(ValidationError) as err:
        Settings(models_file=path)
    assert message in str(err.value)
    if "default model" not in message:
        assert str(path) in str(err.value)


def test_a_missing_models_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"models\.toml: file not found"):
        Settings(models_file=tmp_path / "models.toml")


def test_a_picked_name_becomes_the_operators_endpoint_key_price_and_base_model(
        tmp_path: Path) -> None:
    settings = Settings(models_file=_file(tmp_path, MODELS))
    cfg = resolve_models(build_run_config({"llm": {"use": "qwen", "temperature": 0.4}}), settings)
    llm = cfg.llm
    assert (llm.backend, llm.url, llm.model) == ("openai", "http://vllm:8000/v1",
                                                 "Qwen/Qwen2.5-Coder-7B-Instruct")
    assert (llm.api_key_env, llm.price_per_1k_tokens, llm.context_window) == (
        "VLLM_API_KEY", 0.2, 8192)
    assert llm.temperature == 0.4 and cfg.rl.base_model == "Qwen/Qwen2.5-Coder-7B-Instruct"
    ensemble = resolve_models(build_run_config({"llm": {"models": [
        {"use": "qwen", "weight": 2}, {"use": "smollm", "name": "hot", "temperatures": [1.2]}]}}),
        settings).llm.models
    assert [(m.label(), m.backend, m.url, m.weight) for m in ensemble] == [
        ("qwen", "openai", "http://vllm:8000/v1", 2.0), ("hot", "llamacpp", None, 1.0)]


def test_a_name_the_server_no_longer_offers_fails_with_the_names_it_does(tmp_path: Path) -> None:
    settings = Settings(models_file=_file(tmp_path, MODELS))
    with pytest.raises(ConfigError, match=r"llm.use = 'gone' is not a model.*'qwen', 'smollm'"):
        resolve_models(build_run_config({"llm": {"use": "gone"}}), settings)
    with pytest.raises(ConfigError, match=r"member 'gone': use = 'gone' is not a model"):
        make_backend(build_run_config({"llm": {"models": [{"use": "gone"}]}}).llm, settings)


def test_the_cli_still_describes_its_own_model_but_never_both_ways_at_once() -> None:
    own = build_run_config({"llm": {"backend": "openai", "url": "http://127.0.0.1:8000/v1",
                                    "model": "m"}})
    assert resolve_models(own, Settings()).llm == own.llm
    with pytest.raises(ConfigError, match=r"llm.use picks the named model 'smollm'.*remove "
                                          r"llm.url"):
        build_run_config({"llm": {"use": "smollm", "url": "http://127.0.0.1:8000/v1"}})
    with pytest.raises(ConfigError, match=r"llm\.use and llm\.models exclude each other"):
        build_run_config({"llm": {"use": "smollm", "models": [{"use": "smollm"}]}})
    with pytest.raises(ConfigError, match="remove its model"):
        build_run_config({"llm": {"models": [{"use": "smollm", "model": "/x.gguf"}]}})


def test_the_cli_gives_its_own_model_path_even_over_a_problems_named_model(
        tmp_path: Path) -> None:
    problem = tiny_problem(tmp_path / "p")
    (problem / "problem.toml").write_text((problem / "problem.toml").read_text() +
                                          '\n[run.llm]\nuse = "smollm"\n')
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([returns(v) for v in (4, 10)]))
    done = CliRunner().invoke(app, [
        "run", str(problem), "--llm", "scripted", "--model", str(answers), "--iterations", "2",
        "--db", f"sqlite:///{tmp_path / 'cli.db'}", "--json"], env={"EVOFORGE_HOME": str(tmp_path)})
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout.strip().splitlines()[-1])["best_score"] == 0.0
