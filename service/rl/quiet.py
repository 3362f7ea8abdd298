"""Keeps a terminal readable during an RL round: the trainer libraries' own output (transformers'
weight-loading bars and warnings, TRL's and PEFT's notices, FutureWarnings, the raw metric dict
of every step) goes to a log file under the run's home instead."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

# loggers whose records go to the file (and only there) while a round runs
LOGGERS = ("transformers", "trl", "peft", "accelerate", "datasets", "huggingface_hub", "torch",
           "py.warnings", "evoforge.rl.steps")
STEPS = "evoforge.rl.steps"  # the logger each step's metric dict is written to
_lock = threading.Lock()  # one round at a time per process may own the loggers


def round_log(home: Path, run_id: int) -> Path:
    """Returns the file a run's RL rounds write their libraries' output to."""
    return (home / "runs" / str(run_id) / "rl.log").resolve()


@contextlib.contextmanager
def trainer_output_to(path: Path) -> Iterator[None]:
    """Routes the trainer libraries' logging, Python warnings, their progress bars' absence and
    stray prints on stdout to path for the duration; restores everything after."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock, path.open("a") as stream:
        bars = _progress_bars(False)  # first: it sets transformers' own handler up, to replace
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        saved = []
        for name in LOGGERS:
            logger = logging.getLogger(name)
            saved.append((logger, logger.handlers[:], logger.propagate, logger.level))
            logger.handlers, logger.propagate = [handler], False
            logger.setLevel(logging.INFO)
        logging.captureWarnings(True)
        try:
            with contextlib.redirect_stdout(stream):
                yield
        finally:
            logging.captureWarnings(False)
            _progress_bars(bars)
            for logger, handlers, propagate, level in saved:
                logger.handlers, logger.propagate = handlers, propagate
                logger.setLevel(level)


def _progress_bars(on: bool) -> bool:
    """Turns transformers' and the Hub's tqdm bars on or off; returns whether they were on."""
    try:
        from huggingface_hub.utils import (
            are_progress_bars_disabled,
            disable_progress_bars,
            enable_progress_bars,
        )
        from transformers.utils import logging as hf_logging
    except ImportError:  # the rl extra is not installed: no bars to silence
        return False
    hf_logging.get_verbosity()  # configures the library's root logger now, not mid-round
    was = hf_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()
    if on:
        hf_logging.enable_progress_bar()
        enable_progress_bars()
    else:
        hf_logging.disable_progress_bar()
        disable_progress_bars()
    return was
