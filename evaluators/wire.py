"""The fork server's byte frames: host to server, server to child, child to server, server to host.

Fixed binary headers (struct) and raw sections, not JSON: what a fork server does between its
spare's fork and its answer is paid twice, once in time and once in pages copied from the spare
(CPython writes to every object it touches; a copy costs 3-4 us in a VM). The server never
decodes a job or a result: it forwards the job's JSON to its child and the child's result JSON
to the host, which alone parses them. Imported inside fork servers, so it imports nothing that
registers fork handlers (threading, random).

- request (host to server): REQUEST header, then the job's JSON, then the data to score;
- job (server to child, read to its end): JOB header, the work folder, the job's JSON, the data;
- result (child to server, read to its end): RESULT header (its time marks, its CPU ms and page
  faults, and its page faults when the job arrived), then the result's JSON. A candidate can
  write there too: a result without the header has no marks;
- frame (server to host): FRAME header, then the result's JSON, stdout, stderr, and a produce
  server's data and why it is missing. Kinds: READY (once, at start), SPARE (the pid of the
  child waiting for the next job), ANSWER (one per request, with its nonce).
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import struct
import time
from typing import Any

REQUEST = struct.Struct("<4sQdQQII")  # magic, nonce, timeout_s, output bytes, data cap, lengths
JOB = struct.Struct("<III")  # lengths of the work folder, the job's JSON, the data (or ~0: none)
RESULT = struct.Struct("<4s6d")  # magic, entered, ready, done, CPU ms, faults, faults at entry
FRAME = struct.Struct("<4scBqQqi11d2Q5I")  # see frame()
REQUEST_MAGIC, RESULT_MAGIC, FRAME_MAGIC = b"EFQ1", b"EFR1", b"EFA1"
READY, SPARE, ANSWER = b"R", b"S", b"A"
NO_DATA = 0xFFFFFFFF
KNOWN_CODE, TIMED_OUT, HAS_DATA, PRODUCED = 1, 2, 4, 8  # FRAME flags
NAN = float("nan")


def request(nonce: int, job: bytes, timeout_s: float, output_bytes: int, data_max: int,
            data: bytes | None = None) -> bytes:
    """Returns one request: the job's JSON and, for a score server, the data to score."""
    return b"".join((REQUEST.pack(REQUEST_MAGIC, nonce, timeout_s, output_bytes, data_max,
                                  len(job), NO_DATA if data is None else len(data)),
                     job, data or b""))


def job_message(work: bytes, job: bytes, data: bytes | None) -> bytes:
    """Returns what a child reads: its work folder, the job's JSON and the data to score."""
    return b"".join((JOB.pack(len(work), len(job), NO_DATA if data is None else len(data)),
                     work, job, data or b""))


def read_job(message: bytes) -> tuple[str, dict[str, Any], bytes | None]:
    """Returns the work folder, the job's fields and the data of a job message."""
    work_len, job_len, data_len = JOB.unpack_from(message)
    body = JOB.size + work_len
    work = message[JOB.size:body].decode()
    fields = json.loads(message[body:body + job_len])
    data = None if data_len == NO_DATA else message[body + job_len:body + job_len + data_len]
    return work, fields, data


def result(marks: tuple[float, float, float], usage: tuple[float, float, float],
           body: bytes) -> bytes:
    """Returns what the harness writes on its result pipe: marks and usage (CPU ms, page faults,
    page faults when the job arrived), then the result."""
    return RESULT.pack(RESULT_MAGIC, *marks, *usage) + body


def split_result(raw: bytes) -> tuple[tuple[float, ...] | None, bytes]:
    """Returns (entered, ready, done, CPU ms, faults, faults at entry) and the result's JSON, or
    (None, raw) when
    raw does not start with the harness's header (a candidate wrote it, or nothing came)."""
    if len(raw) < RESULT.size or raw[:4] != RESULT_MAGIC:
        return None, raw
    return RESULT.unpack_from(raw)[1:], raw[RESULT.size:]


def frame(kind: bytes, *, pid: int = -1, nonce: int = 0, code: int | None = None,
          sig: int = 0, timed_out: bool = False, duration_s: float = 0.0,
          times: tuple[float, ...] = (NAN,) * 10, dropped: tuple[int, int] = (0, 0),
          body: bytes = b"", stdout: bytes = b"", stderr: bytes = b"",
          produced: tuple[bytes | None, str] | None = None) -> bytes:
    """Returns one frame to the host. times: the last file sweep (ms), the job's hand-over,
    the child's three marks, the end of waiting, the answer, the child's CPU ms, its page faults
    and its page faults when the job arrived."""
    data, why = produced if produced is not None else (None, "")
    why_raw = why.encode()
    flags = ((KNOWN_CODE if code is not None else 0) | (TIMED_OUT if timed_out else 0)
             | (HAS_DATA if data is not None else 0) | (PRODUCED if produced is not None else 0))
    head = FRAME.pack(FRAME_MAGIC, kind, flags, pid, nonce, code or 0, sig, duration_s, *times,
                      *dropped, len(body), len(stdout), len(stderr), len(data or b""),
                      len(why_raw))
    return b"".join((head, body, stdout, stderr, data or b"", why_raw))


