"""Run configuration (problem.toml [run] < RUN.toml < CLI / API), validated strictly: unknown keys
and bad values are errors that name the key and the fix. Settings (the environment) are in
settings.py."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.catalog import MODEL_FIELDS, ExtraBody


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message names what and how to fix it."""


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NoveltyConfig(Strict):
    """Novelty rejection: children too similar to a program of their island are not evaluated."""

    enabled: bool = Field(default=False, description="Embed each child and reject near-copies.")
    threshold: float = Field(default=0.995, gt=0, le=1, description="Cosine similarity at or above "
                             "which a child counts as a near-copy of a program of its island.")
    judge: bool = Field(default=False, description="Ask the LLM whether a near-copy is "
                        "meaningfully different before rejecting it.")


class ScratchpadConfig(Strict):
    """Meta-scratchpad: the LLM turns a digest of recent results into insights for later prompts."""

    enabled: bool = Field(default=False, description="Write a scratchpad of insights periodically.")
    every: int = Field(default=10, ge=1, description="Iterations between scratchpad versions.")
    max_tokens: int = Field(default=160, ge=16, description="Length limit of one scratchpad.")


class SearchConfig(Strict):
    """The population: islands, MAP-Elites grid, parent and inspiration sampling."""

    num_islands: int = Field(default=2, ge=1, le=1000, description="Islands evolving apart, "
                             "joined by ring migration (the UI lists each one).")
    population_size: int = Field(default=60, ge=2, description="Programs kept per island.")
    migration_interval: int = Field(default=20, ge=1, description="Iterations between migrations.")
    migration_rate: float = Field(default=0.1, ge=0, le=1,
                                  description="Share of an island's best sent on.")
    selection: Literal["mixed", "fitness", "power_law", "uniform"] = Field(
        default="mixed", description="Parent selection strategy.")
    exploit_ratio: float = Field(default=0.6, ge=0, le=1,
                                 description="mixed: parent from the elites.")
    explore_ratio: float = Field(default=0.3, ge=0, le=1,
                                 description="mixed: parent uniformly at random.")
    power_law_alpha: float = Field(default=1.0, gt=0,
                                   description="power_law: p(rank) ~ rank^-alpha.")
    fitness_temperature: float = Field(default=1.0, gt=0,
                                       description="fitness: softmax temperature.")
    elite_size: int = Field(default=10, ge=1, description="Global elite archive size.")
    num_top_inspirations: int = Field(default=2, ge=0,
                                      description="Best programs shown as inspiration.")
    num_diverse_inspirations: int = Field(default=1, ge=0, description="Diverse programs shown.")
    feature_dimensions: list[str] = Field(
        default_factory=lambda: ["complexity", "diversity"],
        description="MAP-Elites axes: complexity, diversity, or any metric name of the problem.")
    feature_bins: int = Field(default=8, ge=1, le=100, description="Bins per MAP-Elites axis.")
    feature_ranges: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="(low, high) per axis; complexity is length / initial "
        "length in (0, 2), diversity is 1 - similarity to the initial program in (0, 1).")
    novelty: NoveltyConfig = Field(default_factory=NoveltyConfig)
    scratchpad: ScratchpadConfig = Field(default_factory=ScratchpadConfig)
    crossover_rate: float = Field(default=0.0, ge=0, le=1, description="Share of prompts showing "
                                  "two parents from different islands to combine.")
    island_reset_iterations: int | None = Field(
        default=None, ge=1, description="Reset the worse half of the islands from the better half "
        "after this many iterations without improvement (FunSearch); unset: never.")
    invalid_parents: bool = Field(default=False, description="Programs their evaluator marks "
                                  "invalid (metric validity = 0) may be parents; off: stored, "
                                  "shown, never sampled (nor counted as the best).")


class ModelConfig(Strict):
    """One member of a model ensemble; the bandit picks a member for each request."""

    name: str | None = Field(default=None, description="Label in statistics; default: use, else "
                             "the model name, else the backend. Unique within llm.models.")
    use: str | None = Field(default=None, description="One of the server's named models "
                                  "(GET /api/models), which sets backend, url, model, api_key_env, "
                                  "context window and price. API runs pick every member this way.")
    backend: Literal["llamacpp", "openai", "transformers", "scripted"] = "llamacpp"
    url: str | None = Field(default=None, description="openai: base URL.")
    model: str | None = Field(default=None, description="Model name (openai) or GGUF path.")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Env var holding the API key.")
    context_window: int | None = Field(default=None, description="Tokens; default: llm's.")
    extra_body: ExtraBody = None
    weight: float = Field(default=1.0, gt=0, description="selector 'weighted': relative share.")
    price_per_1k_tokens: float = Field(default=0.0, ge=0, description="Cost of 1000 tokens "
                                       "(prompt + completion), for cost accounting and budgets.")
    temperatures: list[float] = Field(default_factory=list, description="Temperatures drawn per "
                                      "request; empty: the run's temperature schedule.")

    @model_validator(mode="after")
    def _picked_or_described(self) -> ModelConfig:
        own = own_model_fields(self)
        if self.use and own:
            raise ValueError(f"member '{self.label()}' picks the named model '{self.use}', which "
                             f"sets {', '.join(MODEL_FIELDS)}: remove its {', '.join(own)}")
        return self

    def label(self) -> str:
        """Returns the name statistics use for this member."""
        return self.name or self.use or self.model or self.backend


