"""Rich progress display for a run on the terminal: iterations, best score, evaluations, tokens/s,
and while an RL round runs, its phase, GRPO step, reward mean and seconds."""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from service.evolution.report import Progress as RunProgress
from service.evolution.training import RoundProgress


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.6g}"


def round_line(p: RoundProgress, seconds: float | None = None) -> Text:
    """Returns the line that shows where an RL round stands (seconds: so far, if not p's)."""
    parts = [] if p.phase == "training" and p.step else [p.phase]
    if p.step:
        parts.append(f"GRPO step {p.step}/{p.steps} · reward mean {_fmt(p.reward_mean)}")
    elif p.phase == "training":
        parts.append(f"GRPO step 0/{p.steps} (generating the first group)")
    elif p.steps:
        parts[0] += f" ({p.steps} GRPO step{'' if p.steps == 1 else 's'})"
    took = p.seconds if seconds is None else seconds
    line = Text.assemble(("RL round: ", "bold magenta"), " · ".join(parts), f" · {took:.0f} s")
    if p.log:
        line.append(f" · trainer output → {p.log}", style="dim")
    return line


class _RoundView:
    """The round's line, its seconds counted at each refresh (reports come once a step)."""

    def __init__(self, p: RoundProgress) -> None:
        self.p, self.started = p, time.monotonic() - p.seconds

    def __rich__(self) -> Text:
        return round_line(self.p, time.monotonic() - self.started)


class _WithRound(Progress):
    """A Progress that shows one more line under its bars while an RL round runs."""

    extra: RenderableType | None = None

    def get_renderables(self) -> Iterable[RenderableType]:
        """Yields the bars, then the round's line when there is one."""
        yield self.make_tasks_table(self.tasks)
        if self.extra is not None:
            yield self.extra


class RunDisplay:
    """A live progress bar fed by the engine's progress snapshots (off: shows nothing, for JSON
    logs)."""

    def __init__(self, console: Console, title: str, total: int | None, start: int = 0,
                 enabled: bool = True) -> None:
        self.progress = _WithRound(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("best [green]{task.fields[best]}[/] (init {task.fields[init]})"),
            TextColumn("eval [cyan]{task.fields[ok]}[/] ok/[red]{task.fields[failed]}[/] failed"),
            TextColumn("rej {task.fields[rejected]} dup {task.fields[dups]}"),
            TextColumn("{task.fields[rate]:.0f} tok/s"), TimeElapsedColumn(),
            console=console, transient=False, disable=not enabled)
        self.task = self.progress.add_task(title, total=total, completed=start, best="–", init="–",
                                           ok=0, failed=0, rejected=0, dups=0, rate=0.0)

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def update(self, p: RunProgress) -> None:
        """Shows a progress snapshot."""
        c = p.counters
        self.progress.extra = None if p.training is None else _RoundView(p.training)
        self.progress.update(
            self.task, completed=c.iterations, best=_fmt(c.best_score), init=_fmt(c.initial_score),
            ok=c.evaluations - c.failed, failed=c.failed, rejected=p.rejected, dups=p.duplicates,
            rate=p.tokens_per_s, refresh=p.training is not None)  # a round reports once a step:
        # drawn at once, so a short phase is seen even when the refresh thread is starved
