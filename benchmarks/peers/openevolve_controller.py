"""Peer side of perf.controller_overhead: OpenEvolve 0.4.1 bookkeeping per iteration, no LLM/eval.

Runs with the python of benchmarks/.venv-openevolve (openevolve==0.4.1 installed there, nothing
of it in this repository), from the repository root, and prints one JSON object per size:

    benchmarks/.venv-openevolve/bin/python -m benchmarks.peers.openevolve_controller --sizes 1000

It imports nothing of evoforge: only OpenEvolve, the standard library, benchmarks.perf.synthetic
and benchmarks.harness.timing (both standard library only).

Per size N: a ProgramDatabase that keeps every program (population_size = N + iterations, so no
program is dropped, as evoforge's database drops none) is filled with N synthetic programs; then
each timed iteration does what OpenEvolve's controller and worker do around the LLM and the
evaluator: sample a parent and inspirations from an island, take the island's top programs,
build the prompt with its PromptSampler, add the child, log the prompt, count the island's
generation and migrate when due ("core"). Its process-parallel controller (the only one in 0.4.1)
also snapshots the whole database for every iteration and pickles it to a worker, which rebuilds
every Program: those steps are timed separately on the first --snapshot-iterations iterations.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import random
import statistics
import time
import uuid

from openevolve.config import Config
from openevolve.database import Program, ProgramDatabase
from openevolve.process_parallel import ProcessParallelController
from openevolve.prompt.sampler import PromptSampler

from benchmarks.harness.timing import mean_p50_p95_ms
from benchmarks.perf import synthetic


def synthetic_program(i: int, rng: random.Random, parent: Program | None,
                      island: int) -> Program:
    """Returns the i-th synthetic program with a random score."""
    score = rng.random()
    return Program(id=str(uuid.uuid4()), code=synthetic.program(i), language="python",
                   parent_id=parent.id if parent else None,
                   generation=parent.generation + 1 if parent else 0, iteration_found=i,
                   metrics={"combined_score": score, "spread": score / 10},
                   metadata={"changes": "Full rewrite", "island": island})


def fill(db: ProgramDatabase, n: int, rng: random.Random) -> float:
    """Adds n programs round-robin over the islands; returns the seconds it took."""
    started = time.perf_counter()
    ids: list[str] = []
    islands = len(db.islands)
    for i in range(n):
        parent = db.get(rng.choice(ids)) if ids else None
        prog = synthetic_program(i, rng, parent, i % islands)
        db.add(prog, iteration=i, target_island=i % islands)
        ids.append(prog.id)
    return time.perf_counter() - started


def core_iteration(db: ProgramDatabase, sampler: PromptSampler, cfg: Config, it: int,
                   rng: random.Random) -> tuple[Program, list[Program]]:
    """Runs one iteration's bookkeeping; returns (parent, inspirations) it sampled."""
    island = it % len(db.islands)
    parent, insp = db.sample_from_island(island, num_inspirations=cfg.prompt.num_diverse_programs)
    top = db.get_top_programs(n=cfg.prompt.num_top_programs + cfg.prompt.num_diverse_programs,
                              island_idx=island)
    prompt = sampler.build_prompt(
        current_program=parent.code, parent_program=parent.code, program_metrics=parent.metrics,
        previous_programs=[p.to_dict() for p in top[:cfg.prompt.num_top_programs]],
        top_programs=[p.to_dict() for p in top], inspirations=[p.to_dict() for p in insp],
        language="python", evolution_round=it, diff_based_evolution=False,
        feature_dimensions=db.config.feature_dimensions, island_id=island)
    child = synthetic_program(it, rng, parent, island)
    db.add(child, iteration=it, target_island=island)
    db.log_prompt(program_id=child.id, template_key="full_rewrite_user", prompt=prompt,
                  responses=[synthetic.answer(it)])
    db.increment_island_generation(island_idx=island)
    if db.should_migrate():
        db.migrate_programs()
    return parent, insp


def parallel_extras(ctrl: ProcessParallelController, it: int, parent: Program,
                    insp: list[Program]) -> dict[str, float]:
    """Times the snapshot, its pickling and the worker's rebuild for one iteration (seconds)."""
    t0 = time.perf_counter()
    snapshot = ctrl._create_database_snapshot()  # what _submit_iteration does per iteration
    t1 = time.perf_counter()
    blob = pickle.dumps((it, snapshot, parent.id, [p.id for p in insp]), pickle.HIGHEST_PROTOCOL)
    t2 = time.perf_counter()
    _, snap, _, _ = pickle.loads(blob)
    programs = {pid: Program(**d) for pid, d in snap["programs"].items()}
    t3 = time.perf_counter()
    del programs
    return {"snapshot": t1 - t0, "pickle": t2 - t1, "worker_rebuild": t3 - t2,
            "snapshot_mb": len(blob) / 2**20}


def measure(n: int, iterations: int, snapshot_iterations: int, budget_s: float,
            seed: int) -> dict:
    """Returns the peer's setup time and per-iteration costs at n stored programs."""
    rng = random.Random(seed)
    cfg = Config()
    cfg.database.population_size = n + iterations + 1
    cfg.database.random_seed = seed
    db = ProgramDatabase(cfg.database)
    sampler = PromptSampler(cfg.prompt)
    ctrl = ProcessParallelController(cfg, "evaluator.py", db)
    setup_s = fill(db, n, rng)
    core: list[float] = []
    extras: list[dict[str, float]] = []
    started = time.perf_counter()
    for it in range(n, n + iterations):
        t0 = time.perf_counter()
        parent, insp = core_iteration(db, sampler, cfg, it, rng)
        core.append(time.perf_counter() - t0)
        if len(extras) < snapshot_iterations:
            extras.append(parallel_extras(ctrl, it, parent, insp))
        if time.perf_counter() - started > budget_s:
            break

    def pick(key: str) -> list[float]:
        return [e[key] for e in extras]

    return {"n": n, "setup_s": setup_s, "iterations": len(core), "core_ms": mean_p50_p95_ms(core),
            "snapshot_ms": mean_p50_p95_ms(pick("snapshot")),
            "pickle_ms": mean_p50_p95_ms(pick("pickle")),
            "worker_rebuild_ms": mean_p50_p95_ms(pick("worker_rebuild")),
            "snapshot_mb": statistics.fmean(pick("snapshot_mb")) if extras else 0.0,
            "snapshot_iterations": len(extras), "programs_in_memory": len(db.programs),
            "islands": len(db.islands)}


def main() -> None:
    """Parses arguments and prints one JSON line per size."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--snapshot-iterations", type=int, default=5,
                    help="iterations on which the process-parallel snapshot is also timed")
    ap.add_argument("--budget-s", type=float, default=60.0,
                    help="stop a size's timed iterations after this many seconds")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.disable(logging.INFO)  # its per-add INFO logs are off, as evoforge logs none there
    for n in (int(s) for s in args.sizes.split(",")):
        print(json.dumps(measure(n, args.iterations, args.snapshot_iterations, args.budget_s,
                                 args.seed)), flush=True)


if __name__ == "__main__":
    main()
