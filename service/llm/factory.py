"""Picks the LLM backend a run's LLMConfig names; each backend is imported only when chosen."""

from __future__ import annotations

from service.config import ConfigError, LLMConfig, Settings
from service.llm.base import LLMBackend


def make_backend(cfg: LLMConfig, settings: Settings, seed: int = 0) -> LLMBackend:
    """Returns the backend cfg.backend names, configured from cfg and settings; with
    llm.models, an ensemble of one backend per member."""
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
                                  "price_per_1k_tokens": m.price_per_1k_tokens, "models": []})