class LLMConfig(Strict):
    """Which model writes the mutations and how it is sampled."""

    use: str | None = Field(default=None, description="One of the server's named models "
                                  "(GET /api/models), which sets backend, url, model, api_key_env, "
                                  "price and context window. Runs created through the API pick "
                                  "their model this way; the CLI may describe one with those.")
    backend: Literal["llamacpp", "openai", "transformers", "scripted"] = "llamacpp"
    url: str | None = Field(default=None,
                            description="openai: base URL, e.g. http://127.0.0.1:8000/v1.")
    model: str | None = Field(default=None,
                              description="Model name (openai) or GGUF path (llamacpp).")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Env var holding the API key.")
    extra_body: ExtraBody = None
    temperature: float = Field(default=0.8, ge=0, le=2)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=512, ge=16)
    block_token_factor: float = Field(
        default=1.5, ge=0, description="A rewrite answer may use at most this many times the "
        "tokens of the code it rewrites plus 32 (at least 64, never more than max_tokens): a small "
        "model that rambles past its block stops early; 0: max_tokens always.")
    close_code: bool = Field(default=True, description="Rewrites never sample a token that "
                             "leaves the code uncompilable (an unmatched closer; the fence or the "
                             "end inside a bracket or string): llamacpp, transformers, and as a "
                             "grammar vLLM and llama.cpp's server. The code is checked as is.")
    n: int = Field(default=1, ge=1, description="Completions per prompt.")
    prompts_per_call: int = Field(default=1, ge=1, description="Prompts sampled per LLM batch.")
    answer_format: Literal["auto", "diff", "rewrite"] = Field(
        default="auto",
        description="auto: full rewrite for small models, SEARCH/REPLACE diffs otherwise.")
    system_message: str | None = Field(default=None,
                                       description="Overrides the default system prompt.")
    context_window: int | None = Field(default=None, description="Tokens; default: the backend's.")
    timeout_s: float = Field(default=120.0, gt=0)
    retries: int = Field(default=3, ge=0)
    concurrency: int | None = Field(default=None, ge=1,
                                    description="Requests at once; default: backend's.")
    models: list[ModelConfig] = Field(default_factory=list, description="An ensemble; empty: the "
                                      "single model above. Each request goes to one member.")
    selector: Literal["ucb1", "thompson", "weighted"] = Field(
        default="ucb1", description="How the ensemble member of a request is chosen.")
    bandit_objective: Literal["improvement", "per_token", "per_cost"] = Field(
        default="improvement", description="Bandit reward: children's improvement over their "
        "parent, or that per 1k tokens, or per unit of cost.")
    bandit_exploration: float = Field(default=1.0, ge=0, description="ucb1: exploration weight.")
    price_per_1k_tokens: float = Field(default=0.0, ge=0, description="Single model: cost of "
                                       "1000 tokens, for cost accounting and budgets.")
    temperature_schedule: Literal["constant", "linear", "cosine"] = Field(
        default="constant", description="Temperature over the iteration budget: constant, linear "
        "from temperature to temperature_end, or cosine cycles between them.")
    temperature_end: float = Field(default=0.3, ge=0, le=2,
                                   description="Other end of the schedule.")
    temperature_period: int = Field(default=20, ge=2, description="cosine: iterations per cycle.")

    @model_validator(mode="after")
    def _models(self) -> LLMConfig:
        labels = [m.label() for m in self.models]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"llm.models: members {dupes} share a name; give each a unique `name`")
        own = own_model_fields(self)
        if self.use and own:
            raise ValueError(f"llm.use picks the named model '{self.use}', which sets "
                             f"{', '.join(MODEL_FIELDS)}: remove llm.{', llm.'.join(own)}")
        if self.use and self.models:
            raise ValueError("llm.use and llm.models exclude each other: pick one model with "
                             "llm.use, or an ensemble whose members each set use")
        return self


