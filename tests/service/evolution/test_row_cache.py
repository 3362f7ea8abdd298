"""service.evolution.row_cache: program rows read from the database once, kept while the archive
needs them, and dropped when their program is evicted; SQL statements are counted on the engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from service.db import Database
from service.db.models import ProgramRow
from service.edits.identity import code_hash
from service.evolution.ledger import Ledger
from service.evolution.population import Population
from service.evolution.row_cache import RowCache
from service.problems.load import load_problem
from service.runs import create_run
from tests.service.driver import open_db
from tests.service.engine_helpers import PROGRAM, config, tiny_problem


@contextmanager
def program_reads(db: Database) -> Iterator[list[Any]]:
    """Yields a list that collects the parameters of every SELECT on programs run meanwhile."""
    reads: list[Any] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM programs" in statement:
            reads.append(parameters)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        yield reads
    finally:
        event.remove(db.engine, "before_cursor_execute", note)


class Run:
    """A run of the tiny problem with scored programs stored on island 0."""

    def __init__(self, url: str, folder: Path) -> None:
        self.db = open_db(url)
        self.problem = load_problem(tiny_problem(folder))
        self.cfg = config(search={"num_islands": 1, "population_size": 2,
                                  "feature_dimensions": []})
        self.ledger = Ledger(self.db, create_run(self.db, self.problem, self.cfg), "local")

    def store(self, value: int) -> ProgramRow:
        text = PROGRAM.replace("return 1", f"return {value}")
        with self.db.session() as s:
            prog = ProgramRow(run_id=self.ledger.run_id, island=0, code=text, status="ok",
                              code_hash=code_hash(text), score=-abs(value - 10.0), features={})
            s.add(prog)
            s.flush()
            return prog


@pytest.fixture
def run(sqlite_url: str, tmp_path: Path) -> Run:
    return Run(sqlite_url, tmp_path / "tiny")


def test_rows_are_read_once_in_one_query_then_served_from_memory(run: Run) -> None:
    a, b, c = (run.store(v) for v in (2, 3, 4))
    cache = RowCache(run.ledger)
    with program_reads(run.db) as reads:
        first = cache.get([b.id, a.id])
        assert len(reads) == 1
        again = cache.get([a.id, b.id])
        assert len(reads) == 1  # nothing read again
        cache.get([a.id, c.id, b.id])
        assert len(reads) == 2 and list(reads[-1]) == [c.id]  # only the missing row
    assert list(first) == [b.id, a.id] and first[a.id].code == a.code
    assert again[a.id] is first[a.id]


def test_a_stored_row_is_served_without_a_query(run: Run) -> None:
    prog = run.store(5)
    cache = RowCache(run.ledger)
    with program_reads(run.db) as reads:
        cache.put(prog)
        assert cache.get([prog.id]) == {prog.id: prog}
        newer = ProgramRow(id=prog.id, code=prog.code, code_hash=prog.code_hash, score=-0.5)
        cache.put(newer)  # a refreshed row replaces the one held
        assert cache.get([prog.id])[prog.id] is newer
    assert reads == []


def test_past_its_size_the_least_recently_stored_row_is_dropped(run: Run) -> None:
    a, b, c = (run.store(v) for v in (2, 3, 4))
    cache = RowCache(run.ledger, size=2)
    for prog in (a, b, c):
        cache.put(prog)
    with program_reads(run.db) as reads:
        cache.get([b.id, c.id])
        assert reads == []
        cache.get([a.id])  # dropped for c: read again, which drops b, now the oldest
        assert len(reads) == 1
        cache.get([c.id, a.id])
        assert len(reads) == 1
        cache.get([b.id])
        assert len(reads) == 2


def test_a_dropped_row_is_read_again_and_dropping_an_unknown_id_is_harmless(run: Run) -> None:
    prog = run.store(6)
    cache = RowCache(run.ledger)
    cache.put(prog)
    cache.drop(prog.id)
    cache.drop(10_000)
    with program_reads(run.db) as reads:
        assert cache.get([prog.id])[prog.id].code == prog.code
    assert len(reads) == 1


def test_rows_of_programs_the_archive_evicts_are_dropped(run: Run) -> None:
    population = Population(run.problem, run.cfg, run.ledger)  # room for 2 programs on 1 island
    progs = [run.store(v) for v in (9, 2, 8)]
    evicted: list[int] = []
    for prog in progs:
        population.rows.put(prog)
        evicted += population.add(prog)[1]
    assert evicted == [progs[1].id]  # the worst of three
    with program_reads(run.db) as reads:
        population.rows.get([progs[0].id, progs[2].id])
        assert reads == []  # the members' rows are held
        population.rows.get([progs[1].id])
        assert len(reads) == 1  # the evicted one's was dropped
