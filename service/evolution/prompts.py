"""Builds the mutation prompt (problem, parent, inspirations, answer format) to a token budget."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from evaluators import tree
from service.edits.apply import Format
from service.edits.closable import PYTHON_BLOCK
from service.edits.rewrite import closed_prefix
from service.evolution.program_text import ELIDED, evolving, file_blocks, shown
from service.llm.base import DecodingRule, Message
from service.problems.blocks import block_text, lenient_blocks, parse_block_name
from service.problems.direction import Direction

FEEDBACK_CHARS = {"diff": 400, "rewrite": 200}  # per artifact in the full prompt
SHORT_FEEDBACK_CHARS = 120  # per artifact once inspirations are gone
TAIL_LINES = {"diff": 12, "rewrite": 4}  # lines kept from the end of stderr / tracebacks / logs
MESSAGE_OVERHEAD = 8  # tokens the chat template adds per message (role markers)
MAX_METRICS = 12  # metrics shown per program
MAX_ARTIFACTS = 8  # artifacts shown as feedback
_TAIL_KEYS = ("stderr", "stdout", "traceback", "log", "output")
ANSWER_FLOOR, ANSWER_SLACK = 64, 32  # rewrite answers: at least 64 tokens; 32 for a preface
REPEAT_WINDOW, REPEAT_TIMES = 8, 4  # an answer whose last 8 lines hold one line 4 times loops
TARGET_NOTE = "The program is several files; the code to improve is in "  # + path + "."
_TARGET = re.compile(re.escape(TARGET_NOTE) + r"(?P<path>\S+?)\.(?:\s|$)")


class PromptTooLong(ValueError):
    """Even the smallest prompt (parent's EVOLVE-BLOCKs only) does not fit the token budget."""

    def __init__(self, needed: int, budget: int, description_tokens: int) -> None:
        self.needed, self.budget = needed, budget
        super().__init__(
            f"the prompt needs {needed} tokens even with no inspirations, no feedback and only the "
            f"parent's EVOLVE-BLOCKs (the description alone takes {description_tokens}); the "
            f"budget is {budget}: use a model with a larger context window, lower "
            "llm.max_tokens, or shorten the problem description / the EVOLVE-BLOCK")


@dataclass(frozen=True)
class ProgramView:
    """A program as the prompt shows it."""

    code: str
    score: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)  # evaluator feedback, stderr tail...
    label: str = "parent"  # "parent" | "top" | "diverse"


@dataclass(frozen=True)
class PromptContext:
    """Everything one mutation prompt is built from."""

    problem_name: str
    description: str
    score_metric: str
    direction: Direction
    fmt: Format
    parent: ProgramView
    inspirations: list[ProgramView] = field(default_factory=list)
    system_message: str | None = None  # overrides the default system prompt
    best_known: float | None = None
    scratch: str | None = None  # meta-scratchpad insights, shown before the programs
    partner: ProgramView | None = None  # crossover: a second parent whose ideas to combine
    target: str | None = None  # a folder program asked as a rewrite: the file to rewrite


@dataclass(frozen=True)
class _Layout:
    """How much of the context one attempt shows."""

    inspirations: tuple[ProgramView, ...]
    feedback_chars: int  # 0: no feedback
    excerpt: bool  # True: only the parent's EVOLVE-BLOCKs with a few lines of context


def build_prompt(ctx: PromptContext, count_tokens: Callable[[str], int],
                 max_prompt_tokens: int) -> list[Message]:
    """Returns the system and user messages, shrunk until they fit max_prompt_tokens.

    Shrinks in this order: diverse inspirations, top inspirations (worst first), feedback, then
    the parent down to its EVOLVE-BLOCKs; raises PromptTooLong when even that does not fit.
    """
    if ctx.fmt not in ("diff", "rewrite"):
        raise ValueError(f"fmt {ctx.fmt!r} is unknown; use 'diff' or 'rewrite'")
    system = ctx.system_message or _template(f"system_{ctx.fmt}.txt").template.strip()
    size = 0
    for layout in _layouts(ctx):
        messages = [Message("system", system), Message("user", _user(ctx, layout))]
        size = sum(count_tokens(m.content) + MESSAGE_OVERHEAD for m in messages)
        if size <= max_prompt_tokens:
            return messages
    raise PromptTooLong(size, max_prompt_tokens, count_tokens(ctx.description))


def smallest_prompt_tokens(ctx: PromptContext, count_tokens: Callable[[str], int]) -> int:
    """Returns the tokens of ctx's smallest prompt (the parent's EVOLVE-BLOCKs only, no
    inspirations, no feedback): what any budget must leave for the prompt."""
    *_, smallest = _layouts(ctx)
    system = ctx.system_message or _template(f"system_{ctx.fmt}.txt").template.strip()
    return sum(count_tokens(text) + MESSAGE_OVERHEAD for text in (system, _user(ctx, smallest)))