def spare(pid: int) -> bytes:
    """Returns the SPARE frame naming pid: frame()'s bytes, built with fewer objects (it is the
    first thing a server does after each fork, so each object it touches is a page copied)."""
    return b"".join((_SPARE_HEAD, pid.to_bytes(8, "little", signed=True), _SPARE_TAIL))


def frame_size(head: bytes) -> int:
    """Returns the whole length of the frame whose header is head; raises ValueError when head
    is not a frame's."""
    fields = FRAME.unpack_from(head)
    if fields[0] != FRAME_MAGIC:
        raise ValueError("a frame that does not start as one")
    return FRAME.size + sum(fields[-5:])


def decode(raw: bytes) -> dict[str, Any]:
    """Returns a frame as a dict: {"ready": True, "spare"}, {"spare"}, or an answer with "nonce",
    "result" (parsed; None when not JSON), "returncode", "signal", "timed_out", "stdout",
    "stderr", their dropped bytes, "duration_s", "steps" (ms) and a produce server's "data" and
    "data_error"."""
    fields = FRAME.unpack_from(raw)
    kind, flags, pid, nonce, code, sig, duration_s = fields[1:8]
    if kind != ANSWER:
        spare = pid if pid >= 0 else None
        return {"ready": True, "spare": spare} if kind == READY else {"spare": spare}
    times, dropped, sizes = fields[8:18], fields[18:20], fields[20:]
    sections, at = [], FRAME.size
    for size in sizes:
        sections.append(raw[at:at + size])
        at += size
    body, out, err, data, why = sections
    answer = {"nonce": nonce, "result": _parsed(body),
              "returncode": code if flags & KNOWN_CODE else None, "signal": _signal_name(sig),
              "timed_out": bool(flags & TIMED_OUT), "stdout": _text(out), "stderr": _text(err),
              "stdout_dropped": dropped[0], "stderr_dropped": dropped[1],
              "duration_s": duration_s, "steps": steps(times)}
    if flags & PRODUCED:
        answer["data"] = _text(data) if flags & HAS_DATA else None
        answer["data_error"] = why.decode()
    return answer


def steps(times: tuple[float, ...]) -> dict[str, float]:
    """Returns the ms of each step of one candidate: clean (the file sweep before it, off the
    answer's path), start (the job handed over until the child has read it), setup (rlimits,
    folder, environment), run (the evaluation), result (the child's write, until the server
    reads its end, or the child's end), sweep (kill, and reap when it ended otherwise, drain),
    the child's CPU ms and page faults up to its result (or its end), and job_faults: those
    after its job arrived (the rest were taken while it waited: its rehearsal)."""
    clean, start, entered, ready, done, ended, answered, cpu, faults, at_entry = times
    ms = {"clean": clean}
    if not math.isnan(entered) and start <= entered <= ready <= done:
        ms |= {"start": (entered - start) * 1000, "setup": (ready - entered) * 1000,
               "run": (done - ready) * 1000, "result": (ended - done) * 1000}
    ms["sweep"] = (answered - ended) * 1000
    if not math.isnan(cpu):
        ms |= {"child_cpu": cpu, "child_faults": faults}
    if not math.isnan(faults) and not math.isnan(at_entry):
        ms["job_faults"] = faults - at_entry
    return {name: round(value, 3) for name, value in ms.items()}


_SPARE_FRAME = frame(SPARE, pid=0)
_PID_AT = FRAME.size - struct.calcsize("<qQqi11d2Q5I")  # after the magic, the kind, the flags
_SPARE_HEAD, _SPARE_TAIL = _SPARE_FRAME[:_PID_AT], _SPARE_FRAME[_PID_AT + 8:]


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _signal_name(number: int) -> str | None:
    if not number:
        return None
    return signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"


class FrameReader:
    """Reads frames from a fork server's control pipe, each within a deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def next(self, deadline: float) -> dict[str, Any]:
        """Returns the next frame, decoded; raises TimeoutError past deadline, EOFError when the
        pipe ends and ValueError when what comes is not a frame."""
        self._fill(FRAME.size, deadline)
        size = frame_size(self.buffer)
        self._fill(size, deadline)
        raw, self.buffer = self.buffer[:size], self.buffer[size:]
        return decode(raw)

    def pending(self) -> bool:
        """Returns True when bytes wait to be read (a frame sent while nobody asked)."""
        return bool(self.buffer) or bool(select.select([self.fd], [], [], 0)[0])

    def _fill(self, size: int, deadline: float) -> None:
        while len(self.buffer) < size:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError("the fork server did not answer in time")
            if select.select([self.fd], [], [], wait)[0]:
                data = os.read(self.fd, 1 << 20)
                if not data:
                    raise EOFError("the fork server's control pipe ended")
                self.buffer += data
