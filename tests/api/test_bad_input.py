"""Bad input: a clear 4xx OperationOutcome naming the problem, and nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}


def count(client: TestClient, rtype: str) -> int:
    total: int = client.get(f"/fhir/{rtype}?_summary=count").json()["total"]
    return total


def issues(r: Any) -> list[dict[str, Any]]:
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    result: list[dict[str, Any]] = body["issue"]
    return result


def expressions(r: Any) -> set[str]:
    return {e for i in issues(r) for e in i.get("expression", [])}


def test_malformed_json(client: TestClient) -> None:
    r = client.post("/fhir/Patient", content=b'{"resourceType": "Patient",', headers=FHIR)
    assert r.status_code == 400
    assert "JSON" in issues(r)[0]["details"]["text"]
    assert count(client, "Patient") == 0


def test_body_not_an_object(client: TestClient) -> None:
    r = client.post("/fhir/Patient", content=b"[1, 2]", headers=FHIR)
    assert r.status_code == 400


def test_wrong_resource_type_for_url(client: TestClient) -> None:
    r = client.post("/fhir/Patient", json={"resourceType": "Observation"}, headers=FHIR)
    assert r.status_code == 400
    assert expressions(r) == {"resourceType"}


@pytest.mark.parametrize(
    ("resource", "paths"),
    [
        ({"resourceType": "Patient", "nickname": "Tí"}, {"Patient.nickname"}),
        ({"resourceType": "Patient", "birthDate": "1987-02-30"}, {"Patient.birthDate"}),
        ({"resourceType": "Patient", "birthDate": "12/03/1987"}, {"Patient.birthDate"}),
        ({"resourceType": "Patient", "gender": "nữ"}, {"Patient.gender"}),
        (
            {"resourceType": "Observation", "status": "done", "code": {"text": "Mạch"}},
            {"Observation.status"},
        ),
        (
            {"resourceType": "Encounter", "status": "open", "class": {"code": "AMB"}},
            {"Encounter.status"},
        ),
        ({"resourceType": "Observation", "code": {"text": "x"}}, {"Observation.status"}),
        (
            {"resourceType": "Patient", "gender": "x", "birthDate": "2021-02-29", "foo": 1},
            {"Patient.gender", "Patient.birthDate", "Patient.foo"},
        ),
        (
            {
                "resourceType": "Patient",
                "id": "p",
                "contained": [
                    {
                        "resourceType": "Observation",
                        "id": "o",
                        "status": "done",
                        "code": {"text": "Mạch"},
                    }
                ],
            },
            {"Patient.contained[0].status"},
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {
                        "resource": {
                            "resourceType": "Encounter",
                            "status": "open",
                            "class": {"code": "AMB"},
                        }
                    }
                ],
            },
            {"Bundle.entry[0].resource.status"},
        ),
    ],
    ids=[
        "unknown-element",
        "no-such-day",
        "wrong-date-format",
        "gender-binding",
        "obs-status-binding",
        "enc-status-binding",
        "required-missing",
        "every-problem",
        "binding-in-contained",
        "binding-in-bundle-entry",
    ],
)
def test_invalid_resources(client: TestClient, resource: dict[str, Any], paths: set[str]) -> None:
    r = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=FHIR)
    assert r.status_code == 400, r.text
    assert paths <= expressions(r)
    assert count(client, resource["resourceType"]) == 0


def test_reference_to_missing_target_is_422(client: TestClient) -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Mạch"},
        "subject": {"reference": "Patient/nobody"},
    }
    r = client.post("/fhir/Observation", json=obs, headers=FHIR)
    assert r.status_code == 422
    assert expressions(r) == {"Observation.subject.reference"}
    assert count(client, "Observation") == 0


def test_oversized_body_is_413(client: TestClient) -> None:
    big = {"resourceType": "Patient", "name": [{"text": "x" * (6 * 1024 * 1024)}]}
    r = client.post("/fhir/Patient", json=big, headers=FHIR)
    assert r.status_code == 413
    assert issues(r)[0]["code"] == "too-costly"
    assert count(client, "Patient") == 0


def test_unsupported_media_type(client: TestClient) -> None:
    r = client.post(
        "/fhir/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"}
    )
    assert r.status_code == 415


def test_transaction_with_one_bad_entry_stores_nothing(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:1",
                "resource": {"resourceType": "Patient", "gender": "male"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:1"},
                    "effectiveDateTime": "2024-13-01",
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    r = client.post("/fhir", json=bundle, headers=FHIR)
    assert r.status_code == 400
    assert any(p.startswith("Bundle.entry[1]") for p in expressions(r)), expressions(r)
    assert count(client, "Patient") == 0
    assert count(client, "Observation") == 0


def test_search_parameter_of_wrong_type(client: TestClient) -> None:
    r = client.get("/fhir/Patient?birthdate=nguyen")
    assert r.status_code == 400
    assert "birthdate" in issues(r)[0]["details"]["text"]


def test_unknown_search_parameter_lenient_and_strict(client: TestClient) -> None:
    lenient = client.get("/fhir/Patient?colour=blue")
    assert lenient.status_code == 200
    outcome = [e for e in lenient.json()["entry"] if e["search"]["mode"] == "outcome"]
    assert "colour" in outcome[0]["resource"]["issue"][0]["details"]["text"]
    strict = client.get("/fhir/Patient?colour=blue", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400


def test_method_not_allowed_and_unknown_operation(client: TestClient) -> None:
    assert client.post("/fhir/Patient/123", json={}, headers=FHIR).status_code == 405
    assert client.get("/fhir/Patient/$nothing").status_code == 404
