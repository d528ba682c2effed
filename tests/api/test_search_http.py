"""Search over HTTP: Bundles, paging links, POST _search, _summary, _elements, _include."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}


def make(client: TestClient, res: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"/fhir/{res['resourceType']}", json=res, headers=FHIR)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def next_url(bundle: dict[str, Any]) -> str | None:
    urls = [lk["url"] for lk in bundle["link"] if lk["relation"] == "next"]
    return urls[0].removeprefix("http://testserver") if urls else None


def test_paging_is_stable_and_complete(client: TestClient) -> None:
    family = f"Hoàng{uuid.uuid4().hex[:5]}"
    ids = {
        make(client, {"resourceType": "Patient", "name": [{"family": family}]})["id"]
        for _ in range(12)
    }
    url: str | None = f"/fhir/Patient?family={family}&_count=5"
    seen: list[str] = []
    pages = 0
    while url:
        page = client.get(url).json()
        assert page["type"] == "searchset" and page["total"] == 12
        seen += [e["resource"]["id"] for e in page["entry"]]
        url = next_url(page)
        pages += 1
    assert pages == 3 and len(seen) == 12 and set(seen) == ids


def test_post_search_equals_get(client: TestClient) -> None:
    make(client, {"resourceType": "Patient", "name": [{"family": "Ngô"}], "gender": "male"})
    make(client, {"resourceType": "Patient", "name": [{"family": "Ngô"}], "gender": "female"})
    get = client.get("/fhir/Patient?family=ngo&gender=male").json()
    post = client.post("/fhir/Patient/_search", data={"family": "ngo", "gender": "male"})
    assert post.status_code == 200
    assert [e["resource"]["id"] for e in post.json()["entry"]] == [
        e["resource"]["id"] for e in get["entry"]
    ]
    assert len(get["entry"]) == 1


def test_summary_count_and_elements(client: TestClient) -> None:
    make(
        client,
        {
            "resourceType": "Patient",
            "name": [{"family": "Dương"}],
            "gender": "male",
            "birthDate": "1970",
            "text": {
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">Dương</div>',
            },
        },
    )
    count = client.get("/fhir/Patient?_summary=count").json()
    assert (count["total"] == 1 and "entry" not in count) or count.get("entry") == []
    el = client.get("/fhir/Patient?_elements=gender").json()["entry"][0]["resource"]
    assert set(el) == {"resourceType", "id", "meta", "gender"}
    assert any(t["code"] == "SUBSETTED" for t in el["meta"]["tag"])
    summary = client.get("/fhir/Patient?_summary=true").json()["entry"][0]["resource"]
    assert "text" not in summary and summary["birthDate"] == "1970"
    data = client.get("/fhir/Patient?_summary=data").json()["entry"][0]["resource"]
    assert "text" not in data and data["gender"] == "male"


def test_include_and_revinclude(client: TestClient) -> None:
    org = make(client, {"resourceType": "Organization", "name": "Bệnh viện Đa khoa tỉnh Bắc Ninh"})
    p = make(
        client,
        {
            "resourceType": "Patient",
            "name": [{"family": "Lý"}],
            "managingOrganization": {"reference": f"Organization/{org['id']}"},
        },
    )
    make(
        client,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Mạch"},
            "subject": {"reference": f"Patient/{p['id']}"},
        },
    )
    inc = client.get("/fhir/Patient?family=ly&_include=Patient:organization").json()
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in inc["entry"]}
    assert modes == {("Patient", "match"), ("Organization", "include")}
    rev = client.get("/fhir/Patient?family=ly&_revinclude=Observation:subject").json()
    assert {e["resource"]["resourceType"] for e in rev["entry"]} == {"Patient", "Observation"}


def test_system_search_by_id_and_type(client: TestClient) -> None:
    p = make(client, {"resourceType": "Patient"})
    o = make(client, {"resourceType": "Organization", "name": "Trạm Y tế"})
    got = client.get(f"/fhir?_id={p['id']},{o['id']}").json()
    assert {e["resource"]["id"] for e in got["entry"]} == {p["id"], o["id"]}
    only = client.get(f"/fhir?_id={p['id']},{o['id']}&_type=Organization").json()
    assert [e["resource"]["id"] for e in only["entry"]] == [o["id"]]
