"""The CapabilityStatement states exactly what the server supports: every advertised search
parameter is accepted under strict handling, and what it leaves out is refused."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

CORE = [
    "Patient",
    "Encounter",
    "Observation",
    "Condition",
    "MedicationRequest",
    "Procedure",
    "Organization",
    "Practitioner",
    "DiagnosticReport",
    "AllergyIntolerance",
    "Immunization",
    "Claim",
    "Coverage",
    "Location",
    "ServiceRequest",
    "Composition",
    "DocumentReference",
]
SAMPLE = {
    "token": "x",
    "string": "x",
    "date": "ge2020",
    "reference": "x",
    "quantity": "5",
    "number": "5",
    "uri": "http://example.org/x",
}
STRICT = {"Prefer": "handling=strict"}


def statement(client: TestClient) -> dict[str, dict[str, str]]:
    cs = client.get("/fhir/metadata").json()
    assert cs["fhirVersion"] == "4.0.1" and cs["kind"] == "instance"
    return {
        r["type"]: {p["name"]: p["type"] for p in r.get("searchParam", [])}
        for r in cs["rest"][0]["resource"]
    }


def test_every_advertised_parameter_is_accepted(client: TestClient) -> None:
    advertised = statement(client)
    refused = []
    for rtype in CORE:
        for name, ptype in advertised[rtype].items():
            r = client.get(f"/fhir/{rtype}", params={name: SAMPLE[ptype]}, headers=STRICT)
            if r.status_code != 200:
                refused.append((rtype, name, r.status_code))
    assert refused == []


def test_what_is_not_advertised_is_refused(client: TestClient) -> None:
    advertised = statement(client)
    assert "code-value-quantity" not in advertised["Observation"]  # composite: not supported
    r = client.get("/fhir/Observation", params={"code-value-quantity": "x$5"}, headers=STRICT)
    assert r.status_code == 400


@pytest.mark.parametrize("rtype", ["Patient", "Observation"])
def test_interactions_and_operations(client: TestClient, rtype: str) -> None:
    cs = client.get("/fhir/metadata").json()
    res = next(r for r in cs["rest"][0]["resource"] if r["type"] == rtype)
    codes = {i["code"] for i in res["interaction"]}
    assert codes == {
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    }
    assert res["conditionalDelete"] == "single" and res["versioning"] == "versioned-update"
    ops = {o["name"] for o in res.get("operation", [])}
    assert ops == ({"everything", "export", "match"} if rtype == "Patient" else set())
