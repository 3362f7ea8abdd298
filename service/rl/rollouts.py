"""RL rollouts are evolution itself: prompts from the run's database, children stored and scored.

`training_prompts` picks prompts the loop already built (parent + inspirations, as stored in
llm_samples); `EvolutionReward` is the reward function GRPO calls: every completion goes through
the same edits, ledger rows and evaluation dispatch as the loop's, so every child is a program row,
and its reward (service/rl/rewards.py) comes from its evaluation.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from service.config import RunConfig
from service.db import Database
from service.db.models import LLMSampleRow, ProgramRow, RunRow
from service.db.queries import hash_index
from service.db.status import ProgramStatus, SampleOutcome
from service.evolution.archive import Member
from service.evolution.ledger import Child, Ledger, apply_result, queue_of
from service.evolution.planner import Plan, proposal_from
from service.evolution.prompts import asked_format, asked_target
from service.execution.base import make_job
from service.execution.local import LocalExecutor
from service.llm.base import Completion, Message
from service.problems.load import Problem
from service.rl.rewards import ChildOutcome, reward


class NoPrompts(LookupError):
    """The run has no recorded prompts with a scored parent to train on."""


@dataclass(frozen=True)
class TrainingPrompt:
    """One prompt the loop built, with the parent it mutates."""

    messages: list[dict[str, str]]
    parent_id: int


def training_prompts(db: Database, run_id: int, count: int, recent: int,
                     seed: int = 0) -> list[TrainingPrompt]:
    """Returns count prompts drawn from the run's `recent` latest distinct prompts."""
    with db.session() as s:
        rows = s.execute(
            select(LLMSampleRow.prompt, LLMSampleRow.parent_id)
            .join(ProgramRow, ProgramRow.id == LLMSampleRow.parent_id)
            .where(LLMSampleRow.run_id == run_id, ProgramRow.status == ProgramStatus.OK)
            .order_by(LLMSampleRow.id.desc()).limit(recent * 4)).all()
    distinct: dict[str, TrainingPrompt] = {}
    for prompt, parent_id in rows:
        key = repr(prompt)
        if key not in distinct and len(distinct) < recent:
            distinct[key] = TrainingPrompt(list(prompt), int(parent_id))
    if not distinct:
        raise NoPrompts(f"run {run_id} has no recorded prompts with a scored parent; run some "
                        "iterations first (`evoforge resume RUN_ID --iterations N`)")
    pool = list(distinct.values())
    rng = random.Random(seed)
    return [pool[i % len(pool)] if i < len(pool) else rng.choice(pool) for i in range(count)]


