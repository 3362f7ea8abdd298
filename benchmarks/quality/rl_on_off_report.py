"""quality.rl_on_off's report: the per-run table, the paired summary, the adapters' children set
against RL-off at the same sample positions, the Markdown and the figure."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.harness import plots
from benchmarks.harness.curves import padded

ARMS = ("off", "on")


def position_matched(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Pools, over seeds, the adapters' children and the RL-off children at the same positions."""
    by = {(r["seed"], r["arm"]): r for r in results}
    pooled: dict[str, list[float | None]] = {"adapter": [], "off_same_positions": []}
    for (seed, arm), on in by.items():
        off = by.get((seed, "off"))
        if arm != "on" or off is None or "writer_seq" not in on:
            continue
        for i, w in enumerate(on["writer_seq"]):
            if w == "adapter" and i < len(off["sample_scores"]):
                pooled["adapter"].append(on["sample_scores"][i])
                pooled["off_same_positions"].append(off["sample_scores"][i])
    return {k: {"samples": len(v), "scored": sum(x is not None for x in v),
                "mean_score": statistics.fmean(x for x in v if x is not None)
                if any(x is not None for x in v) else None} for k, v in pooled.items()}


def report(results: list[dict[str, Any]], title: str) -> None:
    """Prints the per-run table, the paired summary and the position-matched comparison."""
    table = Table("seed", "arm", "best", "best @ half", "samples", "base: valid / mean",
                  "training: valid / mean", "adapter: valid / mean", "rounds", "wall s",
                  title=title)
    for r in sorted(results, key=lambda r: (r["seed"], r["arm"])):
        half = r["curve"][len(r["curve"]) // 2 - 1] if r["curve"] else None
        cells = []
        for w in ("base", "training", "adapter"):
            s = r["writers"].get(w)
            cells.append("-" if s is None else f"{s['scored']}/{s['samples']} / "
                         + ("-" if s["mean_score"] is None else f"{s['mean_score']:.3f}"))
        table.add_row(str(r["seed"]), r["arm"], f"{r['best_score']:.4f}",
                      "-" if half is None else f"{half:.4f}", str(len(r["curve"])), *cells,
                      str(len(r.get("adapters", []))), f"{r['wall_s']:.0f}")
    console = Console(width=180)
    console.print(table)
    by = {(r["seed"], r["arm"]): r for r in results}
    seeds = sorted({s for s, a in by if (s, "off") in by and (s, "on") in by})
    if not seeds:
        return
    diffs = [by[s, "on"]["best_score"] - by[s, "off"]["best_score"] for s in seeds]
    summary = Table("arm", "seeds", "best (mean ± sd)", "improved", "mean wall s",
                    title="paired summary (on - off)")
    for arm in ARMS:
        best = [by[s, arm]["best_score"] for s in seeds]
        init = [by[s, arm].get("initial_score") or 0.0 for s in seeds]
        summary.add_row(arm, str(len(seeds)), f"{statistics.fmean(best):.4f} ± "
                        f"{statistics.stdev(best) if len(best) > 1 else 0:.4f}",
                        f"{sum(b > i for b, i in zip(best, init, strict=True))}/{len(seeds)}",
                        f"{statistics.fmean(by[s, arm]['wall_s'] for s in seeds):.0f}")
    console.print(summary)
    wins = sum(d > 0 for d in diffs), sum(d == 0 for d in diffs), sum(d < 0 for d in diffs)
    console.print(f"paired difference in best, on - off: mean {statistics.fmean(diffs):+.4f}, "
                  f"per seed {', '.join(f'{d:+.4f}' for d in diffs)}; wins/ties/losses "
                  f"{wins[0]}/{wins[1]}/{wins[2]}")
    for k, v in position_matched(results).items():
        mean = "-" if v["mean_score"] is None else f"{v['mean_score']:.4f}"
        console.print(f"{k}: {v['scored']}/{v['samples']} valid, mean child score {mean}")


def markdown(results: list[dict[str, Any]]) -> str:
    """Returns the per-run table as Markdown (for docs/benchmarks.md)."""
    n = max((len(r["curve"]) for r in results), default=0)
    head = ["seed", "arm", "best", f"best @ {n // 2}", "base: valid / mean",
            "training: valid / mean", "adapter: valid / mean", "adapters", "wall s", "load avg"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(results, key=lambda r: (r["seed"], r["arm"])):
        half = r["curve"][len(r["curve"]) // 2 - 1] if r["curve"] else None
        cells = []
        for w in ("base", "training", "adapter"):
            st = r["writers"].get(w)
            cells.append("–" if st is None else f"{st['scored']}/{st['samples']} / "
                         + ("–" if st["mean_score"] is None else f"{st['mean_score']:.3f}"))
        lines.append("| " + " | ".join([
            str(r["seed"]), r["arm"], f"{r['best_score']:.4f}",
            "–" if half is None else f"{half:.4f}", *cells, str(len(r.get("adapters", []))),
            f"{r['wall_s']:.0f}", f"{r['load_avg'][0]:.1f}" if "load_avg" in r else "–"]) + " |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Draws best score vs LLM samples per arm (mean, min-max band, seeds); False without mpl."""
    if (plt := plots.pyplot()) is None:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for arm, colour, dash in (("on", "tab:red", "-"), ("off", "tab:blue", "--")):
        runs = [r["curve"] for r in results if r["arm"] == arm and r["curve"]]
        if not runs:
            continue
        curves = padded(runs)
        xs = range(1, len(curves[0]) + 1)
        cols = list(zip(*curves, strict=True))  # padded: one length
        for c in curves:
            ax.step(xs, c, where="post", color=colour, alpha=0.25, lw=0.8)
        ax.fill_between(xs, [min(v) for v in cols], [max(v) for v in cols], step="post",
                        color=colour, alpha=0.12)
        ax.step(xs, [statistics.fmean(v) for v in cols], where="post", color=colour, lw=2.2,
                ls=dash, label=f"RL {arm}: mean of {len(runs)} seeds (band: min-max)")
    for r in results:  # where the RL-on runs trained: ticks along the bottom
        if r["arm"] == "on":
            for i, w in enumerate(r.get("writer_seq", [])):
                if w == "training":
                    ax.plot(i + 1, 0, marker="|", color="tab:red", alpha=0.3,
                            transform=ax.get_xaxis_transform(), ms=8)
    ax.set_xlabel("LLM samples (loop and training-round completions alike; ticks: RL-on "
                  "training-round samples)")
    ax.set_ylabel("best score so far")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    plots.save(fig, path)
    return True
