"""Picks the LLM backend a run's LLMConfig names (a model picked by name resolved first, from the
operator's catalog); each backend is imported only when chosen."""

from __future__ import annotations

from service.catalog import ServedModel, quoted
from service.config import ConfigError, LLMConfig, RunConfig
from service.llm.base import LLMBackend
from service.settings import Settings


def make_backend(cfg: LLMConfig, settings: Settings, seed: int = 0) -> LLMBackend:
    """Returns the backend cfg.backend names, configured from cfg and settings; with
    llm.models, an ensemble of one backend per member."""
    cfg = resolve_llm(cfg, settings)
    if cfg.models:
        from service.llm.ensemble import EnsembleBackend
        members = [make_backend(member_config(cfg, i), settings, seed=seed + i)
                   for i in range(len(cfg.models))]
        return EnsembleBackend(cfg, members, seed=seed)
    # Backends are imported here so that each pulls in only its own libraries.
    if cfg.backend == "llamacpp":
        from service.llm.llamacpp import LlamaCppBackend
        return LlamaCppBackend(cfg, settings, seed=seed)
    if cfg.backend == "openai":
        from service.llm.openai_compat import OpenAICompatBackend
        return OpenAICompatBackend(cfg, seed=seed)
    if cfg.backend == "transformers":
        from service.llm.hf import TransformersBackend
        return TransformersBackend(cfg, settings, seed=seed)
    if cfg.backend == "scripted":
        from service.llm.scripted import scripted_from_config
        return scripted_from_config(cfg)
    raise ConfigError(f"llm.backend '{cfg.backend}' is unknown; use llamacpp, openai, "
                      "transformers or scripted")


def member_config(cfg: LLMConfig, index: int) -> LLMConfig:
    """Returns the single-model LLMConfig of ensemble member `index` (shared sampling settings)."""
    m = cfg.models[index]
    return cfg.model_copy(update={"backend": m.backend, "url": m.url, "model": m.model,
                                  "api_key_env": m.api_key_env,
                                  "context_window": m.context_window or cfg.context_window,
                                  "price_per_1k_tokens": m.price_per_1k_tokens,
                                  "extra_body": m.extra_body, "models": []})


def resolve_models(cfg: RunConfig, settings: Settings) -> RunConfig:
    """Returns cfg with each model picked by `use` replaced by what the operator named, and the
    named model's base_model as rl.base_model unless the run gives one (CLI)."""
    rl = cfg.rl
    if cfg.llm.use and rl.base_model is None:
        base = _served(settings, cfg.llm.use, "llm.use").base_model
        rl = rl.model_copy(update={"base_model": base})
    return cfg.model_copy(update={"llm": resolve_llm(cfg.llm, settings), "rl": rl})


def resolve_llm(cfg: LLMConfig, settings: Settings) -> LLMConfig:
    """Returns cfg with llm.use and each llm.models[].use replaced by the operator's model of that
    name; raises ConfigError for a name this server does not offer."""
    if cfg.use:
        cfg = cfg.model_copy(update={"use": None, **_served(settings, cfg.use, "llm.use").fields()})
    members = [m.model_copy(update={"use": None, "name": m.label(), **_served(
        settings, m.use, f"llm.models member '{m.label()}': use").fields()}) if m.use else m
               for m in cfg.models]
    return cfg.model_copy(update={"models": members})


def _served(settings: Settings, name: str, where: str) -> ServedModel:
    if name not in settings.models:
        raise ConfigError(f"{where} = '{name}' is not a model of this server; use one of "
                          f"{quoted(settings.models)} (the operator names them in the models file)")
    return settings.models[name]