@dataclass
class EvolutionReward:
    """GRPO's reward function: stores and evaluates each completion's child; returns rewards."""

    db: Database
    run_id: int
    problem: Problem
    cfg: RunConfig
    model: str
    adapter: str
    max_completion_tokens: int = 256
    rewards: list[float] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    calls: int = 0
    __name__: str = "evolution_reward"  # TRL names reward functions by __name__ in its logs

    def __call__(self, prompts: list[Any], completions: list[Any], parent_id: list[int],
                 completion_ids: list[list[int]] | None = None, **_: Any) -> list[float]:
        """Returns one reward per completion, after storing and evaluating its child."""
        self.calls += 1
        texts = [_text(c) for c in completions]
        lengths = [len(ids) for ids in (completion_ids or [[]] * len(texts))]
        cut = [completion_ids is not None and n >= self.max_completion_tokens for n in lengths]
        groups: dict[str, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(repr(prompt), []).append(i)
        out = [0.0] * len(texts)
        for g, idx in enumerate(groups.values()):
            group_id = f"grpo-{self.adapter}-{self.calls}-{g}"[:64]
            values = self._score_group(prompts[idx[0]], int(parent_id[idx[0]]),
                                       [texts[i] for i in idx], [cut[i] for i in idx], group_id,
                                       [lengths[i] for i in idx])
            for i, value in zip(idx, values, strict=True):
                out[i] = value
        self.rewards.extend(out)
        return out

    def _score_group(self, prompt: list[dict[str, str]], parent_id: int, texts: list[str],
                     cut: list[bool], group_id: str, lengths: list[int]) -> list[float]:
        """Stores one prompt's completions as children, evaluates them, returns their rewards."""
        ledger = Ledger(self.db, self.run_id, self.cfg.evaluation.executor,
                        queue_of(self.cfg))
        parent = ledger.programs([parent_id])[parent_id]
        with self.db.session() as s:
            known = hash_index(s, self.run_id)
            first = s.get(RunRow, self.run_id).iterations + 1
        member = Member(id=parent.id, island=parent.island, fitness=0.0, score=parent.score,
                        code_hash=parent.code_hash, features=parent.features or {},
                        generation=parent.generation)
        messages = [Message(m["role"], m["content"]) for m in prompt]
        plan = Plan(parent=member, inspirations=[], island=parent.island, messages=messages,
                    parent_code=parent.code, parent_generation=parent.generation,
                    target=asked_target(messages))
        fmt = asked_format(messages)  # what the loop asked this prompt for: diff or rewrite
        proposals = []
        for j, (text, truncated, n) in enumerate(zip(texts, cut, lengths, strict=True)):
            completion = Completion(text=text, finish_reason="length" if truncated else "stop",
                                    prompt_tokens=0, completion_tokens=n, latency_s=0.0,
                                    model=self.model, adapter=self.adapter)
            proposals.append(proposal_from(plan, completion, fmt, first + j))
        children = ledger.add_call(proposals, known, group_id)
        results = asyncio.run(self._evaluate(children))
        values = []
        for child in children:
            outcome = ChildOutcome(child.outcome, parent_score=parent.score)
            result = results.get(child.program_id) if child.program_id is not None else None
            if result is not None:
                outcome = ChildOutcome(SampleOutcome.CHILD, result.score if result.ok else None,
                                       parent.score, result.error_kind)
                self._record(ledger, child, result)
            value = reward(outcome, self.cfg.rl.reward, self.cfg.rl.penalties,
                           self.problem.direction)
            values.append(value)
            self.outcomes.append(outcome.outcome if result is None else
                                 ("scored" if result.ok else f"failed:{result.error_kind}"))
        with self.db.session() as s:
            for child, value in zip(children, values, strict=True):
                s.execute(update(LLMSampleRow).where(LLMSampleRow.id == child.sample_id)
                          .values(reward=value))
        return values

    async def _evaluate(self, children: list[Child]) -> dict[int, Any]:
        """Returns program id -> result for the children that need an evaluation."""
        todo = [c for c in children if c.outcome == SampleOutcome.CHILD]
        executor = LocalExecutor(self.cfg.evaluation.workers)
        try:
            jobs = [make_job(self.problem, c.program.code, self.cfg.evaluation,
                             program_id=c.program_id, evaluation_id=c.evaluation_id)
                    for c in todo]
            results = await asyncio.gather(*(executor.evaluate(j) for j in jobs))
        finally:
            await executor.aclose()
        return {c.program_id: r for c, r in zip(todo, results, strict=True)}

    def _record(self, ledger: Ledger, child: Child, result: Any) -> None:
        """Writes a child's result; a new best score of the run is recorded as such."""
        prog = child.program
        apply_result(prog, result, {})
        run = ledger.run()
        best = result.ok and self.problem.direction.better(prog.score, run.best_score)
        ledger.record_result(prog, child.evaluation_id, result, [], [], best)

    def stats(self) -> dict[str, float]:
        """Returns reward statistics over every completion scored so far."""
        r = self.rewards
        if not r:
            return {"n": 0}
        return {"n": len(r), "mean": statistics.fmean(r), "std": statistics.pstdev(r),
                "min": min(r), "max": max(r),
                "scored": sum(o == "scored" for o in self.outcomes) / len(self.outcomes)}


def _text(completion: Any) -> str:
    """Returns a completion's text, from TRL's conversational or plain form."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)
