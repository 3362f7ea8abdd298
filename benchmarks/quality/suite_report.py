"""quality.suite's report: the runs table, per-problem mean / min / max over seeds, their
Markdown and the figure (gap to best known vs LLM calls, and what became of the answers)."""

from __future__ import annotations

from pathlib import Path
from statistics import fmean
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.harness import plots
from benchmarks.harness.store import write_json

COLUMNS = ("problem", "seed", "direction", "initial", "best strict", "tier", "best known",
           "gap", "LLM calls", "tokens", "wall s")
SUMMARY_COLUMNS = ("problem", "seeds", "initial", "best strict mean", "min", "max", "best known",
                   "gap mean", "gap min", "gap max", "improved seeds", "LLM calls", "tokens / run",
                   "wall s / run")


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Returns one summary per problem (in first-seen order) over its finished seeds."""
    out = []
    for problem in dict.fromkeys(r["problem"] for r in rows if "error" not in r):
        runs = [r for r in rows if r["problem"] == problem and "error" not in r]
        best = [r["best_strict"] for r in runs if r["best_strict"] is not None]
        gaps = [r["gap"] for r in runs if r["gap"] is not None]
        maximize = runs[0]["direction"] == "maximize"
        out.append({
            "problem": problem, "seeds": sorted(r["seed"] for r in runs),
            "initial": runs[0]["initial"], "best_known": runs[0]["best_known"],
            "best_mean": fmean(best) if best else None,
            "best_min": min(best, default=None), "best_max": max(best, default=None),
            "gap_mean": fmean(gaps) if gaps else None,
            "gap_min": min(gaps, default=None), "gap_max": max(gaps, default=None),
            "improved": sum(1 for r in runs if _improved(r, maximize)),
            "llm_calls": sorted({r["llm_calls"] for r in runs}),
            "tokens_mean": fmean(r["tokens"] for r in runs),
            "wall_mean": fmean(r["wall_s"] for r in runs),
        })
    return out


def _improved(row: dict[str, Any], maximize: bool) -> bool:
    """Returns True when the re-verified best beats the initial strict score beyond rounding."""
    best, initial = row["best_strict"], row["initial"]
    if best is None or initial is None:
        return False
    margin = (best - initial if maximize else initial - best) / max(abs(initial), 1e-12)
    return margin > 1e-9  # an equivalent rewrite can differ from the initial score in the last ulp


def _num(value: float | None) -> str:
    return "" if value is None else format(value, ".6g")


def _cells(row: dict[str, Any]) -> list[str]:
    f = _num
    return [row["problem"], str(row["seed"]), row["direction"][:3], f(row["initial"]),
            f(row["best_strict"]), row["tier"][:40], f(row["best_known"]),
            "" if row["gap"] is None else f"{100 * row['gap']:.2f} %", str(row["llm_calls"]),
            str(row["tokens"]), f"{row['wall_s']:.0f}"]


def markdown(rows: list[dict[str, Any]]) -> str:
    """Returns the runs as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f} %"


