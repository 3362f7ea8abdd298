"""vs_openevolve's report: per-run and summary tables (means over seeds, ratios to the peer), their
Markdown, and the figure of best score vs LLM calls and vs wall time per problem and system."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.harness import plots
from benchmarks.harness.curves import mean_curve
from benchmarks.harness.stats import paired_stats, sign_test

SYSTEMS = ("evoforge", "openevolve")
COLOURS = {"evoforge": "tab:blue", "openevolve": "tab:orange"}


def per_iteration_ms(r: dict[str, Any]) -> float | None:
    """Returns (wall time - LLM busy time) / iterations in ms: everything but the LLM."""
    iters = max(r.get("iterations") or 0, 1)
    return 1e3 * (r["wall_s"] - r["llm_busy_s"]) / iters


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Returns one row per (problem, system): means over seeds and ratios to the peer."""
    out: list[dict[str, Any]] = []
    for problem in dict.fromkeys(r["problem"] for r in rows):
        group = {s: [r for r in rows if r["problem"] == problem and r["system"] == s]
                 for s in SYSTEMS}
        for system, runs in group.items():
            if not runs:
                continue
            strict = [r["best_strict"] for r in runs if r["best_strict"] is not None]
            out.append({
                "problem": problem, "system": system, "seeds": len(runs),
                "best_strict_mean": statistics.fmean(strict) if strict else None,
                "best_strict_sd": statistics.stdev(strict) if len(strict) > 1 else 0.0,
                "best_strict_max": (max if runs[0]["direction"] == "maximize" else min)(strict)
                if strict else None,
                "initial_strict": runs[0]["initial_strict"],
                "improved": sum(_improved(r) for r in runs),
                **{k: statistics.fmean(r[k] for r in runs) for k in
                   ("llm_calls", "tokens", "wall_s", "llm_busy_s", "distinct_completions")},
                "eval_s": _mean(r["eval_s_mean"] for r in runs),
                "iter_overhead_ms": _mean(per_iteration_ms(r) for r in runs),
            })
    for row in out:
        peer = next((o for o in out if o["problem"] == row["problem"]
                     and o["system"] == "openevolve"), None)
        for key in ("eval_s", "iter_overhead_ms", "wall_s", "tokens"):
            ok = peer and row[key] is not None and peer[key]
            row[f"{key}_ratio"] = row[key] / peer[key] if ok else None
    return out


