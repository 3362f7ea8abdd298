"""What a tenant may set in a run config. The operator names the models, executors and queues;
a run created through the API picks among those names and never gives a URL, a path, an
environment variable or a broker, so no tenant steers what the server connects to or reads.

Every config a tenant can influence passes here: the body of POST /runs, the [run] table of an
uploaded problem.toml (checked at upload and again merged into each run), the stored config when
a created run starts, and the merged config when a run resumes.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from service.api.auth_tokens import Principal
from service.api.errors import ApiError
from service.catalog import MODEL_FIELDS, quoted
from service.config import ConfigError, RunConfig, build_run_config, own_model_fields
from service.settings import Settings

PICK = "runs on this server pick their model by name, never by URL, path or key variable"
OPERATORS = {"LLMConfig": MODEL_FIELDS, "ModelConfig": MODEL_FIELDS,  # fields refusals() names
             "EvaluationConfig": ("broker",), "RLConfig": ("base_model",)}
RULES = ("search.exploit_ratio + search.explore_ratio is at most 1; llm.models members have "
         "distinct names (name, else use); rl.reward.name 'shaped_score' needs rl.reward.low < "
         "rl.reward.high")


@dataclass(frozen=True)
class Refusal:
    """A config field only the operator may set, and what the tenant may use instead."""

    where: str
    message: str
    allowed: tuple[str, ...] = ()
    steers: bool = True  # True: it names a URL, path, variable or broker; False: an unknown name

    def text(self) -> str:
        """Returns the refusal as one sentence naming the field, the reason and the fix."""
        choices = f"; use one of {quoted(self.allowed)}" if self.allowed else ""
        return f"{self.where}: {self.message}{choices}"

    def detail(self) -> dict[str, Any]:
        """Returns the refusal as an error detail (where, message, allowed)."""
        return {"where": self.where, "message": self.message, "allowed": list(self.allowed)}


def server_defaults(settings: Settings) -> dict[str, Any]:
    """Returns the lowest config layer of an API run: the operator's first executor and queue."""
    return {"evaluation": {"executor": settings.allowed_executors[0],
                           "queue": settings.allowed_queues[0]}}


def refusals(cfg: RunConfig, settings: Settings) -> list[Refusal]:
    """Returns every field of cfg that only the operator may set, each with what to use instead."""
    models = tuple(settings.models)
    found = [Refusal(f"llm.{name}", f"{PICK}: remove llm.{name} and set llm.use", models)
             for name in own_model_fields(cfg.llm)]
    if cfg.llm.use and cfg.llm.use not in settings.models:
        found.append(Refusal("llm.use", f"'{cfg.llm.use}' is not a model of this server", models,
                             steers=False))
    for i, member in enumerate(cfg.llm.models):
        where = f"llm.models[{i}]"
        found += [Refusal(f"{where}.{name}", f"{PICK}: remove it and set {where}.use", models)
                  for name in own_model_fields(member)]
        if member.use is None:
            found.append(Refusal(f"{where}.use", "an ensemble member picks its model by name",
                                 models))
        elif member.use not in settings.models:
            found.append(Refusal(f"{where}.use", f"'{member.use}' is not a model of this server",
                                 models, steers=False))
    found += _evaluation(cfg, settings)
    if cfg.rl.base_model is not None:
        found.append(Refusal("rl.base_model", "adapters are trained on the base model the "
                             "operator names with each model: remove rl.base_model"))
    return found


def _evaluation(cfg: RunConfig, settings: Settings) -> list[Refusal]:
    ev, found = cfg.evaluation, []
    if ev.broker is not None:
        found.append(Refusal("evaluation.broker", "evaluations go through the server's own "
                             "broker: remove evaluation.broker"))
    if ev.executor not in settings.allowed_executors:
        found.append(Refusal("evaluation.executor", f"'{ev.executor}' is not offered here",
                             tuple(settings.allowed_executors)))
    if ev.queue not in settings.allowed_queues:
        found.append(Refusal("evaluation.queue", f"'{ev.queue}' is not a queue of this server",
                             tuple(settings.allowed_queues)))
    return found


