"""What the engine asks the LLM: a plan per prompt (parent, inspirations, island, messages), and
the proposal each completion becomes once its edit is applied to the parent."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from evaluators import tree
from service.config import RunConfig
from service.db.models import ProgramRow
from service.edits.apply import Format, apply_answer
from service.edits.identity import code_hash
from service.evolution.aids.hooks import SearchAids
from service.evolution.archive import Archive, Member
from service.evolution.ledger import Proposal
from service.evolution.program_text import editable, evolving
from service.evolution.prompts import ProgramView, PromptContext, PromptTooLong, build_prompt
from service.evolution.row_cache import RowCache
from service.llm.base import Completion, LLMBackend, Message
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
    target: str | None = None  # a folder program asked as a rewrite: the file to rewrite
    recombined: bool = False  # parent_code takes files from the crossover partner


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
        """Returns the plan for one prompt (a crossover prompt when partner is given; a folder
        program's crossover takes each file from one parent or the other)."""
        rows = self.rows.get([parent.id] + [m.id for m in inspirations]
                             + ([partner.id] if partner else []))
        prow = rows[parent.id]
        code, recombined = prow.code, False
        if partner is not None and tree.is_tree(code):
            code = recombine(code, rows[partner.id].code, self.archive.rng)
            recombined = code != prow.code
        target = None
        if self.fmt == "rewrite" and tree.is_tree(code):
            target = self.archive.rng.choice(editable(code))
        parent_view = replace(view(prow, "parent"), code=code)
        ctx = PromptContext(
            problem_name=self.problem.name, description=self.problem.description,
            score_metric=self.problem.score_metric, direction=self.problem.direction,
            fmt=self.fmt, parent=parent_view,
            inspirations=[view(rows[m.id], "top" if m in self.archive.elites else "diverse")
                          for m in inspirations],
            system_message=self.cfg.llm.system_message, best_known=self.problem.best_known,
            scratch=self.aids.scratch,
            partner=view(rows[partner.id], "partner") if partner and not tree.is_tree(code)
            else None, target=target)
        window = self.cfg.llm.context_window or self.llm.context_window
        messages = build_prompt(ctx, self.llm.count_tokens, window - self.cfg.llm.max_tokens - 16)
        if partner is not None:  # the second parent is stored first among the inspirations
            return Plan(parent, [partner] + inspirations, island, messages, code,
                        prow.generation, "crossover", target, recombined)
        return Plan(parent, inspirations, island, messages, code, prow.generation, target=target)

    def proposal(self, iteration: int, plan: Plan, completion: Completion) -> Proposal:
        """Returns what a completion makes of its plan's parent (code, or why it was rejected)."""
        return proposal_from(plan, completion, self.fmt, iteration)

    def codes(self, ids: list[int]) -> dict[int, str]:
        """Returns the evolving code of programs (what novelty embeds)."""
        return {i: evolving(row.code, "\n") for i, row in self.rows.get(ids).items()}


def proposal_from(plan: Plan, completion: Completion, fmt: Format, iteration: int) -> Proposal:
    """Returns what a completion makes of its plan's parent, read in the answer format its prompt
    asked for (code, or why it was rejected). The loop and RL rollouts both build children here."""
    edit = apply_answer(plan.parent_code, completion.text, fmt, completion.truncated,
                        target=plan.target)
    return Proposal(
        iteration=iteration, parent=plan.parent, parent_generation=plan.parent_generation,
        inspirations=plan.inspirations, island=plan.island, prompt=plan.messages,
        completion=completion, code=edit.code,
        code_hash=code_hash(edit.code) if edit.code is not None else None,
        rejection=edit.rejection,
        unchanged=edit.code is not None and not edit.changed and not plan.recombined,
        kind=plan.kind, repair=edit.repair)


def view(prog: ProgramRow, label: str) -> ProgramView:
    """Returns how a program appears in a prompt."""
    return ProgramView(code=prog.code, score=prog.score, metrics=prog.metrics or {},
                       artifacts=prog.artifacts or {}, label=label)


def recombine(code: str, partner: str, rng: random.Random) -> str:
    """Returns a folder program made of each file of code or of partner, at least one from each
    (crossover of files); code itself when they differ in fewer than two files."""
    mine, theirs = tree.split(code), tree.split(partner)
    differ = [path for path in mine if path in theirs and theirs[path] != mine[path]]
    if len(differ) < 2:  # one differing file: a mix is one parent or the other
        return code
    taken = {path for path in differ if rng.random() < 0.5}
    if taken in (set(), set(differ)):
        taken = {rng.choice(differ)} if not taken else set(differ) - {rng.choice(differ)}
    return tree.join({path: theirs[path] if path in taken else text
                      for path, text in mine.items()})