def paired(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Returns per problem the paired comparison over the seeds both systems ran: evoforge's best
    minus OpenEvolve's (signed so that > 0 is better for evoforge), its mean, 95 % paired
    bootstrap interval and sign test, the share of seeds each system improved, and McNemar's exact
    test on those (the seeds only one of the two improved)."""
    out = []
    for problem in dict.fromkeys(r["problem"] for r in rows):
        runs = {(r["system"], r["seed"]): r for r in rows if r["problem"] == problem}
        seeds = sorted(s for (system, s) in runs if system == "evoforge"
                       and ("openevolve", s) in runs)
        pairs = [(runs["evoforge", s], runs["openevolve", s]) for s in seeds]
        pairs = [(a, b) for a, b in pairs if a["best_strict"] is not None
                 and b["best_strict"] is not None]
        if not pairs:
            continue
        sign = 1.0 if pairs[0][0]["direction"] == "maximize" else -1.0
        stats = paired_stats([sign * (a["best_strict"] - b["best_strict"]) for a, b in pairs])
        only = {system: sum(_improved(p[i]) and not _improved(p[1 - i]) for p in pairs)
                for i, system in enumerate(SYSTEMS)}  # seeds one system improved, the other not
        out.append({"problem": problem, "seeds": len(pairs), **stats, "improved_only": only,
                    "improved_p": sign_test(only["evoforge"], only["openevolve"]),
                    "improved": {system: sum(_improved(p[i]) for p in pairs)
                                 for i, system in enumerate(SYSTEMS)},
                    "mean_best": {system: statistics.fmean(p[i]["best_strict"] for p in pairs)
                                  for i, system in enumerate(SYSTEMS)}})
    return out


def paired_lines(pairs: list[dict[str, Any]]) -> list[str]:
    """Returns the paired comparison as Markdown table lines."""
    head = ["problem", "paired seeds", "improved: evoforge", "improved: OpenEvolve",
            "mean best: evoforge", "mean best: OpenEvolve", "mean difference", "95 % paired CI",
            "evoforge better / tie / worse", "sign test p",
            "improved by one only: evoforge / OpenEvolve", "McNemar p"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in pairs:
        low, high = p["ci"]
        lines.append("| " + " | ".join([
            p["problem"], str(p["seeds"]), f"{p['improved']['evoforge']}/{p['seeds']}",
            f"{p['improved']['openevolve']}/{p['seeds']}", _f(p["mean_best"]["evoforge"]),
            _f(p["mean_best"]["openevolve"]), f"{p['mean']:+.4f}", f"[{low:+.4f}, {high:+.4f}]",
            f"{p['wins']} / {p['ties']} / {p['losses']}", f"{p['sign_p']:.3f}",
            f"{p['improved_only']['evoforge']} / {p['improved_only']['openevolve']}",
            f"{p['improved_p']:.3f}"]) + " |")
    return lines


def _improved(r: dict[str, Any]) -> bool:
    a, b = r["best_strict"], r["initial_strict"]
    if a is None or b is None:
        return False
    return a > b if r["direction"] == "maximize" else a < b


def _mean(values: Any) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def _f(v: float | None, fmt: str = ".4f") -> str:
    return "" if v is None else format(v, fmt)


def print_tables(rows: list[dict[str, Any]], summ: list[dict[str, Any]], console: Console) -> None:
    """Prints the per-run table and the summary table."""
    t = Table(title="per run (LLM calls and tokens counted at the proxy; strict = `evoforge eval`)")
    for col in ("problem", "system", "seed", "initial", "best reported", "best strict",
                "LLM calls", "tokens", "distinct", "wall s", "LLM busy s", "eval s",
                "iter ms"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(r["problem"], r["system"], str(r["seed"]), _f(r["initial_strict"]),
                  _f(r["best_reported"]), _f(r["best_strict"]) or r["strict_status"],
                  str(r["llm_calls"]), str(r["tokens"]), str(r["distinct_completions"]),
                  _f(r["wall_s"], ".0f"), _f(r["llm_busy_s"], ".0f"), _f(r["eval_s_mean"], ".3f"),
                  _f(per_iteration_ms(r), ".0f"))
    console.print(t)
    s = Table(title="summary: means over seeds; ratio = evoforge ÷ openevolve (< 1: evoforge less)")
    for col in ("problem", "system", "seeds", "best strict", "± sd", "best", "improved",
                "LLM calls", "tokens", "wall s", "eval s", "÷", "iter ms", "÷"):
        s.add_column(col, justify="right")
    for r in summ:
        s.add_row(r["problem"], r["system"], str(r["seeds"]), _f(r["best_strict_mean"]),
                  _f(r["best_strict_sd"]), _f(r["best_strict_max"]),
                  f"{r['improved']}/{r['seeds']}", _f(r["llm_calls"], ".1f"),
                  _f(r["tokens"], ".0f"), _f(r["wall_s"], ".0f"), _f(r["eval_s"], ".3f"),
                  _f(r["eval_s_ratio"], ".2f"), _f(r["iter_overhead_ms"], ".0f"),
                  _f(r["iter_overhead_ms_ratio"], ".2f"))
    console.print(s)
    for line in paired_lines(paired(rows)):
        console.print(line, markup=False)


def markdown(rows: list[dict[str, Any]], summ: list[dict[str, Any]]) -> str:
    """Returns the per-run and summary tables as Markdown (for docs/benchmarks.md)."""
    head = ["problem", "system", "seed", "initial", "best strict", "LLM calls", "tokens",
            "distinct", "wall s", "LLM busy s", "eval s", "iter ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["problem"], r["system"], str(r["seed"]), _f(r["initial_strict"]),
            _f(r["best_strict"]) or r["strict_status"], str(r["llm_calls"]), str(r["tokens"]),
            str(r["distinct_completions"]), _f(r["wall_s"], ".0f"), _f(r["llm_busy_s"], ".0f"),
            _f(r["eval_s_mean"], ".3f"), _f(per_iteration_ms(r), ".0f")]) + " |")
    head = ["problem", "system", "seeds", "best strict (mean ± sd)", "improved", "tokens",
            "wall s", "eval s", "÷ peer", "iter ms", "÷ peer"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summ:
        lines.append("| " + " | ".join([
            r["problem"], r["system"], str(r["seeds"]),
            f"{_f(r['best_strict_mean'])} ± {_f(r['best_strict_sd'])}",
            f"{r['improved']}/{r['seeds']}", _f(r["tokens"], ".0f"), _f(r["wall_s"], ".0f"),
            _f(r["eval_s"], ".3f"), _f(r["eval_s_ratio"], ".2f"), _f(r["iter_overhead_ms"], ".0f"),
            _f(r["iter_overhead_ms_ratio"], ".2f")]) + " |")
    if pairs := paired(rows):
        lines += ["", *paired_lines(pairs)]
    return "\n".join(lines) + "\n"


def plot_curves(rows: list[dict[str, Any]], path: Path) -> bool:
    """Draws one row of two panels per problem; returns False when matplotlib is missing."""
    if (plt := plots.pyplot()) is None:
        return False
    problems = list(dict.fromkeys(r["problem"] for r in rows))
    fig, axes = plt.subplots(len(problems), 2, figsize=(11, 3.6 * len(problems)), squeeze=False)
    for (ax_calls, ax_time), problem in zip(axes, problems, strict=True):
        for system, colour in COLOURS.items():
            runs = [r for r in rows if r["problem"] == problem and r["system"] == system]
            for r in runs:
                ax_calls.step(range(len(r["curve"])), r["curve"], where="post", color=colour,
                              alpha=0.3, lw=1)
                pts = r["time_curve"]
                if pts:
                    xs = [p[0] for p in pts] + [r["wall_s"]]
                    ax_time.step(xs, [p[1] for p in pts] + [pts[-1][1]], where="post",
                                 color=colour, alpha=0.6, lw=1)
            mean = mean_curve([r["curve"] for r in runs])
            if mean:
                ax_calls.step(range(len(mean)), mean, where="post", color=colour, lw=2.2,
                              label=f"{system} (mean of {len(runs)} seeds)")
        known = next((r["best_known"] for r in rows if r["problem"] == problem), None)
        for ax in (ax_calls, ax_time):
            if known is not None:
                ax.axhline(known, color="grey", ls=":", lw=1, label="best known")
            ax.set_ylabel(f"{problem}: best score")
        ax_calls.set_xlabel("LLM calls (iterations)")
        ax_time.set_xlabel("wall time, s (each seed)")
        ax_calls.legend(fontsize=8)
    fig.suptitle(f"evoforge vs OpenEvolve, same model and endpoint ({Path(rows[0]['model']).name})")
    plots.save(fig, path)
    return True