def may_steer(principal: Principal, settings: Settings) -> bool:
    """Returns True for an admin token on a server whose operator lets admins give raw configs."""
    return principal.admin and settings.admin_raw_config


def tenant_config(cfg: RunConfig, settings: Settings, principal: Principal,
                  source: str) -> RunConfig:
    """Returns cfg with the operator's default model when it picks none, or answers 422 naming
    every field only the operator may set and what to use instead."""
    if not (cfg.llm.use or cfg.llm.models or own_model_fields(cfg.llm)):
        cfg = cfg.model_copy(update={"llm": cfg.llm.model_copy(
            update={"use": settings.default_model})})
    found = refusals(cfg, settings)
    if may_steer(principal, settings):
        found = [r for r in found if not r.steers]
    if found:
        raise ApiError(422, f"{source}: " + "; ".join(r.text() for r in found) +
                       " (GET /api/models lists what this server offers)", "invalid_config",
                       [r.detail() for r in found])
    return cfg


def check_upload(files: dict[str, str], settings: Settings, principal: Principal) -> None:
    """Answers 422 when an uploaded problem.toml's [run] table sets what only the operator may
    (each run that merges it is checked again)."""
    text = files.get("problem.toml")
    if text is None or may_steer(principal, settings):
        return
    try:
        run = tomllib.loads(text).get("run", {})
        cfg = build_run_config(server_defaults(settings), run if isinstance(run, dict) else {})
    except (tomllib.TOMLDecodeError, ConfigError):
        return  # the problem's own checks name syntax errors and unknown keys
    found = refusals(cfg, settings)
    if found:
        details = [{"file": "problem.toml", "message": f"[run] {r.where}: {r.message}",
                    "fix": f"use one of {quoted(r.allowed)}" if r.allowed else
                    f"remove {r.where} from [run]"} for r in found]
        raise ApiError(422, "problem.toml: " + "; ".join(f"[run] {r.text()}" for r in found),
                       "invalid_problem", details)


def config_schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    """Returns the JSON schemas (RunConfig and its sections, as OpenAPI components) of the config
    a run created through the API may give: no defaults (an unset key comes from the problem's
    [run] table, then the server), none of the fields only the operator sets, and this server's
    model, executor and queue names as enums. What JSON Schema cannot say is in RunConfig's
    description (RULES)."""
    root = RunConfig.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = {"RunConfig": root, **root.pop("$defs")}
    for schema in schemas.values():
        for prop in schema["properties"].values():
            prop.pop("default", None)
    for name, fields in OPERATORS.items():
        for field in fields:
            del schemas[name]["properties"][field]
    models = {"type": "string", "enum": list(settings.models)}
    llm, member = schemas["LLMConfig"], schemas["ModelConfig"]
    llm["properties"]["use"] = {"anyOf": [models, {"type": "null"}],
                                "description": "One of this server's models (GET /api/models)."}
    llm["not"] = {"required": ["use", "models"], "description": "use or models, not both",
                  "properties": {"use": {"type": "string"}, "models": {"minItems": 1}}}
    member["properties"]["use"] = {**models, "description": "One of this server's models."}
    member["required"] = ["use"]
    evaluation = schemas["EvaluationConfig"]["properties"]
    evaluation["executor"] = {"type": "string", "enum": list(settings.allowed_executors)}
    evaluation["queue"] = {"type": "string", "enum": list(settings.allowed_queues)}
    root["description"] = ("Sections of a run config; an unset key comes from the problem's "
                           f"[run] table, then the server's defaults. Also: {RULES}. Fields "
                           "that name a URL, path, key variable or broker are the operator's "
                           "(an admin token may set them where the server allows raw configs).")
    return schemas
