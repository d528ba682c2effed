"""The NDJSON writer, the kick-off parameters and the job lifecycle of Bulk Data $export."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from benhan.access import Actor
from benhan.bulk import export
from benhan.bulk.export import ExportFile, parse_params, write_ndjson
from benhan.config import Secret, Settings
from benhan.fhir.outcome import FhirError
from benhan.fhir.primitives import micros, now
from benhan.store import provenance
from benhan.store.database import Store
from benhan.store.repository import Repo, new_id

FACILITY = "27001"
JOB = Actor.job(FACILITY, "test")


@pytest.fixture(autouse=True)
def no_provenances(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exact files: the writes here leave no Provenance (exported like any other resource, in
    their patients' compartments: tests/api/test_bulk_export.py)."""
    monkeypatch.setattr(provenance, "RECORD", False)


@dataclass
class Seeded:
    org: str
    patients: list[str]  # two patients …
    observations: list[str]  # … each with one Observation, in the same order


def seed(store: Store) -> Seeded:
    """Two patients, each with an Observation, and an Organization outside every compartment."""
    tag = uuid.uuid4().hex[:8]
    with store.begin() as conn:
        repo = Repo(conn, Actor.job(FACILITY, "test"))
        org = repo.create({"resourceType": "Organization", "name": f"Bệnh viện {tag}"}).id
        patients, observations = [], []
        for family in ("Nguyễn", "Trần"):
            pid = repo.create(
                {
                    "resourceType": "Patient",
                    "name": [{"family": f"{family} {tag}"}],
                    "managingOrganization": {"reference": f"Organization/{org}"},
                }
            ).id
            observations.append(repo.create(observation(pid)).id)
            patients.append(pid)
    return Seeded(org, patients, observations)


def observation(pid: str, rid: str | None = None) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Mạch"},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": 72, "unit": "/min"},
    }
    return {**obs, "id": rid} if rid else obs


