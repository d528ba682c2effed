"""Transaction and batch Bundles: atomicity, urn:uuid and conditional references, order, Synthea."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from benhan.access import Actor
from benhan.fhir.primitives import split_ref
from benhan.store.database import Store
from benhan.store.repository import Repo, references
from benhan.store.schema import resource
from tests.conftest import data_path

FHIR = {"Content-Type": "application/fhir+json"}
CCCD = "https://benhan.vn/sid/cccd"


def tx(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(res: dict[str, Any], full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": res,
        "request": {"method": "POST", "url": res["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def cccd_patient(value: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": CCCD, "value": value}],
        "name": [{"family": "Trần", "given": ["Văn", "Bình"]}],
    }


def test_urn_uuid_references_resolved(client: TestClient) -> None:
    pid = f"urn:uuid:{uuid.uuid4()}"
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Mạch"},
        "subject": {"reference": pid},
    }
    r = client.post(
        "/fhir",
        json=tx(
            post(obs),
            post(cccd_patient("001")),
        ),
        headers=FHIR,
    )
    assert r.status_code == 400  # the Observation references a urn:uuid no entry has
    r = client.post("/fhir", json=tx(post(obs), post(cccd_patient("001"), pid)), headers=FHIR)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201", "201"]
    obs_loc = body["entry"][0]["response"]["location"]
    pat_loc = body["entry"][1]["response"]["location"]
    stored = client.get("/fhir/" + obs_loc.split("/_history")[0]).json()
    assert stored["subject"]["reference"] == pat_loc.split("/_history")[0]


def test_conditional_create_and_reference_in_transaction(client: TestClient) -> None:
    value = uuid.uuid4().hex[:12]
    first = client.post("/fhir/Patient", json=cccd_patient(value), headers=FHIR).json()
    again = post(cccd_patient(value), "urn:uuid:p", ifNoneExist=f"identifier={CCCD}|{value}")
    enc = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": f"Patient?identifier={CCCD}|{value}"},
    }
    r = client.post("/fhir", json=tx(again, post(enc)), headers=FHIR)
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses == ["200", "201"]
    loc = r.json()["entry"][1]["response"]["location"].split("/_history")[0]
    assert client.get(f"/fhir/{loc}").json()["subject"]["reference"] == f"Patient/{first['id']}"
    assert client.get("/fhir/Patient?_summary=count").json()["total"] == 1


def test_conditional_reference_with_no_match_fails_whole_transaction(client: TestClient) -> None:
    enc = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": f"Patient?identifier={CCCD}|nobody"},
    }
    r = client.post("/fhir", json=tx(post(cccd_patient("x1")), post(enc)), headers=FHIR)
    assert r.status_code == 404
    assert client.get("/fhir/Patient?_summary=count").json()["total"] == 0


def test_processing_order_delete_before_create(client: TestClient) -> None:
    old = client.post("/fhir/Patient", json=cccd_patient("old"), headers=FHIR).json()
    bundle = tx(
        post(cccd_patient("new")),
        {"request": {"method": "GET", "url": f"Patient?identifier={CCCD}|new"}},
        {"request": {"method": "DELETE", "url": f"Patient/{old['id']}"}},
    )
    r = client.post("/fhir", json=bundle, headers=FHIR)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["201", "200", "204"]
    assert entries[1]["resource"]["total"] == 1  # the GET ran after the POST
    assert client.get(f"/fhir/Patient/{old['id']}").status_code == 410


def test_same_resource_twice_is_rejected(client: TestClient) -> None:
    put = {
        "resource": {**cccd_patient("a"), "id": "same"},
        "request": {"method": "PUT", "url": "Patient/same"},
    }
    r = client.post("/fhir", json=tx(put, put), headers=FHIR)
    assert r.status_code == 400
    assert client.get("/fhir/Patient/same").status_code == 404


def test_bad_bundles(client: TestClient) -> None:
    assert client.post("/fhir", json={"resourceType": "Patient"}, headers=FHIR).status_code == 400
    r = client.post("/fhir", json={"resourceType": "Bundle", "type": "collection"}, headers=FHIR)
    assert r.status_code == 400
    no_method = tx({"resource": cccd_patient("z"), "request": {"url": "Patient"}})
    r = client.post("/fhir", json=no_method, headers=FHIR)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[0].request"]


def test_batch_entries_are_independent(client: TestClient) -> None:
    good = post(cccd_patient("b1"))
    bad = post({"resourceType": "Patient", "gender": "robot"})
    missing = {"request": {"method": "GET", "url": "Patient/none"}}
    r = client.post("/fhir", json=tx(good, bad, missing, kind="batch"), headers=FHIR)
    assert r.status_code == 200
    entries = r.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["201", "400", "404"]
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Patient?_summary=count").json()["total"] == 1


def synthea_files() -> list[Path]:
    return sorted(data_path("synthea-r4-bundles").glob("*.json"))


def test_synthea_bundles_load_and_link(client: TestClient, store: Store) -> None:
    expected: Counter[str] = Counter()
    patients = []
    for f in synthea_files():
        bundle = orjson.loads(f.read_bytes())
        expected.update(e["resource"]["resourceType"] for e in bundle["entry"])
        r = client.post("/fhir", content=f.read_bytes(), headers=FHIR)
        assert r.status_code == 200, (f.name, r.text[:500])
        locs = [e["response"]["location"] for e in r.json()["entry"]]
        patients += [loc.split("/")[1] for loc in locs if loc.startswith("Patient/")]
    counts = {t: client.get(f"/fhir/{t}?_summary=count").json()["total"] for t in expected}
    assert counts == dict(expected)
    _assert_references_resolve(store)
    for pid in patients[:3]:
        _assert_everything(client, pid)


def _assert_references_resolve(store: Store) -> None:
    with store.read() as conn:
        rows = conn.execute(resource.select().with_only_columns(resource.c.content)).scalars()
        refs = {
            split_ref(ref)
            for content in rows
            for _p, ref in references(
                orjson.loads(content) if isinstance(content, str) else content, ""
            )
            if not ref.startswith(("urn:", "#", "http"))
        }
        missing = {r for r in refs if r} - Repo(conn, Actor.job("27001", "test")).existing(
            r for r in refs if r
        )
    assert missing == set()


def _assert_everything(client: TestClient, pid: str) -> None:
    compartment = client.get(f"/fhir/Encounter?subject=Patient/{pid}&_summary=count").json()
    got: list[dict[str, Any]] = []
    url: str | None = f"/fhir/Patient/{pid}/$everything?_count=100"
    while url:
        page = client.get(url).json()
        got += [e["resource"] for e in page["entry"]]
        nxt = [lk["url"] for lk in page["link"] if lk["relation"] == "next"]
        url = nxt[0].removeprefix("http://testserver") if nxt else None
    types = Counter(r["resourceType"] for r in got)
    assert got[0]["resourceType"] == "Patient" and got[0]["id"] == pid
    assert types["Encounter"] == compartment["total"] > 0
    assert len({(r["resourceType"], r["id"]) for r in got}) == len(got)  # no duplicates
    assert types["Organization"] >= 1  # referenced from the encounters


@pytest.mark.parametrize("bad", ["_count=x", "_since=soon", "_type=Nope"])
def test_everything_bad_parameters(client: TestClient, bad: str) -> None:
    p = client.post("/fhir/Patient", json=cccd_patient("e"), headers=FHIR).json()
    assert client.get(f"/fhir/Patient/{p['id']}/$everything?{bad}").status_code == 400


def test_everything_filters(client: TestClient) -> None:
    p = client.post("/fhir/Patient", json=cccd_patient("f"), headers=FHIR).json()
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Mạch"},
        "subject": {"reference": f"Patient/{p['id']}"},
    }
    client.post("/fhir/Observation", json=obs, headers=FHIR)
    all_ = client.get(f"/fhir/Patient/{p['id']}/$everything").json()
    types = Counter(e["resource"]["resourceType"] for e in all_["entry"])
    assert types == {"Patient": 1, "Observation": 1, "Provenance": 2}  # one per write
    only = client.get(f"/fhir/Patient/{p['id']}/$everything?_type=Observation").json()
    assert [e["resource"]["resourceType"] for e in only["entry"]] == ["Observation"]
    assert client.get("/fhir/Patient/nobody/$everything").status_code == 404
