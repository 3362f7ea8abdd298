"""API tokens: created by the CLI, stored as sha256 hashes, scoped read < write < admin."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.config import ConfigError
from service.db.models import ApiTokenRow, utcnow

SCOPES = ("read", "write", "admin")
PREFIX = "evf_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(ConfigError):
    """A token request is wrong; the message says what to change (the CLI prints it plainly)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, scope, and the id whose problems and runs it owns."""

    token_id: int
    name: str
    scope: str
    owner_id: int
    max_active_runs: int | None

    def allows(self, scope: str) -> bool:
        """Returns True when this token's scope includes scope."""
        return SCOPES.index(self.scope) >= SCOPES.index(scope)

    @property
    def admin(self) -> bool:
        """Returns True for admin tokens, which see and change every row."""
        return self.scope == "admin"


def hash_secret(secret: str) -> str:
    """Returns the sha256 hex digest under which a token is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(s: Session, name: str, scope: str, max_active_runs: int | None = None,
                 acts_for: int | None = None) -> tuple[ApiTokenRow, str]:
    """Stores a new token; returns (row, secret). The secret is shown once and never stored."""
    if scope not in SCOPES:
        raise TokenError(f"scope '{scope}' is unknown; use one of {', '.join(SCOPES)}")
    if not name.strip():
        raise TokenError("token name is empty; give --name, e.g. the user's name")
    if max_active_runs is not None and max_active_runs < 0:
        raise TokenError(f"--max-runs {max_active_runs} is negative; give 0 or more")
    if acts_for is not None:
        owner = s.get(ApiTokenRow, acts_for)
        if owner is None or owner.revoked_at is not None:
            raise TokenError(f"--of {acts_for}: no such active token; `evoforge tokens list`")
        acts_for = owner.acts_for or owner.id
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiTokenRow(name=name, token_hash=hash_secret(secret), prefix=secret[:10], scope=scope,
                      max_active_runs=max_active_runs, acts_for=acts_for)
    s.add(row)
    s.flush()
    return row, secret


def list_tokens(s: Session) -> list[ApiTokenRow]:
    """Returns every token, oldest first (hashes only; secrets are never stored)."""
    return list(s.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id)))


def revoke_token(s: Session, token_id: int) -> ApiTokenRow:
    """Marks a token revoked; later requests with it get 401."""
    row = s.get(ApiTokenRow, token_id)
    if row is None:
        raise TokenError(f"no token {token_id}; `evoforge tokens list` shows the ids")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def authenticate(s: Session, secret: str) -> Principal | None:
    """Returns the principal for a presented secret, or None when unknown or revoked."""
    row = s.scalars(select(ApiTokenRow)
                    .where(ApiTokenRow.token_hash == hash_secret(secret))).first()
    if row is None or row.revoked_at is not None:
        return None
    now, last = utcnow(), row.last_used_at
    if last is not None and last.tzinfo is None:  # SQLite gives naive datetimes
        last = last.replace(tzinfo=now.tzinfo)
    if last is None or now - last > LAST_USED_RESOLUTION:
        row.last_used_at = now  # written at most once a minute: reads stay read-only
    return Principal(token_id=row.id, name=row.name, scope=row.scope,
                     owner_id=row.acts_for or row.id, max_active_runs=row.max_active_runs)