def lines(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return [orjson.loads(line) for line in raw[:-1].split(b"\n")]


def export_all(store: Store, out: Path, **kw: Any) -> dict[str, ExportFile]:
    args: dict[str, Any] = {"types": None, "since_us": None, "patients": None, **kw}
    with store.read() as conn:
        files = write_ndjson(conn, out, **args)
    return {f.type: f for f in files}


def by_type(files: dict[str, ExportFile]) -> dict[str, set[str]]:
    return {t: {r["id"] for r in lines(f.path)} for t, f in files.items()}


# ---- write_ndjson ---------------------------------------------------------------------------


def test_every_line_is_a_stored_resource(store: Store, tmp_path: Path) -> None:
    s = seed(store)
    files = export_all(store, tmp_path / "out")
    assert {t: f.count for t, f in files.items()} == {
        "Observation": 2,
        "Organization": 1,
        "Patient": 2,
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "Observation.ndjson",
        "Organization.ndjson",
        "Patient.ndjson",
    ]
    with store.read() as conn:
        repo = Repo(conn, Actor.job(FACILITY, "test"))
        for rtype, f in files.items():
            rows = lines(f.path)
            assert len(rows) == f.count
            assert all(r["resourceType"] == rtype for r in rows)
            assert all(r == repo.read(rtype, r["id"]).resource for r in rows)  # as stored
    assert by_type(files)["Patient"] == set(s.patients)


def test_types_filter_writes_only_those_types(store: Store, tmp_path: Path) -> None:
    s = seed(store)
    files = export_all(store, tmp_path / "out", types=["Observation", "Encounter"])
    assert by_type(files) == {"Observation": set(s.observations)}  # no empty Encounter file
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["Observation.ndjson"]


def test_since_keeps_only_later_changes(store: Store, tmp_path: Path) -> None:
    s = seed(store)
    time.sleep(0.002)
    mark = micros(now())
    with store.begin() as conn:
        repo = Repo(conn, Actor.job(FACILITY, "test"))
        repo.update("Observation", s.observations[0], observation(s.patients[0], s.observations[0]))
        late = repo.create(observation(s.patients[1])).id
    files = export_all(store, tmp_path / "out", since_us=mark)
    assert by_type(files) == {"Observation": {s.observations[0], late}}
    with_types = export_all(store, tmp_path / "typed", since_us=mark, types=["Patient"])
    assert with_types == {}


def test_patients_filter_gives_only_their_compartments(store: Store, tmp_path: Path) -> None:
    s = seed(store)
    files = export_all(store, tmp_path / "out", patients=[s.patients[0]])
    assert by_type(files) == {"Patient": {s.patients[0]}, "Observation": {s.observations[0]}}
    obs = lines(files["Observation"].path)
    assert obs[0]["subject"]["reference"] == f"Patient/{s.patients[0]}"


def test_patients_in_several_chunks(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = seed(store)
    monkeypatch.setattr(export, "PATIENT_CHUNK", 1)
    files = export_all(store, tmp_path / "out", patients=[*s.patients, s.patients[0]])
    assert by_type(files) == {"Patient": set(s.patients), "Observation": set(s.observations)}


def test_no_patients_means_no_files(store: Store, tmp_path: Path) -> None:
    seed(store)
    assert export_all(store, tmp_path / "out", patients=[]) == {}


def test_any_patient_leaves_out_resources_outside_compartments(
    store: Store, tmp_path: Path
) -> None:
    s = seed(store)
    files = export_all(store, tmp_path / "out", any_patient=True)
    assert by_type(files) == {"Patient": set(s.patients), "Observation": set(s.observations)}


def test_deleted_resources_are_not_exported(store: Store, tmp_path: Path) -> None:
    s = seed(store)
    with store.begin() as conn:
        Repo(conn, Actor.job(FACILITY, "test")).delete("Observation", s.observations[0])
        Repo(conn, Actor.job(FACILITY, "test")).delete("Organization", s.org)
    files = export_all(store, tmp_path / "out")
    assert by_type(files) == {"Patient": set(s.patients), "Observation": {s.observations[1]}}


def test_streams_thousands_in_batches(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = seed(store)
    with store.begin() as conn:
        repo = Repo(conn, Actor.job(FACILITY, "test"))
        writes = [
            repo.prepare(observation(s.patients[i % 2], new_id()), "POST", known=set())
            for i in range(3000)
        ]
        repo.flush(writes)
    monkeypatch.setattr(export, "BATCH", 250)
    calls: list[tuple[str, int]] = []
    files = export_all(store, tmp_path / "out", progress=lambda t, n: calls.append((t, n)))
    assert {t: f.count for t, f in files.items()} == {
        "Observation": 3002,
        "Organization": 1,
        "Patient": 2,
    }
    assert len(lines(files["Observation"].path)) == 3002
    assert len(by_type(files)["Observation"]) == 3002  # no resource twice
    assert len(calls) >= 3005 // 250  # progress came batch by batch
    assert all(n <= 250 for _, n in calls)
    assert sum(n for t, n in calls if t == "Observation") == 3002


def test_existing_file_is_overwritten(store: Store, tmp_path: Path) -> None:
    s = seed(store)
    out = tmp_path / "out"
    out.mkdir()
    (out / "Patient.ndjson").write_bytes(b"stale\n" * 10)
    files = export_all(store, out, types=["Patient"])
    assert by_type(files) == {"Patient": set(s.patients)}


# ---- kick-off parameters ----------------------------------------------------------------------


URL = "http://example.org/fhir/$export"


def test_parameters_parse() -> None:
    p = parse_params(
        [
            ("_outputFormat", "application/fhir+ndjson"),
            ("_type", "Patient, Observation"),
            ("_type", "Patient"),
            ("_since", "2025-03-01T06:30:00+07:00"),
        ],
        request_url=URL,
    )
    assert p.types == ("Patient", "Observation")
    assert p.since == "2025-03-01T06:30:00+07:00"
    assert p.since_us == micros(datetime.fromisoformat("2025-02-28T23:30:00+00:00"))
    assert parse_params([], request_url=URL).types is None


@pytest.mark.parametrize("fmt", ["application/fhir+ndjson", "application/ndjson", "ndjson"])
def test_ndjson_formats_are_accepted(fmt: str) -> None:
    assert parse_params([("_outputFormat", fmt)], request_url=URL).types is None


def test_unencoded_plus_in_since_is_read_as_plus() -> None:
    p = parse_params([("_since", "2025-03-01T06:30:00 07:00")], request_url=URL)
    assert p.since == "2025-03-01T06:30:00+07:00"


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ([("_outputFormat", "application/fhir+json")], "_outputFormat"),
        ([("_outputFormat", "text/csv")], "text/csv"),
        ([("_since", "yesterday")], "_since"),
        ([("_since", "2025-03-01")], "instant"),  # a date is not an instant
        ([("_since", "2025-13-01T00:00:00Z")], "_since"),
        (
            [("_since", "2025-03-01T00:00:00Z"), ("_since", "2025-03-02T00:00:00Z")],
            "only one _since",
        ),
        ([("_type", "Patient,Pateint")], "Pateint"),
        ([("_typeFilter", "Observation?status=final")], "_typeFilter is not supported"),
        ([("_elements", "id")], "_elements is not supported"),
        ([("includeAssociatedData", "LatestProvenanceResources")], "includeAssociatedData"),
    ],
)
def test_bad_parameters_are_400(query: list[tuple[str, str]], needle: str) -> None:
    with pytest.raises(FhirError) as err:
        parse_params(query, request_url=URL)
    assert err.value.status == 400
    assert needle in orjson.dumps(err.value.outcome()).decode()


def test_every_bad_parameter_is_reported_at_once() -> None:
    with pytest.raises(FhirError) as err:
        parse_params([("_type", "Foo"), ("_since", "x"), ("_outputFormat", "csv")], request_url=URL)
    assert len(err.value.issues) == 3


# ---- jobs -------------------------------------------------------------------------------------


def settings_for(export_dir: Path) -> Settings:
    return Settings(
        database_url=Secret("sqlite://"),
        facility=FACILITY,
        base_url="http://example.org/fhir",
        max_body_bytes=1 << 20,
        export_dir=export_dir,
    )


def join_workers() -> None:
    for t in threading.enumerate():
        if t.name.startswith("export-"):
            t.join(timeout=10)


def test_group_members_are_active_patient_members(store: Store) -> None:
    s = seed(store)
    with store.begin() as conn:
        gid = (
            Repo(conn, Actor.job(FACILITY, "test"))
            .create(
                {
                    "resourceType": "Group",
                    "type": "person",
                    "actual": True,
                    "member": [
                        {"entity": {"reference": f"Patient/{s.patients[0]}"}},
                        {"entity": {"reference": f"Patient/{s.patients[1]}"}, "inactive": True},
                        {"entity": {"reference": f"Organization/{s.org}"}},
                        {"entity": {"reference": f"Patient/{s.patients[0]}"}},
                    ],
                }
            )
            .id
        )
    assert export.group_members(store, JOB, gid) == [s.patients[0]]
    with pytest.raises(FhirError) as err:
        export.group_members(store, JOB, "khong-co")
    assert err.value.status == 404


def test_job_completes_then_is_deleted(store: Store, tmp_path: Path) -> None:
    s = seed(store)
    cfg = settings_for(tmp_path / "export")
    job_id = export.kick_off(store, cfg, "patient", parse_params([], request_url=URL), JOB)
    join_workers()
    job = export.status(store, job_id, JOB)
    assert job.status == "completed"
    manifest = job.manifest(cfg.base_url)
    assert {o["type"]: o["count"] for o in manifest["output"]} == {"Observation": 2, "Patient": 2}
    path = export.job_file(store, cfg, job_id, "Patient.ndjson", JOB)
    assert {r["id"] for r in lines(path)} == set(s.patients)
    for name in [
        "../Patient.ndjson",
        f"../{job_id}/Patient.ndjson",
        "/etc/passwd",
        "Encounter.ndjson",
        "Patient.ndjson\x00",
        "",
    ]:
        with pytest.raises(FhirError) as err:
            export.job_file(store, cfg, job_id, name, JOB)
        assert err.value.status == 404
    export.delete_job(store, cfg, job_id, JOB)
    assert not (tmp_path / "export" / job_id).exists()
    for call in (
        lambda: export.status(store, job_id, JOB),
        lambda: export.delete_job(store, cfg, job_id, JOB),
    ):
        with pytest.raises(FhirError) as err:
            call()
        assert err.value.status == 404


def test_job_that_cannot_write_fails_with_a_reason(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed(store)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    job_id = export.kick_off(
        store, settings_for(blocker), "system", parse_params([], request_url=URL), JOB
    )
    join_workers()
    job = export.status(store, job_id, JOB)
    assert job.status == "failed"
    assert job.error and "Error" in job.error and str(tmp_path) not in job.error
    assert f"export job {job_id} failed" in caplog.text
