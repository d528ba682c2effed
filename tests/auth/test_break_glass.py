"""Break-glass grants: who may open one, the rules on reason and time, the audit, who sees it."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
import sqlalchemy as sa

from benhan.access import Actor
from benhan.auth.accounts import Account, create_account
from benhan.auth.break_glass import (
    BreakGlassError,
    active_grants,
    grants_for_facility,
    open_break_glass,
)
from benhan.store.database import Store
from benhan.store.policy import Policy
from benhan.store.repository import Repo
from benhan.store.schema import break_glass, resource
from tests.auth.conftest import Clock

REASON = "Người bệnh hôn mê được đưa vào cấp cứu, cần tiền sử bệnh."


def person(conn: sa.Connection, username: str, role: str, facility: str = "27001") -> Account:
    return create_account(
        conn,
        username=username,
        password="mat-khau-dai-2025",
        role_code=role,
        facility=facility,
        display_name=username,
    )


def patient(conn: sa.Connection, facility: str) -> str:
    res = {"resourceType": "Patient", "name": [{"family": "Đỗ", "given": ["Minh"]}]}
    return Repo(conn, Actor.job(facility, "test")).create(res).id


@pytest.fixture
def doctor(conn: sa.Connection) -> Actor:
    return person(conn, "bs.an", "doctor").actor(address="10.0.0.7")


def events(conn: sa.Connection) -> list[dict[str, object]]:
    q = sa.select(sa.cast(resource.c.content, sa.Text)).where(resource.c.rtype == "AuditEvent")
    return [orjson.loads(c) for c in conn.scalars(q)]


def count_grants(conn: sa.Connection) -> int:
    return int(conn.scalar(sa.select(sa.func.count()).select_from(break_glass)) or 0)


def test_open_writes_the_grant_and_its_audit_event(conn: sa.Connection, doctor: Actor) -> None:
    pid = patient(conn, "27002")
    gid = open_break_glass(conn, doctor, f"Patient/{pid}", "emergency", f"  {REASON}  ", 45)
    row = conn.execute(sa.select(break_glass)).one()
    assert (row.id, row.account_id, row.facility, row.patient_key, row.owner_facility) == (
        gid,
        doctor.account,
        "27001",
        pid,
        "27002",
    )
    assert (row.reason_code, row.reason) == ("emergency", REASON)
    assert row.expires - row.started == 45 * 60 * 1_000_000
    [event] = events(conn)
    assert event["type"] == {
        "system": "http://dicom.nema.org/resources/ontology/DCM",
        "code": "110113",
        "display": "Security Alert",
    }
    assert event["purposeOfEvent"] == [
        {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG"}
            ]
        }
    ]
    assert event["outcomeDesc"] == f"emergency; 45 min; grant {gid}"
    assert REASON not in orjson.dumps(event).decode()


def test_only_roles_with_break_glass_may(conn: sa.Connection) -> None:
    pid = patient(conn, "27002")
    for role in ("registrar", "pharmacist", "lab-technician", "privacy-officer", "facility-admin"):
        actor = person(conn, f"user.{role}", role).actor()
        with pytest.raises(BreakGlassError) as err:
            open_break_glass(conn, actor, pid, "emergency", REASON)
        assert err.value.code == "forbidden", role
    assert count_grants(conn) == 0 and events(conn) == []


def test_a_job_or_a_client_is_not_a_clinician(conn: sa.Connection, doctor: Actor) -> None:
    pid = patient(conn, "27002")
    for actor in (
        Actor.job("27001", "cli"),
        Actor("client", "app", doctor.role, "27001", doctor.scopes),
    ):
        with pytest.raises(BreakGlassError):
            open_break_glass(conn, actor, pid, "emergency", REASON)
    assert count_grants(conn) == 0


LIMITS = [
    ("x" * 9, 60, "bad-reason"),
    ("x" * 10, 60, None),
    ("x" * 500, 60, None),
    ("x" * 501, 60, "bad-reason"),
    ("          x         ", 60, "bad-reason"),  # spaces do not count
    (REASON, 4, "bad-minutes"),
    (REASON, 5, None),
    (REASON, 240, None),
    (REASON, 241, "bad-minutes"),
]


def test_reason_and_duration_limits(conn: sa.Connection, doctor: Actor) -> None:
    pid = patient(conn, "27002")
    opened = 0
    for reason, minutes, code in LIMITS:
        if code is None:
            open_break_glass(conn, doctor, pid, "other", reason, minutes)
            opened += 1
        else:
            with pytest.raises(BreakGlassError) as err:
                open_break_glass(conn, doctor, pid, "other", reason, minutes)
            assert err.value.code == code, (len(reason), minutes)
        # A refusal writes nothing: one grant and one event per success only.
        assert count_grants(conn) == len(events(conn)) == opened


def test_the_reason_code_is_one_of_the_list(conn: sa.Connection, doctor: Actor) -> None:
    with pytest.raises(BreakGlassError) as err:
        open_break_glass(conn, doctor, patient(conn, "27002"), "curious", REASON)
    assert err.value.code == "bad-reason-code"


def test_the_patient_must_exist(conn: sa.Connection, doctor: Actor) -> None:
    gone = patient(conn, "27002")
    Repo(conn, Actor.job("27002", "test")).delete("Patient", gone)
    for pid in ("no-such-patient", gone):
        with pytest.raises(BreakGlassError) as err:
            open_break_glass(conn, doctor, pid, "emergency", REASON)
        assert err.value.code == "unknown-patient"
    assert count_grants(conn) == 0


def test_no_grant_without_its_audit_event(store: Store, clock: Clock) -> None:
    """Both are written in the caller's transaction: a rollback takes both away."""
    with store.begin() as conn:
        doctor = person(conn, "bs.an", "doctor").actor()
        pid = patient(conn, "27002")
    with pytest.raises(RuntimeError), store.begin() as conn:
        open_break_glass(conn, doctor, pid, "emergency", REASON)
        raise RuntimeError("the request failed afterwards")
    with store.read() as conn:
        assert count_grants(conn) == 0 and events(conn) == []


