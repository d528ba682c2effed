"""Accounts of people: Argon2id passwords, roles, facility, and login throttling.

An account is linked to the Practitioner (staff) or Patient (patients) it acts as. Failed logins
are counted per account name and per address in the database (several servers share them):
after FAILS_PER_NAME failures for a name, or FAILS_PER_ADDRESS from one address, within
WINDOW_S, logins are refused until the window has passed, whatever the password.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from benhan.access import Actor, Reach, Role, Scopes, role
from benhan.fhir.primitives import micros, now
from benhan.store.schema import account, login_failure

WINDOW_S = 15 * 60
FAILS_PER_NAME = 5
FAILS_PER_ADDRESS = 20
MIN_PASSWORD = 10
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
_hasher = PasswordHasher()  # Argon2id, RFC 9106 low-memory profile defaults
# Verified against when the name is unknown, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AuthError(Exception):
    """A refused login or account change; `code` says why (for tests and the audit trail)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Account:
    id: str
    username: str
    role: str
    facility: str
    display_name: str
    practitioner: str | None
    patient: str | None
    active: bool

    def actor(
        self,
        scopes: Scopes | None = None,
        *,
        address: str | None = None,
        session: str | None = None,
    ) -> Actor:
        """The actor this account is on a request; asked-for scopes are cut to the role's."""
        r = role(self.role)
        granted = r.scopes if scopes is None else scopes.within(r.scopes)
        return Actor(
            kind="user",
            name=self.username,
            role=r,
            facility=self.facility,
            scopes=granted,
            account=self.id,
            practitioner=f"Practitioner/{self.practitioner}" if self.practitioner else None,
            patient=f"Patient/{self.patient}" if self.patient else None,
            address=address,
            session=session,
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_rules(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(
            "weak-password",
            f"Mật khẩu phải có ít nhất {MIN_PASSWORD} ký tự / "
            f"a password needs at least {MIN_PASSWORD} characters",
        )
    if username.lower() in password.lower():
        raise AuthError(
            "weak-password",
            "Mật khẩu không được chứa tên đăng nhập / a password may not contain the username",
        )


def create_account(
    conn: sa.Connection,
    *,
    username: str,
    password: str,
    role_code: str,
    facility: str,
    display_name: str,
    practitioner: str | None = None,
    patient: str | None = None,
) -> Account:
    """A new active account; the name must be free and the password long enough."""
    r = _check_role(role_code, facility, patient)
    if not USERNAME.fullmatch(username):
        raise AuthError(
            "bad-username",
            "Tên đăng nhập 3–64 ký tự a-z, 0-9, . _ - / a username is 3–64 of a-z 0-9 . _ -",
        )
    check_password_rules(password, username)
    if conn.scalar(sa.select(account.c.id).where(account.c.username == username)):
        raise AuthError("exists", f"Tên đăng nhập đã có / username taken: {username}")
    from benhan.store.repository import new_id

    stamp = micros(now())
    row = {
        "id": new_id(),
        "username": username,
        "password_hash": hash_password(password),
        "role": r.code,
        "facility": facility,
        "display_name": display_name.strip() or username,
        "practitioner": practitioner,
        "patient": patient,
        "active": True,
        "created": stamp,
        "password_changed": stamp,
    }
    conn.execute(account.insert().values(**row))
    return _account(row)


def _check_role(role_code: str, facility: str, patient: str | None) -> Role:
    try:
        r = role(role_code)
    except ValueError as exc:
        raise AuthError("bad-role", str(exc)) from None
    if r.machine:
        raise AuthError(
            "bad-role",
            "Vai trò này dành cho ứng dụng, không cho người / this role is for client applications",
        )
    if r.reach is Reach.FACILITY and not facility:
        raise AuthError("bad-facility", "Vai trò này cần mã cơ sở / this role needs a facility")
    if r.reach is Reach.OWN_RECORD and not patient:
        raise AuthError("bad-patient", "Tài khoản người bệnh cần Patient / needs a Patient id")
    return r


# Built once: every API request looks its caller up (SQLAlchemy keys a new statement by walking it).
_BY_ID = sa.select(account).where(account.c.id == sa.bindparam("account_id"))


def get_account(conn: sa.Connection, account_id: str) -> Account | None:
    row = conn.execute(_BY_ID, {"account_id": account_id}).mappings().first()
    return _account(row) if row else None


def find_account(conn: sa.Connection, username: str) -> Account | None:
    row = conn.execute(sa.select(account).where(account.c.username == username)).mappings().first()
    return _account(row) if row else None


def list_accounts(conn: sa.Connection, facility: str | None) -> list[Account]:
    q = sa.select(account).order_by(account.c.username)
    if facility is not None:
        q = q.where(account.c.facility == facility)
    return [_account(r) for r in conn.execute(q).mappings()]


def authenticate(conn: sa.Connection, username: str, password: str, address: str | None) -> Account:
    """The active account with this name and password; failures are counted and throttled.

    The caller commits even when this raises, so that the failure is remembered.
    """
    if throttled(conn, username, address):
        raise AuthError(
            "throttled",
            "Đăng nhập sai quá nhiều lần, hãy thử lại sau 15 phút / "
            "too many failed logins, try again in 15 minutes",
        )
    row = conn.execute(
        sa.select(account.c.id, account.c.password_hash, account.c.active).where(
            account.c.username == username
        )
    ).first()
    ok = False
    try:
        ok = _hasher.verify(row.password_hash if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row is None or not row.active:
        _remember_failure(conn, username, address)
        raise AuthError(
            "invalid",
            "Sai tên đăng nhập hoặc mật khẩu / wrong username or password",
        )
    if _hasher.check_needs_rehash(row.password_hash):
        conn.execute(
            account.update()
            .where(account.c.id == row.id)
            .values(password_hash=hash_password(password))
        )
    found = get_account(conn, row.id)
    assert found is not None
    return found


def throttled(conn: sa.Connection, username: str, address: str | None) -> bool:
    since = micros(now()) - WINDOW_S * 1_000_000

    def fails(subject: str) -> int:
        return int(
            conn.scalar(
                sa.select(sa.func.count()).where(
                    login_failure.c.subject == subject, login_failure.c.at >= since
                )
            )
            or 0
        )

    if fails(f"user:{username}") >= FAILS_PER_NAME:
        return True
    return bool(address) and fails(f"ip:{address}") >= FAILS_PER_ADDRESS


def _remember_failure(conn: sa.Connection, username: str, address: str | None) -> None:
    stamp = micros(now())
    rows = [{"subject": f"user:{username[:120]}", "at": stamp}]
    if address:
        rows.append({"subject": f"ip:{address}", "at": stamp})
    conn.execute(login_failure.insert(), rows)
    # Old failures say nothing any more: keep the table small.
    conn.execute(
        login_failure.delete().where(login_failure.c.at < stamp - 2 * WINDOW_S * 1_000_000)
    )


def set_password(conn: sa.Connection, account_id: str, password: str) -> None:
    acc = get_account(conn, account_id)
    if acc is None:
        raise AuthError("not-found", "Không có tài khoản / no such account")
    check_password_rules(password, acc.username)
    conn.execute(
        account.update()
        .where(account.c.id == account_id)
        .values(password_hash=hash_password(password), password_changed=micros(now()))
    )
    conn.execute(login_failure.delete().where(login_failure.c.subject == f"user:{acc.username}"))


def update_account(
    conn: sa.Connection,
    account_id: str,
    *,
    role_code: str | None = None,
    active: bool | None = None,
    display_name: str | None = None,
) -> Account:
    """Change role, activity or name; the caller records the permission change."""
    acc = get_account(conn, account_id)
    if acc is None:
        raise AuthError("not-found", "Không có tài khoản / no such account")
    values: dict[str, object] = {}
    if role_code is not None:
        _check_role(role_code, acc.facility, acc.patient)
        values["role"] = role_code
    if active is not None:
        values["active"] = active
    if display_name is not None and display_name.strip():
        values["display_name"] = display_name.strip()
    if values:
        conn.execute(account.update().where(account.c.id == account_id).values(**values))
    found = get_account(conn, account_id)
    assert found is not None
    return found


def _account(row: Mapping[Any, Any]) -> Account:
    return Account(
        id=str(row["id"]),
        username=str(row["username"]),
        role=str(row["role"]),
        facility=str(row["facility"]),
        display_name=str(row["display_name"]),
        practitioner=row["practitioner"] and str(row["practitioner"]),
        patient=row["patient"] and str(row["patient"]),
        active=bool(row["active"]),
    )
