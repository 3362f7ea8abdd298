"""Request and response bodies, one family per resource (XCreate, XPublic)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.db.status import ProgramKind, ProgramStatus, RunStatus

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of results: items plus how to get the next page."""

    items: list[T]
    total: int | None = None
    limit: int
    offset: int = 0
    next_after: int | None = Field(default=None, description="Keyset cursor for the next page.")


def json_numbers(value: Any) -> Any:
    """Returns value with every integral float as an int: JSON has one number type, and a JSON
    Schema "integer" takes 40.0 (which Python's json reads as a float)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_numbers(v) for v in value]
    return value


class JsonBody(BaseModel):
    """A request body: JSON types exactly as its schema states them (no "3" for 3, no 0 for
    false; 3.0 is the integer 3, as in JSON Schema), and no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _json_numbers(cls, data: Any) -> Any:
        return json_numbers(data)


class ProblemCreate(JsonBody):
    """A problem as a map of file name -> text (initial_program.py, evaluator.py, problem.toml)."""

    files: dict[str, str] = Field(description="File name -> content; names without folders, "
                                  "except a program that is a folder: initial_program/PATH, "
                                  "or initial_programs/NAME/PATH for each starting program.")


class ProblemPublic(BaseModel):
    """A stored problem."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    description: str
    score_metric: str
    direction: str
    best_known: float | None
    owner_token_id: int | None
    created_at: datetime
    files: dict[str, str] | None = None
    initial_score: float | None = None
    notes: list[str] | None = None  # on creation: what the check noted (`problems check`'s notes)
    warnings: list[str] | None = None  # on creation: what its author should look at


class RunCreate(JsonBody):
    """A new run: problem, config sections (search, llm, budget, evaluation, seed), autostart."""

    problem_id: int = Field(ge=1, le=2**62)
    config: dict[str, Any] = Field(default_factory=dict, description="RunConfig sections, e.g. "
                                   '{"llm": {"use": "smollm"}, "budget": {"iterations": 50}}; '
                                   "models, executors and queues are names from GET /api/models")
    start: bool = Field(default=True, description="Queue it for a controller at once.")


class RunResume(JsonBody):
    """Optional config changes applied before a paused run goes on (e.g. a larger budget)."""

    config: dict[str, Any] = Field(default_factory=dict)


class RunPublic(BaseModel):
    """A run with its progress."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    problem_id: int
    status: RunStatus
    control: str | None
    owner_token_id: int | None
    seed: int
    iterations: int
    budget_iterations: int | None = None
    progress: float | None = Field(default=None, description="iterations / budget, 0..1.")
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    evaluations: int
    failed: int
    best_program_id: int | None
    best_score: float | None
    initial_score: float | None
    elapsed_s: float
    stop_reason: str | None
    lease_owner: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    config: dict[str, Any] | None = None


class ProgramSummary(BaseModel):
    """A program without its code: one row of a listing or a genealogy."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    run_id: int
    parent_id: int | None
    kind: ProgramKind
    island: int
    generation: int
    iteration: int
    status: ProgramStatus
    score: float | None
    in_archive: bool
    failure_kind: str | None
    model: str | None
    adapter: str | None
    created_at: datetime


class FileDiff(BaseModel):
    """How one file of a program differs from the same path in another program."""

    path: str
    change: Literal["changed", "added", "removed", "unchanged"]
    diff: str = Field(description="Unified diff of this file; empty when unchanged.")


class ProgramDetail(ProgramSummary):
    """A program with its code, diff against its parent, results and the LLM exchange behind it."""

    code: str  # its text form: the one file, or each file under a `# ==== file: PATH ====` line
    files: dict[str, str] = Field(description="Relative path -> text, in path order; a "
                                  "single-file program is {\"program.py\": code}.")
    diff: str | None  # unified diff against the parent (per file, one after another); None: none
    file_diffs: list[FileDiff] | None = Field(description="The diff against the parent per file "
                                              "of either program, unchanged ones included; "
                                              "null without a parent.")
    metrics: dict[str, Any]
    features: dict[str, Any]
    artifacts: dict[str, Any]
    failure_reason: str | None  # scored programs: the error their evaluator reported, if any
    tier: str | None  # how far its score was verified (`evoforge verify`), in words
    duplicate_of: int | None
    inspiration_ids: list[Any]
    prompt: list[Any] | None
    completion: str | None
    finish_reason: str | None
    repair: str | None  # how the answer's form was repaired before it was read; None: as written
    tokens: int | None
    evaluations: list[dict[str, Any]]


class TokenPublic(BaseModel):
    """The calling token."""

    id: int
    name: str
    scope: str
    owner_id: int
    max_active_runs: int | None
    active_runs: int


class ModelPublic(BaseModel):
    """A model of this server, as tenants see it: its name, never its URL or path."""

    name: str
    description: str
    context_window: int | None
    price_per_1k_tokens: float


class OfferPublic(BaseModel):
    """What a run config may name here: llm.use (and llm.models[].use), evaluation.executor and
    evaluation.queue; the first executor and queue are a run's defaults."""

    models: list[ModelPublic]
    default_model: str
    executors: list[str]
    queues: list[str]
