"""Bulk Data $export over HTTP: kick-off, status polling, files, deletion, and every bad request."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import orjson
import pytest
from fastapi.testclient import TestClient

from benhan.access import Actor
from benhan.api import create_app
from benhan.config import Secret, Settings
from benhan.fhir.primitives import date_range
from benhan.store.database import Store
from benhan.store.repository import Repo
from tests.conftest import bearer

FACILITY = "27001"
HOST = "http://testserver"
BASE = f"{HOST}/fhir"
KICK = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def join_workers() -> None:
    """Export threads finish before the database they read is dropped."""
    for t in threading.enumerate():
        if t.name.startswith("export-"):
            t.join(timeout=10)


def make_client(store: Store, database_url: str, export_dir: Path) -> TestClient:
    settings = Settings(
        database_url=Secret(database_url),
        facility=FACILITY,
        base_url=BASE,
        max_body_bytes=1 << 20,
        export_dir=export_dir,
    )
    c = TestClient(create_app(settings=settings, store=store))
    c.headers["Authorization"] = bearer(store, audience=BASE)
    return c


@pytest.fixture
def client(store: Store, database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(store, database_url, tmp_path / "export") as c:
        yield c
    join_workers()


@pytest.fixture
def data(store: Store) -> dict[str, Any]:
    """Two patients with an Observation each, an Organization, and a Group of the first one."""
    tag = uuid.uuid4().hex[:8]
    with store.begin() as conn:
        repo = Repo(conn, Actor.job(FACILITY, "test"))
        org = repo.create({"resourceType": "Organization", "name": f"Trạm y tế {tag}"}).id
        pats, obs = [], []
        for family in ("Lê", "Phạm"):
            patient = {"resourceType": "Patient", "name": [{"family": f"{family}{tag}"}]}
            pid = repo.create(patient).id
            obs.append(
                repo.create(
                    {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"text": "Nhiệt độ"},
                        "subject": {"reference": f"Patient/{pid}"},
                    }
                ).id
            )
            pats.append(pid)
        gid = repo.create(
            {
                "resourceType": "Group",
                "type": "person",
                "actual": True,
                "member": [
                    {"entity": {"reference": f"Patient/{pats[0]}"}},
                    {"entity": {"reference": f"Organization/{org}"}},
                ],
            }
        ).id
    return {"org": org, "patients": pats, "observations": obs, "group": gid}


def local(url: str) -> str:
    assert url.startswith(HOST)
    return url.removeprefix(HOST)


def kick_off(client: TestClient, path: str, **params: str) -> str:
    r = client.get(path, params=params, headers=KICK)
    assert r.status_code == 202, r.text
    return local(r.headers["content-location"])


def wait(client: TestClient, status_path: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = client.get(status_path)
        if r.status_code != 202:
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("application/json")
            manifest: dict[str, Any] = r.json()
            return manifest
        assert r.headers["x-progress"] in ("accepted", "running")
        assert r.headers["retry-after"] == "2"
        time.sleep(0.05)
    raise AssertionError("export did not complete within 10 s")


def download(client: TestClient, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for item in manifest["output"]:
        r = client.get(local(item["url"]))
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/fhir+ndjson")
        assert r.content.endswith(b"\n")
        rows = [orjson.loads(line) for line in r.content[:-1].split(b"\n")]
        assert len(rows) == item["count"]
        assert {row["resourceType"] for row in rows} == {item["type"]}
        out[item["type"]] = rows
    return out


def ids(files: dict[str, list[dict[str, Any]]]) -> dict[str, set[str]]:
    return {t: {r["id"] for r in rows} for t, rows in files.items()}


class Reply(Protocol):
    """What the assertions read of a TestClient response (httpx or httpx2, by Starlette version)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def headers(self) -> Any: ...

    def json(self) -> Any: ...


def assert_outcome(r: Reply, status: int, needle: str = "") -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert needle in r.text


# ---- the three levels -----------------------------------------------------------------------


def test_system_export(client: TestClient, data: dict[str, Any]) -> None:
    r = client.get("/fhir/$export", headers=KICK)
    assert r.status_code == 202
    location = r.headers["content-location"]
    assert location.startswith(f"{BASE}/$export-status/")
    manifest = wait(client, local(location))
    assert manifest["request"] == f"{BASE}/$export"
    assert manifest["requiresAccessToken"] is True
    assert manifest["error"] == []
    assert date_range(manifest["transactionTime"]) is not None
    got = ids(download(client, manifest))
    assert len(got.pop("Provenance")) == 6  # one per write of the fixture
    assert got == {
        "Organization": {data["org"]},
        "Patient": set(data["patients"]),
        "Observation": set(data["observations"]),
        "Group": {data["group"]},
    }


def test_system_export_with_type_and_since(client: TestClient, data: dict[str, Any]) -> None:
    time.sleep(0.01)  # transactionTime has millisecond precision: keep the data strictly before
    status = kick_off(
        client,
        "/fhir/$export",
        _type="Patient,Organization",
        _since="2000-01-01T00:00:00+07:00",
        _outputFormat="ndjson",
    )
    manifest = wait(client, status)
    assert manifest["request"].startswith(f"{BASE}/$export?_type=Patient")
    assert ids(download(client, manifest)) == {
        "Organization": {data["org"]},
        "Patient": set(data["patients"]),
    }
    later = kick_off(client, "/fhir/$export", _since=manifest["transactionTime"])
    assert wait(client, later)["output"] == []  # nothing changed since


