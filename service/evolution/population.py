"""The engine's population: the pure archive, the program rows its members need, and the ledger
writes that go with membership (kept, evicted, new best), migrations and island resets."""

from __future__ import annotations

import logging
import random
from typing import Any

from evaluators.jobs import EvalResult
from service.config import RunConfig
from service.db.models import ProgramRow
from service.db.status import ProgramKind
from service.evolution.archive import Archive, Member, code_features
from service.evolution.ledger import Ledger
from service.evolution.row_cache import RowCache
from service.problems.blocks import block_text
from service.problems.load import Problem

log = logging.getLogger("evoforge.engine")
Membership = tuple[list[int], list[int], bool]  # (kept ids, evicted ids, new best?)
# The metric by which an evaluator says a scored program is no solution (0: invalid), as
# OpenEvolve's examples and the shipped problems return it.
VALIDITY = "validity"


def marked_invalid(metrics: dict[str, Any] | None) -> bool:
    """Returns True when the evaluator scored a program but marked it invalid (validity 0)."""
    return invalid_mark((metrics or {}).get(VALIDITY))


def invalid_mark(value: Any) -> bool:
    """Returns True when a program's VALIDITY metric (None: none) marks it invalid."""
    return isinstance(value, int | float) and value == 0  # False too


class Population:
    """The archive of one run with the rows and writes that follow its changes."""

    def __init__(self, problem: Problem, cfg: RunConfig, ledger: Ledger) -> None:
        self.problem, self.cfg, self.ledger = problem, cfg, ledger
        self.archive = Archive(cfg.search, random.Random(cfg.seed))
        self.rows = RowCache(ledger)
        self.reference = block_text(problem.initial_code)

    def features(self, code: str, result: EvalResult) -> dict[str, float]:
        """Returns a scored program's feature coordinates (code features + metric dimensions)."""
        feats = code_features(block_text(code), self.reference)
        for dim in self.cfg.search.feature_dimensions:
            if dim in result.metrics:
                feats[dim] = float(result.metrics[dim])
        return feats

    def admits(self, prog: Any, invalid: bool | None = None) -> bool:
        """Returns whether a scored program may join the archive (and so be a parent): not when
        its evaluator marked it invalid (invalid, or read from its metrics when None), unless
        search.invalid_parents or it is the initial."""
        if invalid is None:
            invalid = marked_invalid(prog.metrics)
        return self.cfg.search.invalid_parents or prog.kind == ProgramKind.INITIAL or not invalid

    def add(self, prog: Any, than: float | None = None, invalid: bool | None = None
            ) -> Membership:
        """Adds a scored program to the archive (no writes) if it admits it; returns what
        changed: a new best beats the run's best and than (a score not recorded yet)."""
        if not self.admits(prog, invalid):
            return [], [], False
        member = Member(id=prog.id, island=prog.island,
                        fitness=self.problem.direction.fitness(prog.score), score=prog.score,
                        code_hash=prog.code_hash, features=prog.features or {},
                        generation=prog.generation)
        outcome = self.archive.add(member)
        best = self.problem.direction.better(prog.score, self.ledger.counters.best_score) and (
            than is None or self.problem.direction.better(prog.score, than))
        for evicted in outcome.evicted:
            self.rows.drop(evicted)
        return ([prog.id] if outcome.kept else []), outcome.evicted, best

    def replay(self, prog: Any) -> None:
        """Adds a stored program on restore (its row and the run row already say the rest): a row
        of db.queries.scored_programs, which reads only its VALIDITY metric."""
        if prog.kind == ProgramKind.RESEED:  # an island reset happened here
            self.archive.reset_island(prog.island)
        if self.add(prog, invalid=invalid_mark(prog.validity))[2]:
            self.ledger.note_best(prog)

    def warm(self) -> None:
        """Reads the rows of the archive's members in one query (on restore): the prompts of
        the next iterations need them, and a miss would cost a query each."""
        ids = {m for isl in self.archive.islands for m in isl.members}
        ids.update(e.id for e in self.archive.elites)
        self.rows.get(sorted(ids)[-self.rows.size:])

    def take_in(self, prog: ProgramRow) -> None:
        """Adds a program another writer stored and scored (an RL round's), and records it."""
        kept, evicted, best = self.add(prog)
        self.ledger.archive_changed(kept, evicted, prog if best else None)

    def migrate(self, iteration: int) -> None:
        """Copies the archive's migrants to their islands: their rows (no new evaluation) in one
        statement, then the archive membership they change in one transaction."""
        moves = self.archive.migrants()
        if not moves:
            return
        sources = self.rows.get([member.id for member, _ in moves])
        copies = self.ledger.add_migrants([(sources[m.id], dest) for m, dest in moves], iteration)
        kept: list[int] = []
        evicted: list[int] = []
        best: ProgramRow | None = None
        for migrant in copies:
            self.rows.put(migrant)
            k, e, better = self.add(migrant, than=best.score if best is not None else None)
            kept, evicted = kept + k, evicted + e
            best = migrant if better else best
        new = {m.id for m in copies}
        gone = set(evicted)
        self.ledger.archive_changed([k for k in kept if k not in gone],
                                    [e for e in evicted if e not in new], best)

    def reset_islands(self, resets: list[tuple[int, Member]], iteration: int) -> None:
        """FunSearch-style: restarts each island from a better island's best program (a `reseed`
        row marks the reset for resume)."""
        for island, member in resets:
            removed = self.archive.reset_island(island)
            source = self.rows.get([member.id])[member.id]
            seed, = self.ledger.add_migrants([(source, island)], iteration, ProgramKind.RESEED)
            self.rows.put(seed)
            kept, evicted, best = self.add(seed)
            self.ledger.archive_changed(kept, removed + evicted, seed if best else None)
            log.info("island %d reset from program %s", island, member.id)
