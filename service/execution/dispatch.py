"""Hands evaluations to the executor a run's config names: the local pool or Celery workers."""

from __future__ import annotations

from service.config import ConfigError, EvaluationConfig
from service.db import Database
from service.execution.base import Executor
from service.execution.local import LocalExecutor


def make_executor(cfg: EvaluationConfig, db: Database | None = None,
                  broker: str | None = None) -> Executor:
    """Returns the executor that cfg.executor names; celery needs the run's database and a broker
    (evaluation.broker, else the settings' broker that the caller passes)."""
    if cfg.executor == "local":
        return LocalExecutor(cfg.workers)
    if cfg.executor == "celery":
        from service.execution.celery_client import CeleryExecutor  # imports Celery only here

        url = cfg.broker or broker
        if db is None or url is None:
            raise ConfigError("evaluation.executor = 'celery' needs the run's database and a "
                              "broker URL (evaluation.broker or $EVOFORGE_BROKER)")
        return CeleryExecutor(db, url, cfg.queue)
    raise ConfigError(f"evaluation.executor = {cfg.executor!r}; use local or celery")
