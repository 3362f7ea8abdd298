"""The code guard through a server: answers whose code breaks a bracket or a string, without and
with the guard's grammar (llm.close_code; service/edits/closable_grammar.py), in one command.

One rewrite prompt, `--seeds` seeds x `--n` answers at a high temperature (1.2: the small model
breaks brackets there), through the openai backend, the two arms alternated `--rounds` times on
the same server. Broken: the lexer refuses the answer's code, or the answer stopped inside a
bracket or string (service/edits/closable.py). The server: the embedded SmolLM2 behind
llama-cpp-python's (started here), `--vllm` (vLLM's CPU build serving the converted SmolLM2,
started here from benchmarks/.venv-vllm: `bash benchmarks/vllm/setup.sh`), or `--url`.

    .venv/bin/python -m benchmarks.quality.remote_guard [--vllm | --url URL] [--seeds 6] [--n 6]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.harness.llm_server import endpoint, free_port
from benchmarks.vllm.server import VENV, VllmServer
from service.config import LLMConfig
from service.edits.closable import PYTHON_BLOCK, Lexer, feed
from service.llm.base import Completion, Message, Sampling
from service.llm.models import base_model_dir
from service.llm.openai_compat import OpenAICompatBackend

REWRITE = [Message("user", "Rewrite this function so it returns more points, in one ```python "
                   "block:\n```python\ndef points(n):\n    return [(i / n, (i * i) % n / n) "
                   "for i in range(n)]\n```")]


def broken(answer: Completion) -> bool:
    """Returns True when the answer's code has a bracket that cannot close, or ends inside one."""
    after = feed(Lexer(), answer.text)
    return after is None or (answer.finish_reason == "stop" and not after.closable())


def arm(url: str, guarded: bool, seeds: int, n: int, max_tokens: int) -> dict[str, Any]:
    """Returns one arm's counts: answers, broken ones, completion tokens, wall seconds."""
    b = OpenAICompatBackend(LLMConfig(backend="openai", url=url, timeout_s=600))

    async def run() -> list[Completion]:
        try:
            out: list[Completion] = []
            for seed in range(seeds):
                out += (await b.generate([REWRITE], n, Sampling(
                    temperature=1.2, max_tokens=max_tokens, seed=seed,
                    guard=PYTHON_BLOCK if guarded else None)))[0]
            return out
        finally:
            await b.aclose()

    started = time.perf_counter()
    answers = asyncio.run(run())
    return {"guarded": guarded, "answers": len(answers), "broken": sum(map(broken, answers)),
            "grammar_sent": sum(bool(a.extra.get("grammar")) for a in answers),
            "tokens": sum(a.completion_tokens for a in answers),
            "wall_s": time.perf_counter() - started, "server": b.grammar_field}


@contextlib.contextmanager
def vllm_server() -> Iterator[str]:
    """Serves the converted SmolLM2 with vLLM's CPU build; yields /v1's URL."""
    log = Path(tempfile.mkstemp(prefix="vllm-", suffix=".log")[1])
    server = VllmServer(VENV / "bin" / "python", base_model_dir(), free_port(), log, threads=1)
    server.start(timeout_s=600)
    try:
        yield server.url
    finally:
        server.stop()


def main() -> None:
    """Runs the arms alternated and prints the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=None, help="OpenAI-compatible /v1 URL; default: start "
                    "llama-cpp-python's server on the embedded SmolLM2")
    ap.add_argument("--vllm", action="store_true", help="start vLLM's CPU build instead")
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--n", type=int, default=6, help="answers per seed")
    ap.add_argument("--max-tokens", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=2, help="times each arm runs, alternated")
    args = ap.parse_args()
    console = Console()
    with vllm_server() if args.vllm else endpoint(args.url, 4096) as url:
        arm(url, True, 1, 1, 16)  # warm-up: the server's prompt cache, a grammar compiled once
        rows = [arm(url, guarded, args.seeds, args.n, args.max_tokens)
                for _ in range(args.rounds) for guarded in (False, True)]
    table = Table(title=f"rewrite answers at temperature 1.2, {args.seeds} seeds x {args.n}, "
                        f"{args.max_tokens} tokens at most (grammar field: {rows[0]['server']})")
    for col in ("close_code grammar", "answers", "broken", "grammar sent", "tokens", "wall s"):
        table.add_column(col, justify="left" if col.startswith("close") else "right")
    for r in rows:
        table.add_row("on" if r["guarded"] else "off", str(r["answers"]),
                      f"{r['broken']} ({r['broken'] / r['answers']:.0%})", str(r["grammar_sent"]),
                      str(r["tokens"]), f"{r['wall_s']:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
