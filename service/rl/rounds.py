"""External training rounds (rl.trainer = "external"): the rows controllers and trainers share.

A controller that finds a round due stops proposing, waits for its evaluations, and writes a
`due` row; one `evoforge trainer` claims it (a conditional UPDATE: under PostgreSQL's row lock only
one claimer sees `due`) and holds it under a lease it renews while it trains; the controller
waits until the row is `done` (then it loads the adapter), `failed`, or its lease has expired
(`expired`: a trainer that died mid-round never wedges the run). A round no trainer claims within
rl.claim_timeout_s is `skipped`. Every transition is a conditional UPDATE, so two processes can
never both move a round on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from service.db import Database
from service.db.models import RLRoundRow, utcnow

OPEN = ("due", "training")
FINAL = ("done", "failed", "expired", "skipped")
LEASE_S = 60.0  # a trainer renews its claim every LEASE_S / 4 seconds


@dataclass(frozen=True)
class Round:
    """A snapshot of one rl_rounds row."""

    id: int
    run_id: int
    number: int
    status: str
    evaluations: int
    steps: int
    trainer: str | None
    lease_expires_at: datetime | None
    adapter_id: int | None
    served_at: datetime | None
    error: str | None

    def lease_expired(self, now: datetime | None = None) -> bool:
        """Returns True when the round is claimed but its trainer stopped renewing the lease."""
        if self.status != "training" or self.lease_expires_at is None:
            return False
        now = now or utcnow()
        expires = self.lease_expires_at
        if expires.tzinfo is None:  # SQLite hands back naive UTC datetimes
            expires = expires.replace(tzinfo=now.tzinfo)
        return expires < now


def _snap(row: RLRoundRow) -> Round:
    return Round(row.id, row.run_id, row.number, row.status, row.evaluations, row.steps,
                 row.trainer, row.lease_expires_at, row.adapter_id, row.served_at, row.error)


def get_round(db: Database, round_id: int) -> Round:
    """Returns the round's current row."""
    with db.session() as s:
        return _snap(s.get(RLRoundRow, round_id))


def open_round(db: Database, run_id: int) -> Round | None:
    """Returns the run's round that is due or being trained, if any."""
    with db.session() as s:
        row = s.scalars(select(RLRoundRow).where(RLRoundRow.run_id == run_id,
                                                 RLRoundRow.status.in_(OPEN))
                        .order_by(RLRoundRow.id).limit(1)).first()
        return None if row is None else _snap(row)


def create_round(db: Database, run_id: int, evaluations: int, steps: int) -> Round:
    """Writes a new due round for the run (numbered after its previous rounds)."""
    with db.session() as s:
        number = (s.scalar(select(func.max(RLRoundRow.number))
                           .where(RLRoundRow.run_id == run_id)) or 0) + 1
        row = RLRoundRow(run_id=run_id, number=number, status="due", evaluations=evaluations,
                         steps=steps)
        s.add(row)
        s.flush()
        return _snap(row)


def due_rounds(db: Database, run_ids: list[int] | None = None) -> list[Round]:
    """Returns the due rounds, oldest first (of run_ids only, when given)."""
    query = select(RLRoundRow).where(RLRoundRow.status == "due").order_by(RLRoundRow.id)
    if run_ids:
        query = query.where(RLRoundRow.run_id.in_(run_ids))
    with db.session() as s:
        return [_snap(r) for r in s.scalars(query)]


def claim(db: Database, round_id: int, owner: str, lease_s: float = LEASE_S) -> bool:
    """Claims a due round for owner; returns False when another trainer (or a skip) came first."""
    now = utcnow()
    with db.session() as s:
        done = s.execute(update(RLRoundRow).where(RLRoundRow.id == round_id,
                                                  RLRoundRow.status == "due")
                         .values(status="training", trainer=owner, started_at=now,
                                 lease_expires_at=now + timedelta(seconds=lease_s)))
        return done.rowcount == 1


def renew(db: Database, round_id: int, owner: str, lease_s: float = LEASE_S) -> bool:
    """Extends owner's claim; returns False when the round is no longer owner's to train."""
    with db.session() as s:
        done = s.execute(update(RLRoundRow).where(
            RLRoundRow.id == round_id, RLRoundRow.status == "training",
            RLRoundRow.trainer == owner)
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s)))
        return done.rowcount == 1


def finish(db: Database, round_id: int, owner: str, *, adapter_id: int | None = None,
           error: str | None = None, served: bool = False) -> bool:
    """Closes owner's round as done (with its adapter) or failed (with the error)."""
    now = utcnow()
    with db.session() as s:
        done = s.execute(update(RLRoundRow).where(
            RLRoundRow.id == round_id, RLRoundRow.status == "training",
            RLRoundRow.trainer == owner)
            .values(status="failed" if error else "done", adapter_id=adapter_id, error=error,
                    finished_at=now, lease_expires_at=None, served_at=now if served else None))
        return done.rowcount == 1


def skip(db: Database, round_id: int, reason: str) -> bool:
    """Gives up a round no trainer has claimed; returns False when one just claimed it."""
    with db.session() as s:
        done = s.execute(update(RLRoundRow).where(RLRoundRow.id == round_id,
                                                  RLRoundRow.status == "due")
                         .values(status="skipped", error=reason, finished_at=utcnow()))
        return done.rowcount == 1


def expire(db: Database, seen: Round) -> bool:
    """Ends a round whose lease ran out as seen; returns False when its trainer renewed since."""
    with db.session() as s:
        done = s.execute(update(RLRoundRow).where(
            RLRoundRow.id == seen.id, RLRoundRow.status == "training",
            RLRoundRow.trainer == seen.trainer,
            RLRoundRow.lease_expires_at == seen.lease_expires_at)
            .values(status="expired", finished_at=utcnow(),
                    error=f"trainer {seen.trainer} stopped renewing its claim"))
        return done.rowcount == 1


def unserved_rounds(db: Database, run_ids: list[int] | None = None) -> list[Round]:
    """Returns each run's newest done round whose adapter the LLM server has not loaded yet."""
    query = select(RLRoundRow).where(RLRoundRow.status == "done",
                                     RLRoundRow.adapter_id.is_not(None))
    if run_ids:
        query = query.where(RLRoundRow.run_id.in_(run_ids))
    newest: dict[int, Round] = {}
    with db.session() as s:
        for row in s.scalars(query.order_by(RLRoundRow.id)):
            newest[row.run_id] = _snap(row)
    return [r for r in newest.values() if r.served_at is None]


def mark_served(db: Database, round_id: int, error: str | None = None) -> None:
    """Records that the round's adapter was loaded into the LLM server (or why it was not)."""
    with db.session() as s:
        s.execute(update(RLRoundRow).where(RLRoundRow.id == round_id).values(
            served_at=None if error else utcnow(), error=error))
