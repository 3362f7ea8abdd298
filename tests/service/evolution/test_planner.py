"""service.evolution.planner: the prompts of each LLM call, built from a population of stored,
scored programs, and the proposal each completion becomes."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluators.jobs import EvalResult
from service.config import RunConfig
from service.db.models import ProgramRow
from service.edits.identity import code_hash
from service.evolution.aids.hooks import SearchAids
from service.evolution.ledger import Ledger
from service.evolution.planner import Plan, Planner, proposal_from
from service.evolution.population import Population
from service.llm.base import Completion
from service.llm.scripted import ScriptedBackend
from service.problems.load import Problem, load_problem
from service.runs import create_run
from tests.service.driver import open_db
from tests.service.engine_helpers import PROGRAM, answer, config, returns, tiny_problem

VALUES = {0: [1, 3, 6, 8], 1: [2, 4, 5, 9]}  # island -> what value() returns in its programs
PAD = "".join(f"    # note {i}: keep trying\n" for i in range(1500))  # ~36k characters


def code(value: object, pad: str = "") -> str:
    """Returns the tiny program with value() returning value (and pad lines in its block)."""
    return PROGRAM.replace("    return 1\n", f"{pad}    return {value}\n")


class Setup:
    """A run of the tiny problem with scored programs stored on two islands."""

    def __init__(self, url: str, folder: Path, cfg: RunConfig) -> None:
        self.db = open_db(url)
        self.problem: Problem = load_problem(tiny_problem(folder))
        self.run_id = create_run(self.db, self.problem, cfg)
        self.programs: list[ProgramRow] = []

    def store(self, island: int, text: str, score: float) -> ProgramRow:
        """Stores a scored program (as the engine's ledger leaves it) and returns its row."""
        with self.db.session() as s:
            prog = ProgramRow(run_id=self.run_id, kind="mutation", island=island, code=text,
                              code_hash=code_hash(text), status="ok", score=score,
                              metrics={"combined_score": score}, iteration=len(self.programs))
            s.add(prog)
            s.flush()
        self.programs.append(prog)
        return prog

    def planner(self, cfg: RunConfig, llm: ScriptedBackend | None = None,
                fmt: str = "rewrite") -> Planner:
        """Returns a planner over a population rebuilt from the stored programs, in id order."""
        llm = llm or ScriptedBackend([returns(1)])
        ledger = Ledger(self.db, self.run_id, "local")
        population = Population(self.problem, cfg, ledger)
        for prog in self.programs:
            prog.features = population.features(prog.code, EvalResult("ok", score=prog.score))
            population.add(prog)
        aids = SearchAids(ledger, self.problem, cfg, llm)
        return Planner(self.problem, cfg, llm, fmt, population.archive, aids,  # type: ignore[arg-type]
                       population.rows)


@pytest.fixture
def setup(sqlite_url: str, tmp_path: Path) -> Setup:
    """Returns the tiny problem's run with eight scored programs, four per island."""
    found = Setup(sqlite_url, tmp_path / "tiny", config())
    for island, values in VALUES.items():
        for v in values:
            found.store(island, code(v), -abs(v - 10.0))
    return found


def seen(plans: list[Plan]) -> list[tuple]:
    """Returns what identifies each plan: parent, inspirations, island, kind and the prompt."""
    return [(p.parent.id, [m.id for m in p.inspirations], p.island, p.kind,
             [m.content for m in p.messages]) for p in plans]


def never(message: str) -> None:
    raise AssertionError(f"unexpected planner error: {message}")


def test_plans_are_deterministic_per_seed_and_call(setup: Setup) -> None:
    cfg = config(llm__prompts_per_call=2)
    planner = setup.planner(cfg)
    first = seen(planner.plans(3, None, never))
    planner.plans(7, None, never)  # the archive's rng is used in between
    assert seen(planner.plans(3, None, never)) == first
    assert seen(setup.planner(cfg).plans(3, None, never)) == first  # a rebuilt population
    calls = [seen(planner.plans(c, None, never)) for c in range(8)]
    assert len({repr(c) for c in calls}) > 1  # each call draws its own parents
    other = setup.planner(config(llm__prompts_per_call=2, seed=2))
    assert [seen(other.plans(c, None, never)) for c in range(8)] != calls


@pytest.mark.parametrize(("room", "prompts"), [(None, 3), (7, 3), (6, 3), (5, 2), (4, 2),
                                               (3, 1), (2, 1), (1, 0), (0, 0)])
def test_room_in_the_iteration_budget_limits_the_prompts_per_call(
        setup: Setup, room: int | None, prompts: int) -> None:
    planner = setup.planner(config(llm__prompts_per_call=3, llm__n=2))
    assert len(planner.plans(0, room, never)) == prompts  # each prompt needs room for n children


def test_a_prompt_too_long_for_the_context_is_reported_and_skipped(setup: Setup) -> None:
    huge = setup.store(1, code(7, PAD), -30.0)  # the worst program, alone on island 1
    setup.programs = [p for p in setup.programs if p.island == 0] + [huge]
    errors: list[str] = []
    plans = setup.planner(config(llm__prompts_per_call=2)).plans(0, None, errors.append)
    assert [p.island for p in plans] == [0]  # the prompt on island 1 did not fit
    assert len(errors) == 1 and errors[0].startswith("prompt does not fit the model's context: ")
    assert "use a model with a larger context window" in errors[0]


def test_successive_calls_send_prompts_to_every_island(setup: Setup) -> None:
    planner = setup.planner(config())
    assert {p.island for c in range(4) for p in planner.plans(c, None, never)} == {0, 1}


def test_crossover_plans_put_the_partner_first_among_the_inspirations(setup: Setup) -> None:
    cfg = config(llm__prompts_per_call=2, search={"num_islands": 2, "crossover_rate": 1.0})
    planner = setup.planner(cfg)
    plans = [p for c in range(4) for p in planner.plans(c, None, never)]
    assert plans and all(p.kind == "crossover" for p in plans)
    for plan in plans:
        partner = plan.inspirations[0]
        assert partner.island != plan.parent.island and partner.code_hash != plan.parent.code_hash
        assert "Program B" in plan.messages[-1].content
    parent, inspirations = planner.archive.sample(0)
    partner = planner.archive.islands[1].best()
    crossed = planner.plan(parent, inspirations, 0, partner)
    assert crossed.inspirations == [partner, *inspirations] and crossed.kind == "crossover"
    plain = planner.plan(parent, inspirations, 0)
    assert plain.inspirations == inspirations and plain.kind == "mutation"


def completion(text: str, finish: str = "stop") -> Completion:
    return Completion(text, finish, 100, len(text) // 4, 0.01, "scripted")


def test_proposal_from_reads_rewrite_answers(setup: Setup) -> None:
    planner = setup.planner(config())
    [plan] = planner.plans(0, None, never)
    child = proposal_from(plan, completion(returns(12)), "rewrite", 9)
    assert child.code is not None and "return 12" in child.code and child.rejection is None
    assert child.code_hash == code_hash(child.code) and not child.unchanged
    assert (child.iteration, child.parent, child.inspirations, child.island, child.kind) == \
        (9, plan.parent, plan.inspirations, plan.island, plan.kind)
    assert child.prompt == plan.messages
    assert planner.proposal(9, plan, completion(returns(12))).code == child.code
    body = plan.parent_code.split("# EVOLVE-BLOCK-START\n")[1].split("# EVOLVE-BLOCK-END")[0]
    same = proposal_from(plan, completion(answer(body.rstrip())), "rewrite", 10)
    assert same.unchanged and same.code is not None
    prose = proposal_from(plan, completion("Try a larger number."), "rewrite", 11)
    assert (prose.code, prose.code_hash) == (None, None) and "no code block" in prose.rejection


def test_proposal_from_reads_diff_answers_and_refuses_truncated_ones(setup: Setup) -> None:
    [plan] = setup.planner(config(), fmt="diff").plans(0, None, never)
    line = next(ln for ln in plan.parent_code.splitlines() if ln.strip().startswith("return"))
    diff = f"<<<<<<< SEARCH\n{line}\n=======\n    return 10\n>>>>>>> REPLACE\n"
    child = proposal_from(plan, completion(diff), "diff", 1)
    assert child.code == plan.parent_code.replace(line, "    return 10")
    missing = proposal_from(plan, completion(diff.replace(line, "    return 12345")), "diff", 2)
    assert missing.code is None and "return 12345" in missing.rejection
    cut = proposal_from(plan, completion(diff[:40], "length"), "diff", 3)
    assert cut.code is None and "cut off at max_tokens" in cut.rejection
