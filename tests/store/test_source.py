"""meta.source: every stored resource names the facility it came from, on both backends."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from benhan.access import ROLES, Actor
from benhan.fhir.outcome import FhirError
from benhan.fhir.systems import facility_source, source_facility
from benhan.store.database import Store
from benhan.store.history import history
from benhan.store.repository import Repo
from benhan.store.schema import resource
from benhan.store.unit import unit

A, B = "27001", "27002"
VENDOR = "http://his.vendor.example.vn/fhir"  # another system's name for itself


def patient(**extra: Any) -> dict[str, Any]:
    family = f"Bùi-{uuid.uuid4().hex[:6]}"  # fresh values per test
    return {"resourceType": "Patient", "name": [{"family": family, "given": ["Lan"]}], **extra}


def source_of(store: Store, rtype: str, rid: str, facility: str = A) -> str | None:
    with store.read() as conn:
        meta = Repo(conn, Actor.job(facility, "test")).read(rtype, rid).resource["meta"]
    return meta.get("source")


def test_a_created_resource_names_its_writers_facility(store: Store) -> None:
    with store.begin() as conn:
        saved = Repo(conn, Actor.job(A, "test")).create(patient())
    assert saved.resource["meta"]["source"] == "urn:benhan:facility:27001"
    assert source_of(store, "Patient", saved.id) == facility_source(A)
    assert source_facility(saved.resource) == A


def test_a_source_the_client_sent_is_kept(store: Store) -> None:
    with store.begin() as conn:
        repo = Repo(conn, Actor.job(A, "test"))
        pushed = repo.create(patient(meta={"source": facility_source(B)}))  # relayed from B
        vendor = repo.create(patient(meta={"source": VENDOR, "tag": [{"code": "x"}]}))
    assert source_of(store, "Patient", pushed.id) == facility_source(B)
    assert source_facility(pushed.resource) == B
    assert vendor.resource["meta"]["source"] == VENDOR
    assert vendor.resource["meta"]["tag"] == [{"code": "x"}]
    assert source_facility(vendor.resource) is None  # not one of ours: no facility to name


def test_a_facilitys_client_cannot_claim_another_facility_as_source(store: Store) -> None:
    """Only a trusted relay keeps another facility's origin; a facility speaks for itself."""
    his = Actor(
        "client", "his", ROLES["system-integrator"], A, ROLES["system-integrator"].scopes,
        account="his-a",
    )  # fmt: skip
    with store.begin() as conn:
        repo = Repo(conn, his)
        spoofed = repo.create(patient(meta={"source": facility_source(B)}))
        vendor = repo.create(patient(meta={"source": VENDOR}))
        own = repo.create(patient(meta={"source": facility_source(A)}))
    assert source_facility(spoofed.resource) == A
    assert vendor.resource["meta"]["source"] == VENDOR  # its own system's name: kept
    assert source_facility(own.resource) == A


def test_updates_keep_stamping_and_each_version_keeps_its_own(store: Store) -> None:
    with store.begin() as conn:
        repo = Repo(conn, Actor.job(A, "test"))
        rid = repo.create(patient(meta={"source": VENDOR})).id
        repo.update("Patient", rid, {**patient(gender="female"), "id": rid})  # no meta sent
        repo.update(
            "Patient", rid, {**patient(gender="male"), "id": rid, "meta": {"source": VENDOR}}
        )
    with store.read() as conn:
        repo = Repo(conn, Actor.job(A, "test"))
        by_version = {v: repo.vread("Patient", rid, str(v)).resource for v in (1, 2, 3)}
        versions, _ = history(conn, "Patient", rid, since=None, count=10, offset=0)
    sources = {v: r["meta"]["source"] for v, r in by_version.items()}
    assert sources == {1: VENDOR, 2: facility_source(A), 3: VENDOR}
    assert {
        v.version_id: orjson.loads(v.content or b"{}")["meta"]["source"] for v in versions
    } == sources


def test_a_job_updating_another_facilitys_record_stamps_the_owner(store: Store) -> None:
    with store.begin() as conn:
        rid = Repo(conn, Actor.job(B, "test")).create(patient()).id
    with store.begin() as conn:  # a province job (no facility of its own) corrects the record
        Repo(conn, Actor.job("", "test")).update("Patient", rid, {**patient(), "id": rid})
    with store.read() as conn:
        owner = conn.scalar(sa.select(resource.c.facility).where(resource.c.id == rid))
    assert owner == B and source_of(store, "Patient", rid, B) == facility_source(B)


def test_a_writer_with_no_facility_stamps_nothing(store: Store) -> None:
    """The province's own resources (the MPI's Person links) come from no facility."""
    with store.begin() as conn:
        repo = Repo(conn, Actor.job(A, "test"))
        pid = repo.create(patient()).id
    person = {"resourceType": "Person", "link": [{"target": {"reference": f"Patient/{pid}"}}]}
    with store.begin() as conn:
        saved = Repo(conn, Actor.job("", "test")).create(person)
    assert "source" not in saved.resource["meta"]
    assert source_facility(saved.resource) is None


@pytest.mark.parametrize("bad", ["", 42, ["urn:benhan:facility:27001"], {"value": "x"}])
def test_a_malformed_source_is_refused_and_changes_nothing(store: Store, bad: object) -> None:
    with pytest.raises(FhirError) as err, store.begin() as conn:
        Repo(conn, Actor.job(A, "test")).create(patient(meta={"source": bad}))
    assert err.value.status in (400, 422)
    with store.read() as conn:
        count = conn.scalar(
            sa.select(sa.func.count()).select_from(resource).where(resource.c.rtype == "Patient")
        )
    assert count == 0


def test_audit_events_name_their_facility_in_source_not_in_meta(store: Store) -> None:
    """The audit trail's events already carry the facility (AuditEvent.source); no meta.source,
    which would cost every event one more index row."""
    with store.begin() as conn:
        pid = Repo(conn, Actor.job(A, "test")).create(patient()).id
    doctor = Actor("user", "bs", ROLES["doctor"], A, ROLES["doctor"].scopes, account="acc-bs")
    with unit(store, doctor, write=False) as repo:
        repo.read("Patient", pid)
    store.audit.flush()
    with store.read() as conn:
        events = [
            orjson.loads(c)
            for c in conn.scalars(
                sa.select(sa.cast(resource.c.content, sa.Text)).where(
                    resource.c.rtype == "AuditEvent"
                )
            )
        ]
    assert events
    for e in events:
        assert "source" not in e["meta"]
        assert e["source"]["observer"]["identifier"]["value"] == A


@pytest.mark.parametrize(
    ("res", "code"),
    [
        ({"meta": {"source": "urn:benhan:facility:27002"}}, "27002"),
        ({"meta": {"source": "urn:benhan:facility:"}}, None),
        ({"meta": {"source": "urn:benhan:facility:27002,27003"}}, None),  # not one MA_CSKCB
        ({"meta": {"source": "urn:benhan:facility:2700"}}, None),
        ({"meta": {"source": "urn:other:facility:27002"}}, None),
        ({"meta": {"source": VENDOR}}, None),
        ({"meta": {"source": 27002}}, None),
        ({"meta": "urn:benhan:facility:27002"}, None),
        ({"meta": {}}, None),
        ({}, None),
    ],
)
def test_source_facility_reads_back_only_our_own_form(
    res: dict[str, Any], code: str | None
) -> None:
    assert source_facility(res) == code


def test_facility_source_and_source_facility_round_trip() -> None:
    for code in ("27001", "24123", "98001"):
        assert source_facility({"meta": {"source": facility_source(code)}}) == code
