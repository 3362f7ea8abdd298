"""The vs_openevolve figure: best score vs LLM calls and vs wall time, per problem and system."""

from __future__ import annotations

from pathlib import Path
from statistics import fmean
from typing import Any

COLOURS = {"evoforge": "tab:blue", "openevolve": "tab:orange"}


def plot_curves(rows: list[dict[str, Any]], path: Path) -> bool:
    """Draws one row of two panels per problem; returns False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    problems = list(dict.fromkeys(r["problem"] for r in rows))
    fig, axes = plt.subplots(len(problems), 2, figsize=(11, 3.6 * len(problems)), squeeze=False)
    for (ax_calls, ax_time), problem in zip(axes, problems):
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
            mean = _mean_curve([r["curve"] for r in runs])
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _mean_curve(curves: list[list[float | None]]) -> list[float | None]:
    """Returns the pointwise mean of curves padded with their last value (None until all start)."""
    if not curves:
        return []
    n = max(len(c) for c in curves)
    padded = [c + [c[-1]] * (n - len(c)) for c in curves if c]
    return [None if any(c[i] is None for c in padded) else fmean(c[i] for c in padded)
            for i in range(n)]
