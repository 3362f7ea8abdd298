"""grpo.training_threads: a GRPO step takes the cores the machine leaves idle, or rl.threads."""

from __future__ import annotations

import os
import threading
import time

import pytest

from service.config import RLConfig
from service.rl import grpo
from service.rl.grpo import idle_cores, training_threads


@pytest.mark.parametrize(("idle", "threads"), [(2.0, 2), (1.6, 2), (1.2, 1), (0.0, 1)])
def test_a_step_uses_the_idle_cores(monkeypatch: pytest.MonkeyPatch, idle: float,
                                    threads: int) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(grpo, "idle_cores", lambda cores, window_s=0.25: idle)
    assert training_threads(RLConfig()) == threads


def test_rl_threads_overrides_the_measure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpo, "idle_cores", lambda cores, window_s=0.25: 0.0)
    assert training_threads(RLConfig(threads=3)) == 3


def test_a_busy_core_is_not_counted_idle() -> None:
    cores = os.cpu_count() or 1
    stop = time.monotonic() + 1.5

    def spin() -> None:
        while time.monotonic() < stop:
            pass

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        busy = idle_cores(cores, window_s=0.5)
    finally:
        spinner.join()
    assert 0.0 <= busy <= cores - 0.7  # the spinning thread held most of one core
