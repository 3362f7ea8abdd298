"""Run counters and the budgets that stop a run: iterations, LLM calls, tokens, time, target,
stagnation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.config import BudgetConfig
from service.problems.load import Problem

TOTALS = ("iterations", "llm_calls", "prompt_tokens", "completion_tokens", "evaluations",
          "failed", "cost", "last_improvement_iteration")  # the run row's running totals


@dataclass
class Counters:
    """The run row's totals in memory, for the budgets; only the ledger changes them."""

    iterations: int = 0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    evaluations: int = 0
    failed: int = 0
    cost: float = 0.0
    last_improvement_iteration: int = 0
    best_score: float | None = None
    best_program_id: int | None = None
    initial_score: float | None = None
    improvements: list[tuple[int, float]] = field(default_factory=list)

    def load_totals(self, run: Any) -> None:
        """Copies every running total from a run row (after other writers, e.g. RL rollouts)."""
        for name in TOTALS:
            value = getattr(run, name)
            setattr(self, name, float(value or 0.0) if name == "cost" else int(value or 0))

    @property
    def tokens(self) -> int:
        """Returns prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def count_call(self, completions: list[Any], children: int, cost: float) -> None:
        """Adds one LLM call that proposed `children` programs."""
        self.llm_calls += 1
        self.iterations += children
        self.count_tokens(completions, cost)

    def count_tokens(self, completions: list[Any], cost: float) -> None:
        """Adds the tokens and cost of completions."""
        self.prompt_tokens += sum(c.prompt_tokens for c in completions)
        self.completion_tokens += sum(c.completion_tokens for c in completions)
        self.cost += cost

    def count_result(self, ok: bool) -> None:
        """Adds one finished evaluation."""
        self.evaluations += 1
        self.failed += 0 if ok else 1

    def improve(self, prog: Any, initial: bool) -> None:
        """Records a new best program."""
        self.best_score, self.best_program_id = prog.score, prog.id
        self.last_improvement_iteration = max(self.last_improvement_iteration, prog.iteration)
        self.improvements.append((prog.iteration, prog.score))
        if initial:
            self.initial_score = prog.score


def stop_reason(budget: BudgetConfig, c: Counters, problem: Problem,
                elapsed_s: float) -> str | None:
    """Returns why the run must stop proposing now, or None to go on."""
    if budget.target_score is not None and c.best_score is not None and \
            not problem.direction.better(budget.target_score, c.best_score):
        return f"target score {budget.target_score:g} reached"
    limits = [(budget.iterations, c.iterations, "iterations"), (budget.llm_calls, c.llm_calls,
              "LLM calls"), (budget.tokens, c.tokens, "tokens")]
    for limit, used, what in limits:
        if limit is not None and used >= limit:
            return f"budget of {limit} {what} reached"
    if budget.cost is not None and c.cost >= budget.cost:
        return f"budget of {budget.cost:g} cost reached"
    if budget.wall_seconds is not None and elapsed_s >= budget.wall_seconds:
        return f"wall-time budget of {budget.wall_seconds:g} s reached"
    if budget.stagnation_iterations is not None and \
            c.iterations - c.last_improvement_iteration >= budget.stagnation_iterations:
        return f"no improvement in {budget.stagnation_iterations} iterations"
    return None
