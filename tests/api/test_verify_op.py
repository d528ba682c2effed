"""Bundle/$verify over HTTP: one issue per check, errors where a check failed, and every bad
request a 4xx OperationOutcome."""

from __future__ import annotations

import copy
from typing import Any

from fastapi.testclient import TestClient

from benhan.store.database import Store
from tests.signing.test_service import sign, signed_visit, stored


def severities(outcome: dict[str, Any]) -> dict[str, str]:
    """check name → severity, from the issues' texts ("name: message")."""
    return {i["details"]["text"].split(":", 1)[0]: i["severity"] for i in outcome["issue"]}


def test_verify_a_posted_document_and_a_stored_one(client: TestClient, store: Store) -> None:
    enc, author = signed_visit(store)
    saved = sign(store, author, kind="visit-summary", encounter=enc)
    bundle = stored(store, author, "Bundle", saved.id)
    r = client.post("/fhir/Bundle/$verify", json=bundle)
    assert r.status_code == 200, r.text
    checks = severities(r.json())
    assert "error" not in checks.values() and {"signature", "chain", "content"} <= checks.keys()
    by_id = client.get(f"/fhir/Bundle/{saved.id}/$verify")
    assert by_id.status_code == 200 and "error" not in severities(by_id.json()).values()
    changed = copy.deepcopy(bundle)
    changed["entry"][0]["resource"]["title"] = "Tóm tắt đã sửa"
    params = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": changed}],
    }
    failed = client.post("/fhir/Bundle/$verify", json=params)
    assert failed.status_code == 200
    assert severities(failed.json())["content"] == "error"


def test_an_unsigned_or_foreign_body_is_reported_not_crashed(client: TestClient) -> None:
    for body in ({"resourceType": "Bundle", "type": "document"}, {"resourceType": "Patient"}, []):
        r = client.post("/fhir/Bundle/$verify", json=body)
        assert r.status_code == 200, r.text
        assert severities(r.json())["signature"] == "error"


def test_bad_requests_get_4xx_outcomes(client: TestClient) -> None:
    cases = [
        (client.post, "/fhir/Patient/$verify", {}, 404),
        (client.get, "/fhir/Bundle/$verify", None, 405),
        (client.get, "/fhir/Bundle/no-such-id/$verify", None, 404),
        (client.post, "/fhir/Bundle/$verify", {"resourceType": "Parameters"}, 400),
    ]
    for call, url, body, status in cases:
        r = call(url, json=body) if body is not None else call(url)
        assert r.status_code == status, (url, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"


def test_the_capability_statement_lists_verify(client: TestClient) -> None:
    meta = client.get("/fhir/metadata").json()
    [bundle] = [r for r in meta["rest"][0]["resource"] if r["type"] == "Bundle"]
    assert bundle["operation"][0]["name"] == "verify"