def test_active_grants_expire(conn: sa.Connection, doctor: Actor, clock: Clock) -> None:
    pid = patient(conn, "27002")
    open_break_glass(conn, doctor, pid, "emergency", REASON, 30)
    [grant] = active_grants(conn, str(doctor.account))
    assert (grant.username, grant.patient_id, grant.active) == ("bs.an", pid, True)
    assert grant.reason_label.en == "Emergency care"
    clock.advance(30 * 60)
    assert active_grants(conn, str(doctor.account)) == []


def test_privacy_officers_of_both_facilities_see_a_grant(
    conn: sa.Connection, doctor: Actor, clock: Clock
) -> None:
    since = clock.at
    open_break_glass(conn, doctor, patient(conn, "27002"), "transfer", REASON)
    assert [g.username for g in grants_for_facility(conn, "27001", since)] == ["bs.an"]
    assert [g.username for g in grants_for_facility(conn, "27002", since)] == ["bs.an"]
    assert grants_for_facility(conn, "27003", since) == []
    assert grants_for_facility(conn, "27001", since + timedelta(seconds=1)) == []


def test_the_store_opens_the_patient_to_the_clinician(store: Store) -> None:
    """store/policy.py honours the grant: the row becomes visible to this doctor, and only them.
    (The policy reads the real clock, so this test does not freeze it.)"""
    with store.begin() as conn:
        pid = patient(conn, "27002")
        doctor = person(conn, "bs.an", "doctor").actor()
        nurse = person(conn, "dd.hoa", "nurse").actor()

        def sees(actor: Actor) -> bool:
            rule = Policy(actor).visible(resource)
            q = sa.select(resource.c.id).where(resource.c.rtype == "Patient", resource.c.id == pid)
            return conn.scalar(q if rule is None else q.where(rule)) is not None

        assert not sees(doctor)
        open_break_glass(conn, doctor, pid, "emergency", REASON)
        assert sees(doctor)
        assert not sees(nurse)
