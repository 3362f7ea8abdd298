"""GRPO + LoRA step time and peak memory on CPU for fixed configs (the embedded SmolLM2-135M).

Each config runs in its own process (clean peak-RSS): the converted base model, LoRA r=8 on
q/k/v/o, a quickstart-sized prompt, `--steps` GRPO steps with a length reward (varies within a
group). Prints a table and writes benchmarks/out/grpo_step.json.

    nice -n 10 .venv/bin/python -m benchmarks.perf.grpo_step [--steps 3] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.harness.paths import PROBLEMS, ROOT
from benchmarks.harness.store import out_file, write_json

CONFIGS = [(4, 48), (4, 128), (8, 48)]  # (completions per group, tokens per completion)


def one(group: int, tokens: int, steps: int, threads: int) -> dict:
    """Runs the GRPO steps in this process; returns step times and peak memory."""
    from service.config import RLConfig
    from service.llm.models import base_model_dir, load_base_model
    from service.rl.grpo import grpo_train

    problem = (PROBLEMS / "quickstart" / "initial_program.py").read_text()
    prompt = [{"role": "user", "content": "Improve this program; answer with the whole program "
               f"in a python code block.\n```python\n{problem}\n```"}]
    rl = RLConfig(group_size=group, max_completion_tokens=tokens, threads=threads)
    model, tokenizer = load_base_model(base_model_dir())
    times: list[float] = []

    def reward(completions: list, **_: object) -> list[float]:
        times.append(time.perf_counter())
        return [len(c[0]["content"]) / 100 for c in completions]

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        grpo_train(model, tokenizer, [{"prompt": prompt}] * steps, reward, rl, steps, Path(work))
    total = time.perf_counter() - start
    return {"group": group, "tokens": tokens, "threads": threads, "steps": steps,
            "s_per_step": total / steps, "total_s": total,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    """Runs every config in a subprocess and prints the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="torch threads to compare, comma-separated")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        group, tokens, threads = map(int, args.one.split(","))
        print(json.dumps(one(group, tokens, args.steps, threads)))
        return
    rows = []
    for threads in map(int, args.threads.split(",")):
        for group, tokens in CONFIGS:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.perf.grpo_step",
                                   "--steps", str(args.steps),
                                   "--one", f"{group},{tokens},{threads}"],
                                  capture_output=True, text=True, check=False, cwd=ROOT)
            if proc.returncode != 0:
                raise RuntimeError(f"config {group}x{tokens}: {proc.stderr[-2000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    table = Table("completions x tokens", "threads", "s / step", "peak RSS MB",
                  title=f"GRPO + LoRA r=8 (q,k,v,o) on CPU, SmolLM2-135M, {args.steps} steps")
    for r in rows:
        table.add_row(f"{r['group']} x {r['tokens']}", str(r["threads"]),
                      f"{r['s_per_step']:.1f}", f"{r['peak_rss_mb']:.0f}")
    Console(width=180).print(table)
    write_json(out_file("grpo_step.json"), rows)


if __name__ == "__main__":
    main()
