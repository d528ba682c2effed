"""Conditional create, update and delete: 0, 1 and several matches."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}
CCCD = "https://benhan.vn/sid/cccd"


def person(value: str, family: str = "Đỗ") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": CCCD, "value": value}],
        "name": [{"family": family}],
    }


def test_conditional_create(client: TestClient) -> None:
    v = uuid.uuid4().hex[:12]
    cond = {**FHIR, "If-None-Exist": f"identifier={CCCD}|{v}"}
    first = client.post("/fhir/Patient", json=person(v), headers=cond)
    assert first.status_code == 201
    second = client.post("/fhir/Patient", json=person(v), headers=cond)
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    client.post("/fhir/Patient", json=person("other", "Đỗ"), headers=FHIR)
    client.post("/fhir/Patient", json=person("another", "Đỗ"), headers=FHIR)
    many = client.post(
        "/fhir/Patient",
        json=person("x"),
        headers={**FHIR, "If-None-Exist": "family=" + quote("Đỗ")},
    )
    assert many.status_code == 412
    bad = client.post(
        "/fhir/Patient", json=person("x"), headers={**FHIR, "If-None-Exist": "colour=red"}
    )
    assert bad.status_code == 400


def test_conditional_update(client: TestClient) -> None:
    v = uuid.uuid4().hex[:12]
    url = f"/fhir/Patient?identifier={CCCD}|{v}"
    created = client.put(url, json=person(v), headers=FHIR)
    assert created.status_code == 201
    updated = client.put(url, json={**person(v), "gender": "male"}, headers=FHIR)
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert updated.json()["meta"]["versionId"] == "2"
    client.post("/fhir/Patient", json=person(v), headers=FHIR)  # now two share the identifier
    assert client.put(url, json=person(v), headers=FHIR).status_code == 412
    assert client.put("/fhir/Patient", json=person(v), headers=FHIR).status_code == 400


def test_conditional_delete(client: TestClient) -> None:
    v = uuid.uuid4().hex[:12]
    p = client.post("/fhir/Patient", json=person(v), headers=FHIR).json()
    assert client.delete(f"/fhir/Patient?identifier={CCCD}|{v}").status_code == 204
    assert client.get(f"/fhir/Patient/{p['id']}").status_code == 410
    assert client.delete(f"/fhir/Patient?identifier={CCCD}|nothing").status_code == 204
    client.post("/fhir/Patient", json=person("d1", "Vũ"), headers=FHIR)
    client.post("/fhir/Patient", json=person("d2", "Vũ"), headers=FHIR)
    assert client.delete("/fhir/Patient?family=Vũ").status_code == 412
    assert client.get("/fhir/Patient?family=Vũ&_summary=count").json()["total"] == 2
    assert client.delete("/fhir/Patient").status_code == 400


def test_delete_with_stale_if_match(client: TestClient) -> None:
    p = client.post("/fhir/Patient", json=person("m"), headers=FHIR).json()
    r = client.delete(f"/fhir/Patient/{p['id']}", headers={"If-Match": 'W/"7"'})
    assert r.status_code == 412
    assert client.get(f"/fhir/Patient/{p['id']}").status_code == 200


def test_conditional_patch(client: TestClient) -> None:
    v = uuid.uuid4().hex[:12]
    client.post("/fhir/Patient", json=person(v), headers=FHIR)
    ops = [{"op": "add", "path": "/gender", "value": "female"}]
    r = client.patch(
        f"/fhir/Patient?identifier={CCCD}|{v}",
        json=ops,
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 200 and r.json()["gender"] == "female"
    r = client.patch(
        f"/fhir/Patient?identifier={CCCD}|none",
        json=ops,
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 404
