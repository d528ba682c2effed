"""create, read, vread, update, patch, delete and history over HTTP, good and bad."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}
CCCD = "https://benhan.vn/sid/cccd"


def patient(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": CCCD, "value": uuid.uuid4().hex[:12]}],
        "name": [{"family": "Nguyễn", "given": ["Thị", "Hương"]}],
        "gender": "female",
        "birthDate": "1987-03-12",
        **extra,
    }


def create(client: TestClient, res: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"/fhir/{res['resourceType']}", json=res, headers=FHIR)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_create_read_headers(client: TestClient) -> None:
    r = client.post("/fhir/Patient", json=patient(), headers=FHIR)
    assert r.status_code == 201
    body = r.json()
    assert r.headers["location"] == f"http://testserver/fhir/Patient/{body['id']}/_history/1"
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("+07:00")
    got = client.get(f"/fhir/Patient/{body['id']}")
    assert got.status_code == 200
    assert got.json()["name"][0]["family"] == "Nguyễn"
    assert got.headers["etag"] == 'W/"1"'
    assert "last-modified" in got.headers


def test_create_ignores_client_id(client: TestClient) -> None:
    body = create(client, patient(id="chosen-by-client"))
    assert body["id"] != "chosen-by-client"


def test_update_versions_and_if_match(client: TestClient) -> None:
    p = create(client, patient())
    url = f"/fhir/Patient/{p['id']}"
    r = client.put(url, json={**p, "gender": "male"}, headers={**FHIR, "If-Match": 'W/"1"'})
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["versionId"] == "2"
    stale = client.put(url, json={**p, "gender": "other"}, headers={**FHIR, "If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    assert client.get(url).json()["gender"] == "male"
    assert client.get(f"{url}/_history/1").json()["gender"] == "female"
    assert client.get(f"{url}/_history/2").json()["gender"] == "male"
    assert client.get(f"{url}/_history/9").status_code == 404


def test_update_creates_with_client_id(client: TestClient) -> None:
    rid = f"vn-{uuid.uuid4().hex[:8]}"
    r = client.put(f"/fhir/Patient/{rid}", json=patient(id=rid), headers=FHIR)
    assert r.status_code == 201
    assert client.get(f"/fhir/Patient/{rid}").status_code == 200


def test_update_id_mismatch_is_400(client: TestClient) -> None:
    p = create(client, patient())
    r = client.put(f"/fhir/Patient/{p['id']}", json={**p, "id": "other"}, headers=FHIR)
    assert r.status_code == 400
    missing = client.put(f"/fhir/Patient/{p['id']}", json=patient(), headers=FHIR)
    assert missing.status_code == 400


def test_delete_then_gone_and_history(client: TestClient) -> None:
    p = create(client, patient())
    url = f"/fhir/Patient/{p['id']}"
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 410
    assert client.delete(url).status_code == 204  # idempotent
    hist = client.get(f"{url}/_history").json()
    assert hist["type"] == "history"
    assert hist["total"] == 2
    assert [e["request"]["method"] for e in hist["entry"]] == ["DELETE", "POST"]
    assert client.get(f"{url}/_history/1").status_code == 200
    assert client.get(f"{url}/_history/2").status_code == 410
    # re-creating by PUT after delete starts a new version, not version 1
    body = {k: v for k, v in p.items() if k != "meta"}
    again = client.put(url, json=body, headers=FHIR)
    assert again.status_code == 201, again.text
    assert again.json()["meta"]["versionId"] == "3"


def test_read_unknown(client: TestClient) -> None:
    r = client.get("/fhir/Patient/does-not-exist")
    assert r.status_code == 404
    assert r.json()["issue"][0]["code"] == "not-found"
    assert client.get("/fhir/NotAType/1").status_code == 404


def test_json_patch(client: TestClient) -> None:
    p = create(client, patient())
    url = f"/fhir/Patient/{p['id']}"
    ops = [
        {"op": "replace", "path": "/gender", "value": "male"},
        {"op": "add", "path": "/active", "value": True},
    ]
    r = client.patch(url, json=ops, headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200, r.text
    assert r.json()["gender"] == "male" and r.json()["active"] is True
    assert r.json()["meta"]["versionId"] == "2"
    bad = [{"op": "replace", "path": "/gender", "value": "robot"}]
    r = client.patch(url, json=bad, headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Patient.gender"]
    broken = [{"op": "remove", "path": "/nothing/here"}]
    r = client.patch(url, json=broken, headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 400
    assert client.get(url).json()["meta"]["versionId"] == "2"


def test_prefer_return(client: TestClient) -> None:
    minimal = client.post(
        "/fhir/Patient", json=patient(), headers={**FHIR, "Prefer": "return=minimal"}
    )
    assert minimal.status_code == 201 and minimal.content == b""
    assert minimal.headers["location"]
    oo = client.post(
        "/fhir/Patient", json=patient(), headers={**FHIR, "Prefer": "return=OperationOutcome"}
    )
    assert oo.json()["resourceType"] == "OperationOutcome"


def test_conditional_read(client: TestClient) -> None:
    p = create(client, patient())
    url = f"/fhir/Patient/{p['id']}"
    assert client.get(url, headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": 'W/"0"'}).status_code == 200


def test_type_and_system_history(client: TestClient) -> None:
    a = create(client, patient())
    create(client, {"resourceType": "Organization", "name": "Trạm Y tế xã Tam Sơn"})
    hist = client.get("/fhir/Patient/_history").json()
    assert {e["resource"]["id"] for e in hist["entry"]} == {a["id"]}
    system = client.get("/fhir/_history?_count=1").json()
    assert system["total"] == 4 and len(system["entry"]) == 1  # each write and its Provenance
    assert any(link["relation"] == "next" for link in system["link"])
    future = client.get("/fhir/_history?_since=2999-01-01").json()
    assert future["total"] == 0
    assert client.get("/fhir/_history?_since=yesterday").status_code == 400


def test_pretty_and_gzip(client: TestClient) -> None:
    p = create(client, patient())
    r = client.get(f"/fhir/Patient/{p['id']}?_pretty=true")
    assert b"\n  " in r.content
    big = client.get("/fhir/metadata", headers={"Accept-Encoding": "gzip"})
    assert big.headers.get("content-encoding") == "gzip"
    assert client.get("/fhir/metadata?_format=xml").status_code == 406


def test_access_log_has_no_query_string(client: TestClient, caplog: Any) -> None:
    caplog.set_level("INFO", logger="benhan.access")
    r = client.get("/fhir/Patient?identifier=https://benhan.vn/sid/cccd|027087001234")
    assert r.headers["x-request-id"]
    logged = " ".join(rec.getMessage() for rec in caplog.records)
    assert "GET /fhir/Patient 200" in logged and "027087001234" not in logged
    assert r.headers["x-request-id"] in logged


def test_unexpected_error_is_an_outcome_that_reveals_nothing(
    client: TestClient, monkeypatch: Any, caplog: Any
) -> None:
    from benhan.rest import router

    leaked = "secret internals: Nguyễn Văn An 027087001234"  # data in the message, not the code

    def boom(*_args: Any) -> Any:
        raise RuntimeError(leaked)

    monkeypatch.setitem(router._ROUTES, ("GET", "T/I"), boom)
    with TestClient(client.app, raise_server_exceptions=False) as c:
        r = c.get("/fhir/Patient/1", headers={"Authorization": client.headers["Authorization"]})
    assert r.status_code == 500
    assert r.json()["issue"][0]["code"] == "exception"
    assert "secret" not in r.text and r.headers["x-request-id"] in r.text
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "RuntimeError" in logged and r.headers["x-request-id"] in logged
    assert "Nguyễn" not in logged and "027087001234" not in logged
