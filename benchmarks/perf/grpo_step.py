"""GRPO + LoRA step time and peak memory on CPU (the embedded SmolLM2-135M), before and after.

Each run is its own process (clean peak RSS): the converted base model, LoRA r=8 on q/k/v/o, a
quickstart-sized prompt, `--steps` GRPO steps with a length reward (varies within a group). Per
config it runs each completion writer (`--generators`: HF generate, the previous one, and
llama.cpp on the GGUF with the trainer's LoRA, rl.generator) and each micro-batch (`--micro`:
0 = the whole group in one forward/backward, the earlier setting; 1 = one completion at a time,
accumulated) side by side, and prints wall and CPU seconds per step (process CPU: llama.cpp's
threads are in-process, so counted), where they went (init + generation vs the loss's forward
and backward), peak RSS and the load average (the machine's other users move wall times, much
less CPU seconds). Writes benchmarks/out/grpo_step.json.

    nice -n 10 .venv/bin/python -m benchmarks.perf.grpo_step [--steps 1] [--configs 4x256]
        [--generators transformers,llama_cpp] [--micro 1] [--threads 1]
    nice -n 10 .venv/bin/python -m benchmarks.perf.grpo_step --configs 4x256 --gen-threads 1,2
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


def quickstart_prompt() -> list[dict[str, str]]:
    """Returns a quickstart-sized chat prompt."""
    problem = (PROBLEMS / "quickstart" / "initial_program.py").read_text()
    return [{"role": "user", "content": "Improve this program; answer with the whole program "
             f"in a python code block.\n```python\n{problem}\n```"}]


def one(group: int, tokens: int, steps: int, threads: int, micro: int, generator: str) -> dict:
    """Runs the GRPO steps in this process; returns times, CPU seconds and peak memory."""
    from service.config import RLConfig
    from service.llm.models import base_model_dir, default_model_path, load_base_model
    from service.rl.grpo import grpo_train

    prompt = quickstart_prompt()
    rl = RLConfig(group_size=group, max_completion_tokens=tokens, threads=threads,
                  generator=generator)
    model, tokenizer = load_base_model(base_model_dir())
    generated: list[float] = []  # CPU seconds when each batch of completions was scored

    completion_tokens: list[int] = []  # tokens written per step (an early end-of-text is cheaper)

    def reward(completions: list, completion_ids: list, **_: object) -> list[float]:
        generated.append(time.process_time())
        completion_tokens.append(sum(len(c) for c in completion_ids))
        return [len(c[0]["content"]) / 100 for c in completions]

    start, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as work:
        grpo_train(model, tokenizer, [{"prompt": prompt}] * steps, reward, rl, steps, Path(work),
                   micro_batch=micro or group, gguf=default_model_path())
    total, cpu_total = time.perf_counter() - start, time.process_time() - cpu
    return {"group": group, "tokens": tokens, "threads": threads, "steps": steps,
            "generator": generator, "completion_tokens": completion_tokens,
            "micro": micro or group, "s_per_step": total / steps,
            "cpu_s_per_step": cpu_total / steps,
            "generate_cpu_s": (generated[0] - cpu) if generated else None,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "load": os.getloadavg()[0]}


def generation_only(group: int, tokens: int, threads: int) -> dict:
    """Samples one group with llama.cpp (a fresh LoRA applied) on `threads` threads; returns
    wall and CPU seconds and the tokens written."""
    from peft import get_peft_model

    from service.config import RLConfig
    from service.llm.models import base_model_dir, default_model_path, load_base_model
    from service.rl.generation import LlamaCppRollout, lora_of
    from service.rl.grpo import lora_config

    model, tokenizer = load_base_model(base_model_dir())
    ids = tokenizer.apply_chat_template(quickstart_prompt(), add_generation_prompt=True,
                                        tokenize=True, return_dict=True)["input_ids"]
    with tempfile.TemporaryDirectory() as work:
        rollout = LlamaCppRollout(default_model_path(), Path(work), threads)
        rollout.set_lora(*lora_of(get_peft_model(model, lora_config(RLConfig()))))
        start, cpu = time.perf_counter(), time.process_time()
        # no end-of-text: every completion writes `tokens` (comparable across thread counts)
        out = rollout.sample(ids, group, tokens, 1.0, set(), [0])
        wall, cpu_s = time.perf_counter() - start, time.process_time() - cpu
        rollout.close()
    return {"group": group, "tokens": tokens, "threads": threads, "wall_s": wall, "cpu_s": cpu_s,
            "written": sum(len(c) for c, _ in out), "prompt": len(ids),
            "load": os.getloadavg()[0]}


def main() -> None:
    """Runs every config and setting in a subprocess and prints the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--configs", default="4x256",
                    help="completions x tokens per completion, comma-separated (e.g. 4x48,8x48)")
    ap.add_argument("--micro", default="1", help="completions per forward/backward to compare "
                    "(0: the whole group, the earlier setting)")
    ap.add_argument("--generators", default="transformers,llama_cpp",
                    help="rl.generator values to compare (transformers: HF generate, the earlier)")
    ap.add_argument("--threads", default="1", help="torch threads to compare, comma-separated")
    ap.add_argument("--gen-threads", help="instead: llama.cpp generation alone (one group of "
                    "each config) with these thread counts, comma-separated (e.g. 1,2)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--gen-one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.gen_one:
        print(json.dumps(generation_only(*map(int, args.gen_one.split(",")))))
        return
    if args.gen_threads:
        gen_threads(args.configs, args.gen_threads)
        return
    if args.one:
        group, tokens, threads, micro, generator = args.one.split(",")
        print(json.dumps(one(int(group), int(tokens), args.steps, int(threads), int(micro),
                             generator)))
        return
    rows = []
    for threads in map(int, args.threads.split(",")):
        for config in args.configs.split(","):
            group, tokens = map(int, config.split("x"))
            for generator in args.generators.split(","):
                for micro in map(int, args.micro.split(",")):
                    one_args = f"{group},{tokens},{threads},{micro},{generator}"
                    proc = subprocess.run(
                        [sys.executable, "-m", "benchmarks.perf.grpo_step", "--steps",
                         str(args.steps), "--one", one_args],
                        capture_output=True, text=True, check=False, cwd=ROOT)
                    if proc.returncode != 0:
                        raise RuntimeError(f"config {config}: {proc.stderr[-2000:]}")
                    rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    Console(width=180).print(table(rows, args.steps))
    write_json(out_file("grpo_step.json"), rows)


def gen_threads(configs: str, threads: str) -> None:
    """Runs llama.cpp generation alone per config and thread count; prints its table."""
    out = Table("completions x tokens", "prompt tokens", "threads", "wall s", "CPU s",
                "tokens written", "CPU ms / token", "wall ms / token", "load",
                title="llama.cpp generation alone (GRPO rollout, SmolLM2-135M Q4_1 + LoRA r=8)")
    for config in configs.split(","):
        for n in threads.split(","):
            proc = subprocess.run([sys.executable, "-m", "benchmarks.perf.grpo_step",
                                   "--gen-one", f"{config.replace('x', ',')},{n}"],
                                  capture_output=True, text=True, check=False, cwd=ROOT)
            if proc.returncode != 0:
                raise RuntimeError(f"config {config}: {proc.stderr[-2000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            out.add_row(config, str(r["prompt"]), n, f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}",
                        str(r["written"]), f"{1000 * r['cpu_s'] / r['written']:.1f}",
                        f"{1000 * r['wall_s'] / r['written']:.1f}", f"{r['load']:.1f}")
    Console(width=180).print(out)


def table(rows: list[dict], steps: int) -> Table:
    """Returns the table: a row per run, its ratios against the config's first run."""
    out = Table("completions x tokens", "generator", "micro-batch", "threads", "s / step",
                "CPU s / step", "of which init + generation", "tokens written / step",
                "peak RSS MB", "CPU ratio", "RSS ratio", "load",
                title=f"GRPO + LoRA r=8 (q,k,v,o) on CPU, SmolLM2-135M, {steps} step(s)")
    first: dict[tuple, dict] = {}
    for r in rows:
        ref = first.setdefault((r["group"], r["tokens"], r["threads"]), r)
        gen = r["generate_cpu_s"]
        written = r["completion_tokens"]
        out.add_row(f"{r['group']} x {r['tokens']}", r["generator"], str(r["micro"]),
                    str(r["threads"]), f"{r['s_per_step']:.1f}", f"{r['cpu_s_per_step']:.1f}",
                    "-" if gen is None else f"{gen:.1f}",
                    f"{sum(written) / max(len(written), 1):.0f}", f"{r['peak_rss_mb']:.0f}",
                    f"{r['cpu_s_per_step'] / ref['cpu_s_per_step']:.2f}",
                    f"{r['peak_rss_mb'] / ref['peak_rss_mb']:.2f}", f"{r['load']:.1f}")
    return out


if __name__ == "__main__":
    main()
