"""A model ensemble behind the one LLMBackend interface: each request goes to the member a bandit
chooses; completions carry the member's name, temperature and cost."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from service.config import LLMConfig
from service.llm.bandit import ModelBandit
from service.llm.base import AdapterSupport, Completion, LLMBackend, Message, Sampling


def cost_of(tokens: int, price_per_1k_tokens: float) -> float:
    """Returns the cost of a number of tokens at a price per 1000 tokens."""
    return tokens * price_per_1k_tokens / 1000.0


class EnsembleBackend:
    """Several backends; `generate` asks the bandit for a member per call, `observe` feeds it."""

    name = "ensemble"
    adapters = AdapterSupport.NONE  # members serve different models: no one adapter fits all
    adapter = None

    def __init__(self, cfg: LLMConfig, members: list[LLMBackend], seed: int = 0) -> None:
        if len(members) != len(cfg.models) or not members:
            raise ValueError("EnsembleBackend needs one backend per llm.models entry")
        self.cfg, self.members = cfg, members
        self.labels = [m.label() for m in cfg.models]
        self.bandit = ModelBandit(self.labels, cfg.selector, cfg.bandit_objective,
                                  cfg.bandit_exploration, [m.weight for m in cfg.models],
                                  random.Random(f"bandit:{seed}"))
        self._rng = random.Random(f"temperature:{seed}")
        self.model = "+".join(self.labels)
        self.context_window = min(m.context_window for m in members)
        self.max_concurrency = sum(m.max_concurrency for m in members)
        self.small_model = any(m.small_model for m in members)  # one answer format for all

    def count_tokens(self, text: str) -> int:
        """Returns the largest token count any member gives (prompts must fit every member)."""
        return max(m.count_tokens(text) for m in self.members)

    async def generate(self, prompts: list[list[Message]], n: int,
                       sampling: Sampling) -> list[list[Completion]]:
        """Returns n completions per prompt, all from the one member the bandit picks."""
        index = self.bandit.choose()
        member, spec = self.members[index], self.cfg.models[index]
        if spec.temperatures:
            sampling = replace(sampling, temperature=self._rng.choice(spec.temperatures))
        batches = await member.generate(prompts, n, sampling)
        for batch in batches:
            for c in batch:
                c.extra["backend_model"] = c.model
                c.model = self.labels[index]
                c.extra["temperature"] = sampling.temperature
                c.extra["cost"] = cost_of(c.prompt_tokens + c.completion_tokens,
                                          spec.price_per_1k_tokens)
        return batches

    def price(self, label: str) -> float:
        """Returns the price per 1k tokens of the member with this label (0 when unknown)."""
        for spec in self.cfg.models:
            if spec.label() == label:
                return spec.price_per_1k_tokens
        return 0.0

    def load_adapter(self, name: str | None, folder: Path | None) -> None:
        """Refuses: an ensemble takes no adapter."""
        raise ValueError("an ensemble of models cannot load one LoRA adapter; train with a "
                         "single llm.backend (llamacpp, transformers or openai)")

    async def aclose(self) -> None:
        """Closes every member."""
        for m in self.members:
            await m.aclose()
