"""Shared fixtures: a store on SQLite and on a throw-away PostgreSQL database, the frozen clock."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from benhan.access import ROLES, Reach, Scopes
from benhan.api import create_app
from benhan.auth import accounts
from benhan.auth.accounts import create_account
from benhan.auth.tokens import issue
from benhan.config import Secret, Settings
from benhan.store.database import Store, open_store
from benhan.store.schema import oauth_client

PG_ADMIN_URL = os.environ.get(
    "BENHAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# A moment when Vietnam and UTC are on different dates (STYLE.md §2.3).
FROZEN = datetime(2025, 3, 1, 6, 30, tzinfo=timezone(timedelta(hours=7)))


# Argon2id with the least work: tests sign in and register clients hundreds of times, and the
# rules under test do not depend on the cost. A test marked `real_argon2` keeps the real one.
CHEAP_ARGON2 = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_argon2(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("real_argon2") is None:
        monkeypatch.setattr(accounts, "_hasher", CHEAP_ARGON2)
        monkeypatch.setattr(accounts, "_DUMMY_HASH", _cheap_dummy())


@functools.cache
def _cheap_dummy() -> str:
    return CHEAP_ARGON2.hash("dummy-password")


def _pg_unavailable() -> str | None:
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any failure to connect means: skip, and say why
        return f"PostgreSQL not reachable at {PG_ADMIN_URL.split('@')[-1]}: {type(exc).__name__}"
    return None


PG_SKIP = _pg_unavailable()


def pg_database() -> Iterator[str]:
    """A fresh database with a random name, dropped afterwards; never touches another."""
    if PG_SKIP:
        pytest.skip(PG_SKIP)
    name = f"benhan_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'benhan.sqlite3'}"
    else:
        yield from pg_database()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(database_url)
    s.create_schema()
    yield s
    s.dispose()


def data_path(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data missing: {path}")
    return path


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": Secret(database_url),
        "facility": "27001",
        "base_url": "http://testserver/fhir",
        "max_body_bytes": 5 * 1024 * 1024,
        "export_dir": tmp_path / "export",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


AUDIENCE = "http://testserver/fhir"


def bearer(
    store: Store,
    role: str = "system-integrator",
    facility: str = "27001",
    *,
    patient: str | None = None,
    scope: str | None = None,
    practitioner: str | None = None,
    audience: str = AUDIENCE,
) -> str:
    """An `Authorization` header value for a caller of this role: a client row for machine and
    province roles, an account for people, and a token minted for it directly (the OAuth flows
    themselves are tested in tests/auth)."""
    r = ROLES[role]
    name = f"t-{role}-{uuid.uuid4().hex[:8]}"
    with store.begin() as conn:
        if r.machine or (r.reach in (Reach.CLAIMS, Reach.PROVINCE_DEIDENTIFIED) and not patient):
            conn.execute(
                oauth_client.insert().values(
                    client_id=name,
                    secret_hash=None,
                    name=name,
                    role=role,
                    facility=facility,
                    scopes=str(r.scopes),
                    redirect_uris="",
                    active=True,
                    created=0,
                )
            )
            subject = f"client:{name}"
        else:
            acc = create_account(
                conn,
                username=name,
                password=f"{uuid.uuid4().hex}-pw",
                role_code=role,
                facility=facility,
                display_name=name,
                patient=patient,
                practitioner=practitioner,
            )
            subject = f"account:{acc.id}"
        token, _ = issue(
            conn,
            subject=subject,
            scope=Scopes.parse(scope) if scope else r.scopes,
            issuer="http://testserver",
            audience=audience,
        )
    return f"Bearer {token}"


@pytest.fixture
def client(store: Store, database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """The whole application in-process, on the parametrized store, called by a facility's
    integration client (system/*.cruds at 27001)."""
    app = create_app(settings=make_settings(database_url, tmp_path), store=store)
    with TestClient(app) as c:
        c.headers["Authorization"] = bearer(store)
        yield c
