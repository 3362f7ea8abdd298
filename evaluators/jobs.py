"""What an evaluation is asked to do and what it answers: dispatch's contract with evaluators."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal


class FailureKind(StrEnum):
    """Why an evaluation failed; a member is its string value (what JSON and the database hold)."""

    # wall-clock limit reached; the whole process group was killed
    TIMEOUT = "timeout"
    # address-space limit (MemoryError or killed while allocating)
    MEMORY = "memory"
    # the evaluation process died (signal, os._exit, segfault) without a result
    CRASH = "crash"
    # evaluate() or the program raised; traceback tail in artifacts
    EXCEPTION = "exception"
    # evaluate() returned something that is not a dict of finite numbers
    INVALID_METRICS = "invalid_metrics"
    # the score metric is absent from the metrics
    MISSING_SCORE = "missing_score"
    # a cascade gate (evaluation.cascade_gates) scored below its threshold; stage metrics kept
    CASCADE = "cascade"
    # the problem's evaluator itself failed to import / is malformed
    EVALUATOR = "evaluator"
    # output or artifact caps exceeded in a way that lost the result
    OUTPUT = "output"
    # two-phase: the trusted scorer refused the program's data (reason given)
    REJECTED = "rejected"
    # refused before the program ran: a sandbox layer the configuration asks for cannot be
    # applied here (evaluation.isolation = "strict"); the reason names the cause and the fix
    ISOLATION = "isolation"

    @classmethod
    def parse(cls, value: object) -> FailureKind | None:
        """Returns the member whose value is value, or None for anything else (any type)."""
        if not isinstance(value, str):
            return None
        try:
            return cls(value)
        except ValueError:
            return None


@dataclass
class EvalJob:
    """One candidate to score: the program text and where its problem's evaluator lives."""

    code: str
    problem_dir: str
    evaluator_file: str
    score_metric: str = "combined_score"
    score_fallback_mean: bool = False
    timeout_s: float = 30.0
    memory_mb: int = 1024
    cascade_thresholds: list[float] = field(default_factory=list)
    cascade_gates: bool = False    # True: a stage below its threshold fails the program (a gate)
    evaluation_id: int | None = None
    program_id: int | None = None
    seed: int = 0                  # exported as EVOFORGE_EVAL_SEED to the evaluator / scorer
    scorer: str = ""               # two-phase: the trusted scorer, relative to problem_dir
    entry: str = ""                # two-phase: the program's function that returns the data
    data_max_bytes: int = 1 << 20  # two-phase: cap on the JSON data the program returns
    prefork: bool = False          # score in a long-lived sandboxed evaluator that forks per job
    isolation: str = "strict"      # "strict": refuse without a layer the configuration asks for;
    #                                "best-effort": run with the layers this machine has

    @property
    def evaluator_path(self) -> Path:
        """Returns the evaluator file: evaluator_file, relative to problem_dir unless absolute."""
        return Path(self.problem_dir) / self.evaluator_file

    @property
    def two_phase(self) -> bool:
        """Returns True when the program returns data that a separate trusted scorer verifies."""
        return bool(self.scorer)

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-ready dict (its fields are plain values: no deep copy, as asdict makes,
        on every job sent)."""
        return {**vars(self), "cascade_thresholds": list(self.cascade_thresholds)}


@dataclass
class EvalResult:
    """The outcome of one evaluation; every failure has a kind and a human-readable reason."""

    status: Literal["ok", "failed"]
    score: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_kind: FailureKind | None = None
    stage: int = 0  # the last cascade stage run (0: evaluate() alone, or evaluate() after gates)
    duration_s: float = 0.0
    stages: list[dict[str, Any]] = field(default_factory=list)  # per cascade stage: what it gave,
    # the value compared with its threshold and whether it went on (harness.stage_record)
    layers: list[str] = field(default_factory=list)  # sandbox layers it ran under (host-written)

    @property
    def ok(self) -> bool:
        """Returns True when the program was scored."""
        return self.status == "ok"

    @property
    def reported_error(self) -> str | None:
        """Returns the error the evaluator itself reported (OpenEvolve's convention: a string
        metric or artifact `error`, or `error_message` with `error_type`), else None."""
        arts = self.artifacts
        for key in ("error", "error_message"):
            value = arts.get(key)
            if isinstance(value, str) and value.strip():
                kind = arts.get("error_type") if key == "error_message" else None
                if isinstance(kind, str) and kind:
                    return f"{kind}: {value.strip()}"
                return value.strip()
        return None

    def past_gate(self) -> EvalResult | None:
        """Returns this cascade-gate failure as a scored result, scored by the value that missed
        the gate (how a run keeps an initial program that misses a gate), or None when it is not
        a gate failure or the stage gave no value to score by."""
        if self.error_kind != FailureKind.CASCADE or not self.stages:
            return None
        missed = self.stages[-1]
        if missed.get("value") is None:
            return None
        note = (f"missed cascade gate {missed['stage']} ({missed['value']:g} < "
                f"{missed['threshold']:g}); kept as the initial program, scored by that value")
        return EvalResult(status="ok", score=float(missed["value"]), metrics=dict(self.metrics),
                          artifacts={**self.artifacts, "cascade_gate": note}, stage=self.stage,
                          duration_s=self.duration_s, stages=list(self.stages),
                          layers=list(self.layers))

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        """Returns the result stored in a dict made by to_dict (a known error_kind: FailureKind)."""
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "error_kind" in fields:  # an unknown kind stays as it came (two_phase distrusts it)
            fields["error_kind"] = FailureKind.parse(fields["error_kind"]) or fields["error_kind"]
        return cls(**fields)

    @classmethod
    def failure(cls, kind: FailureKind, reason: str, **extra: Any) -> EvalResult:
        """Returns a failed result of the given kind."""
        return cls(status="failed", error=reason, error_kind=kind, **extra)
