"""Novelty rejection with the real embedding model (all-MiniLM-L6-v2 from its PyPI package)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from service.config import NoveltyConfig
from service.db import Database
from service.db.models import LLMSampleRow, ProgramEmbeddingRow, ProgramRow
from service.evolution.aids import novelty
from service.evolution.aids.novelty import (
    Embedder,
    NoveltyFilter,
    judge_prompt,
    nearest,
    shared_embedder,
)
from service.llm.scripted import ScriptedBackend
from service.problems.blocks import block_text
from tests.conftest import REPO
from tests.service.driver import drive
from tests.service.engine_helpers import answer, config, tiny_problem

BIN_PACKING = REPO / "problems" / "bin_packing"
BEST_FIT = block_text((BIN_PACKING / "initial_program.py").read_text())  # return -(bins - item)
BEST_FIT_COMMENTED = BEST_FIT.replace("    return", "    # the tightest bin first\n    return")
WORST_FIT_SCORED = '''def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Prefer bins whose leftover after placing the item is a multiple of common sizes."""
    leftover = bins - item
    penalty = np.where(leftover < 0.1, 10.0, 0.0)
    return np.log1p(leftover) * np.cos(leftover * 3.0) - penalty
'''


class CountingEmbedder:
    """The real embedder, counting the texts it embeds."""

    name = "all-MiniLM-L6-v2"

    def __init__(self) -> None:
        self.inner = shared_embedder()
        self.texts: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return shared_embedder()


def test_near_duplicates_score_above_the_default_threshold_and_new_ideas_below(
        embedder: Embedder) -> None:
    same_meaning = BEST_FIT.replace("return -(bins - item)", "return item - bins")
    v = embedder.embed([BEST_FIT, BEST_FIT_COMMENTED, same_meaning, WORST_FIT_SCORED])
    threshold = NoveltyConfig().threshold
    assert float(v[0] @ v[1]) >= threshold
    assert float(v[0] @ v[2]) >= threshold
    assert float(v[0] @ v[3]) < 0.9
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)


def test_nearest_returns_the_most_similar_program() -> None:
    pool = {3: np.array([1.0, 0.0]), 7: np.array([0.6, 0.8])}
    assert nearest(np.array([0.0, 1.0]), pool) == (7, pytest.approx(0.8))
    assert nearest(np.array([0.0, 1.0]), {}) == (None, 0.0)


def test_filter_rejects_a_near_copy_unless_the_judge_says_it_differs(
        sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    from service.db.queries import add_problem, add_run
    from service.problems.load import load_problem
    with db.session() as s:
        prob = add_problem(s, load_problem(tiny_problem(tmp_path / "p")))
        run_id = add_run(s, prob.id, {}, 0).id
        s.add(ProgramRow(id=1, run_id=run_id, code=BEST_FIT, code_hash="a", status="ok"))
    codes = {1: BEST_FIT}

    async def check(judge_says: str | None) -> tuple[bool, float]:
        cfg = NoveltyConfig(enabled=True, judge=judge_says is not None)
        judge = ScriptedBackend([judge_says or "NO"])
        f = NoveltyFilter(cfg, db, run_id, shared_embedder(), judge)
        vec = await f.embed(BEST_FIT_COMMENTED)
        verdict = await f.screen(vec, [1], BEST_FIT_COMMENTED,
                                 lambda ids: {i: codes[i] for i in ids})
        assert verdict.nearest_id == 1
        if judge_says is not None:
            assert "Program B" in judge.prompts[0][-1].content
        return verdict.novel, verdict.similarity

    novel, sim = asyncio.run(check(None))
    assert not novel and sim >= 0.995
    assert asyncio.run(check("YES, it is different."))[0] is True
    assert asyncio.run(check("NO"))[0] is False
    with db.session() as s:  # the island program's vector was stored once, not per check
        assert s.scalar(select(func.count()).select_from(ProgramEmbeddingRow)) == 1
    assert "Program A" in judge_prompt("a", "b")[1].content


def test_engine_never_evaluates_a_near_copy_and_records_why(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the initial block is `return 1`; these two differ from it in their compiled code (a float
    # constant: no duplicate hash), not in what they do: cosine 0.994 and 0.931 with this model
    near_copies = [answer("def value():\n    return 1."), answer("def value():\n    return 1.0")]
    loop = answer("def value():\n    total = 0\n    for i in range(4):\n        total += i\n"
                  "    return total + 4")
    cfg = config(budget__iterations=3, search={"num_islands": 1, "novelty": {
        "enabled": True, "threshold": 0.925}},
        evaluation={"workers": 1, "in_flight": 1, "timeout_s": 10})
    counting = CountingEmbedder()
    monkeypatch.setattr(novelty, "shared_embedder", lambda: counting)
    folder = tiny_problem(tmp_path / "p")
    db, run, _ = drive(db_url, folder, cfg,
                       ScriptedBackend([loop, *near_copies], max_concurrency=1))
    assert run.status == "completed" and run.iterations == 3
    with db.session() as s:
        samples = list(s.scalars(select(LLMSampleRow).where(LLMSampleRow.run_id == run.id)
                                 .order_by(LLMSampleRow.id)))
        initial = s.scalars(select(ProgramRow.id).filter_by(run_id=run.id, kind="initial")).one()
        child = s.scalars(select(ProgramRow.id).filter_by(run_id=run.id, kind="mutation")).one()
        stored = sorted(s.scalars(select(ProgramEmbeddingRow.program_id)))
    assert [x.outcome for x in samples] == ["child", "too_similar", "too_similar"]
    for x in samples[1:]:
        assert x.nearest_program_id == initial and x.similarity >= 0.925
        assert f"too similar to program {initial}" in x.rejection
    assert run.evaluations == 2  # the initial program and the one new child, nothing else
    assert stored == sorted([initial, child])
    assert len(counting.texts) == 4  # the initial program once, then each child once
    # resuming embeds only what is new: the island's vectors come from the rows
    cfg.budget.iterations = 4
    counting.texts.clear()
    drive(db_url, folder, cfg, ScriptedBackend([near_copies[0]], max_concurrency=1), run_id=run.id)
    assert len(counting.texts) == 1
