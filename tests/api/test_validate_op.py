"""$validate checks a resource and stores nothing."""

from __future__ import annotations

from fastapi.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}


def test_validate_reports_every_issue_and_stores_nothing(client: TestClient) -> None:
    bad = {"resourceType": "Patient", "gender": "robot", "birthDate": "2023-02-29"}
    r = client.post("/fhir/Patient/$validate", json=bad, headers=FHIR)
    assert r.status_code == 200
    paths = {e for i in r.json()["issue"] for e in i.get("expression", [])}
    assert paths == {"Patient.gender", "Patient.birthDate"}
    assert client.get("/fhir/Patient?_summary=count").json()["total"] == 0


def test_validate_good_and_wrapped_in_parameters(client: TestClient) -> None:
    good = {"resourceType": "Patient", "gender": "female"}
    r = client.post("/fhir/Patient/$validate", json=good, headers=FHIR)
    assert [i["severity"] for i in r.json()["issue"]] == ["information"]
    wrapped = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": good}]}
    r = client.post("/fhir/Patient/$validate", json=wrapped, headers=FHIR)
    assert [i["severity"] for i in r.json()["issue"]] == ["information"]


def test_validate_checks_references_and_type(client: TestClient) -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/ghost"},
    }
    r = client.post("/fhir/Observation/$validate", json=obs, headers=FHIR)
    assert r.json()["issue"][0]["code"] == "not-found"
    r = client.post("/fhir/Patient/$validate", json=obs, headers=FHIR)
    assert any(i.get("expression") == ["resourceType"] for i in r.json()["issue"])


def test_validate_bad_requests(client: TestClient) -> None:
    assert client.get("/fhir/Patient/$validate").status_code == 405
    empty = {"resourceType": "Parameters", "parameter": []}
    assert client.post("/fhir/Patient/$validate", json=empty, headers=FHIR).status_code == 400
