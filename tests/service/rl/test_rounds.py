"""External training rounds: one trainer claims a due round, leases expire, skips lose to claims."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from service.db import Database
from service.rl.rounds import (
    claim,
    create_round,
    due_rounds,
    expire,
    finish,
    get_round,
    open_round,
    renew,
    skip,
)
from tests.service.driver import scripted_run
from tests.service.engine_helpers import config


def _run(url: str, tmp_path: Path) -> tuple[Database, int]:
    return scripted_run(url, tmp_path / "tiny", config(budget__iterations=1))


def test_of_many_trainers_claiming_a_due_round_at_once_exactly_one_wins(db_url: str,
                                                                         tmp_path: Path) -> None:
    db, run_id = _run(db_url, tmp_path)
    rnd = create_round(db, run_id, evaluations=3, steps=2)
    assert [r.id for r in due_rounds(db)] == [rnd.id] and open_round(db, run_id) == rnd
    start = threading.Barrier(6)
    wins: list[str] = []

    def contender(name: str) -> None:
        start.wait()
        if claim(db, rnd.id, name):
            wins.append(name)

    threads = [threading.Thread(target=contender, args=(f"host:{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    now = get_round(db, rnd.id)
    assert now.status == "training" and now.trainer == wins[0] and due_rounds(db) == []
    assert not skip(db, rnd.id, "too late")  # a claimed round cannot be skipped under it
    assert not renew(db, rnd.id, "someone-else") and renew(db, rnd.id, wins[0])


def test_a_claim_whose_lease_ran_out_is_expired_and_its_trainer_can_no_longer_renew(
        db_url: str, tmp_path: Path) -> None:
    db, run_id = _run(db_url, tmp_path)
    rnd = create_round(db, run_id, evaluations=3, steps=1)
    assert claim(db, rnd.id, "host:1", lease_s=0.2)
    assert not get_round(db, rnd.id).lease_expired()
    time.sleep(0.4)
    seen = get_round(db, rnd.id)
    assert seen.lease_expired()
    assert expire(db, seen) and get_round(db, rnd.id).status == "expired"
    assert not renew(db, rnd.id, "host:1")
    assert not finish(db, rnd.id, "host:1", adapter_id=1)
    assert open_round(db, run_id) is None


def test_a_renewed_lease_is_not_expired_by_a_stale_look(db_url: str, tmp_path: Path) -> None:
    db, run_id = _run(db_url, tmp_path)
    rnd = create_round(db, run_id, evaluations=3, steps=1)
    assert claim(db, rnd.id, "host:1", lease_s=0.1)
    time.sleep(0.2)
    stale = get_round(db, rnd.id)
    assert stale.lease_expired() and renew(db, rnd.id, "host:1")
    assert not expire(db, stale)  # the trainer renewed after the controller looked
    assert get_round(db, rnd.id).status == "training"


def test_rounds_are_numbered_per_run_and_a_skip_closes_a_due_round(db_url: str,
                                                                   tmp_path: Path) -> None:
    db, run_id = _run(db_url, tmp_path)
    first = create_round(db, run_id, evaluations=3, steps=1)
    assert skip(db, first.id, "no trainer") and get_round(db, first.id).error == "no trainer"
    assert not claim(db, first.id, "host:1")
    second = create_round(db, run_id, evaluations=6, steps=1)
    assert (first.number, second.number) == (1, 2)
    assert claim(db, second.id, "host:1")
    assert finish(db, second.id, "host:1", error="boom")
    assert get_round(db, second.id).status == "failed"
