"""The models a shared server offers by name: what the operator's models file holds.

A run created through the API picks one of these with `llm.use`; its URL, path, key variable,
price and context window stay with the operator (DESIGN: a shared service is steered by its
operator). config.py's Settings hold the catalog; this module imports nothing of service/.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
EMBEDDED_MODEL = "smollm"
# What describes a model rather than how it is sampled: the operator's to set on a shared server.
MODEL_FIELDS = ("backend", "url", "model", "api_key_env", "price_per_1k_tokens", "context_window",
                "extra_body")
EXTRA_BODY = ("openai: more fields of every request body, as they are: the server's own sampling "
              "parameters, e.g. {repeat_penalty = 1.0} for llama.cpp's server (its default 1.1 "
              "penalises the brackets code repeats), {repetition_penalty = 1.0} for vLLM.")
# The fields of a chat request that evoforge sets itself: extra_body may not replace them.
REQUEST_FIELDS = frozenset({"model", "messages", "n", "temperature", "top_p", "max_tokens", "seed",
                            "stream"})


def own_fields(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """Returns an extra_body that leaves evoforge's own request fields alone, else says which."""
    if taken := sorted(set(body or {}) & REQUEST_FIELDS):
        raise ValueError(f"extra_body sets {', '.join(taken)}, which evoforge sends itself; set "
                         "them as llm keys (temperature, top_p, max_tokens, n, seed) and keep "
                         "extra_body for the server's own parameters")
    return body


ExtraBody = Annotated[dict[str, Any] | None, AfterValidator(own_fields),
                      Field(default=None, description=EXTRA_BODY)]


class ServedModel(BaseModel):
    """One model the operator names: a [models.NAME] table of the models file."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["llamacpp", "openai", "transformers", "scripted"] = "llamacpp"
    url: str | None = Field(default=None, description="openai: the server's base URL.")
    model: str | None = Field(default=None, description="Model name (openai), GGUF path "
                              "(llamacpp; default: $EVOFORGE_MODEL_PATH, else the embedded "
                              "SmolLM2), HF folder or GGUF (transformers), answers JSON "
                              "(scripted).")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Env var holding the API key.")
    price_per_1k_tokens: float = Field(default=0.0, ge=0, description="Cost of 1000 tokens.")
    context_window: int | None = Field(default=None, ge=64, description="Tokens; default: the "
                                       "backend's.")
    extra_body: ExtraBody = None
    base_model: str | None = Field(default=None, description="HF folder or hub id that test-time "
                                   "RL trains this model's adapters on (rl.base_model); default: "
                                   "the GGUF, converted.")
    description: str = Field(default="", description="What tenants read in GET /api/models.")

    @model_validator(mode="after")
    def _openai_url(self) -> ServedModel:
        if self.backend == "openai" and not self.url:
            raise ValueError("backend 'openai' needs url, the server's base URL, e.g. "
                             "http://vllm:8000/v1")
        return self

    def fields(self) -> dict[str, Any]:
        """Returns what describes the model: backend, url, model, key variable, price, context,
        extra request fields."""
        return {name: getattr(self, name) for name in MODEL_FIELDS}


class ModelsFile(BaseModel):
    """The operator's models file: `default = NAME` and one [models.NAME] table per model."""

    model_config = ConfigDict(extra="forbid")

    default: ModelName | None = Field(default=None, description="The model of a run that names "
                                      "none; default: the first.")
    models: dict[ModelName, ServedModel] = Field(min_length=1)


def embedded() -> dict[str, ServedModel]:
    """Returns the catalog of a server whose operator named no models: the embedded SmolLM2."""
    return {EMBEDDED_MODEL: ServedModel(description="SmolLM2-135M-Instruct, run by llama.cpp in "
                                        "the controller")}


def quoted(names: Any) -> str:
    """Returns names quoted and comma-separated, for messages that list the allowed ones."""
    return ", ".join(f"'{name}'" for name in names)
