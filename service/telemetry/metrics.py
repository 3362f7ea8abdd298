"""Prometheus metrics counted where events happen (LLM requests, evaluations, RL rounds), and how a
process exposes them.

Off until enable(): a process nobody scrapes pays one `is None` test per event. Where processes
fork (Celery's prefork pool, uvicorn workers) enable(multiprocess_dir) switches prometheus_client
to its multiprocess mode: every process writes its values to files in PROMETHEUS_MULTIPROC_DIR
and the scraped process adds them up (MultiProcessCollector). Labels stay low-cardinality: model
names, queues, statuses, failure kinds, layers, never a program, evaluation or run id (per-run
totals are read from the database at scrape time: service/api/collector.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MULTIPROC_VAR = "PROMETHEUS_MULTIPROC_DIR"
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
EVAL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
ROUND_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


class _Events:
    """The metric objects; made once per process by enable()."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.llm_seconds = Histogram(
            "evoforge_llm_request_seconds", "LLM request latency (one generate call of the loop)",
            ["model"], buckets=LLM_BUCKETS)
        self.llm_errors = Counter(
            "evoforge_llm_errors", "LLM requests that failed (unavailable: server down or timed "
            "out; refused: a request it will not serve; truncated: a reply cut at max_tokens)",
            ["model", "kind"])
        self.llm_calls = Counter("evoforge_llm_calls", "LLM calls stored", ["model"])
        self.llm_tokens = Counter("evoforge_llm_tokens", "LLM tokens stored (kind: prompt | "
                                  "completion)", ["model", "kind"])
        self.llm_cost = Counter("evoforge_llm_cost", "LLM cost stored (prices per 1k tokens)",
                                ["model"])
        self.evaluations = Counter(
            "evoforge_evaluations", "Evaluations finished (status ok | failed; failure_kind as "
            "evaluators/jobs.FailureKind, empty when ok)", ["queue", "status", "failure_kind"])
        self.eval_seconds = Histogram("evoforge_evaluation_seconds", "Evaluation duration",
                                      ["queue"], buckets=EVAL_BUCKETS)
        self.layers = Counter("evoforge_sandbox_layer_evaluations",
                              "Evaluations run under each sandbox layer", ["layer"])
        self.rl_rounds = Counter("evoforge_rl_rounds", "RL training rounds (outcome: done | "
                                 "failed)", ["outcome"])
        self.rl_seconds = Histogram("evoforge_rl_round_seconds", "RL training round duration",
                                    buckets=ROUND_BUCKETS)
        self.rl_steps = Counter("evoforge_rl_steps", "GRPO steps trained")


_made: _Events | None = None  # the metric objects, made once (a registry refuses a name twice)
_events: _Events | None = None  # _made while counting, None while off


def enable(multiprocess_dir: Path | None = None) -> None:
    """Starts counting in this process (idempotent). With multiprocess_dir (a process that forks
    workers), values go to files there, emptied first, that every forked process adds to."""
    global _events, _made
    if multiprocess_dir is not None:
        if "prometheus_client" in sys.modules and not os.environ.get(MULTIPROC_VAR):
            raise RuntimeError("prometheus_client was imported before multiprocess mode was "
                               "chosen; call metrics.enable(dir) before anything imports it, or "
                               f"set {MULTIPROC_VAR} before the process starts")
        multiprocess_dir.mkdir(parents=True, exist_ok=True)
        for old in multiprocess_dir.glob("*.db"):  # a previous process's values are not ours
            old.unlink()
        os.environ[MULTIPROC_VAR] = str(multiprocess_dir)
    if _made is None:
        _made = _Events()
    _events = _made


def disable() -> None:
    """Stops counting (benchmarks compare with and without); the metric objects stay."""
    global _events
    _events = None


def enabled() -> bool:
    """Returns True while this process counts events."""
    return _events is not None


def multiprocess() -> bool:
    """Returns True when values live in PROMETHEUS_MULTIPROC_DIR files (forked processes)."""
    return bool(os.environ.get(MULTIPROC_VAR))


def llm_request(model: str, seconds: float) -> None:
    """Counts one LLM request that answered, and its latency."""
    if _events is not None:
        _events.llm_seconds.labels(model).observe(seconds)


def llm_error(model: str, kind: str, n: int = 1) -> None:
    """Counts n failed LLM requests of a kind: unavailable | refused | truncated."""
    if _events is not None and n:
        _events.llm_errors.labels(model, kind).inc(n)


def llm_usage(model: str, prompt_tokens: int, completion_tokens: int, cost: float) -> None:
    """Counts one stored LLM call with its tokens and cost."""
    if _events is None:
        return
    _events.llm_calls.labels(model).inc()
    _events.llm_tokens.labels(model, "prompt").inc(prompt_tokens)
    _events.llm_tokens.labels(model, "completion").inc(completion_tokens)
    if cost:
        _events.llm_cost.labels(model).inc(cost)


def evaluation(queue: str, status: str, failure_kind: str | None, seconds: float,
               layers: Iterable[str] = ()) -> None:
    """Counts one finished evaluation: its status, failure kind, duration and sandbox layers."""
    if _events is None:
        return
    _events.evaluations.labels(queue, status, failure_kind or "").inc()
    _events.eval_seconds.labels(queue).observe(max(0.0, seconds))
    for layer in layers:
        _events.layers.labels(layer).inc()


def rl_step() -> None:
    """Counts one GRPO step."""
    if _events is not None:
        _events.rl_steps.inc()


def rl_round(outcome: str, seconds: float) -> None:
    """Counts one RL round (done | failed) and its duration."""
    if _events is not None:
        _events.rl_rounds.labels(outcome).inc()
        _events.rl_seconds.observe(seconds)


def registry() -> Any:
    """Returns the registry to expose: this process's default one, or in multiprocess mode one
    that adds up every process's files."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    if not multiprocess():
        return REGISTRY
    merged = CollectorRegistry()
    MultiProcessCollector(merged)
    return merged


class _Both:
    """A collector that yields what a registry holds, then what more collectors add."""

    def __init__(self, *collectors: Any) -> None:
        self.collectors = collectors

    def collect(self) -> Iterable[Any]:
        """Yields every metric family of every collector."""
        for collector in self.collectors:
            yield from collector.collect()

    def describe(self) -> list[Any]:
        """Returns nothing: registering must not query the database."""
        return []


def exposition(accept: str, *extra: Any) -> tuple[bytes, str]:
    """Returns (body, content type) of this process's metrics plus extra collectors' families,
    in the format the scraper's Accept header asks for (the classic text format by default)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder

    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(_Both(registry(), *extra))
    encode, content_type = choose_encoder(accept)
    return encode(scraped), content_type


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Serves this process's metrics at http://addr:port/metrics from a daemon thread."""
    from prometheus_client import start_http_server

    start_http_server(port, addr, registry=registry())
