"""The fork server's frames (evaluators/wire.py): what each end writes, the other reads back."""

from __future__ import annotations

import json
import math
import os
import signal
import time

import pytest

from evaluators import wire


def test_a_job_message_gives_back_its_folder_fields_and_data() -> None:
    job = json.dumps({"code": "x = 1", "timeout_s": 3}).encode()
    assert wire.read_job(wire.job_message(b"/tmp/w/c1", job, None)) == (
        "/tmp/w/c1", {"code": "x = 1", "timeout_s": 3}, None)
    assert wire.read_job(wire.job_message(b"/w", job, b"[1, 2]"))[2] == b"[1, 2]"
    assert wire.read_job(wire.job_message(b"/w", job, b""))[2] == b""  # empty is not none


def test_a_result_carries_its_marks_and_one_without_the_header_has_none() -> None:
    marks, body = wire.split_result(wire.result((1.0, 2.0, 3.0), (4.5, 600.0, 450.0),
                                                b'{"a": 1}'))
    assert marks == (1.0, 2.0, 3.0, 4.5, 600.0, 450.0) and body == b'{"a": 1}'
    assert wire.split_result(b'{"status": "ok"}') == (None, b'{"status": "ok"}')  # forged
    assert wire.split_result(b"") == (None, b"")


def test_an_answer_frame_decodes_to_the_answer_the_host_reads() -> None:
    times = (0.2, 10.0, 10.001, 10.002, 10.005, 10.006, 10.0065, 2.5, 610.0, 410.0)
    raw = wire.frame(wire.ANSWER, nonce=2 ** 63 + 5, code=-9, sig=signal.SIGKILL,
                     duration_s=0.25, times=times, dropped=(3, 0), body=b'{"score": 1.0}',
                     stdout="héllo\n".encode(), stderr=b"\xff")
    answer = wire.decode(raw)
    assert wire.frame_size(raw) == len(raw)
    assert answer["nonce"] == 2 ** 63 + 5 and answer["result"] == {"score": 1.0}
    assert answer["returncode"] == -9 and answer["signal"] == "SIGKILL"
    assert not answer["timed_out"] and answer["duration_s"] == 0.25
    assert answer["stdout"] == "héllo\n" and answer["stderr"] == "\ufffd"
    assert (answer["stdout_dropped"], answer["stderr_dropped"]) == (3, 0)
    assert "data" not in answer and "data_error" not in answer
    assert answer["steps"] == {"clean": 0.2, "start": 1.0, "setup": 1.0, "run": 3.0,
                               "result": 1.0, "sweep": 0.5, "child_cpu": 2.5,
                               "child_faults": 610.0, "job_faults": 200.0}


def test_an_answer_without_marks_usage_or_code_says_so() -> None:
    nan = wire.NAN
    answer = wire.decode(wire.frame(wire.ANSWER, nonce=1, timed_out=True, body=b"not json",
                                    times=(0.1, 5.0, nan, nan, nan, 6.0, 6.001, nan, nan,
                                           nan)))
    assert answer["returncode"] is None and answer["signal"] is None and answer["timed_out"]
    assert answer["result"] is None  # what is not JSON is no result
    assert set(answer["steps"]) == {"clean", "sweep"}
    assert not any(math.isnan(v) for v in answer["steps"].values())


def test_a_produce_answer_carries_the_data_or_why_it_is_missing() -> None:
    given = wire.decode(wire.frame(wire.ANSWER, produced=(b"[1]", "")))
    assert (given["data"], given["data_error"]) == ("[1]", "")
    missing = wire.decode(wire.frame(wire.ANSWER, produced=(None, "too big")))
    assert (missing["data"], missing["data_error"]) == (None, "too big")


def test_ready_and_spare_frames_name_the_waiting_child() -> None:
    assert wire.decode(wire.frame(wire.READY, pid=42)) == {"ready": True, "spare": 42}
    assert wire.decode(wire.frame(wire.READY)) == {"ready": True, "spare": None}
    assert wire.spare(12345) == wire.frame(wire.SPARE, pid=12345)
    assert wire.decode(wire.spare(7)) == {"spare": 7}


def test_the_reader_takes_frames_split_and_joined_anyhow_and_says_when_the_pipe_ends() -> None:
    read, write = os.pipe()
    frames = wire.spare(1) + wire.frame(wire.ANSWER, nonce=9, stdout=b"x" * 100_000)
    reader = wire.FrameReader(read)
    os.write(write, frames[:10])
    with pytest.raises(TimeoutError):
        reader.next(time.monotonic() + 0.05)
    os.write(write, frames[10:50_000])
    assert reader.next(time.monotonic() + 5) == {"spare": 1}
    assert reader.pending()
    os.write(write, frames[50_000:])
    assert reader.next(time.monotonic() + 5)["stdout"] == "x" * 100_000
    assert not reader.pending()
    os.close(write)
    with pytest.raises(EOFError):
        reader.next(time.monotonic() + 5)
    os.close(read)


def test_bytes_that_are_not_a_frame_are_refused() -> None:
    read, write = os.pipe()
    os.write(write, b'{"nonce": "guess", "result": null}\n' + b" " * wire.FRAME.size)
    with pytest.raises(ValueError, match="does not start as one"):
        wire.FrameReader(read).next(time.monotonic() + 5)
    os.close(read)
    os.close(write)
