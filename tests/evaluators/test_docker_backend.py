"""The Docker backend: clean detection without an engine, and what a container is asked for."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluators.evaluate import evaluate_job
from evaluators.isolation import docker_backend, layers
from evaluators.isolation.limits import Limits
from evaluators.jobs import EvalJob

GOOD = Path(__file__).resolve().parents[1] / "fixtures" / "problems" / "good"


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """Yields a DOCKER_HOST where no engine listens; the layer decision is read again around it."""
    host = f"unix://{tmp_path}/no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", host)
    layers.reset()
    yield host
    monkeypatch.undo()
    layers.reset()


def test_without_an_engine_detection_says_not_available_and_why(no_engine: str) -> None:
    available, reason = docker_backend.detect()
    assert not available
    assert reason.startswith(f"docker: not available (no engine at {no_engine}")


def test_without_the_sdk_detection_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # import docker now raises ImportError
    available, reason = docker_backend.detect()
    assert not available and "pip install docker" in reason


def test_the_layer_report_carries_the_docker_reason_and_asking_for_it_without_an_engine_refuses(
        no_engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(layers.ENV_VAR, "rlimits,docker")
    status = {s.name: s for s in layers.available_layers()}
    assert not status["docker"].active
    assert str(status["docker"]).startswith("docker: missing — docker: not available (no engine")
    job = EvalJob(code="def solve():\n    return 1.0\n", problem_dir=str(GOOD),
                  evaluator_file=str(GOOD / "evaluator.py"))
    refused = evaluate_job(job)  # strict: docker was asked for and is not there
    assert refused.error_kind == "isolation" and "no engine at" in refused.error, refused.error
    job.isolation = "best-effort"
    result = evaluate_job(job)
    assert result.ok and result.score == 1.0, result.error
    assert "docker" not in result.layers


def test_docker_is_opt_in_and_a_typo_names_it_among_the_choices(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(layers.ENV_VAR, "rlimits,dokcer")
    layers.reset()
    try:
        with pytest.raises(ValueError, match=r"choose from .*seccomp, docker"):
            layers.available_layers()
    finally:
        monkeypatch.undo()
        layers.reset()


def test_the_container_spec_isolates_and_limits_the_evaluation(tmp_path: Path) -> None:
    work, root = tmp_path / "root" / "work", tmp_path / "root"
    work.mkdir(parents=True)
    limits = Limits(timeout_s=5, memory_mb=300, open_files=64, file_size_mb=8,
                            processes=32)
    spec = docker_backend.container_spec(
        ["python", "-m", "evaluators.harness", "job.json", "result.json"], cwd=str(work),
        limits=limits, env={"EVOFORGE_SANDBOX_RUN": "r1"}, user=(61003, 61003),
        readable=[str(GOOD)], writable=[str(root)], image_name="img:1")
    assert spec["image"] == "img:1" and spec["command"][-2:] == ["job.json", "result.json"]
    assert spec["network_mode"] == "none" and spec["read_only"] is True
    assert spec["cap_drop"] == ["ALL"] and "no-new-privileges" in spec["security_opt"]
    assert spec["user"] == "61003:61003" and spec["pids_limit"] == 32
    assert spec["mem_limit"] == spec["memswap_limit"] == "300m"
    assert spec["tmpfs"] == {"/tmp": "size=8m,mode=1777"}
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in spec["ulimits"]}
    assert ulimits == {"cpu": (6, 7), "nofile": (64, 64), "fsize": (8 << 20, 8 << 20),
                       "core": (0, 0)}
    volumes = spec["volumes"]
    assert volumes[str(GOOD.resolve())] == {"bind": str(GOOD.resolve()), "mode": "ro"}
    assert volumes[str(root)]["mode"] == volumes[str(work)]["mode"] == "rw"
    assert volumes["/usr"]["mode"] == "ro"
    assert spec["working_dir"] == str(work) and spec["environment"]["HOME"] == str(work)
    assert spec["environment"]["EVOFORGE_SANDBOX_RUN"] == "r1"
    assert "EVOFORGE_FAKE_SECRET" not in spec["environment"]


def test_without_a_slot_uid_the_container_runs_as_nobody(tmp_path: Path) -> None:
    spec = docker_backend.container_spec(["true"], cwd=str(tmp_path),
                                         limits=Limits(memory_mb=None))
    assert spec["user"] == "65534:65534" and "mem_limit" not in spec


@pytest.mark.parametrize(("code", "timed_out", "oom", "described"), [
    (0, False, False, "exited normally"),
    (3, False, False, "exited with code 3"),
    (137, False, True, "killed by SIGKILL"),
    (None, True, False, "exceeded 5 s wall clock"),
])
def test_container_exit_codes_read_like_sandbox_outcomes(code, timed_out, oom, described) -> None:
    limits = Limits(timeout_s=5, output_bytes=16)
    outcome = docker_backend.outcome_from(code, timed_out, b"x" * 40, b"err", 0.5, limits, oom)
    assert outcome.describe().startswith(described)
    assert outcome.stdout_dropped == 24 and "dropped" in outcome.stdout
    assert ("OOMKilled" in outcome.stderr) == oom
