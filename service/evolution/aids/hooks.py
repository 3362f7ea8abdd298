"""The optional search features at the points where the engine calls them: temperature schedule,
cost accounting, crossover partners, novelty screening, model-bandit rewards, scratchpad versions
and island resets. Each is off unless the run config turns it on; the logic lives in its module."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from evaluators.jobs import EvalResult
from service.config import RunConfig
from service.db.models import LLMSampleRow, ProgramRow
from service.db.status import UNFINISHED, ProgramKind, ProgramStatus, SampleOutcome
from service.evolution.aids.novelty import Embedder, NoveltyFilter
from service.evolution.aids.scratchpad import latest, write_version
from service.evolution.aids.stagnation import reset_due, reset_plan, temperature_at
from service.evolution.archive import Archive, Member
from service.evolution.ledger import Child, Ledger, Proposal
from service.llm.bandit import improvement
from service.llm.base import Completion, LLMBackend, LLMError, LLMUnavailable, Sampling
from service.llm.ensemble import cost_of
from service.problems.load import Problem

log = logging.getLogger("evoforge.search")
Codes = Callable[[list[int]], dict[int, str]]  # program ids -> their evolving code


class SearchAids:
    """Per-run state of the optional search features."""

    def __init__(self, ledger: Ledger, problem: Problem, cfg: RunConfig, llm: LLMBackend,
                 embedder: Embedder | None = None) -> None:
        self.ledger, self.db, self.run_id = ledger, ledger.db, ledger.run_id
        self.problem, self.cfg, self.llm = problem, cfg, llm
        nov = cfg.search.novelty
        self.novelty = NoveltyFilter(nov, self.db, self.run_id, embedder, llm) \
            if nov.enabled else None
        self.bandit = llm.bandit  # ensembles only
        self.scratch: str | None = None
        self.last_reset = 0
        self.resets = 0
        # program id -> model, tokens, cost, parent fitness
        self._pending: dict[int, tuple[str, int, float, float]] = {}
        self._vectors: dict[int, Any] = {}  # id(proposal) -> child vector, until stored
        self._next_scratch: int | None = None
        self._rng = random.Random(f"search:{cfg.seed}")

    # -- restore -------------------------------------------------------------------------
    def restore(self, fitness: Callable[[float | None], float]) -> None:
        """Rebuilds scratchpad text, bandit statistics and reset time from the run's rows."""
        with self.db.session() as s:
            row = latest(s, self.run_id)
            self.scratch = row.text if row else None
            self._next_scratch = (row.iteration if row else 0) + self.cfg.search.scratchpad.every
            if self.bandit is None:
                return
            samples = list(s.scalars(select(LLMSampleRow).where(LLMSampleRow.run_id == self.run_id)
                                     .order_by(LLMSampleRow.id)))
            progs = {p.sample_id: p for p in s.scalars(select(ProgramRow).where(
                ProgramRow.run_id == self.run_id, ProgramRow.sample_id.is_not(None)))}
            scores = dict(s.execute(select(ProgramRow.id, ProgramRow.score).where(
                ProgramRow.run_id == self.run_id)).all())
        for sample in samples:
            prog = progs.get(sample.id)
            tokens, cost = sample.prompt_tokens + sample.completion_tokens, sample.cost or 0.0
            parent_fit = fitness(scores.get(sample.parent_id))
            if prog is not None and prog.status in UNFINISHED:
                self._pending[prog.id] = (sample.model, tokens, cost, parent_fit)
                continue
            child_fit = (fitness(prog.score) if prog is not None and prog.status == ProgramStatus.OK
                         else None)
            self.bandit.update(sample.model, improvement(child_fit, parent_fit), tokens, cost)

    def restored_program(self, prog: ProgramRow) -> None:
        """Notes a replayed program (a reseed marks an island reset)."""
        if prog.kind == ProgramKind.RESEED:
            self.last_reset = max(self.last_reset, prog.iteration)

    # -- one LLM call ----------------------------------------------------------------------
    def temperature(self, iteration: int) -> float:
        """Returns the scheduled sampling temperature."""
        return temperature_at(self.cfg.llm, iteration, self.cfg.budget.iterations)

    def annotate(self, completions: list[Completion], sampling: Sampling) -> None:
        """Adds temperature and cost (single model: llm.price_per_1k_tokens) to completions."""
        for c in completions:
            c.extra.setdefault("temperature", sampling.temperature)
            c.extra.setdefault("cost", cost_of(c.prompt_tokens + c.completion_tokens,
                                               self.cfg.llm.price_per_1k_tokens))

    def crossover_partner(self, archive: Archive, island: int, parent: Member) -> Member | None:
        """Returns a second parent for a crossover prompt (search.crossover_rate of prompts):
        from another island, or with one island from another MAP-Elites cell; None when there
        is none with other code. Uses the archive's seeded rng."""
        rate = self.cfg.search.crossover_rate
        if rate <= 0 or archive.rng.random() >= rate:
            return None
        here = archive.islands[island % len(archive.islands)]
        others = [i for i, isl in enumerate(archive.islands) if isl is not here and isl.members]
        if others:
            partner, _ = archive.sample(archive.rng.choice(others))
        else:
            cell = here.cells.get(parent.id)
            elites = [here.members[i] for c, i in sorted(here.grid.items()) if c != cell]
            if not elites:
                return None
            partner = archive.rng.choice(elites)
        return None if partner.code_hash == parent.code_hash else partner

    async def screen(self, proposals: list[Proposal], known: dict[str, int], archive: Archive,
                     codes: Codes, block: Callable[[str], str]) -> None:
        """Marks proposals too similar to a program of their island (never evaluated)."""
        if self.novelty is None:
            return
        for p in proposals:
            if p.code is None or p.unchanged or p.code_hash in known:
                continue
            vector = await self.novelty.embed(block(p.code))
            pool = sorted(archive.islands[p.island % len(archive.islands)].members)
            verdict = await self.novelty.screen(vector, pool, block(p.code), codes)
            if verdict.novel:
                self._vectors[id(p)] = vector
            else:
                p.similar_to = (verdict.nearest_id, verdict.similarity)
                p.rejection = verdict.reason()

    def after_call(self, proposals: list[Proposal], children: list[Child]) -> None:
        """Stores new children's embeddings; gives the bandit a zero reward for answers that
        produced no child to evaluate; remembers the others until their results arrive."""
        for p, child in zip(proposals, children, strict=True):
            vector = self._vectors.pop(id(p), None)
            if (vector is not None and child.outcome == SampleOutcome.CHILD
                    and self.novelty is not None):
                self.novelty.store(child.program_id, vector)
            c = p.completion
            tokens, cost = c.prompt_tokens + c.completion_tokens, float(c.extra.get("cost") or 0)
            if self.bandit is None:
                continue
            if child.outcome == SampleOutcome.CHILD:
                self._pending[child.program_id] = (c.model, tokens, cost, p.parent.fitness)
            else:
                self.bandit.update(c.model, 0.0, tokens, cost)

    def on_result(self, prog: ProgramRow, result: EvalResult, fitness: float | None) -> None:
        """Rewards the member that wrote a child with the child's improvement over its parent."""
        entry = self._pending.pop(prog.id, None)
        if entry is None or self.bandit is None:
            return
        model, tokens, cost, parent_fit = entry
        self.bandit.update(model, improvement(fitness if result.ok else None, parent_fit),
                           tokens, cost)

    # -- periodic --------------------------------------------------------------------------
    async def scratchpad(self, iteration: int) -> None:
        """Writes a new scratchpad version when one is due (its call counts in the run's tokens
        and cost)."""
        sc = self.cfg.search.scratchpad
        if not sc.enabled or self._next_scratch is None or iteration < self._next_scratch:
            return
        self._next_scratch = iteration + sc.every  # claimed before awaiting: one writer at a time
        try:
            row = await write_version(
                self.ledger, self.llm, self.problem.description, self.problem.direction,
                iteration, sc.max_tokens, seed=self.cfg.seed * 7919 + iteration,
                price_per_1k_tokens=self.cfg.llm.price_per_1k_tokens)
        except (LLMError, LLMUnavailable, ValueError) as exc:
            log.warning("scratchpad not written at iteration %d: %s", iteration, exc)
            return
        self.scratch = row.text or self.scratch
        log.info("scratchpad version %d at iteration %d", row.version, iteration)

    def island_resets(self, archive: Archive, iterations: int,
                      last_improvement: int) -> list[tuple[int, Member]]:
        """Returns the island resets due now ((island, seed program) pairs), or none."""
        patience = self.cfg.search.island_reset_iterations
        if not reset_due(iterations, last_improvement, self.last_reset, patience):
            return []
        self.last_reset = iterations
        self.resets += 1
        return reset_plan(archive, self._rng)
