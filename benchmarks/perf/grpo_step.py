"""GRPO + LoRA step time and peak memory on CPU (the embedded SmolLM2-135M), before and after.

Each run is its own process (clean peak RSS): the converted base model, LoRA r=8 on q/k/v/o, a
quickstart-sized prompt, `--steps` GRPO steps with a length reward (varies within a group). Per
config it runs the previous setting (the whole group in one forward/backward: `--micro 0`) and
the current one (one completion per forward/backward, accumulated: micro 1), side by side, and
prints wall and CPU seconds per step, where they went (generation vs the loss's forward and
backward), peak RSS and the load average (the machine's other users move wall times, much less
CPU seconds). Writes benchmarks/out/grpo_step.json.

    nice -n 10 .venv/bin/python -m benchmarks.perf.grpo_step [--steps 1] [--configs 4x256]
        [--micro 0,1] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
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


def one(group: int, tokens: int, steps: int, threads: int, micro: int) -> dict:
    """Runs the GRPO steps in this process; returns times, CPU seconds and peak memory."""
    from service.config import RLConfig
    from service.llm.models import base_model_dir, load_base_model
    from service.rl.grpo import grpo_train

    problem = (PROBLEMS / "quickstart" / "initial_program.py").read_text()
    prompt = [{"role": "user", "content": "Improve this program; answer with the whole program "
               f"in a python code block.\n```python\n{problem}\n```"}]
    rl = RLConfig(group_size=group, max_completion_tokens=tokens, threads=threads)
    model, tokenizer = load_base_model(base_model_dir())
    generated: list[float] = []  # CPU seconds when each batch of completions was scored

    def reward(completions: list, **_: object) -> list[float]:
        generated.append(time.process_time())
        return [len(c[0]["content"]) / 100 for c in completions]

    start, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as work:
        grpo_train(model, tokenizer, [{"prompt": prompt}] * steps, reward, rl, steps, Path(work),
                   micro_batch=micro or group)
    total, cpu_total = time.perf_counter() - start, time.process_time() - cpu
    return {"group": group, "tokens": tokens, "threads": threads, "steps": steps,
            "micro": micro or group, "s_per_step": total / steps,
            "cpu_s_per_step": cpu_total / steps,
            "generate_cpu_s": (generated[0] - cpu) if generated else None,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "load": os.getloadavg()[0]}


def main() -> None:
    """Runs every config and setting in a subprocess and prints the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--configs", default="4x256",
                    help="completions x tokens per completion, comma-separated (e.g. 4x48,8x48)")
    ap.add_argument("--micro", default="0,1", help="completions per forward/backward to compare "
                    "(0: the whole group, the previous setting)")
    ap.add_argument("--threads", default="1", help="torch threads to compare, comma-separated")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        group, tokens, threads, micro = map(int, args.one.split(","))
        print(json.dumps(one(group, tokens, args.steps, threads, micro)))
        return
    rows = []
    for threads in map(int, args.threads.split(",")):
        for config in args.configs.split(","):
            group, tokens = map(int, config.split("x"))
            for micro in map(int, args.micro.split(",")):
                proc = subprocess.run([sys.executable, "-m", "benchmarks.perf.grpo_step",
                                       "--steps", str(args.steps),
                                       "--one", f"{group},{tokens},{threads},{micro}"],
                                      capture_output=True, text=True, check=False, cwd=ROOT)
                if proc.returncode != 0:
                    raise RuntimeError(f"config {config}: {proc.stderr[-2000:]}")
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    Console(width=180).print(table(rows, args.steps))
    write_json(out_file("grpo_step.json"), rows)


def table(rows: list[dict], steps: int) -> Table:
    """Returns the table: a row per run, its ratios against the config's first run."""
    out = Table("completions x tokens", "micro-batch", "threads", "s / step", "CPU s / step",
                "of which init + generation", "peak RSS MB", "CPU ratio", "RSS ratio", "load",
                title=f"GRPO + LoRA r=8 (q,k,v,o) on CPU, SmolLM2-135M, {steps} step(s)")
    first: dict[tuple, dict] = {}
    for r in rows:
        ref = first.setdefault((r["group"], r["tokens"], r["threads"]), r)
        gen = r["generate_cpu_s"]
        out.add_row(f"{r['group']} x {r['tokens']}", str(r["micro"]), str(r["threads"]),
                    f"{r['s_per_step']:.1f}", f"{r['cpu_s_per_step']:.1f}",
                    "-" if gen is None else f"{gen:.1f}", f"{r['peak_rss_mb']:.0f}",
                    f"{r['cpu_s_per_step'] / ref['cpu_s_per_step']:.2f}",
                    f"{r['peak_rss_mb'] / ref['peak_rss_mb']:.2f}", f"{r['load']:.1f}")
    return out


if __name__ == "__main__":
    main()
