"""The fleet page (admin tokens): workers with their state, controllers with the runs they drive,
queues with the evaluations waiting; what GET /api/fleet answers, in the real Chromium."""

from __future__ import annotations

import json
from datetime import timedelta

from playwright.sync_api import Page, expect
from sqlalchemy import update

from service.api.auth_tokens import create_token
from service.db.fleet import Identity, beat
from service.db.models import FleetMemberRow, utcnow
from tests.web.conftest import Site, shoot


def test_fleet_page_shows_workers_controllers_and_queues_as_the_api_does(
        site: Site, bare_page: Page) -> None:
    with site.db.session() as s:
        _, admin = create_token(s, "ops", "admin")
        beat(s, Identity("worker", "evoforge-11@gpu-1", ("gpu",), 4, "gpu-1", 11, "0.1.0"), 10)
        beat(s, Identity("worker", "evoforge-12@cpu-1", ("cpu",), 2, "cpu-1", 12, "0.1.0"), 10)
        beat(s, Identity("controller", "ctl-1:13", (), 8, "ctl-1", 13, "0.1.0"), 10)
        s.execute(update(FleetMemberRow).where(FleetMemberRow.name == "evoforge-12@cpu-1")
                  .values(last_seen=utcnow() - timedelta(minutes=5)))  # it stopped beating
    fleet = site.client.get("/api/fleet", headers={"Authorization": f"Bearer {admin}"}).json()
    bare_page.context.add_init_script(f"localStorage.setItem('evoforge.token', "
                                      f"{json.dumps(admin)})")
    bare_page.goto(f"{site.url}/#/fleet")
    workers = bare_page.locator("[data-testid=workers] tbody tr")
    expect(workers).to_have_count(len(fleet["workers"]))
    expect(bare_page.locator("tr[data-member='evoforge-11@gpu-1']")).to_contain_text("alive")
    expect(bare_page.locator("tr[data-member='evoforge-12@cpu-1']")).to_contain_text("lost")
    expect(bare_page.locator("tr[data-member='ctl-1:13']")).to_contain_text("alive")
    queues = bare_page.locator("[data-testid=queues] tbody tr")
    expect(queues).to_have_count(len(fleet["queues"]))
    expect(bare_page.locator("tr[data-queue='gpu']")).to_contain_text("1")  # one worker alive
    expect(bare_page.locator("tr[data-queue='cpu'] .error")).to_have_text("0")  # its one is lost
    expect(bare_page.locator("header a[href='#/fleet']")).to_be_visible()  # admins see the link
    shoot(bare_page, "fleet")
