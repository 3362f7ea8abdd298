"""Stagnation handling: FunSearch-style island resets from the better islands after a stretch
without improvement, and the sampling-temperature schedule. Pure functions; no I/O."""

from __future__ import annotations

import math
import random

from service.config import LLMConfig
from service.evolution.archive import Archive, Member


def temperature_at(cfg: LLMConfig, iteration: int, horizon: int | None) -> float:
    """Returns the sampling temperature for an iteration: constant, linear from llm.temperature
    to llm.temperature_end over the horizon (the iteration budget; else one period), or cosine
    cycles of llm.temperature_period iterations between the two."""
    start, end = cfg.temperature, cfg.temperature_end
    if cfg.temperature_schedule == "linear":
        span = max(1, (horizon or cfg.temperature_period) - 1)
        return start + (end - start) * min(1.0, iteration / span)
    if cfg.temperature_schedule == "cosine":
        phase = (iteration % cfg.temperature_period) / cfg.temperature_period
        return end + (start - end) * (1.0 + math.cos(2.0 * math.pi * phase)) / 2.0
    return start


def reset_due(iterations: int, last_improvement: int, last_reset: int,
              patience: int | None) -> bool:
    """Returns True when `patience` iterations passed with neither an improvement nor a reset."""
    return patience is not None and iterations - max(last_improvement, last_reset) >= patience


def reset_plan(archive: Archive, rng: random.Random) -> list[tuple[int, Member]]:
    """Returns (island to reset, program to seed it with): the worse half of the islands (by
    their best program) each get the best program of a random island of the better half."""
    scored = [(isl.best(), i) for i, isl in enumerate(archive.islands)]
    if len(scored) < 2:
        return []
    ranked = sorted(scored, key=lambda b: (-(b[0].fitness if b[0] else -math.inf), b[1]))
    keep = [(best, i) for best, i in ranked[: math.ceil(len(ranked) / 2)] if best is not None]
    if not keep:
        return []
    plan = []
    for _, island in ranked[math.ceil(len(ranked) / 2):]:
        source, _ = rng.choice(keep)
        plan.append((island, source))
    return plan
