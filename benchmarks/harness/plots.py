"""Figures: matplotlib with the Agg backend (files only), or None when it is not installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any | None:
    """Returns matplotlib.pyplot on the Agg backend, or None without matplotlib (bench extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save(fig: Any, path: Path, dpi: int = 110) -> None:
    """Writes the figure to path (tight layout) and closes it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
