"""Meta-scratchpad: the digest of a real run's rows, versions kept with the run, prompts show it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from service.db.models import LLMSampleRow, ScratchpadRow
from service.evolution.aids.scratchpad import digest, scratch_prompt
from service.llm.base import Message
from service.llm.factory import make_backend
from service.llm.scripted import ScriptedBackend
from service.settings import Settings
from tests.service.driver import drive
from tests.service.engine_helpers import answer, config, returns, tiny_problem

INSIGHT = "- Values near 10 score best; avoid raising errors."


def _answers(messages: list[Message], k: int) -> str:
    """Mutations from a fixed list; scratchpad requests get a fixed insight."""
    if "Recent results:" in messages[-1].content:
        return INSIGHT
    plan = [returns(4), answer("def value():\n    raise ValueError('no idea')"), "no code here",
            returns(8), returns(2), answer("def value():\n    return undefined_name"),
            returns(9), returns(9.5)]
    return plan[k % len(plan)] if k < 20 else returns(1)


def _run(url: str, tmp_path: Path, iterations: int, every: int = 3):
    llm = ScriptedBackend(_answers, max_concurrency=1)
    cfg = config(budget__iterations=iterations, search={"num_islands": 1, "scratchpad": {
        "enabled": True, "every": every, "max_tokens": 40}},
        evaluation={"workers": 1, "in_flight": 1, "timeout_s": 10})
    return (*drive(url, tiny_problem(tmp_path / "p"), cfg, llm), llm)


def test_digest_of_a_real_run_names_improvements_failures_and_rejections(
        db_url: str, tmp_path: Path) -> None:
    db, run, _, _ = _run(db_url, tmp_path, iterations=6, every=100)
    with db.session() as s:
        text = digest(s, run.id, "maximize")
    assert text.splitlines() == [
        "Last 5 evaluated children: 2 beat their parent, 2 failed, 1 scored worse.",
        "- Improved -6 -> -2; added: return 8",
        "- Improved -9 -> -6; added: return 4",
        "- Worse -2 -> -8; added: return 2",
        ("- Failed 1x: evaluate() raised NameError: name 'undefined_name' is not defined at "
         "program.py:4 (in value)"),
        "- Failed 1x: evaluate() raised ValueError: no idea at program.py:4 (in value)",
        "Answers not evaluated: 1 rejected"]
    prompt = scratch_prompt("Get close to 10.", text, None)
    assert text in prompt[-1].content and "Your earlier notes" not in prompt[-1].content


def test_versions_are_stored_with_the_run_and_later_prompts_show_the_latest(
        db_url: str, tmp_path: Path) -> None:
    db, run, engine, llm = _run(db_url, tmp_path, iterations=8, every=3)
    with db.session() as s:
        pads = list(s.scalars(select(ScratchpadRow).filter_by(run_id=run.id)
                              .order_by(ScratchpadRow.version)))
        samples = list(s.scalars(select(LLMSampleRow).filter_by(run_id=run.id)
                                 .order_by(LLMSampleRow.iteration)))
    assert [p.version for p in pads] == [1, 2]
    assert [p.iteration for p in pads] == [3, 6]
    assert all(p.text == INSIGHT and "evaluated children" in p.digest for p in pads)
    assert pads[1].prompt_tokens > 0 and pads[1].completion_tokens > 0
    shown = [INSIGHT in x.prompt[-1]["content"] for x in samples]
    assert shown == [False] * 3 + [True] * 5
    # the scratchpad's tokens count in the run's totals, not as mutation samples
    sampled = sum(x.prompt_tokens + x.completion_tokens for x in samples)
    pad_tokens = sum(p.prompt_tokens + p.completion_tokens for p in pads)
    assert run.prompt_tokens + run.completion_tokens == sampled + pad_tokens
    assert "Your earlier notes" in llm.prompts[-1][-1].content or any(
        "Your earlier notes" in m[-1].content for m in llm.prompts)
    assert engine.aids.scratch == INSIGHT


def test_scratchpad_off_writes_nothing(sqlite_url: str, tmp_path: Path) -> None:
    llm = ScriptedBackend(_answers, max_concurrency=1)
    cfg = config(budget__iterations=4)
    db, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, llm)
    assert run.iterations == 4
    with db.session() as s:
        assert s.scalars(select(ScratchpadRow)).first() is None
    assert not any("Recent results:" in m[-1].content for m in llm.prompts)


@pytest.mark.llm
def test_the_embedded_model_writes_a_scratchpad_that_later_prompts_show(
        sqlite_url: str, tmp_path: Path) -> None:
    cfg = config(budget__iterations=3, search={"num_islands": 1, "scratchpad": {
        "enabled": True, "every": 2, "max_tokens": 48}},
        llm={"backend": "llamacpp", "max_tokens": 96},
        evaluation={"workers": 1, "in_flight": 1, "timeout_s": 10})
    llm = make_backend(cfg.llm, Settings(), seed=cfg.seed)
    try:
        db, run, _engine = drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, llm)
    finally:
        import asyncio
        asyncio.run(llm.aclose())
    with db.session() as s:
        pad = s.scalars(select(ScratchpadRow).filter_by(run_id=run.id)).one()
        last = s.scalars(select(LLMSampleRow).filter_by(run_id=run.id, iteration=3)).one()
    assert pad.text and pad.completion_tokens > 0 and pad.model.startswith("SmolLM2")
    assert pad.iteration == 2 and "evaluated children" in pad.digest
    assert pad.text.strip()[:40] in last.prompt[-1]["content"]
