"""Per-model and per-island statistics of a run, computed from its llm_samples and programs rows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import LLMSampleRow, ProblemRow, ProgramRow, RunRow, ScratchpadRow
from service.db.status import ProgramKind, SampleOutcome
from service.problems.direction import Direction


@dataclass
class GroupStats:
    """Token, cost and outcome totals of one model or one island."""

    key: str
    samples: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    evaluated: int = 0
    improved: int = 0  # children that beat their parent
    gain: float = 0.0  # summed improvement over parents (fitness: larger is better)
    best_score: float | None = None

    @property
    def tokens(self) -> int:
        """Returns prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass
class RunStats:
    """What `evoforge runs show` prints."""

    run: dict[str, Any]
    models: list[GroupStats]
    islands: list[GroupStats]
    scratchpads: int
    scratchpad: str | None
    island_resets: int

    def as_dict(self) -> dict[str, Any]:
        """Returns the statistics as plain JSON-able data."""
        out = asdict(self)
        for part in ("models", "islands"):
            for g, src in zip(out[part], getattr(self, part), strict=True):
                g["tokens"] = src.tokens
        return out


def run_stats(s: Session, run_id: int) -> RunStats:
    """Returns the statistics of a run, or raises LookupError when there is no such run."""
    run = s.get(RunRow, run_id)
    if run is None:
        raise LookupError(f"no run {run_id}; `evoforge runs list` shows the runs")
    sign = Direction(s.get(ProblemRow, run.problem_id).direction).sign
    progs = {p.id: p for p in s.scalars(select(ProgramRow).where(ProgramRow.run_id == run_id))}
    by_sample = {p.sample_id: p for p in progs.values() if p.sample_id is not None}
    models: dict[str, GroupStats] = {}
    islands: dict[str, GroupStats] = {}
    samples = s.scalars(select(LLMSampleRow).where(LLMSampleRow.run_id == run_id)
                        .order_by(LLMSampleRow.id))
    for smp in samples:
        child = by_sample.get(smp.id)
        parent = progs.get(smp.parent_id)
        island = str(smp.island if smp.island is not None else (child.island if child else "?"))
        for group in (models.setdefault(smp.model, GroupStats(smp.model)),
                      islands.setdefault(island, GroupStats(island))):
            _count(group, smp, child, parent, sign)
    for p in progs.values():
        if p.score is not None:
            g = islands.setdefault(str(p.island), GroupStats(str(p.island)))
            if g.best_score is None or sign * p.score > sign * g.best_score:
                g.best_score = p.score
    pads = s.scalar(select(func.count()).select_from(ScratchpadRow)
                    .where(ScratchpadRow.run_id == run_id)) or 0
    last = s.scalars(select(ScratchpadRow.text).where(ScratchpadRow.run_id == run_id)
                     .order_by(ScratchpadRow.version.desc()).limit(1)).first()
    resets = sum(1 for p in progs.values() if p.kind == ProgramKind.RESEED)
    summary = {"id": run.id, "status": run.status, "iterations": run.iterations,
               "llm_calls": run.llm_calls, "tokens": run.prompt_tokens + run.completion_tokens,
               "cost": run.cost, "evaluations": run.evaluations, "failed": run.failed,
               "best_score": run.best_score, "initial_score": run.initial_score,
               "best_program_id": run.best_program_id,
               "stop_reason": run.stop_reason,
               "too_similar": sum(g.outcomes.get(SampleOutcome.TOO_SIMILAR, 0)
                                  for g in models.values())}
    return RunStats(summary, sorted(models.values(), key=lambda g: g.key),
                    sorted(islands.values(), key=lambda g: (len(g.key), g.key)), pads, last, resets)


def _count(g: GroupStats, smp: LLMSampleRow, child: ProgramRow | None,
           parent: ProgramRow | None, sign: float) -> None:
    g.samples += 1
    g.prompt_tokens += smp.prompt_tokens
    g.completion_tokens += smp.completion_tokens
    g.cost += smp.cost or 0.0
    g.outcomes[smp.outcome] = g.outcomes.get(smp.outcome, 0) + 1
    if child is None or child.status not in ("ok", "failed"):
        return
    g.evaluated += 1
    if child.score is not None and parent is not None and parent.score is not None:
        gain = sign * (child.score - parent.score)
        if gain > 0:
            g.improved += 1
            g.gain += gain


def outcome_totals(stats: list[GroupStats]) -> dict[str, int]:
    """Returns the outcome counts summed over groups."""
    total: dict[str, int] = defaultdict(int)
    for g in stats:
        for k, v in g.outcomes.items():
            total[k] += v
    return dict(total)
