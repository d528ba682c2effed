"""The API as an outsider would try it: no token, forged or stale tokens, a narrower scope,
guessed ids, injection in search values, and bodies built to hurt. Each gets a clear 4xx and
changes nothing; what a caller may not see answers exactly like what does not exist."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from benhan.access import Scopes
from benhan.auth import tokens
from benhan.auth.accounts import update_account
from benhan.auth.tokens import issue
from benhan.store.database import Store
from benhan.store.schema import account, resource
from tests.conftest import bearer

PATIENT = {"resourceType": "Patient", "gender": "female", "name": [{"family": "Lê"}]}


def _create(client: TestClient, res: dict[str, Any], auth: str) -> str:
    r = client.post(f"/fhir/{res['resourceType']}", json=res, headers={"Authorization": auth})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _count(store: Store, rtype: str) -> int:
    store.audit.flush()
    with store.read() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).where(resource.c.rtype == rtype)) or 0)


@pytest.fixture
def anon(client: TestClient) -> TestClient:
    del client.headers["Authorization"]
    return client


def test_no_token_is_401_with_a_challenge(anon: TestClient) -> None:
    for method, path in (("GET", "/fhir/Patient"), ("POST", "/fhir/Patient"), ("GET", "/fhir")):
        r = anon.request(method, path, json=PATIENT if method == "POST" else None)
        assert r.status_code == 401, (method, path)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["resourceType"] == "OperationOutcome"


def test_the_export_endpoints_need_a_token_too(anon: TestClient) -> None:
    kick = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
    assert anon.get("/fhir/$export", headers=kick).status_code == 401
    assert anon.get("/fhir/$export-status/" + "0" * 32).status_code == 401


def _tamper(token: str, **claims: Any) -> str:
    head, payload, sig = token.split(".")
    data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(claims)
    forged = base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: _tamper(t, scope="system/*.cruds system/AuditEvent.rs"),
        lambda t: _tamper(t, sub="client:someone-else"),
        lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),
        lambda t: "e30." + t.split(".", 1)[1],  # header {} (no alg, no kid)
        lambda t: t.split(".")[0] + "." + t.split(".")[1] + ".",  # signature stripped
        lambda t: "not-a-jwt",
    ],
    ids=["wider-scope", "other-subject", "bad-signature", "no-header", "alg-none", "garbage"],
)
def test_a_forged_token_is_401(client: TestClient, mangle: Any) -> None:
    token = client.headers["Authorization"].removeprefix("Bearer ")
    r = client.get("/fhir/Patient", headers={"Authorization": f"Bearer {mangle(token)}"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert token not in r.text


def test_an_expired_or_foreign_audience_token_is_401(
    client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = bearer(store)
    with store.begin() as conn:
        other, _ = issue(
            conn,
            subject=f"client:{_client_of(store)}",
            scope=Scopes.parse("system/*.rs"),
            issuer="http://testserver",
            audience="https://another-hub.example/fhir",
        )
    assert (
        client.get("/fhir/Patient", headers={"Authorization": f"Bearer {other}"}).status_code == 401
    )
    assert client.get("/fhir/Patient", headers={"Authorization": auth}).status_code == 200
    an_hour_later = tokens._now_s() + 3600  # past the 15-minute lifetime and the 30 s skew
    monkeypatch.setattr(tokens, "_now_s", lambda: an_hour_later)
    assert client.get("/fhir/Patient", headers={"Authorization": auth}).status_code == 401


def _client_of(store: Store) -> str:
    from benhan.store.schema import oauth_client

    with store.read() as conn:
        return str(conn.scalar(sa.select(oauth_client.c.client_id).limit(1)))


def test_a_disabled_account_loses_access_at_once(client: TestClient, store: Store) -> None:
    auth = bearer(store, "doctor")
    assert client.get("/fhir/Patient", headers={"Authorization": auth}).status_code == 200
    with store.begin() as conn:
        acc_id = conn.scalar(sa.select(account.c.id).where(account.c.role == "doctor"))
        update_account(conn, str(acc_id), active=False)
    assert client.get("/fhir/Patient", headers={"Authorization": auth}).status_code == 401


def test_a_narrower_scope_is_all_a_token_gets(client: TestClient, store: Store) -> None:
    narrow = bearer(store, scope="system/Patient.rs")
    h = {"Authorization": narrow}
    pid = _create(client, PATIENT, client.headers["Authorization"])
    assert client.get(f"/fhir/Patient/{pid}", headers=h).status_code == 200
    assert client.get("/fhir/Patient", headers=h).status_code == 200
    assert client.get("/fhir/Observation", headers=h).status_code == 403
    before = _count(store, "Patient")
    r = client.post("/fhir/Patient", json=PATIENT, headers=h)
    assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"
    assert client.delete(f"/fhir/Patient/{pid}", headers=h).status_code == 403
    assert _count(store, "Patient") == before


def test_a_token_never_exceeds_its_role(client: TestClient, store: Store) -> None:
    """A registrar's token that asks for everything still cannot read results."""
    h = {"Authorization": bearer(store, "registrar", scope="user/*.cruds")}
    assert client.get("/fhir/Patient", headers=h).status_code == 200
    assert client.get("/fhir/Observation", headers=h).status_code == 403
    assert client.get("/fhir/AuditEvent", headers=h).status_code == 403


