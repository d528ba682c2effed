"""Fixtures for the page tests: an app on a fresh SQLite repository, signed-in clients, resources.

`client` is signed in (as a doctor of FACILITY); `anon` is not. `sign_in` signs a client in as
any account, creating it directly in the store. Passwords are hashed with the cheapest Argon2id
parameters: the real ones cost a quarter of a second per sign-in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from benhan.access import Actor
from benhan.api import create_app
from benhan.auth.accounts import Account, find_account
from benhan.auth.sessions import create_session
from benhan.config import Secret, Settings
from benhan.fhir.primitives import micros, now
from benhan.store.database import Store, open_store
from benhan.store.repository import Repo, new_id
from benhan.store.schema import account, resource
from benhan.web.session import SESSION_COOKIE
from tests.conftest import CHEAP_ARGON2

FACILITY = "27001"
OTHER_FACILITY = "27002"
PASSWORD = "mat-khau-thu-2025"
AddResources = Callable[..., list[str]]  # add(*resources) -> their new ids, in one transaction


@dataclass
class SignedIn:
    account: Account
    csrf: str


SignIn = Callable[..., SignedIn]


def settings_for(url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=Secret(url),
        facility=FACILITY,
        base_url="http://127.0.0.1:8000/fhir",
        max_body_bytes=10 * 1024 * 1024,
        export_dir=tmp_path / "export",
    )


@functools.cache
def password_hash() -> str:
    """PASSWORD hashed the cheap way tests/conftest.py makes every test hash."""
    return CHEAP_ARGON2.hash(PASSWORD)


def make_account(
    store: Store,
    username: str,
    role: str,
    facility: str = FACILITY,
    *,
    display_name: str | None = None,
    patient: str | None = None,
    active: bool = True,
) -> Account:
    """An account with PASSWORD, written straight to the table (no hashing per test)."""
    stamp = micros(now())
    with store.begin() as conn:
        conn.execute(
            account.insert().values(
                id=new_id(),
                username=username,
                password_hash=password_hash(),
                role=role,
                facility=facility,
                display_name=display_name or username,
                practitioner=None,
                patient=patient,
                active=active,
                created=stamp,
                password_changed=stamp,
            )
        )
        found = find_account(conn, username)
    assert found is not None
    return found


def sign_in_as(client: TestClient, store: Store, acc: Account) -> SignedIn:
    """A live session for `acc`, its cookie set on `client` (as a real sign-in would)."""
    with store.begin() as conn:
        value, csrf = create_session(conn, acc.id, "testclient")
    client.cookies.set(SESSION_COOKIE, value)
    return SignedIn(acc, csrf)


def audit_events(store: Store, subtype: str | None = None) -> list[dict[str, Any]]:
    """The AuditEvents in the store, oldest first; only those of one (DICOM or REST) subtype."""
    store.audit.flush()  # reads' events are written in batches
    q = (
        sa.select(sa.cast(resource.c.content, sa.Text))
        .where(resource.c.rtype == "AuditEvent")
        .order_by(resource.c.last_updated, resource.c.id)
    )
    with store.read() as conn:
        events = [orjson.loads(text) for text in conn.scalars(q)]
    if subtype is None:
        return events
    return [e for e in events if e["subtype"][0]["code"] == subtype]


def add_resource(store: Store, res: dict[str, Any], facility: str = FACILITY) -> str:
    """Store one resource owned by `facility`, as an import would; its id."""
    with store.begin() as conn:
        return Repo(conn, Actor.job(facility, "test")).create(res).id


def add_practitioner(store: Store, facility: str = FACILITY) -> str:
    return add_resource(
        store,
        {"resourceType": "Practitioner", "name": [{"family": "Vũ", "given": ["Lan"]}]},
        facility,
    )


def add_patient(store: Store, facility: str = FACILITY, family: str = "Lê") -> str:
    return add_resource(
        store, {"resourceType": "Patient", "name": [{"family": family, "given": ["Hoa"]}]}, facility
    )


def login_form(client: TestClient, next_: str = "/") -> str:
    """Open the sign-in page as a browser would; the form's token (also set as a cookie)."""
    r = client.get("/login", params={"next": next_})
    assert r.status_code == 200, r.text
    token = client.cookies.get("benhan_login")
    assert token and f'name="token" value="{token}"' in r.text
    return token


def post_login(
    client: TestClient, username: str, password: str = PASSWORD, next_: str = "/"
) -> Any:
    token = login_form(client, next_)
    form = {"username": username, "password": password, "token": token, "next": next_}
    return client.post("/login", data=form, follow_redirects=False)


@pytest.fixture
def web_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path}/db.sqlite3")
    yield store
    store.dispose()


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[[Store], FastAPI]:
    """create_app on a given store (which it migrates), with settings that point at it."""

    def _make(store: Store) -> FastAPI:
        url = store.engine.url.render_as_string(hide_password=False)
        return create_app(settings=settings_for(url, tmp_path), store=store)

    return _make


@pytest.fixture
def app(web_store: Store, make_app: Callable[[Store], FastAPI]) -> FastAPI:
    return make_app(web_store)


@pytest.fixture
def anon(app: FastAPI) -> Iterator[TestClient]:
    """A client that has not signed in."""
    with TestClient(app) as c:
        yield c


@pytest.fixture
def sign_in(web_store: Store, anon: TestClient) -> SignIn:
    """sign_in(username, role, facility=FACILITY, **account fields): `anon`, now signed in."""

    def _sign_in(username: str, role: str, facility: str = FACILITY, **kw: Any) -> SignedIn:
        acc = make_account(web_store, username, role, facility, **kw)
        return sign_in_as(anon, web_store, acc)

    return _sign_in


@pytest.fixture
def client(anon: TestClient, sign_in: SignIn) -> TestClient:
    """A client signed in as a doctor of FACILITY."""
    sign_in("bs.an", "doctor")
    return anon


@pytest.fixture
def add(web_store: Store, app: FastAPI) -> AddResources:
    """Store resources through the repository, as an import would (`app` made the schema)."""

    def _add(*resources: dict[str, Any]) -> list[str]:
        with web_store.begin() as conn:
            repo = Repo(conn, Actor.job(FACILITY, "test"))
            return [repo.create(res).id for res in resources]

    return _add
