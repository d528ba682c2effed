"""Nothing a client can send produces a 500: random searches, bodies, headers and paths."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TYPES = ["Patient", "Observation", "Encounter", "Condition", "Organization", "Bundle"]
NAMES = [
    "name",
    "family",
    "birthdate",
    "identifier",
    "subject",
    "subject:Patient.name",
    "code",
    "value-quantity",
    "date",
    "_id",
    "_lastUpdated",
    "_sort",
    "_count",
    "_offset",
    "_include",
    "_revinclude",
    "_has:Observation:subject:code",
    "_summary",
    "_elements",
    "_total",
    "gender:not",
    "name:exact",
    "name:contains",
    "given:missing",
    "_tag",
    "url:below",
    "patient",
    "_type",
    "weird:modifier",
    "\u0000",
    "%",
]
VALUES = st.one_of(
    st.sampled_from(
        [
            "ge2020",
            "lt2020-01-01T10:00",
            "eq5.4|http://unitsofmeasure.org|mg",
            "Patient/1",
            "http://x/Patient/1",
            "a,b,c",
            "|x",
            "x|",
            "-name",
            "*",
            "Patient:organization",
            "true",
            "count",
            "0",
            "-1",
            "1e309",
            "2020-13",
            "ap2024",
            "sa",
            "nguyễn",
            "\\,",
            "%_",
        ]
    ),
    st.text(max_size=20),
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(
    rtype=st.sampled_from(TYPES),
    params=st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=4),
    strict=st.booleans(),
)
def test_search_never_500(
    client: TestClient, rtype: str, params: list[tuple[str, str]], strict: bool
) -> None:
    headers = {"Prefer": "handling=strict"} if strict else {}
    r = client.get(f"/fhir/{rtype}", params=params, headers=headers)
    assert r.status_code < 500, (params, r.text)
    assert r.json()["resourceType"] in ("Bundle", "OperationOutcome")


@FUZZ
@given(rtype=st.sampled_from(TYPES), body=JSON)
def test_create_with_any_json_never_500(client: TestClient, rtype: str, body: Any) -> None:
    if isinstance(body, dict):
        body = {"resourceType": rtype, **body}
    r = client.post(f"/fhir/{rtype}", json=body, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code < 500, (body, r.text)


@FUZZ
@given(
    entries=st.lists(
        st.fixed_dictionaries(
            {
                "request": st.fixed_dictionaries(
                    {
                        "method": st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "X"]),
                        "url": st.sampled_from(
                            ["Patient", "Patient/1", "Nope", "Patient?name=a", "", "/"]
                        ),
                    }
                ),
                "resource": JSON | st.just({"resourceType": "Patient"}),
                "fullUrl": st.sampled_from(["urn:uuid:1", "urn:uuid:2", "x"]),
            }
        ),
        max_size=4,
    ),
    kind=st.sampled_from(["transaction", "batch", "collection"]),
)
def test_bundles_never_500(client: TestClient, entries: list[dict[str, Any]], kind: str) -> None:
    bundle = {"resourceType": "Bundle", "type": kind, "entry": entries}
    r = client.post("/fhir", json=bundle, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code < 500, (bundle, r.text)


@FUZZ
@given(
    path=st.lists(
        st.sampled_from(
            [
                "Patient",
                "1",
                "_history",
                "$everything",
                "$validate",
                "_search",
                "x",
                "$export",
                "2",
                "..",
            ]
        ),
        max_size=5,
    ),
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    if_match=st.sampled_from([None, 'W/"1"', "garbage", ""]),
)
def test_paths_never_500(
    client: TestClient, path: list[str], method: str, if_match: str | None
) -> None:
    headers = {"Content-Type": "application/fhir+json"}
    if if_match is not None:
        headers["If-Match"] = if_match
    r = client.request(
        method, "/fhir/" + "/".join(path), headers=headers, content=b'{"resourceType": "Patient"}'
    )
    assert r.status_code < 500, r.text