def test_guessing_ids_of_another_facility_looks_like_nothing_is_there(
    client: TestClient, store: Store
) -> None:
    other = bearer(store, facility="27002")
    theirs = _create(client, PATIENT, other)
    h = {"Authorization": bearer(store, "doctor")}
    hidden = client.get(f"/fhir/Patient/{theirs}", headers=h)
    absent = client.get("/fhir/Patient/0000-no-such-id", headers=h)
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["issue"][0]["code"] == absent.json()["issue"][0]["code"]
    for path in (
        f"/fhir/Patient/{theirs}/_history",
        f"/fhir/Patient/{theirs}/_history/1",
        f"/fhir/Patient/{theirs}/$everything",
    ):
        assert client.get(path, headers=h).status_code == 404, path
    found = client.get(f"/fhir/Patient?_id={theirs}", headers=h).json()
    assert found["total"] == 0
    assert [e for e in found.get("entry", []) if e["resource"]["resourceType"] == "Patient"] == []
    put = client.put(f"/fhir/Patient/{theirs}", json={**PATIENT, "id": theirs}, headers=h)
    assert put.status_code == 404
    assert client.delete(f"/fhir/Patient/{theirs}", headers=h).status_code == 404


@pytest.mark.parametrize(
    "value",
    [
        "' OR '1'='1",
        "x'); DROP TABLE resource; --",
        "%' OR 1=1 --",
        "<script>alert(1)</script>",
        "\\x00\\u0000",
        "Nguyễn\u202e",
    ],
)
def test_injection_in_search_values_is_just_text(
    client: TestClient, store: Store, value: str
) -> None:
    _create(client, PATIENT, client.headers["Authorization"])
    r = client.get("/fhir/Patient", params={"name": value})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")  # never HTML
    assert r.json()["total"] == 0
    assert _count(store, "Patient") == 1


def test_script_in_a_resource_is_stored_as_data_and_served_as_json(client: TestClient) -> None:
    evil = {**PATIENT, "name": [{"family": "<script>alert(1)</script>"}]}
    pid = _create(client, evil, client.headers["Authorization"])
    r = client.get(f"/fhir/Patient/{pid}")
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert r.json()["name"][0]["family"] == "<script>alert(1)</script>"


def test_deeply_nested_json_is_400_not_a_crash(client: TestClient, store: Store) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    r = client.post(
        "/fhir/Patient", content=deep, headers={"Content-Type": "application/fhir+json"}
    )
    assert r.status_code == 400
    nested: dict[str, Any] = {"resourceType": "Patient"}
    node = nested
    for _ in range(200):
        node["extension"] = [{"url": "http://x", "extension": []}]
        node = node["extension"][0]
    r = client.post(
        "/fhir/Patient",
        content=json.dumps(nested),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert 400 <= r.status_code < 500
    assert _count(store, "Patient") == 0


def test_an_oversized_body_is_413(client: TestClient) -> None:
    big = b'{"resourceType":"Patient","text":"' + b"x" * (6 * 1024 * 1024) + b'"}'
    r = client.post("/fhir/Patient", content=big, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 413


def test_every_api_call_leaves_an_audit_event(client: TestClient, store: Store) -> None:
    before = _count(store, "AuditEvent")
    pid = _create(client, PATIENT, client.headers["Authorization"])
    client.get(f"/fhir/Patient/{pid}")
    client.get("/fhir/Patient", params={"gender": "female"})
    client.get(f"/fhir/Patient/{pid}/_history")
    client.get("/fhir/Patient/does-not-exist")
    assert _count(store, "AuditEvent") == before + 5


def test_audit_events_cannot_be_written_or_erased_through_the_api(
    client: TestClient, store: Store
) -> None:
    _create(client, PATIENT, client.headers["Authorization"])  # leaves one event
    officer = {"Authorization": bearer(store, "privacy-officer")}
    events = client.get("/fhir/AuditEvent", headers=officer).json()
    assert events["total"] >= 1
    eid = events["entry"][0]["resource"]["id"]
    body = {**events["entry"][0]["resource"], "outcome": "0"}
    for auth in (officer, {"Authorization": client.headers["Authorization"]}):
        assert client.put(f"/fhir/AuditEvent/{eid}", json=body, headers=auth).status_code == 403
        assert client.delete(f"/fhir/AuditEvent/{eid}", headers=auth).status_code == 403
        assert client.post("/fhir/AuditEvent", json=body, headers=auth).status_code == 403