def test_patient_export_leaves_out_non_compartment_resources(
    client: TestClient, data: dict[str, Any]
) -> None:
    downloaded = download(client, wait(client, kick_off(client, "/fhir/Patient/$export")))
    files = ids(downloaded)
    assert "Organization" not in files
    assert files["Patient"] == set(data["patients"])
    assert files["Observation"] == set(data["observations"])
    # The Provenances of what is exported, and only theirs (the Organization's stays out).
    exported = {f"{t}/{i}" for t, found in files.items() if t != "Provenance" for i in found}
    named = {t["reference"].split("/_history/")[0]
             for p in downloaded["Provenance"] for t in p["target"]}  # fmt: skip
    assert named == exported


def test_group_export_gives_the_members_compartments(
    client: TestClient, data: dict[str, Any]
) -> None:
    path = f"/fhir/Group/{data['group']}/$export"
    files = download(client, wait(client, kick_off(client, path, _type="Patient,Observation")))
    assert ids(files) == {
        "Patient": {data["patients"][0]},
        "Observation": {data["observations"][0]},
    }
    assert files["Observation"][0]["subject"]["reference"] == f"Patient/{data['patients'][0]}"


def test_delete_removes_job_and_files(
    client: TestClient, data: dict[str, Any], tmp_path: Path
) -> None:
    status = kick_off(client, "/fhir/$export")
    manifest = wait(client, status)
    job_id = status.rsplit("/", 1)[1]
    assert (tmp_path / "export" / job_id).is_dir()
    r = client.delete(status)
    assert r.status_code == 202
    assert not (tmp_path / "export" / job_id).exists()
    assert_outcome(client.get(status), 404)
    assert_outcome(client.get(local(manifest["output"][0]["url"])), 404)
    assert_outcome(client.delete(status), 404)


def test_delete_while_accepted_or_running_leaves_nothing(
    client: TestClient, data: dict[str, Any], tmp_path: Path
) -> None:
    status = kick_off(client, "/fhir/$export")
    assert client.delete(status).status_code == 202
    join_workers()
    assert_outcome(client.get(status), 404)
    assert not (tmp_path / "export" / status.rsplit("/", 1)[1]).exists()


def test_failed_job_is_a_422_outcome(store: Store, database_url: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("export_dir must be a directory")
    with make_client(store, database_url, blocker) as c:
        status = kick_off(c, "/fhir/$export")
        join_workers()
        assert_outcome(c.get(status), 422, "export failed")


# ---- bad requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Prefer": "handling=strict"}, {"Accept": "application/fhir+json"}]
)
def test_kick_off_needs_prefer_respond_async(client: TestClient, headers: dict[str, str]) -> None:
    assert_outcome(client.get("/fhir/$export", headers=headers), 400, "respond-async")


@pytest.mark.parametrize("accept", ["application/fhir+xml", "text/html"])
def test_kick_off_refuses_a_non_json_accept(client: TestClient, accept: str) -> None:
    r = client.get("/fhir/Patient/$export", headers={**KICK, "Accept": accept})
    assert_outcome(r, 400, "Accept")


def test_kick_off_without_accept_is_fine(client: TestClient) -> None:
    r = client.get("/fhir/$export", headers={"Prefer": "respond-async", "Accept": ""})
    assert r.status_code == 202
    wait(client, local(r.headers["content-location"]))


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"_outputFormat": "application/fhir+json"}, "_outputFormat"),
        ({"_since": "hôm qua"}, "_since"),
        ({"_since": "2025-03-01"}, "_since"),
        ({"_type": "Patient,Benhnhan"}, "Benhnhan"),
        ({"_typeFilter": "Observation?status=final"}, "not supported"),
        ({"_elements": "id"}, "not supported"),
    ],
)
def test_kick_off_bad_parameters(client: TestClient, params: dict[str, str], needle: str) -> None:
    for path in ("/fhir/$export", "/fhir/Patient/$export"):
        assert_outcome(client.get(path, params=params, headers=KICK), 400, needle)


def test_unknown_group_is_404(client: TestClient) -> None:
    r = client.get("/fhir/Group/khong-ton-tai/$export", headers=KICK)
    assert_outcome(r, 404, "Group/khong-ton-tai")


@pytest.mark.parametrize("job_id", ["f" * 32, "not-a-job", "%2E%2E", "..%2F..%2Fetc"])
def test_unknown_job_is_404(client: TestClient, job_id: str) -> None:
    assert_outcome(client.get(f"/fhir/$export-status/{job_id}"), 404)
    assert_outcome(client.delete(f"/fhir/$export-status/{job_id}"), 404)
    assert_outcome(client.get(f"/fhir/$export-file/{job_id}/Patient.ndjson"), 404)


def test_files_outside_the_manifest_are_404(
    client: TestClient, data: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0")
    (tmp_path / "Secret.ndjson").write_text("{}\n")
    status = kick_off(client, "/fhir/$export", _type="Patient")
    wait(client, status)
    job = status.rsplit("/", 1)[1]
    (tmp_path / "export" / job / "Encounter.ndjson").write_text("{}\n")  # not in the manifest
    for name in [
        "..%2F..%2Fetc%2Fpasswd",
        "../x.ndjson",
        "..%2F..%2FSecret.ndjson",
        "../../Secret.ndjson",
        "%2E%2E/%2E%2E/Secret.ndjson",
        "Encounter.ndjson",
        "Patient.json",
        "patient.ndjson",
        "Patient.ndjson/",
        ".Patient.ndjson",
        "",
    ]:
        r = client.get(f"/fhir/$export-file/{job}/{name}")
        assert_outcome(r, 404)
        assert b"root:x" not in r.content
    assert client.get(f"/fhir/$export-file/{job}/Patient.ndjson").status_code == 200