def asked_format(messages: list[Message]) -> Format:
    """Returns the answer format a mutation prompt built here asks for: "diff" when its user
    message ends with the SEARCH/REPLACE instructions (answer_diff.txt), else "rewrite"."""
    user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    ending = _template("answer_diff.txt").template.strip().splitlines()[-1]
    return "diff" if user.rstrip().endswith(ending) else "rewrite"


def asked_target(messages: list[Message]) -> str | None:
    """Returns the file a folder program's rewrite prompt built here asks to rewrite, else None."""
    user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    match = _TARGET.search(user)
    return match.group("path") if match else None


def answer_done(answer: str) -> bool:
    """Returns True once a rewrite answer is done: its ```python block closed, or it repeats
    itself (what follows a loop of the same lines is more of it)."""
    return block_closed(answer) or repeating(answer)


def answer_guard(fmt: Format, close_code: bool) -> DecodingRule | None:
    """Returns the rule an answer in fmt is decoded under: a rewrite keeps its code closable
    (llm.close_code); a diff's fragments have no such rule."""
    return PYTHON_BLOCK if fmt == "rewrite" and close_code else None


def repeating(answer: str, window: int = REPEAT_WINDOW, times: int = REPEAT_TIMES) -> bool:
    """Returns True when one line of at least 6 characters makes `times` of the answer's last
    `window` lines: a small model caught in a loop (the same def/return pair again and again)."""
    lines = [line.strip() for line in answer.split("\n") if line.strip()][-window:]
    counts: dict[str, int] = {}
    for line in lines:
        if len(line) >= 6:
            counts[line] = counts.get(line, 0) + 1
    return max(counts.values(), default=0) >= times


def answer_tokens(code: str, target: str | None, count_tokens: Callable[[str], int],
                  factor: float, ceiling: int) -> int:
    """Returns the tokens a rewrite answer of code (target: one file's blocks) may use: factor
    times the evolving code's tokens plus ANSWER_SLACK, at least ANSWER_FLOOR and at most
    ceiling (factor 0: ceiling)."""
    if factor <= 0:
        return ceiling
    text = file_blocks(code, target) if target is not None else block_text(code, ELIDED)
    return min(ceiling, max(ANSWER_FLOOR, int(factor * count_tokens(text)) + ANSWER_SLACK))


def block_closed(answer: str) -> bool:
    """Returns True once a rewrite answer has closed its ```python block: what follows is prose
    the parser drops (the embedded model adds 50-200 tokens of it), so generation can stop."""
    return closed_prefix(answer) is not None


def _layouts(ctx: PromptContext) -> Iterator[_Layout]:
    """Yields ever smaller layouts, in the order the budget gives things up."""
    keep, chars = list(ctx.inspirations), FEEDBACK_CHARS[ctx.fmt]
    yield _Layout(tuple(keep), chars, False)
    diverse = [v for v in ctx.inspirations if v.label != "top"]
    tops = sorted((v for v in ctx.inspirations if v.label == "top"),
                  key=lambda v: ctx.direction.fitness(v.score))
    for view in list(reversed(diverse)) + tops:
        keep = [v for v in keep if v is not view]
        yield _Layout(tuple(keep), chars, False)
    yield _Layout((), min(chars, SHORT_FEEDBACK_CHARS), False)
    yield _Layout((), 0, False)
    yield _Layout((), 0, True)


def _user(ctx: PromptContext, layout: _Layout) -> str:
    """Returns the user message for one layout."""
    parent = shown(ctx.parent.code, layout.excerpt)
    feedback = format_feedback(ctx.parent.artifacts, layout.feedback_chars, TAIL_LINES[ctx.fmt])
    common = {"score_metric": ctx.score_metric, "description": ctx.description.strip(),
              "direction_phrase": ctx.direction.phrase}
    scratch = _scratch(ctx.scratch, ctx.fmt)
    if ctx.fmt == "rewrite" and ctx.partner is not None:
        return _template("crossover_rewrite.txt").substitute(
            common, scratch=scratch, score_a=_score(ctx.parent.score),
            code_a=textwrap.dedent(block_text(ctx.parent.code, ELIDED)).rstrip(),
            score_b=_score(ctx.partner.score),
            code_b=textwrap.dedent(block_text(ctx.partner.code, ELIDED)).rstrip(),
            goal=ctx.direction.goal)
    if ctx.fmt == "rewrite":
        # Small models do best with only the code that evolves (one block: no markers at all)
        # and the score said plainly, not under the metric's name.
        if ctx.target is not None:
            parent, common = file_blocks(ctx.parent.code, ctx.target), _around(ctx, common)
        elif len(lenient_blocks(ctx.parent.code)) == 1:
            parent = textwrap.dedent(block_text(ctx.parent.code, ELIDED))
        shown_inspirations = "".join(_template("inspiration_rewrite.txt").substitute(
            score=_score(v.score), code=_evolving_of(v.code, ctx.target).rstrip())
            for v in layout.inspirations)
        return _template("user_rewrite.txt").substitute(
            common, scratch=scratch, score=_score(ctx.parent.score), code=parent.rstrip("\n"),
            feedback=f"\nFeedback:\n{feedback}" if feedback else "",
            inspirations=shown_inspirations, goal=ctx.direction.goal)
    sections = [_program(ctx, "Current program", ctx.parent, parent, feedback)]
    if ctx.partner is not None:
        title = ("Second parent (from another island; combine its ideas with the current "
                 "program; its EVOLVE-BLOCK code)")
        sections.append(_program(ctx, title, ctx.partner, evolving(ctx.partner.code), ""))
    for number, view in enumerate(layout.inspirations, 1):
        title = f"Inspiration {number} ({view.label} program; its EVOLVE-BLOCK code)"
        sections.append(_program(ctx, title, view, evolving(view.code), ""))
    best = "" if ctx.best_known is None else f" The best known result is {_num(ctx.best_known)}."
    answer = _template("answer_diff.txt").substitute(common)
    if tree.is_tree(ctx.parent.code):
        answer = _template("files_diff.txt").template + answer
    return _template("user_diff.txt").substitute(
        common, problem_name=ctx.problem_name, best_known=best, scratch=scratch,
        parent=sections[0],
        inspirations="".join("\n" + s for s in sections[1:]),
        answer=answer).strip() + "\n"


