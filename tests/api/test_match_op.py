"""Patient/$match over HTTP: candidates graded and explained, only those the caller may see,
and every bad request a 4xx OperationOutcome that names the problem."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from benhan.identity import online, review
from benhan.store.database import Store
from tests.conftest import bearer
from tests.identity.conftest import HUB, load_small_province

FHIR = {"Content-Type": "application/fhir+json"}
CCCD = "https://benhan.vn/sid/cccd"
GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"


def huong(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": "Nguyễn", "given": ["Thị Hương"]}],
        "gender": "female",
        "birthDate": "1987-03-12",
        "identifier": [{"system": CCCD, "value": "027187000123"}],
        **extra,
    }


def params(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(parts)}


def test_match_grades_explains_and_hides_what_the_caller_may_not_see(
    client: TestClient, store: Store
) -> None:
    load_small_province(store)
    here = client.post("/fhir/Patient", json=huong(), headers=FHIR).json()["id"]
    elsewhere = TestClient(client.app)
    elsewhere.headers["Authorization"] = bearer(store, facility="27002")
    with elsewhere:
        there = elsewhere.post("/fhir/Patient", json=huong(), headers=FHIR).json()["id"]
    online.drain(store, HUB)
    query = huong()
    query["name"] = [{"text": "NGUYEN THI HUONG"}]
    r = client.post("/fhir/Patient/$match", json=params({"name": "resource", "resource": query}))
    assert r.status_code == 200, r.text
    bundle = r.json()
    ids = [e["resource"]["id"] for e in bundle["entry"]]
    assert ids == [here]  # the record at 27002 is the same person, but not 27001's to read
    entry = bundle["entry"][0]
    assert entry["search"]["mode"] == "match" and entry["search"]["score"] == 1.0
    ext = {x["url"]: x for x in entry["search"]["extension"]}
    assert ext[GRADE]["valueCode"] == "certain"
    fields = {
        {y["url"]: y for y in f["extension"]}["name"]["valueCode"]: f
        for f in ext["https://benhan.vn/fhir/StructureDefinition/match-explanation"]["extension"]
        if f["url"] == "field"
    }
    assert {"name", "birth_date", "cccd"} <= fields.keys()
    with store.read() as conn:  # hidden, not unmatched: the index has them as one person
        assert review.linked(conn, here, there)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"resourceType": "Patient"}, 400, "Parameters"),
        (params(), 400, "must be a Patient"),
        (params({"name": "resource", "resource": {"resourceType": "Observation"}}), 400, "Patient"),
        (params({"name": "resource", "resource": huong(gender="robot")}), 422, "gender"),
        (params({"name": "resource", "resource": huong()}, {"name": "count", "valueInteger": 0}),
         400, "positive"),
        (params({"name": "resource", "resource": huong()},
                {"name": "onlyCertainMatches", "valueString": "yes"}), 400, "boolean"),
        (params({"name": "resource", "resource": huong()}, {"name": "threshold"}), 400,
         "unknown parameter"),
    ],
)  # fmt: skip
def test_bad_match_requests_are_named(
    client: TestClient, body: dict[str, Any], status: int, words: str
) -> None:
    r = client.post("/fhir/Patient/$match", json=body, headers=FHIR)
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert words in str(r.json())


def test_match_needs_post_and_a_built_index(client: TestClient) -> None:
    assert client.get("/fhir/Patient/$match").status_code == 405
    assert client.post("/fhir/Observation/$match", json=params()).status_code == 404
    r = client.post("/fhir/Patient/$match", json=params({"name": "resource", "resource": huong()}))
    assert r.status_code == 503 and "not built" in r.text
