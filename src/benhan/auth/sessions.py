"""Page sessions: a random cookie value, of which only the SHA-256 is stored, and its timeouts.

A session ends after IDLE_S without a request (sliding) and ABSOLUTE_S after sign-in whatever
happens; it ends at once when its account is disabled or its password or role changes. Sessions
live in the database, so several servers share them and a restart signs nobody out.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from benhan.access import Actor
from benhan.auth.accounts import Account, get_account
from benhan.fhir import primitives
from benhan.fhir.primitives import micros
from benhan.store.audit import ROLES_CHANGED, record_security, security_event
from benhan.store.schema import web_session

IDLE_S = 30 * 60
ABSOLUTE_S = 12 * 3600
# Move the idle deadline at most once a minute: a page view is then a read, not a write.
SLIDE_STEP_S = 60
_US = 1_000_000


@dataclass(frozen=True)
class SessionRow:
    id_hash: str  # SHA-256 of the cookie value, hex: the row's key, never the secret itself
    account_id: str
    csrf: str
    created: int  # microseconds since the epoch
    expires: int
    address: str | None

    def slid_expiry(self, at: int) -> int:
        """The idle deadline a request at `at` moves this session to, capped by the absolute."""
        return min(at + IDLE_S * _US, self.created + ABSOLUTE_S * _US)

    def needs_slide(self, at: int) -> bool:
        return self.slid_expiry(at) - self.expires >= SLIDE_STEP_S * _US


def hash_value(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode()).hexdigest()


def create_session(conn: sa.Connection, account_id: str, address: str | None) -> tuple[str, str]:
    """A new session for the account: (cookie value, CSRF token). Only the value's hash is kept."""
    value = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    stamp = micros(primitives.now())
    conn.execute(
        web_session.insert().values(
            id_hash=hash_value(value),
            account_id=account_id,
            csrf=csrf,
            created=stamp,
            expires=stamp + IDLE_S * _US,
            address=(address or None) and address[:64],
        )
    )
    # Expired rows say nothing any more: keep the table small.
    conn.execute(web_session.delete().where(web_session.c.expires < stamp))
    return value, csrf


def lookup(
    conn: sa.Connection, cookie_value: str, *, slide: bool = True
) -> tuple[SessionRow, Account] | None:
    """The live session for a cookie and its active account; None when expired or disabled.

    With `slide`, the idle deadline moves forward (a write: pass a write transaction); without,
    the caller calls `touch` when `row.needs_slide(...)` says so.
    """
    if not cookie_value or len(cookie_value) > 128:
        return None
    found = (
        conn.execute(
            sa.select(web_session).where(web_session.c.id_hash == hash_value(cookie_value))
        )
        .mappings()
        .first()
    )
    if found is None:
        return None
    row = SessionRow(
        id_hash=str(found["id_hash"]),
        account_id=str(found["account_id"]),
        csrf=str(found["csrf"]),
        created=int(found["created"]),
        expires=int(found["expires"]),
        address=found["address"],
    )
    stamp = micros(primitives.now())
    if row.expires <= stamp:
        return None
    acc = get_account(conn, row.account_id)
    if acc is None or not acc.active:
        return None
    if slide and row.needs_slide(stamp):
        row = touch(conn, row, stamp)
    return row, acc


def touch(conn: sa.Connection, row: SessionRow, at: int | None = None) -> SessionRow:
    """Move the idle deadline of a live session forward (never past the absolute limit)."""
    stamp = micros(primitives.now()) if at is None else at
    expires = row.slid_expiry(stamp)
    conn.execute(
        web_session.update()
        .where(web_session.c.id_hash == row.id_hash, web_session.c.expires > stamp)
        .values(expires=expires)
    )
    return SessionRow(row.id_hash, row.account_id, row.csrf, row.created, expires, row.address)


def delete_session(conn: sa.Connection, cookie_value: str) -> None:
    conn.execute(web_session.delete().where(web_session.c.id_hash == hash_value(cookie_value)))


def end_account_sessions(conn: sa.Connection, account_id: str) -> int:
    """Sign the account out everywhere (disabled, new password, new role); how many ended."""
    result = conn.execute(web_session.delete().where(web_session.c.account_id == account_id))
    return int(result.rowcount or 0)


def account_changed(conn: sa.Connection, actor: Actor, target: Account, detail: str) -> None:
    """A permission change (created, role, disabled, enabled, password): the account is signed
    out everywhere and the change is audited, in the caller's transaction."""
    end_account_sessions(conn, target.id)
    entities = [f"Practitioner/{target.practitioner}"] if target.practitioner else []
    event = security_event(
        ROLES_CHANGED, entities=entities, detail=f"account {target.username}: {detail}"
    )
    record_security(conn, actor, event)
