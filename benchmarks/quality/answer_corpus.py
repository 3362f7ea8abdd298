"""Collects raw completions of the embedded model to the loop's real prompts, once, for replay.

For each problem of the suite and each seed, builds the mutation prompt the engine builds for the
first call (the parent is the problem's initial program, in the answer format the loop would
choose for this model) and asks the embedded SmolLM2 (llama-cpp-python in this process) for
`--calls` completions at the run's temperature and max_tokens. Each completion is written as one
JSON line with its prompt, parent code, format and finish_reason to benchmarks/out/<name>.jsonl,
which benchmarks.quality.answer_yield replays through the answer parser without generating again.
Resumable: lines already in the file are kept and not asked again.

With --from-db URL nothing is generated: the completions the loop stored in a database (every
llm_samples row of every run, with its parent's code and the format its prompt asked for) are
written as the corpus instead -- the loop's real prompts, evolved parents and feedback included.

    .venv/bin/python -m benchmarks.quality.answer_corpus [--problems all] [--calls 2]
        [--seeds 0,1,2] [--threads 1] [--name answer_corpus] [--from-db URL]
        [--format auto|diff|rewrite] [--temperature T] [--close-code]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchmarks.harness.paths import OUT
from benchmarks.quality.suite import suite_problems
from evaluators import tree
from service.config import build_run_config
from service.db import Database
from service.db.models import LLMSampleRow, ProblemRow, ProgramRow, RunRow
from service.edits.apply import choose_format
from service.evolution.prompts import (
    ProgramView,
    PromptContext,
    answer_guard,
    asked_format,
    build_prompt,
)
from service.llm.base import Message, Sampling
from service.llm.llamacpp import LlamaCppBackend
from service.problems.load import Problem, load_problem
from service.settings import Settings


def corpus_path(name: str) -> Path:
    """Returns where the corpus of that name is written."""
    return OUT / f"{name}.jsonl"


def read_corpus(path: Path) -> list[dict[str, Any]]:
    """Returns the records of a corpus file (none when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def prompt_for(problem: Problem, backend: LlamaCppBackend, max_tokens: int,
               answer_format: str | None = None) -> tuple[str, list]:
    """Returns (format, messages) of the engine's first prompt of a run on problem (in the answer
    format given, else the run's)."""
    cfg = build_run_config(problem.run_defaults, source=str(problem.path))
    fmt = choose_format(answer_format or cfg.llm.answer_format, backend.small_model)
    ctx = PromptContext(
        problem_name=problem.name, description=problem.description,
        score_metric=problem.score_metric, direction=problem.direction, fmt=fmt,
        parent=ProgramView(code=problem.initial_code), system_message=cfg.llm.system_message,
        best_known=problem.best_known)
    window = cfg.llm.context_window or backend.context_window
    return fmt, build_prompt(ctx, backend.count_tokens, window - max_tokens - 16)


async def collect(args: argparse.Namespace) -> Path:
    """Asks the model for the missing completions; returns the corpus path."""
    path = corpus_path(args.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["problem"], r["seed"], r["call"]) for r in read_corpus(path)}
    settings = Settings(llm_threads=args.threads)
    base = build_run_config({}).llm
    backend = LlamaCppBackend(base, settings, seed=0)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    try:
        for folder in suite_problems(args.problems):
            problem = load_problem(folder)
            cfg = build_run_config(problem.run_defaults, source=str(problem.path))
            max_tokens = cfg.llm.max_tokens
            fmt, messages = prompt_for(problem, backend, max_tokens, args.format)
            temperature = cfg.llm.temperature if args.temperature is None else args.temperature
            for seed in seeds:
                for call in range(args.calls):
                    if (problem.name, seed, call) in done:
                        continue
                    sampling = Sampling(temperature=temperature, max_tokens=max_tokens,
                                        seed=seed * 1000 + call,
                                        guard=answer_guard(fmt, args.close_code))
                    [[c]] = await backend.generate([messages], 1, sampling)
                    record = {"problem": problem.name, "seed": seed, "call": call, "fmt": fmt,
                              "parent_code": problem.initial_code,
                              "messages": [[m.role, m.content] for m in messages],
                              "text": c.text, "finish_reason": c.finish_reason,
                              "prompt_tokens": c.prompt_tokens,
                              "completion_tokens": c.completion_tokens,
                              "latency_s": round(c.latency_s, 2), "model": c.model,
                              "close_code": args.close_code}
                    with path.open("a") as out:
                        out.write(json.dumps(record) + "\n")
                    print(f"{problem.name} seed {seed} call {call}: {c.completion_tokens} tokens, "
                          f"{c.finish_reason}, {c.latency_s:.1f} s", flush=True)
    finally:
        await backend.aclose()
    return path


def from_db(url: str, name: str) -> Path:
    """Writes the completions stored in a database as the corpus; returns its path."""
    db = Database(url)
    path = corpus_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with db.session() as s, path.open("w") as out:
        rows = s.execute(select(LLMSampleRow, ProgramRow.files, ProblemRow.name, RunRow.seed)
                         .join(ProgramRow, ProgramRow.id == LLMSampleRow.parent_id)
                         .join(RunRow, RunRow.id == LLMSampleRow.run_id)
                         .join(ProblemRow, ProblemRow.id == RunRow.problem_id)
                         .order_by(LLMSampleRow.id))
        for sample, parent_files, problem, seed in rows:
            messages = [Message(m["role"], m["content"]) for m in sample.prompt]
            out.write(json.dumps({
                "problem": problem, "seed": seed, "call": sample.iteration,
                "fmt": asked_format(messages), "parent_code": tree.join(parent_files),
                "messages": [[m.role, m.content] for m in messages], "text": sample.completion,
                "finish_reason": sample.finish_reason, "prompt_tokens": sample.prompt_tokens,
                "completion_tokens": sample.completion_tokens, "latency_s": sample.latency_s,
                "model": sample.model, "run_repair": sample.repair}) + "\n")
    db.close()
    return path


def main() -> None:
    """Parses the arguments and collects the corpus."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="all")
    parser.add_argument("--calls", type=int, default=2, help="completions per problem and seed")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp CPU threads")
    parser.add_argument("--name", default="answer_corpus")
    parser.add_argument("--from-db", help="database URL: write its stored completions instead")
    parser.add_argument("--format", choices=("auto", "diff", "rewrite"), default=None,
                        help="answer format to ask for; default: the run's (auto)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="sampling temperature; default: the run's")
    parser.add_argument("--close-code", action="store_true",
                        help="decode rewrites keeping their code closable (llm.close_code)")
    args = parser.parse_args()
    if args.from_db:
        print(f"corpus: {from_db(args.from_db, args.name)}")
        return
    print(f"corpus: {asyncio.run(collect(args))}")


if __name__ == "__main__":
    main()
