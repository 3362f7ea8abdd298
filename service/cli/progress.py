"""Rich progress display for a run on the terminal: iterations, best score, evaluations, tokens/s."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from service.evolution.engine import Progress as RunProgress


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.6g}"


class RunDisplay:
    """A live progress bar fed by the engine's progress snapshots."""

    def __init__(self, console: Console, title: str, total: int | None, start: int = 0) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("best [green]{task.fields[best]}[/] (init {task.fields[init]})"),
            TextColumn("eval [cyan]{task.fields[ok]}[/] ok/[red]{task.fields[failed]}[/] failed"),
            TextColumn("rej {task.fields[rejected]} dup {task.fields[dups]}"),
            TextColumn("{task.fields[rate]:.0f} tok/s"), TimeElapsedColumn(),
            console=console, transient=False)
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
        self.progress.update(
            self.task, completed=c.iterations, best=_fmt(c.best_score), init=_fmt(c.initial_score),
            ok=c.evaluations - c.failed, failed=c.failed, rejected=p.rejected, dups=p.duplicates,
            rate=p.tokens_per_s)
