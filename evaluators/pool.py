"""The warm fork servers of this process, per problem, and the pair a back-to-back caller gets.

`evaluate_preforked(job)` (what evaluate_job calls for a job with prefork=True) takes the idle
fork server (evaluators/prefork.py) for the job's problem that has waited longest, or starts one,
and keeps it warm after the answer, until the process exits (at most MAX_IDLE servers).

A server forks its next candidate's process (the spare, which then rehearses) only once the last
candidate is gone, so a caller whose next request follows the answer at once waits for that. When
short evaluations of one problem come back to back (a request within PAIR_GAP_S of the answer to
one that took under PAIR_BELOW_S, with no other evaluation running in this process), the pool
starts a second server for the problem, and the two take turns: each readies its spare while the
other runs a candidate. Only where the two cannot reach each other's processes (each has its own
slot uid, or its own pid namespace under bwrap); the second server costs its memory
(EVOFORGE_PREFORK_PAIR=0 leaves it out).
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import sys
import threading
import time

from evaluators import fresh
from evaluators.isolation import layers, sandbox
from evaluators.jobs import EvalJob, EvalResult, FailureKind
from evaluators.prefork import ForkServer, ServerDied, server_key

PAIR_VAR = "EVOFORGE_PREFORK_PAIR"  # "0": never a second server (its memory matters more)
MAX_IDLE = 16         # idle servers kept in this process (each holds a uid and a process)
PAIR_GAP_S = 0.010 if os.environ.get(PAIR_VAR, "1") != "0" else 0.0  # a request this soon after
# the last answer is back to back (a run's LLM call takes longer)
PAIR_BELOW_S = 0.100  # a shorter evaluation gains by a pair, a longer one hardly
APART = frozenset({"uid", "bwrap"})  # layers under which two servers cannot reach each other's
# processes: another uid, or another pid namespace
STARTS = (ServerDied, TimeoutError, OSError, ValueError)  # what a server's start or answer raises

_IDLE: dict[tuple, list[ForkServer]] = {}  # per key, the one that waited longest first
_LAST: dict[tuple, tuple[float, float]] = {}  # per key, when its last answer came and its seconds
_LOCK = threading.Lock()
_busy = 0  # evaluations running in this process


def evaluate_preforked(job: EvalJob, python: str = sys.executable, *, role: str = "evaluate",
                       scorer: bytes | None = None, data: bytes | None = None) -> EvalResult:
    """Returns the result of job scored by a warm fork server for its problem (role "produce" or
    "score": one phase of a two-phase job; evaluators/two_phase.py calls those)."""
    if role == "evaluate" and "docker" in layers.active_names():  # one container per evaluation
        return fresh.evaluate_fresh(dataclasses.replace(job, prefork=False), python)
    started = time.monotonic()
    key = server_key(job, python, role, scorer)
    server, pair = _take(key, started)
    try:
        if server is None:
            server = ForkServer(job, python, role, scorer)
        result = server.evaluate(job, data)
    except (layers.Refused, sandbox.CgroupJoinFailed) as exc:  # nothing of the job ran
        return EvalResult.failure(FailureKind.ISOLATION, str(exc),
                                  duration_s=time.monotonic() - started)
    except STARTS as exc:
        applied = server.applied if server is not None else ()
        if server is not None:
            server.close()
        kind = FailureKind.TIMEOUT if isinstance(exc, TimeoutError) else FailureKind.CRASH
        return EvalResult.failure(kind, f"{exc}; it is restarted for the next evaluation",
                                  duration_s=time.monotonic() - started, layers=list(applied))
    except BaseException:
        if server is not None:
            server.close()
        raise
    finally:
        _done(key, started)
    _give_back(server)
    if pair and APART & set(server.layers):
        _add_partner(key, job, python, role, scorer)
    return result


def _take(key: tuple, now: float) -> tuple[ForkServer | None, bool]:
    """Returns the idle server for key that waited longest (None: none is left) and whether this
    request should leave a second one behind (back to back, alone in this process, unpaired)."""
    global _busy
    dead = []
    with _LOCK:
        _busy += 1
        last = _LAST.get(key)
        servers = _IDLE.get(key, [])
        server = None
        while servers and server is None:
            server = servers.pop(0)
            if not server.alive:
                dead.append(server)
                server = None
        pair = (server is not None and not servers and _busy == 1 and last is not None
                and now - last[0] < PAIR_GAP_S and last[1] < PAIR_BELOW_S)
    for gone in dead:
        gone.close()
    return server, pair


def _done(key: tuple, started: float) -> None:
    """Notes that an evaluation for key, started at started, has its answer."""
    global _busy
    now = time.monotonic()
    with _LOCK:
        _busy -= 1
        _LAST[key] = (now, now - started)


def _give_back(server: ForkServer, first: bool = False) -> None:
    """Keeps server idle for its key (first: the next to be taken); closes the oldest idle
    servers past MAX_IDLE."""
    extra: list[ForkServer] = []
    with _LOCK:
        group = _IDLE.setdefault(server.key, [])
        if first:
            group.insert(0, server)
        else:
            group.append(server)
        idle = [s for servers in _IDLE.values() for s in servers]
        for old in idle[:max(0, len(idle) - MAX_IDLE)]:
            _IDLE[old.key].remove(old)
            extra.append(old)
    for old in extra:
        old.close()


def _add_partner(key: tuple, job: EvalJob, python: str, role: str, scorer: bytes | None) -> None:
    """Starts a second server for key, taken next: the two then take turns. A speed-up only, so
    one that cannot start is left out (the next evaluation reports what is wrong, if anything)."""
    try:
        partner = ForkServer(job, python, role, scorer)
    except (layers.Refused, sandbox.CgroupJoinFailed, *STARTS):
        return
    if partner.key != key:  # the evaluator changed meanwhile
        partner.close()
        return
    _give_back(partner, first=True)


def idle_servers() -> list[ForkServer]:
    """Returns this process's idle fork servers, oldest first per problem."""
    with _LOCK:
        return [s for servers in _IDLE.values() for s in servers]


def idle_server_pids() -> set[int]:
    """Returns the host pids of every idle fork server of this process (not their candidates)."""
    return {pid for server in idle_servers() for pid in server.pids()}


def shutdown() -> int:
    """Closes every idle fork server of this process; returns how many."""
    with _LOCK:
        servers = [s for group in _IDLE.values() for s in group]
        _IDLE.clear()
        _LAST.clear()
    for server in servers:
        server.close()
    return len(servers)


atexit.register(shutdown)