class BudgetConfig(Strict):
    """When a run stops: the first budget reached ends it."""

    iterations: int | None = Field(default=100, ge=0, description="Child programs proposed.")
    llm_calls: int | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0, description="Prompt + completion tokens.")
    wall_seconds: float | None = Field(default=None, gt=0)
    target_score: float | None = Field(default=None,
                                       description="Stop once the best score reaches it.")
    stagnation_iterations: int | None = Field(default=None, ge=1, description="Stop after this "
                                              "many iterations without improvement.")
    cost: float | None = Field(default=None, ge=0, description="Stop once LLM cost (prices per "
                               "1k tokens) reaches this.")


class EvaluationConfig(Strict):
    """How candidates are scored: workers, limits, cascade thresholds."""

    executor: Literal["local", "celery"] = Field(
        default="local",
        description="local: a sandboxed pool here; celery: workers via the broker.")
    broker: str | None = Field(default=None, description="celery: broker URL (default: "
                               "$EVOFORGE_BROKER, else amqp://guest:guest@127.0.0.1:5672//).")
    queue: str = Field(default="cpu", description="Capability this problem needs (Celery queue), "
                       "e.g. cpu or gpu; workers list the queues they serve.")
    workers: int = Field(default=2, ge=1, description="Evaluations running at once.")
    in_flight: int | None = Field(default=None, ge=1,
                                  description="Candidates in flight; default 2*workers.")
    timeout_s: float = Field(default=30.0, gt=0, description="Wall-clock limit per evaluation.")
    memory_mb: int = Field(default=1024, ge=64, description="Address-space limit per evaluation.")
    cascade_thresholds: list[float] = Field(
        default_factory=list, description="Score stage k's metrics must reach for stage k+1 to "
        "run (OpenEvolve's cascade: a program stopped early keeps its merged stage metrics as "
        "its result); empty: evaluate() alone.")
    cascade_gates: bool = Field(default=False, description="Stages are hard gates: a stage "
                                "below its threshold fails the program (kind cascade), and "
                                "evaluate() scores the programs past every gate.")
    reverify_top_k: int = Field(default=3, ge=0, description="Best programs re-verified in a "
                                "fresh sandbox when a run finishes (0: none); `evoforge verify`.")
    fresh_seeds: int = Field(default=0, ge=0, le=100, description="Noisy problems: re-evaluate "
                             "the re-verified programs on this many fresh seeds "
                             "($EVOFORGE_EVAL_SEED = 1..N) and report their mean, instead of "
                             "requiring the same score (0: deterministic problem).")
    repeats: int = Field(default=0, ge=0, le=100, description="Stochastic evaluators: "
                         "re-verification scores each program this many times and reports mean "
                         "± sd (0: score once and require the same score; a score that does not "
                         "reproduce is scored again to tell noise from a wrong score).")
    rel_tolerance: float | None = Field(default=None, ge=0, description="Re-verification "
                                        "accepts a score (a stochastic one's mean) within this "
                                        "relative distance of the evaluated one; default: "
                                        "exact for a deterministic evaluator, any for a "
                                        "stochastic one (its mean ± sd is reported).")
    prefork: bool = Field(default=False, description="Score in a long-lived sandboxed evaluator "
                          "that imports the evaluator once and forks per candidate (for many "
                          "short evaluations; evaluators/prefork.py).")
    isolation: Literal["strict", "best-effort"] = Field(
        default="strict", description="strict: refuse an evaluation that would miss a sandbox "
        "layer the configuration asks for (failure kind isolation, naming the cause and the fix); "
        "best-effort: run it with the layers this machine has. Each evaluation records its layers "
        "(docs/isolation.md).")


class RewardConfig(Strict):
    """How an evaluated child's score becomes a reward (service/rl/rewards.py)."""

    name: Literal["improvement", "shaped_score"] = Field(
        default="improvement", description="improvement: child score - parent score (sign by "
        "direction), times scale; shaped_score: ((clip(s, low, high) - low) / (high - low))^alpha "
        "* scale, reversed for minimisation.")
    low: float | None = Field(default=None, description="shaped_score: score mapped to 0 (A).")
    high: float | None = Field(default=None, description="shaped_score: score mapped to 1 (B).")
    alpha: float = Field(default=1.0, gt=0, description="shaped_score: exponent (alpha).")
    scale: float = Field(default=1.0, gt=0, description="Multiplier of the reward (c).")

    @model_validator(mode="after")
    def _range(self) -> RewardConfig:
        if self.name == "shaped_score" and (self.low is None or self.high is None
                                            or self.high <= self.low):
            raise ValueError("rl.reward.name = 'shaped_score' needs rl.reward.low < "
                             "rl.reward.high (the score range mapped onto 0..1)")
        return self


class PenaltyConfig(Strict):
    """Lazy penalties: rewards for children that need no (or get no valid) evaluation."""

    no_edit: float = Field(default=-1.0, description="The answer held no applicable edit.")
    unchanged: float = Field(default=-0.5, description="The child is identical to its parent.")
    duplicate: float = Field(default=-0.3, description="The child equals a program in the run "
                             "(or novelty rejection found it too similar to one).")
    execution_error: float = Field(default=-1.0, description="Crash, exception, timeout, memory.")
    invalid_result: float = Field(default=-0.8, description="Bad metrics, missing score, cascade.")


