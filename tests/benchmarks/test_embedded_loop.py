"""The embedded-loop benchmark times the ledger's real writes: every name it wraps is one."""

from __future__ import annotations

from benchmarks.perf.embedded_loop import DB_METHODS
from service.evolution.ledger import Ledger


def test_every_database_method_the_benchmark_times_is_a_ledger_method() -> None:
    missing = [name for name in DB_METHODS if not callable(getattr(Ledger, name, None))]
    assert missing == []
