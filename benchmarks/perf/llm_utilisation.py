"""LLM utilisation: completion tokens/s through the evolution loop ÷ tokens/s of the bare backend.

Runs the real engine on a problem with the embedded llama.cpp backend for N iterations, then
replays the very same prompts (same messages, same sampling, same seeds) straight on a fresh
backend in the same command, and prints both rates and their ratio. Target: ratio >= 0.9.

    .venv/bin/python -m benchmarks.perf.llm_utilisation [--problem problems/quickstart] \
        [--iterations 12]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from benchmarks.harness.evoforge import run_in_process
from benchmarks.harness.paths import PROBLEMS
from benchmarks.harness.store import out_file, write_json
from service.config import LLMConfig
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow, RunRow
from service.evolution.prompts import answer_done, asked_format
from service.llm.base import Message, Sampling
from service.llm.factory import make_backend
from service.problems.load import load_problem
from service.runs import run_config_for
from service.settings import Settings


def loop_rate(problem_dir: Path, iterations: int, seed: int, home: Path) -> tuple[dict, list]:
    """Runs the engine; returns its figures and the (messages, sampling) of every LLM call."""
    problem = load_problem(problem_dir)
    cfg = run_config_for(problem, None, {"budget": {"iterations": iterations}, "seed": seed})
    finished = run_in_process(problem, cfg, home)
    run_id = finished.run_id
    with finished.session() as s:
        run = s.get(RunRow, run_id)
        initial_done = s.scalar(select(EvaluationRow.finished_at).join(
            ProgramRow, ProgramRow.id == EvaluationRow.program_id).where(
            ProgramRow.run_id == run_id, ProgramRow.kind == "initial"))
        rows = list(s.scalars(select(LLMSampleRow).where(LLMSampleRow.run_id == run_id)
                              .order_by(LLMSampleRow.id)))
    calls = []
    for call_index, row in enumerate(rows):
        messages = [Message(m["role"], m["content"]) for m in row.prompt]
        stop = answer_done if asked_format(messages) == "rewrite" else None  # as the loop
        sampling = Sampling(temperature=cfg.llm.temperature, top_p=cfg.llm.top_p,
                            max_tokens=cfg.llm.max_tokens, seed=seed * 1_000_003 + call_index,
                            stop_when=stop)
        calls.append((messages, sampling))
    tokens = sum(r.completion_tokens for r in rows)
    llm_time = sum(r.latency_s for r in rows)
    loop_s = (run.finished_at - initial_done).total_seconds()  # from the first LLM call to the end
    return {"loop_s": loop_s, "tokens": tokens, "llm_busy_s": llm_time,
            "evaluations": run.evaluations, "iterations": run.iterations}, calls


def bare_rate(calls: list, settings: Settings, cfg_llm: LLMConfig) -> dict:
    """Replays the calls on a fresh backend, one after another; returns tokens and time."""
    backend = make_backend(cfg_llm, settings)

    async def replay() -> tuple[int, float]:
        tokens, started = 0, time.monotonic()
        for messages, sampling in calls:
            batch = await backend.generate([messages], 1, sampling)
            tokens += batch[0][0].completion_tokens
        elapsed = time.monotonic() - started
        await backend.aclose()
        return tokens, elapsed

    tokens, elapsed = asyncio.run(replay())
    return {"tokens": tokens, "wall_s": elapsed}


def main() -> None:
    """Runs both measurements and prints the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", type=Path, default=PROBLEMS / "quickstart")
    ap.add_argument("--iterations", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        console.print(f"loop: {args.iterations} iterations of {args.problem.name} ...")
        loop, calls = loop_rate(args.problem, args.iterations, args.seed, home)
        problem = load_problem(args.problem)
        cfg = run_config_for(problem, None, {})
        console.print(f"bare backend: replaying {len(calls)} prompts ...")
        bare = bare_rate(calls, Settings(home=home), cfg.llm)
    loop_time = loop["loop_s"]
    loop_tps = loop["tokens"] / loop_time
    bare_tps = bare["tokens"] / bare["wall_s"]
    table = Table(title=f"LLM utilisation on {args.problem.name} (target >= 0.9)")
    for col in ("path", "completion tokens", "seconds", "tokens/s", "ratio"):
        table.add_column(col, justify="right")
    table.add_row("bare backend (same prompts, seeds)", str(bare["tokens"]),
                  f"{bare['wall_s']:.1f}", f"{bare_tps:.1f}", "1.00")
    table.add_row(f"evolution loop ({loop['evaluations']} evaluations)", str(loop["tokens"]),
                  f"{loop_time:.1f}", f"{loop_tps:.1f}", f"{loop_tps / bare_tps:.2f}")
    console.print(table)
    console.print(f"LLM busy {loop['llm_busy_s']:.1f} s of {loop_time:.1f} s in the loop "
                  f"({loop['llm_busy_s'] / loop_time:.0%}); timed from the end of the initial "
                  "evaluation to the end of the run.")
    write_json(out_file("llm_utilisation.json"),
               {"loop": loop, "bare": bare, "ratio": loop_tps / bare_tps}, indent=2)


if __name__ == "__main__":
    main()
