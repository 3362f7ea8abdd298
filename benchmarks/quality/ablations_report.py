"""quality.ablations' report: the per-config table (paired differences against the baseline),
its Markdown, the per-seed pairs, and the figure of best score vs LLM calls and vs tokens."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.harness import plots


def _diff(row: dict) -> str:
    """Formats a paired difference with its CI."""
    if row["paired_diff"] is None:
        return "—"
    lo, hi = row["ci"]
    return f"{row['paired_diff']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def table(problem: str, rows: list[dict], console: Console) -> None:
    """Prints the per-config table."""
    t = Table(title=f"{problem}: each feature alone vs baseline, embedded SmolLM2-135M")
    for col in ("config", "seeds", "calls", "mean best (sd)", "paired diff [95% bootstrap CI]",
                "W/T/L", "sign p", "improved", "best@half", "tokens", "evals", "failed",
                "too similar (saved)", "wall s"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(r["config"], str(r["seeds"]), f"{r['llm_calls']:.0f}",
                  f"{r['mean_best']:.4f} ({r['sd_best']:.4f})", _diff(r),
                  "—" if r["config"] == "baseline" else f"{r['wins']}/{r['ties']}/{r['losses']}",
                  "—" if r["sign_p"] is None else f"{r['sign_p']:.2f}",
                  f"{r['improved']}/{r['seeds']}", f"{r['best_at_half']:.4f}", f"{r['tokens']:.0f}",
                  f"{r['evaluations']:.1f}", f"{r['failed']:.1f}", str(r["too_similar"]),
                  f"{r['wall_s']:.0f}")
    console.print(t)


def markdown(rows: list[dict]) -> str:
    """Returns the table as Markdown for docs/benchmarks.md."""
    half = rows[0]["half_calls"] if rows else 0
    lines = [("| config | mean best (sd) | paired diff vs baseline [95% bootstrap CI] | W/T/L | "
              f"sign-test p | seeds improved | best at {half} calls | mean tokens | evaluations | "
              "failed | too similar (evaluations saved) |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        base = r["config"] == "baseline"
        wtl = "—" if base else f"{r['wins']}/{r['ties']}/{r['losses']}"
        sign = "—" if base else f"{r['sign_p']:.2f}"
        lines.append(
            f"| {r['config']} | {r['mean_best']:.4f} ({r['sd_best']:.4f}) | {_diff(r)} | {wtl} | "
            f"{sign} | {r['improved']}/{r['seeds']} | {r['best_at_half']:.4f} | "
            f"{r['tokens']:.0f} | {r['evaluations']:.1f} | {r['failed']:.1f} | "
            f"{r['too_similar']} |")
    text = "\n".join(lines).replace("+0.0000 [+0.0000, +0.0000]", "0 [0, 0]")
    return re.sub(r"-(?=\d)", "−", text)  # typographic minus on numbers only


def per_seed_markdown(results: list[dict], configs: Sequence[str]) -> str:
    """Returns the best score of every config on every seed as Markdown (the pairs themselves)."""
    seeds = sorted({r["seed"] for r in results})
    best = {(r["config"], r["seed"]): r["best"] for r in results}
    lines = ["| config | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|" + "---:|" * len(seeds)]
    lines += [f"| {name} | " + " | ".join(f"{best[name, s]:.4f}" for s in seeds) + " |"
              for name in configs if any(c == name for c, _ in best)]
    return "\n".join(lines)


def plot(problem: str, results: list[dict], configs: Sequence[str], path: Path) -> bool:
    """Mean best-so-far vs LLM calls and vs tokens per config, shaded ±1 standard error."""
    if (plt := plots.pyplot()) is None:
        return False
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    seeds = 0
    for name in configs:
        rs = [r for r in results if r["config"] == name]
        if not rs:
            continue
        seeds = max(seeds, len(rs))
        n = min(len(r["by_call"]) for r in rs)
        curves = [[r["by_call"][i] for r in rs] for i in range(n)]
        line = _band(a, list(range(n)), curves, name)
        grid = sorted({tok for r in rs for tok, _ in r["by_tokens"]})
        _band(b, grid, [[_at(r["by_tokens"], g) for r in rs] for g in grid], name, line)
    a.set_xlabel("LLM calls")
    b.set_xlabel("tokens (prompt + completion, scratchpad included)")
    for ax in (a, b):
        ax.set_ylabel(f"best score so far (mean of {seeds} seeds ± 1 s.e.)")
        ax.grid(alpha=0.3)
    a.legend(fontsize=8)
    fig.suptitle(f"{problem}: search-feature ablations, embedded SmolLM2-135M")
    plots.save(fig, path)
    return True


def _band(ax: Any, xs: list[float], values: list[list[float]], label: str,
          like: Any = None) -> Any:
    """Draws the mean of each point's values as a step line, with a ±1 s.e. band; returns it."""
    xs = [*xs, xs[-1] + 0.25 * (xs[-1] - xs[0]) / max(1, len(xs) - 1)]
    values = [*values, values[-1]]
    mean = [statistics.mean(v) for v in values]  # (the last point repeated: its step shows)
    se = [statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else 0.0 for v in values]
    kw = {"color": like.get_color()} if like is not None else {}
    (line,) = ax.plot(xs, mean, label=label, drawstyle="steps-post", **kw)
    ax.fill_between(xs, [m - s for m, s in zip(mean, se, strict=True)],
                    [m + s for m, s in zip(mean, se, strict=True)], step="post", alpha=0.12,
                    color=line.get_color())
    return line


def _at(curve: list[tuple[int, float]], tokens: int) -> float:
    """Returns the best score reached within a number of tokens."""
    value = curve[0][1]
    for used, best in curve:
        if used > tokens:
            break
        value = best
    return value
