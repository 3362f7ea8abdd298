"""What the engine asks the LLM: a plan per prompt (parent, inspirations, island, messages), and
the proposal each completion becomes once its edit is applied to the parent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.config import RunConfig
from service.db.models import ProgramRow
from service.edits.apply import Format, apply_answer, code_hash
from service.evolution.aids.hooks import SearchAids
from service.evolution.archive import Archive, Member
from service.evolution.ledger import Proposal
from service.evolution.prompts import ProgramView, PromptContext, PromptTooLong, build_prompt
from service.evolution.row_cache import RowCache
from service.llm.base import Completion, LLMBackend, Message
from service.problems.blocks import block_text
from service.problems.load import Problem


@dataclass
class Plan:
    """One prompt of an LLM call and where its children go."""

    parent: Member
    inspirations: list[Member]
    island: int
    messages: list[Message]
    parent_code: str
    parent_generation: int
    kind: str = "mutation"  # mutation | crossover


class Planner:
    """Builds the prompts of a run's LLM calls from its archive, deterministically per call."""

    def __init__(self, problem: Problem, cfg: RunConfig, llm: LLMBackend, fmt: Format,
                 archive: Archive, aids: SearchAids, rows: RowCache) -> None:
        self.problem, self.cfg, self.llm, self.fmt = problem, cfg, llm, fmt
        self.archive, self.aids, self.rows = archive, aids, rows

    def plans(self, llm_calls: int, room: int | None,
              on_error: Callable[[str], None]) -> list[Plan]:
        """Returns the plans of the next call (none when fewer than n children fit in room)."""
        plans: list[Plan] = []
        for j in range(self.cfg.llm.prompts_per_call):
            if room is not None and room < self.cfg.llm.n * (len(plans) + 1):
                break
            key = llm_calls * 1000 + j  # seeds the sampling: deterministic per (seed, call)
            self.archive.rng.seed(f"{self.cfg.seed}:{key}")
            # prompts take the islands in turn, across calls and within a call
            island = (llm_calls * self.cfg.llm.prompts_per_call + j) % len(self.archive.islands)
            parent, inspirations = self.archive.sample(island)
            partner = self.aids.crossover_partner(self.archive, island, parent)
            try:
                plans.append(self.plan(parent, inspirations, island, partner))
            except PromptTooLong as exc:
                on_error(f"prompt does not fit the model's context: {exc}")
        return plans

    def plan(self, parent: Member, inspirations: list[Member], island: int,
             partner: Member | None = None) -> Plan:
        """Returns the plan for one prompt (a crossover prompt when partner is given)."""
        rows = self.rows.get([parent.id] + [m.id for m in inspirations]
                             + ([partner.id] if partner else []))
        prow = rows[parent.id]
        ctx = PromptContext(
            problem_name=self.problem.name, description=self.problem.description,
            score_metric=self.problem.score_metric, direction=self.problem.direction,
            fmt=self.fmt, parent=view(prow, "parent"),
            inspirations=[view(rows[m.id], "top" if m in self.archive.elites else "diverse")
                          for m in inspirations],
            system_message=self.cfg.llm.system_message, best_known=self.problem.best_known,
            scratch=self.aids.scratch,
            partner=view(rows[partner.id], "partner") if partner else None)
        window = self.cfg.llm.context_window or self.llm.context_window
        messages = build_prompt(ctx, self.llm.count_tokens, window - self.cfg.llm.max_tokens - 16)
        if partner is not None:  # the second parent is stored first among the inspirations
            return Plan(parent, [partner] + inspirations, island, messages, prow.code,
                        prow.generation, "crossover")
        return Plan(parent, inspirations, island, messages, prow.code, prow.generation)

    def proposal(self, iteration: int, plan: Plan, completion: Completion) -> Proposal:
        """Returns what a completion makes of its plan's parent (code, or why it was rejected)."""
        return proposal_from(plan, completion, self.fmt, iteration)

    def codes(self, ids: list[int]) -> dict[int, str]:
        """Returns the evolving code of programs (what novelty embeds)."""
        return {i: block_text(row.code) for i, row in self.rows.get(ids).items()}


def proposal_from(plan: Plan, completion: Completion, fmt: Format, iteration: int) -> Proposal:
    """Returns what a completion makes of its plan's parent, read in the answer format its prompt
    asked for (code, or why it was rejected). The loop and RL rollouts both build children here."""
    edit = apply_answer(plan.parent_code, completion.text, fmt, completion.truncated)
    return Proposal(
        iteration=iteration, parent=plan.parent, parent_generation=plan.parent_generation,
        inspirations=plan.inspirations, island=plan.island, prompt=plan.messages,
        completion=completion, code=edit.code,
        code_hash=code_hash(edit.code) if edit.code is not None else None,
        rejection=edit.rejection, unchanged=edit.code is not None and not edit.changed,
        kind=plan.kind, repair=edit.repair)


def view(prog: ProgramRow, label: str) -> ProgramView:
    """Returns how a program appears in a prompt."""
    return ProgramView(code=prog.code, score=prog.score, metrics=prog.metrics or {},
                       artifacts=prog.artifacts or {}, label=label)
