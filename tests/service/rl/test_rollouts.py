"""GRPO's reward function: every completion becomes a stored, evaluated child of the run."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from evaluators import tree
from service.db.models import LLMSampleRow, ProgramRow
from service.db.stored import load_run
from service.edits.apply import apply_answer
from service.evolution.prompts import asked_format, asked_target
from service.llm.base import Message
from service.llm.scripted import ScriptedBackend
from service.rl.rollouts import EvolutionReward, NoPrompts, training_prompts
from service.settings import Settings
from tests.service.driver import drive, scripted_run
from tests.service.engine_helpers import answer, config, returns

ANSWERS = {
    "rejected": "I would rather not write code today.",
    "unchanged": returns(1),
    "duplicate": returns(3),
    "exception": answer("def value():\n    raise RuntimeError('boom')"),
    "invalid": returns("float('nan')"),
    "better": returns(10),
}


def test_every_completion_is_stored_evaluated_and_rewarded(db_url: str, tmp_path: Path) -> None:
    db, run_id = scripted_run(db_url, tmp_path / "tiny")
    _, problem, cfg = load_run(db, run_id, Settings(home=tmp_path))
    prompt = training_prompts(db, run_id, count=1, recent=8)[0]
    with db.session() as s:
        initial = s.scalar(select(ProgramRow).where(ProgramRow.run_id == run_id,
                                                    ProgramRow.kind == "initial"))
    fn = EvolutionReward(db, run_id, problem, cfg, model="SmolLM2", adapter="run1-v1-training")
    texts = list(ANSWERS.values())
    tokens_before = load_run(db, run_id, Settings(home=tmp_path))[0].completion_tokens
    ids = [list(range(3 + i)) for i in range(len(texts))]  # what TRL passes: the sampled ids
    rewards = fn([prompt.messages] * len(texts), [[{"role": "assistant", "content": t}]
                                                  for t in texts],
                 parent_id=[initial.id] * len(texts), completion_ids=ids)
    got = dict(zip(ANSWERS, rewards, strict=True))
    pen = cfg.rl.penalties
    assert got["rejected"] == pen.no_edit and got["unchanged"] == pen.unchanged
    assert got["duplicate"] == pen.duplicate and got["exception"] == pen.execution_error
    assert got["invalid"] == pen.invalid_result
    assert got["better"] == pytest.approx(0.0 - initial.score)  # improvement over the parent
    with db.session() as s:
        samples = s.scalars(select(LLMSampleRow).where(LLMSampleRow.adapter == fn.adapter)
                            .order_by(LLMSampleRow.id)).all()
        children = s.scalars(select(ProgramRow).where(ProgramRow.adapter == fn.adapter)).all()
    assert [smp.reward for smp in samples] == rewards
    assert [smp.completion_tokens for smp in samples] == [len(i) for i in ids]
    assert len({smp.group_id for smp in samples}) == 1  # one prompt, one GRPO group
    assert {c.status for c in children} == {"ok", "failed", "duplicate"}
    best = next(c for c in children if c.status == "ok")
    assert best.score == 0.0 and best.model == "SmolLM2" and best.parent_id == initial.id
    assert fn.stats()["n"] == len(texts) and fn.stats()["max"] == got["better"]
    run = load_run(db, run_id, Settings(home=tmp_path))[0]
    assert run.best_score == 0.0 and run.best_program_id == best.id
    assert run.completion_tokens == tokens_before + sum(map(len, ids))  # counted in the budget


def diff(old: str, new: str) -> str:
    """Returns a SEARCH/REPLACE answer, as a large model writes it."""
    return f"Raise it.\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"


def test_rollouts_of_a_diff_run_read_answers_as_diffs_like_the_loop(sqlite_url: str,
                                                                    tmp_path: Path) -> None:
    # a large model: the loop asks for SEARCH/REPLACE diffs, so GRPO's completions are diffs too
    db, run_id = scripted_run(sqlite_url, tmp_path / "tiny", config(budget__iterations=2),
                              [diff("    return 1", "    return 4")], small_model=False)
    _, problem, cfg = load_run(db, run_id, Settings(home=tmp_path))
    prompt = training_prompts(db, run_id, count=1, recent=8)[0]
    messages = [Message(m["role"], m["content"]) for m in prompt.messages]
    assert asked_format(messages) == "diff"
    with db.session() as s:
        parent = s.get(ProgramRow, prompt.parent_id)
    line = next(ln for ln in parent.code.splitlines() if "return" in ln)
    answer_ = diff(line, "    return 9")
    fn = EvolutionReward(db, run_id, problem, cfg, model="big", adapter="run1-v1-training")
    [reward] = fn([prompt.messages], [answer_], parent_id=[parent.id])
    with db.session() as s:
        child = s.scalar(select(ProgramRow).where(ProgramRow.adapter == fn.adapter))
    assert child is not None and child.status == "ok"  # the diff applied, as in the loop
    assert child.code == apply_answer(parent.code, answer_, "diff").code
    assert reward == pytest.approx(child.score - parent.score) != cfg.rl.penalties.no_edit


def test_rollouts_of_a_folder_run_rewrite_the_file_their_prompt_named(
        sqlite_url: str, tmp_path: Path) -> None:
    folder = Path(__file__).resolve().parents[3] / "problems" / "quickstart_files"
    llm = ScriptedBackend(["```python\ndef line(x):\n    return x + 1.0\n```\n"])
    db, run, _ = drive(sqlite_url, folder, config(budget__iterations=2, search__num_islands=1),
                       llm)
    _, problem, cfg = load_run(db, run.id, Settings(home=tmp_path))
    prompt = training_prompts(db, run.id, count=1, recent=8)[0]
    target = asked_target([Message(m["role"], m["content"]) for m in prompt.messages])
    assert target in ("bend.py", "line.py")
    body = "def bend(x):\n    return x * x" if target == "bend.py" else \
        "def line(x):\n    return x + 1.0"
    fn = EvolutionReward(db, run.id, problem, cfg, model="m", adapter="files-v1")
    fn([prompt.messages], [f"```python\n{body}\n```\n"], parent_id=[prompt.parent_id])
    with db.session() as s:
        child = s.scalar(select(ProgramRow).where(ProgramRow.adapter == fn.adapter))
        parent = s.get(ProgramRow, prompt.parent_id)
    assert child is not None and child.status in ("ok", "duplicate"), child.failure_reason
    assert body in child.files[target]
    assert {p: t for p, t in child.files.items() if p != target} == \
        {p: t for p, t in parent.files.items() if p != target}
    assert tree.is_tree(child.code)


def test_shaped_reward_is_read_from_the_run_config(sqlite_url: str, tmp_path: Path) -> None:
    cfg = config(budget__iterations=2, rl={"reward": {"name": "shaped_score", "low": -10.0,
                                                      "high": 0.0, "scale": 2.0}})
    db, run_id = scripted_run(sqlite_url, tmp_path / "tiny", cfg)
    _, problem, cfg = load_run(db, run_id, Settings(home=tmp_path))
    prompt = training_prompts(db, run_id, count=1, recent=8)[0]
    fn = EvolutionReward(db, run_id, problem, cfg, model="m", adapter="a")
    rewards = fn([prompt.messages] * 2, [returns(8), returns(9)], parent_id=[prompt.parent_id] * 2)
    assert rewards == pytest.approx([2.0 * 8 / 10, 2.0 * 9 / 10])


def test_training_prompts_come_from_the_run_and_need_some(sqlite_url: str,
                                                          tmp_path: Path) -> None:
    db, run_id = scripted_run(sqlite_url, tmp_path / "tiny")
    prompts = training_prompts(db, run_id, count=5, recent=8)
    assert len(prompts) == 5 and all(p.messages[-1]["role"] == "user" for p in prompts)
    db0, empty = scripted_run(sqlite_url.replace("evoforge.db", "empty.db"), tmp_path / "t2",
                              config(budget__iterations=0))
    with pytest.raises(NoPrompts, match="no recorded prompts"):
        training_prompts(db0, empty, count=1, recent=8)