class RLConfig(Strict):
    """Test-time RL of the mutation model: GRPO + LoRA on the run's prompts (service/rl/grpo.py)."""

    enabled: bool = Field(default=False, description="Train during the run every_n_children.")
    every_n_children: int = Field(default=50, ge=1, description="Evaluated children between "
                                  "training rounds.")
    steps: int = Field(default=4, ge=1, description="GRPO steps per training round.")
    learning_rate: float = Field(default=5e-5, gt=0)
    lora_r: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    group_size: int = Field(default=4, ge=2, description="Completions per prompt (GRPO group).")
    prompts_per_step: int = Field(default=1, ge=1, description="Prompts per GRPO step.")
    max_completion_tokens: int = Field(default=256, ge=8)
    temperature: float = Field(default=1.0, gt=0, description="Sampling during training.")
    recent_programs: int = Field(default=32, ge=1, description="Prompts come from the run's "
                                 "latest distinct prompts with a scored parent.")
    threads: int | None = Field(default=None, ge=1, description="CPU threads for training "
                                "(torch and llama.cpp generation); default: the cores idle when "
                                "a round starts (measured over 0.25 s, at least 1). "
                                "Oversubscribed cores slow both ~8-10x.")
    generator: Literal["auto", "llama_cpp", "transformers"] = Field(
        default="auto", description="What writes the GRPO completions: llama_cpp (the base "
        "model's GGUF with the trainer's current LoRA: generation ~2.5x cheaper on CPU) or "
        "transformers (HF generate); auto: llama_cpp on CPU when the base model is a GGUF (the "
        "embedded SmolLM2 or llm.model), else transformers.")
    base_model: str | None = Field(
        default=None, description="HF model folder to train LoRA adapters on: the model your "
        "server serves (vLLM). Default: the run's GGUF (the embedded SmolLM2 unless "
        "llm.model names one) converted once to a float32 HF folder.")
    trainer: Literal["inline", "external"] = Field(
        default="inline", description="inline: the controller trains in its own process; "
        "external: it marks each round due and an `evoforge trainer` process (a GPU host) "
        "claims, trains and publishes it while the controller waits (docs/rl.md).")
    claim_timeout_s: float = Field(default=600.0, gt=0, description="external: seconds a "
                                   "controller waits for a trainer to claim a due round before "
                                   "skipping it and evolving on without it.")
    reward: RewardConfig = Field(default_factory=RewardConfig)
    penalties: PenaltyConfig = Field(default_factory=PenaltyConfig)


class RunConfig(Strict):
    """Everything that defines one run; stored with the run so `resume` continues it exactly."""

    seed: int = Field(default=0, ge=0, lt=2**31, description="Random seed of the run (stored in a "
                      "32-bit column; LLM and archive seeds derive from it).")
    search: SearchConfig = Field(default_factory=SearchConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    rl: RLConfig = Field(default_factory=RLConfig)

    @model_validator(mode="after")
    def _ratios(self) -> RunConfig:
        s = self.search
        if s.exploit_ratio + s.explore_ratio > 1.0 + 1e-9:
            raise ValueError("search.exploit_ratio + search.explore_ratio must be at most 1")
        return self

    def in_flight(self) -> int:
        """Returns how many candidates the engine keeps in flight."""
        return self.evaluation.in_flight or 2 * self.evaluation.workers


def own_model_fields(model: LLMConfig | ModelConfig) -> list[str]:
    """Returns the fields that describe a model (MODEL_FIELDS) set away from their defaults."""
    fields = type(model).model_fields
    return [name for name in MODEL_FIELDS if getattr(model, name) != fields[name].default]


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Returns base updated recursively with over (over wins)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """Returns a TOML file's table, or raises ConfigError naming the file and the problem."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found; check the path")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc}); fix the syntax") from exc


def build_run_config(*layers: dict[str, Any], source: str = "run config",
                     strict: bool = False) -> RunConfig:
    """Returns a RunConfig from layered dicts (later wins), or raises ConfigError naming bad keys;
    strict takes JSON types exactly as the API's schema states them (no "3" for 3, 0 for false)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer)
    try:
        if strict:
            return RunConfig.model_validate_json(json.dumps(merged), strict=True)
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + describe_errors(exc)) from None




def describe_errors(exc: ValidationError) -> str:
    """Returns pydantic's validation errors as one line: where, what, for unknown keys the fix."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key '{where}': remove it or check its spelling")
        else:
            problems.append(f"'{where}': {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)
