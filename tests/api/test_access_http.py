"""The role matrix again, through HTTP with real tokens: every role × read, search with
_include/_revinclude, chaining and _has, history, $everything, $export, write and delete, on
own-facility and other-facility records; each call answers as the policy says and is audited."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from benhan.api import create_app
from benhan.store.database import Store, open_store
from benhan.store.schema import resource
from tests.access.test_matrix import NAMED, ROLE_FACILITY, VISIBLE, named
from tests.access.world import A, World, build
from tests.conftest import bearer, make_settings, pg_database


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Store, World, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("http-matrix")
    urls: Iterator[str] = (
        iter([f"sqlite:///{tmp / 'm.sqlite3'}"]) if request.param == "sqlite" else pg_database()
    )
    url = next(urls)
    store = open_store(url)
    store.create_schema()
    world = build(store)
    tokens = {
        role: bearer(
            store,
            role,
            ROLE_FACILITY.get(role, A),
            patient=world.pa if role == "patient" else None,
        )
        for role in VISIBLE
    }
    app = create_app(settings=make_settings(url, tmp, facility=A), store=store)
    with TestClient(app) as client:
        yield client, store, world, tokens
    store.dispose()
    next(urls, None)


def _audits(store: Store) -> int:
    store.audit.flush()
    with store.read() as conn:
        q = sa.select(sa.func.count()).where(resource.c.rtype == "AuditEvent")
        return int(conn.scalar(q) or 0)


def _ids(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", []) if "resource" in e}


def _type(name: str) -> str:
    whole = {"org": "Organization", "group": "Group", "claim": "Claim"}
    return whole.get(name) or {"p": "Patient", "e": "Encounter", "o": "Observation"}[name[0]]


@pytest.mark.parametrize("role", sorted(VISIBLE))
def test_reads_and_searches(
    setup: tuple[TestClient, Store, World, dict[str, str]], role: str
) -> None:
    client, store, w, tokens = setup
    h = {"Authorization": tokens[role]}
    before = _audits(store)
    seen = set()
    for n in NAMED:
        r = client.get(f"/fhir/{_type(n)}/{getattr(w, n)}", headers=h)
        assert r.status_code in (200, 403, 404), (n, r.status_code)
        if r.status_code == 200:
            seen.add(n)
    assert seen == VISIBLE[role]
    calls = len(NAMED)
    r = client.get("/fhir/Observation?_include=Observation:subject&_count=100", headers=h)
    calls += 1
    if r.status_code == 200:
        assert named(w, _ids(r.json())) <= VISIBLE[role]
    else:
        assert r.status_code == 403 and "Observation" not in str(VISIBLE[role])
    r = client.get(f"/fhir/Patient/{w.pa}/$everything", headers=h)
    calls += 1
    if "pa" in VISIBLE[role]:
        assert r.status_code == 200
        assert named(w, _ids(r.json())) <= VISIBLE[role]
    else:
        assert r.status_code in (403, 404)
    r = client.get("/fhir/_history?_count=500", headers=h)
    calls += 1
    assert r.status_code == 200
    assert named(w, _ids(r.json())) <= VISIBLE[role]
    assert _audits(store) >= before + calls, "a call left no AuditEvent"


@pytest.mark.parametrize("role", ["doctor", "system-integrator", "doh-analyst", "patient"])
def test_export_gives_exactly_what_the_role_sees(
    setup: tuple[TestClient, Store, World, dict[str, str]], role: str
) -> None:
    client, _store, w, tokens = setup
    h = {"Authorization": tokens[role]}
    kick = client.get(
        "/fhir/$export", headers={**h, "Prefer": "respond-async", "Accept": "application/fhir+json"}
    )
    assert kick.status_code == 202, kick.text
    status_url = kick.headers["content-location"].split("/fhir", 1)[1]
    for _ in range(200):
        r = client.get(f"/fhir{status_url}", headers=h)
        if r.status_code == 200:
            break
        time.sleep(0.05)
    assert r.status_code == 200, r.text
    other = next(t for k, t in tokens.items() if k != role)
    assert client.get(f"/fhir{status_url}", headers={"Authorization": other}).status_code == 404
    exported: set[str] = set()
    for out in r.json()["output"]:
        path = out["url"].split("/fhir", 1)[1]
        body = client.get(f"/fhir{path}", headers=h)
        assert body.status_code == 200
        assert client.get(f"/fhir{path}", headers={"Authorization": other}).status_code == 404
        exported |= {orjson.loads(line)["id"] for line in body.text.splitlines()}
    assert named(w, exported) == VISIBLE[role] - (
        {"group"} if role != "system-integrator" else set()
    )


@pytest.mark.parametrize(
    ("role", "own", "other"),
    [
        ("doctor", 200, 404),
        ("nurse", 200, 404),
        ("registrar", 403, 403),  # no write scope on Observation at all
        ("system-integrator", 200, 404),
        ("doh-analyst", 403, 403),
        ("patient", 403, 403),
    ],
)
def test_writes(
    setup: tuple[TestClient, Store, World, dict[str, str]], role: str, own: int, other: int
) -> None:
    client, _store, w, tokens = setup
    h = {"Authorization": tokens[role]}
    admin = {"Authorization": bearer(_store, "system-integrator", A)}
    for rid, expected in ((w.oa, own), (w.oc, other)):
        current = client.get(
            f"/fhir/Observation/{rid}",
            headers=admin
            if rid == w.oa
            else {"Authorization": bearer(_store, "system-integrator", "27002")},
        ).json()
        r = client.put(f"/fhir/Observation/{rid}", json=current, headers=h)
        assert r.status_code == expected, (role, rid == w.oa, r.text)
    tmp = client.post(
        "/fhir/Observation",
        json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
        headers=h,
    )
    assert tmp.status_code in (201, 403)
    if tmp.status_code == 201:
        assert client.delete(f"/fhir/Observation/{tmp.json()['id']}", headers=h).status_code == 204
    assert client.delete(f"/fhir/Observation/{w.oc}", headers=h).status_code in (403, 404)


def test_chains_and_has_through_http(
    setup: tuple[TestClient, Store, World, dict[str, str]],
) -> None:
    client, _store, w, tokens = setup
    h = {"Authorization": tokens["doctor"]}
    r = client.get("/fhir/Observation?subject:Patient.name=Nguyen", headers=h)
    assert named(w, _ids(r.json())) == {"oa"}  # ob's patient is B's, hidden
    r = client.get("/fhir/Patient?_has:Observation:subject:code=8480-6", headers=h)
    assert named(w, _ids(r.json())) == {"pa"}
    r = client.get(f"/fhir/Patient?_id={w.pa}&_revinclude=Observation:subject", headers=h)
    assert named(w, _ids(r.json())) == {"pa", "oa"}