def summary_markdown(summary: list[dict[str, Any]]) -> str:
    """Returns the per-problem summary as a Markdown table."""
    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---|" * len(SUMMARY_COLUMNS)]
    for s in summary:
        cells = [s["problem"], ",".join(map(str, s["seeds"])), _num(s["initial"]),
                 _num(s["best_mean"]), _num(s["best_min"]), _num(s["best_max"]),
                 _num(s["best_known"]), _pct(s["gap_mean"]), _pct(s["gap_min"]),
                 _pct(s["gap_max"]), f"{s['improved']} / {len(s['seeds'])}",
                 ",".join(map(str, s["llm_calls"])), f"{s['tokens_mean']:.0f}",
                 f"{s['wall_mean']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def gap_curve(row: dict[str, Any]) -> list[float | None]:
    """Returns the run's relative gap to the best known value after each LLM call."""
    known, maximize = row["best_known"], row["direction"] == "maximize"
    if not known:
        return []
    return [None if b is None else ((known - b) if maximize else (b - known)) / abs(known)
            for b in row["curve"]]


def answer_fates(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Returns per problem how the LLM answers ended: rejected, not new, failed, valid."""
    fates: dict[str, dict[str, int]] = {}
    for r in rows:
        if "error" in r or not r.get("outcomes"):
            continue
        o, f = r["outcomes"], fates.setdefault(r["problem"], dict.fromkeys(FATES, 0))
        f["rejected before evaluation"] += o.get("rejected", 0) + o.get("too_similar", 0)
        f["duplicate / unchanged"] += o.get("duplicate", 0) + o.get("unchanged", 0)
        f["evaluated, failed"] += r["failed"]
        f["evaluated, valid"] += o.get("child", 0) - r["failed"]
    return fates


FATES = ("rejected before evaluation", "duplicate / unchanged", "evaluated, failed",
         "evaluated, valid")


def plot_suite(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Draws gap to best known vs LLM calls and the answers' fates; False without matplotlib."""
    if (plt := plots.pyplot()) is None:
        return False
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(13, 4.8), width_ratios=(1.2, 1))
    colours = plt.get_cmap("tab10")
    ok = [r for r in rows if "error" not in r]
    for i, problem in enumerate(dict.fromkeys(r["problem"] for r in ok)):
        curves = [c for r in ok if r["problem"] == problem and (c := gap_curve(r))]
        for j, c in enumerate(curves):
            ax.step(range(len(c)), [100 * g if g is not None else None for g in c], where="post",
                    color=colours(i), lw=1.4, alpha=0.75,
                    label=f"{problem} ({len(curves)} seeds)" if j == 0 else None)
    ax.set_xlabel("LLM calls (iterations)")
    ax.set_ylabel("gap to best known, % (0 = reached)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="center right")
    fates = answer_fates(ok)
    names = list(fates)
    left = [0] * len(names)
    for k, fate in enumerate(FATES):
        counts = [fates[n][fate] for n in names]
        bars.barh(names, counts, left=left, color=("tab:red", "tab:grey", "tab:orange",
                                                   "tab:green")[k], label=fate)
        left = [a + b for a, b in zip(left, counts, strict=True)]
    bars.invert_yaxis()
    bars.set_xlabel("LLM answers, all seeds")
    bars.set_title("what became of the answers", fontsize=10)
    bars.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    plots.save(fig, path, dpi=100)
    return True


def write_outputs(rows: list[dict[str, Any]], out: Path, name: str, console: Console) -> None:
    """Prints the tables; writes <name>.json, <name>.md (runs + summary) and <name>.png."""
    ok = [r for r in rows if "error" not in r]
    calls = sorted({r.get("calls", r["llm_calls"]) for r in ok})
    model = next((r["model"] for r in ok if "model" in r), "?")
    title = f"suite: evoforge, {','.join(map(str, calls))} LLM calls per run, {model}"
    table = Table(title=title)
    for col in COLUMNS:
        table.add_column(col, justify="right")
    for r in ok:
        table.add_row(*_cells(r))
    console.print(table)
    summary = summarise(rows)
    totals = Table(title="per problem over seeds")
    for col in SUMMARY_COLUMNS:
        totals.add_column(col, justify="right")
    for line in summary_markdown(summary).splitlines()[2:]:
        totals.add_row(*(c.strip() for c in line.strip("|").split("|")))
    console.print(totals)
    write_json(out / f"{name}.json", rows)
    (out / f"{name}.md").write_text(markdown(ok) + "\n" + summary_markdown(summary))
    plotted = bool(ok) and plot_suite(ok, out / f"{name}.png", title)
    console.print(f"json: {out / f'{name}.json'}  markdown: {out / f'{name}.md'}"
                  + (f"  plot: {out / f'{name}.png'}" if plotted else ""))
    if len(ok) < len(rows):
        raise SystemExit(f"{len(rows) - len(ok)} of {len(rows)} runs failed; see above")