def _around(ctx: PromptContext, common: dict[str, str]) -> dict[str, str]:
    """Returns the common fields with the description followed by the other files' evolving code
    (a folder program's rewrite prompt shows the target file's block as the code to improve)."""
    mine = parse_block_name(ctx.target or "")[0]
    others = [path for path in tree.split(ctx.parent.code) if path != mine]
    context = "".join(f"\n{path}:\n```python\n{file_blocks(ctx.parent.code, path).rstrip()}\n```"
                      for path in others if lenient_blocks(tree.split(ctx.parent.code)[path]))
    note = (f"\n\n{TARGET_NOTE}{ctx.target}."
            + (f" It works with this code of the other files:{context}" if context else ""))
    return {**common, "description": common["description"] + note}


def _evolving_of(code: str, target: str | None) -> str:
    """Returns a program's evolving code as a rewrite prompt shows it (target: one file's)."""
    if target is not None and parse_block_name(target)[0] in tree.split(code):
        return file_blocks(code, target)
    return textwrap.dedent(block_text(code, ELIDED))


def _program(ctx: PromptContext, title: str, view: ProgramView, code: str, feedback: str) -> str:
    """Returns one program section of a diff prompt."""
    return _template("program_diff.txt").substitute(
        title=title, summary=_summary(ctx, view, feedback), code=code.rstrip("\n"))


def _summary(ctx: PromptContext, view: ProgramView, feedback: str) -> str:
    """Returns the score, metrics and feedback lines of a program."""
    lines = [f"{ctx.score_metric}: {_score(view.score)}"]
    others = {k: v for k, v in view.metrics.items() if k != ctx.score_metric}
    if others:
        lines.append("Metrics: " + format_metrics(others))
    if feedback:
        lines.append("Feedback:\n" + feedback)
    return "\n".join(lines)


def _scratch(text: str | None, fmt: str) -> str:
    """Returns the scratchpad section (empty when there is none)."""
    if not text or not text.strip():
        return ""
    head = "Notes from earlier attempts:" if fmt == "rewrite" else "# Notes from earlier attempts"
    return f"{head}\n{text.strip()}\n" + ("" if fmt == "rewrite" else "\n")


def _score(score: float | None) -> str:
    """Returns a score as text, or says that there is none."""
    return "none (the program failed or was not scored)" if score is None else _num(score)


def _num(value: Any) -> str:
    """Returns a number with at most 6 significant digits (other values as short text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)[:40]
    return f"{value:.6g}"


def format_metrics(metrics: dict[str, Any]) -> str:
    """Returns metrics as 'name=value, ...' with at most 6 significant digits each."""
    items = [f"{name}={_num(value)}" for name, value in list(metrics.items())[:MAX_METRICS]]
    more = len(metrics) - MAX_METRICS
    return ", ".join(items) + (f", ... ({more} more)" if more > 0 else "")


def format_feedback(artifacts: dict[str, Any], limit: int,
                    tail_lines: int = TAIL_LINES["diff"]) -> str:
    """Returns artifacts as '- name: text' lines, each cut to limit characters (logs keep their
    last tail_lines lines); an empty string when limit is 0 or there is nothing to say."""
    if limit <= 0:
        return ""
    lines = []
    for name, value in list(artifacts.items())[:MAX_ARTIFACTS]:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        text = text.strip()
        if not text:
            continue
        if any(key in name.lower() for key in _TAIL_KEYS):
            text = "\n".join(text.splitlines()[-tail_lines:])
            text = text if len(text) <= limit else "..." + text[-limit:]
        elif len(text) > limit:
            text = text[:limit] + "..."
        lines.append(f"- {name}: " + text.replace("\n", "\n  "))
    return "\n".join(lines)


@cache
def _template(name: str) -> Template:
    """Returns a prompt template from service/evolution/templates."""
    return Template(resources.files("service.evolution").joinpath("templates", name).read_text())
