"""Quotas hold under concurrency: simultaneous starts of one owner take turns on PostgreSQL (the
owner's token row is locked until each request commits), so they never exceed the quota."""

from __future__ import annotations

import threading

from tests.service.api.conftest import Api


def test_simultaneous_starts_over_http_never_exceed_the_quota(api: Api) -> None:
    h = api.h("alice")  # quota 2
    pid = api.problem()
    api.run(problem_id=pid)  # one active run: room for exactly one more
    parked = [api.run(problem_id=pid, start=False) for _ in range(4)]
    gate = threading.Barrier(len(parked))
    statuses: list[int] = []

    def start(run_id: int) -> None:
        gate.wait()
        statuses.append(api.client.post(f"/api/runs/{run_id}/start", headers=h).status_code)

    threads = [threading.Thread(target=start, args=(run_id,)) for run_id in parked]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(statuses) == [200, 429, 429, 429]
    assert api.client.get("/api/me", headers=h).json()["active_runs"] == 2
