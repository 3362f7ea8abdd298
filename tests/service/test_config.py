"""Run configuration: layering, strict keys, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigError, RunConfig, build_run_config, read_toml
from service.settings import Settings


def test_later_layers_win_and_sections_merge() -> None:
    cfg = build_run_config({"budget": {"iterations": 10}, "llm": {"temperature": 0.5}},
                           {"budget": {"iterations": 3}})
    assert cfg.budget.iterations == 3
    assert cfg.llm.temperature == 0.5
    assert cfg.search.num_islands == RunConfig().search.num_islands


def test_unknown_key_is_named_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'evaluation.timout_s'.*spelling"):
        build_run_config({"evaluation": {"timout_s": 300}}, source="RUN.toml")


def test_bad_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"'search.selection'"):
        build_run_config({"search": {"selection": "best"}})


def test_islands_beyond_a_thousand_are_refused_naming_the_key() -> None:
    # each island is a row of the UI's island list and a term of its queries: 10^9 of them
    # would turn one page view into a billion-step loop (found by the API fuzzer)
    with pytest.raises(ConfigError, match=r"'search.num_islands'.*1000"):
        build_run_config({"search": {"num_islands": 10**9}})
    assert build_run_config({"search": {"num_islands": 1000}}).search.num_islands == 1000


def test_exploit_plus_explore_above_one_is_rejected() -> None:
    with pytest.raises(ConfigError, match="exploit_ratio"):
        build_run_config({"search": {"exploit_ratio": 0.8, "explore_ratio": 0.5}})


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        read_toml(tmp_path / "RUN.toml")


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "RUN.toml"
    bad.write_text("[budget\niterations = 3")
    with pytest.raises(ConfigError, match=r"RUN\.toml: invalid TOML"):
        read_toml(bad)


def test_config_round_trips_through_json() -> None:
    cfg = build_run_config({"search": {"feature_ranges": {"speed": [0, 5]}}, "seed": 4})
    again = RunConfig.model_validate(cfg.model_dump(mode="json"))
    assert again == cfg


def test_default_database_is_a_sqlite_file_under_home(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert s.database_url() == f"sqlite:///{tmp_path / 'evoforge.db'}"
    assert Settings(db="postgresql+psycopg://x/y").database_url() == "postgresql+psycopg://x/y"
