"""Tokens from the CLI: created with a secret shown once, listed without it, revoked."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from service.api.auth_tokens import TokenError, authenticate, create_token
from service.cli.app import app
from service.db import Database


def test_cli_creates_lists_and_revokes_tokens(sqlite_url: str) -> None:
    runner = CliRunner()
    made = runner.invoke(app, ["tokens", "create", "--name", "ann", "--scope", "read",
                               "--max-runs", "3", "--db", sqlite_url, "--json"])
    assert made.exit_code == 0, made.output
    token = json.loads(made.output.strip().splitlines()[-1])
    db = Database(sqlite_url)
    with db.session() as s:
        who = authenticate(s, token["token"])
        assert who is not None and who.scope == "read" and who.max_active_runs == 3
        assert authenticate(s, token["token"]) is not None  # last_used_at on SQLite too
    listed = runner.invoke(app, ["tokens", "list", "--db", sqlite_url, "--json"])
    row = json.loads(listed.output.strip().splitlines()[-1])
    assert row["name"] == "ann" and token["token"] not in listed.output
    assert runner.invoke(app, ["tokens", "revoke", str(token["id"]), "--db", sqlite_url]) \
        .exit_code == 0
    with db.session() as s:
        assert authenticate(s, token["token"]) is None
    bad = runner.invoke(app, ["tokens", "create", "--name", "x", "--scope", "root",
                              "--db", sqlite_url])
    assert bad.exit_code == 1 and "use one of read, write, admin" in bad.output
    gone = runner.invoke(app, ["tokens", "revoke", "99", "--db", sqlite_url])
    assert gone.exit_code == 1 and "no token 99" in gone.output


def test_a_shared_token_acts_for_its_owner(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    with db.session() as s:
        owner, _ = create_token(s, "w", "write")
        viewer, secret = create_token(s, "v", "read", acts_for=owner.id)
        assert viewer.acts_for == owner.id
        with pytest.raises(TokenError, match="no such active token"):
            create_token(s, "x", "read", acts_for=999)
        assert authenticate(s, secret).owner_id == owner.id
