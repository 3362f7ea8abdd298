"""grpo.training_threads: a GRPO step takes the cores the machine leaves idle, or rl.threads."""

from __future__ import annotations

import os

import pytest

from service.config import RLConfig
from service.rl.grpo import training_threads


@pytest.mark.parametrize(("load", "threads"), [(0.1, 2), (0.6, 1), (1.4, 1), (9.0, 1)])
def test_a_step_uses_the_idle_cores(monkeypatch: pytest.MonkeyPatch, load: float,
                                    threads: int) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert training_threads(RLConfig()) == threads


def test_rl_threads_overrides_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    assert training_threads(RLConfig(threads=3)) == 3
