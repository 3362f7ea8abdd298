"""Meta-scratchpad: a digest of a run's recent successes and failures (read from the database)
that the LLM turns into a few lines of insights; every version is stored, later prompts show the
latest (PromptContext.scratch)."""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import LLMSampleRow, ProgramRow, ScratchpadRow
from service.db.status import NO_PROGRAM, NOT_NEW, ProgramKind, ProgramStatus
from service.evolution.ledger import Ledger
from service.llm.base import LLMBackend, Message, Sampling
from service.problems.direction import Direction

RECENT = 40  # children the digest looks at
SHOWN = 4  # best improvements and failure reasons listed
CHANGED_LINES = 3  # added lines quoted per improvement
LINE_CHARS = 100


@dataclass
class Change:
    """One evaluated child next to its parent."""

    iteration: int
    parent_score: float | None
    score: float | None
    status: str
    failure: str | None
    added: list[str]


def _added_lines(before: str, after: str) -> list[str]:
    """Returns the (stripped, shortened) lines a child added to its parent's code."""
    lines = [ln[1:].strip() for ln in difflib.unified_diff(before.splitlines(), after.splitlines(),
                                                           lineterm="", n=0)
             if ln.startswith("+") and not ln.startswith("+++")]
    return [ln[:LINE_CHARS] for ln in lines if ln and not ln.startswith("#")][:CHANGED_LINES]


def recent_changes(s: Session, run_id: int, limit: int = RECENT) -> list[Change]:
    """Returns the run's latest evaluated children (newest first), each with its parent's score."""
    children = list(s.scalars(
        select(ProgramRow).where(ProgramRow.run_id == run_id,
                                 ProgramRow.kind == ProgramKind.MUTATION,
                                 ProgramRow.status.in_((ProgramStatus.OK, ProgramStatus.FAILED)))
        .order_by(ProgramRow.iteration.desc(), ProgramRow.id.desc()).limit(limit)))
    parent_ids = {c.parent_id for c in children if c.parent_id is not None}
    parents = {p.id: p for p in s.scalars(select(ProgramRow).where(ProgramRow.id.in_(parent_ids)))}
    out = []
    for c in children:
        p = parents.get(c.parent_id)
        out.append(Change(c.iteration, p.score if p else None, c.score, c.status,
                          c.failure_reason, _added_lines(p.code if p else "", c.code)))
    return out


def digest(s: Session, run_id: int, direction: str, limit: int = RECENT) -> str:
    """Returns a plain-text digest: what improved scores (and the lines added), what failed and
    why, and how many answers were rejected, from the run's most recent children."""
    sign = Direction(direction).sign
    changes = recent_changes(s, run_id, limit)
    gains = sorted(((sign * (c.score - c.parent_score), c) for c in changes
                    if c.score is not None and c.parent_score is not None), key=lambda g: -g[0])
    better = [(g, c) for g, c in gains if g > 0]
    head = (f"Last {len(changes)} evaluated children: {len(better)} beat their parent, "
            f"{sum(c.status == ProgramStatus.FAILED for c in changes)} failed, "
            f"{sum(1 for g, _ in gains if g < 0)} scored worse.")
    lines = [head]
    for _, c in better[:SHOWN]:
        lines.append(f"- Improved {c.parent_score:.6g} -> {c.score:.6g}; added: "
                     + ("; ".join(c.added) or "(only removals)"))
    for _, c in [g for g in gains if g[0] < 0][-2:]:
        lines.append(f"- Worse {c.parent_score:.6g} -> {c.score:.6g}; added: "
                     + ("; ".join(c.added) or "(only removals)"))
    failures = Counter((c.failure or "unknown").splitlines()[0][:LINE_CHARS]
                       for c in changes if c.status == ProgramStatus.FAILED)
    for reason, n in failures.most_common(SHOWN):
        lines.append(f"- Failed {n}x: {reason}")
    rejected = s.execute(
        select(LLMSampleRow.outcome, func.count()).where(
            LLMSampleRow.run_id == run_id,
            LLMSampleRow.outcome.in_(NO_PROGRAM + NOT_NEW))
        .group_by(LLMSampleRow.outcome)).all()
    if rejected:
        lines.append("Answers not evaluated: " + ", ".join(f"{n} {o}" for o, n in sorted(rejected)))
    return "\n".join(lines)


def scratch_prompt(description: str, digest_text: str, previous: str | None) -> list[Message]:
    """Returns the prompt asking for a short list of insights."""
    before = f"\nYour earlier notes:\n{previous.strip()}\n" if previous else ""
    return [Message("system", "You study the results of an automated code search and write "
                    "short, concrete advice."),
            Message("user", f"Task: {description.strip()}\n{before}\nRecent results:\n"
                    f"{digest_text}\n\nWrite at most 5 short bullet points: what to try next "
                    "and what to avoid.")]


def latest(s: Session, run_id: int) -> ScratchpadRow | None:
    """Returns the run's newest scratchpad version, if any."""
    return s.scalars(select(ScratchpadRow).where(ScratchpadRow.run_id == run_id)
                     .order_by(ScratchpadRow.version.desc()).limit(1)).first()


async def write_version(ledger: Ledger, llm: LLMBackend, description: str,
                        direction: str, iteration: int, max_tokens: int, seed: int,
                        price_per_1k_tokens: float = 0.0) -> ScratchpadRow:
    """Builds the digest, has the LLM write the insights, stores them as the next version (and
    adds the call's tokens and cost to the run); returns the row."""
    db, run_id = ledger.db, ledger.run_id
    with db.session() as s:
        text = digest(s, run_id, direction)
        prev = latest(s, run_id)
    messages = scratch_prompt(description, text, prev.text if prev else None)
    [[c]] = await llm.generate([messages], 1, Sampling(temperature=0.3, max_tokens=max_tokens,
                                                       seed=seed))
    cost = float(c.extra.get("cost", (c.prompt_tokens + c.completion_tokens)
                             * price_per_1k_tokens / 1000.0))
    row = ScratchpadRow(run_id=run_id, version=(prev.version + 1) if prev else 1,
                        iteration=iteration, digest=text, text=c.text.strip(), model=c.model,
                        prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens)
    ledger.add_side_call(c, cost, [row])
    return row
