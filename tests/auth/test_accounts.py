"""Accounts: the rules for creating one, signing in and its throttling, changes; demo accounts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from benhan.access import Actor, Scopes
from benhan.auth.accounts import (
    FAILS_PER_ADDRESS,
    FAILS_PER_NAME,
    AuthError,
    authenticate,
    create_account,
    find_account,
    hash_password,
    list_accounts,
    set_password,
    update_account,
)
from benhan.auth.demo_accounts import DEMO_PASSWORD, ensure_demo_accounts
from benhan.fhir.systems import MA_CSKCB
from benhan.signing import pki
from benhan.signing.ledger_signing import Checkpointer, Schedule, facility_signer
from benhan.store import checkpoints
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.store.schema import account, resource

PASSWORD = "mat-khau-dai-2025"


@pytest.fixture
def conn(store: Store) -> Iterator[sa.Connection]:
    with store.begin() as c:
        yield c


def refused(conn: sa.Connection, username: str, password: str, address: str | None = None) -> str:
    with pytest.raises(AuthError) as err:
        authenticate(conn, username, password, address)
    return err.value.code


def test_the_rules_for_a_new_account(conn: sa.Connection) -> None:
    base: dict[str, str] = {
        "username": "bs.an",
        "password": PASSWORD,
        "role_code": "doctor",
        "facility": "27001",
        "display_name": "Bác sĩ An",
    }
    create_account(conn, **base)
    cases = [
        ({"username": "bs.an"}, "exists"),
        ({"username": "BS.Binh"}, "bad-username"),
        ({"username": "ab"}, "bad-username"),
        ({"username": "bs binh"}, "bad-username"),
        ({"password": "ngan-qua"}, "weak-password"),
        ({"password": "x-bs.binh-xyz"}, "weak-password"),
        ({"role_code": "surgeon"}, "bad-role"),
        ({"role_code": "system-integrator"}, "bad-role"),
        ({"facility": ""}, "bad-facility"),
        ({"role_code": "patient", "facility": ""}, "bad-patient"),
    ]
    for change, code in cases:
        fields = {**base, "username": "bs.binh", **change}
        with pytest.raises(AuthError) as err:
            create_account(conn, **fields)
        assert err.value.code == code, change
    assert [a.username for a in list_accounts(conn, None)] == ["bs.an"]


def test_sign_in_and_what_goes_wrong(conn: sa.Connection) -> None:
    acc = create_account(
        conn,
        username="bs.an",
        password=PASSWORD,
        role_code="doctor",
        facility="27001",
        display_name="Bác sĩ An",
    )
    assert authenticate(conn, "bs.an", PASSWORD, "10.0.0.1") == acc
    # Unknown name, wrong password, disabled account: one code, so nothing tells them apart.
    assert refused(conn, "no.such.user", PASSWORD) == "invalid"
    assert refused(conn, "bs.an", "wrong-password") == "invalid"
    update_account(conn, acc.id, active=False)
    assert refused(conn, "bs.an", PASSWORD) == "invalid"


def test_five_failures_lock_the_name_until_a_new_password(conn: sa.Connection) -> None:
    acc = create_account(
        conn,
        username="bs.an",
        password=PASSWORD,
        role_code="doctor",
        facility="27001",
        display_name="Bác sĩ An",
    )
    for _ in range(FAILS_PER_NAME):
        assert refused(conn, "bs.an", "wrong-password") == "invalid"
    assert refused(conn, "bs.an", PASSWORD) == "throttled"
    set_password(conn, acc.id, "mat-khau-moi-2025")
    assert authenticate(conn, "bs.an", "mat-khau-moi-2025", None) == acc


def test_one_address_trying_many_names_is_throttled(conn: sa.Connection) -> None:
    create_account(
        conn,
        username="bs.an",
        password=PASSWORD,
        role_code="doctor",
        facility="27001",
        display_name="Bác sĩ An",
    )
    for i in range(FAILS_PER_ADDRESS):
        refused(conn, f"guess.{i}", "wrong-password", "10.9.9.9")
    assert refused(conn, "bs.an", PASSWORD, "10.9.9.9") == "throttled"
    assert authenticate(conn, "bs.an", PASSWORD, "10.0.0.1").username == "bs.an"


def test_changes_and_the_actor(conn: sa.Connection) -> None:
    acc = create_account(
        conn,
        username="dd.hoa",
        password=PASSWORD,
        role_code="nurse",
        facility="27001",
        display_name="Hoa",
        practitioner="pr-7",
    )
    create_account(
        conn,
        username="bs.khac",
        password=PASSWORD,
        role_code="doctor",
        facility="27002",
        display_name="Khác",
    )
    assert [a.username for a in list_accounts(conn, "27001")] == ["dd.hoa"]
    changed = update_account(conn, acc.id, role_code="doctor", display_name="  Bác sĩ Hoa ")
    assert (changed.role, changed.display_name) == ("doctor", "Bác sĩ Hoa")
    with pytest.raises(AuthError):
        update_account(conn, acc.id, role_code="system-integrator")
    actor = changed.actor(Scopes.parse("user/Patient.rs user/AuditEvent.rs"), address="10.0.0.1")
    assert (actor.name, actor.facility, actor.practitioner) == (
        "dd.hoa",
        "27001",
        "Practitioner/pr-7",
    )
    assert str(actor.scopes) == "user/Patient.rs"  # cut to what the role grants


def test_demo_accounts_one_per_human_role(store: Store) -> None:
    made = ensure_demo_accounts(store, "27001", "pt-1")
    assert [(u, r) for u, _, r in made] == [
        ("registrar", "registrar"),
        ("kiosk", "kiosk"),
        ("nurse", "nurse"),
        ("doctor", "doctor"),
        ("lab-technician", "lab-technician"),
        ("pharmacist", "pharmacist"),
        ("facility-admin", "facility-admin"),
        ("privacy-officer", "privacy-officer"),
        ("doh-analyst", "doh-analyst"),
        ("mpi-steward", "mpi-steward"),
        ("insurance-assessor", "insurance-assessor"),
        ("patient", "patient"),
    ]
    assert {p for _, p, _ in made} == {DEMO_PASSWORD}
    with store.begin() as conn:
        assert authenticate(conn, "doctor", DEMO_PASSWORD, None).facility == "27001"
        analyst = find_account(conn, "doh-analyst")
        me = find_account(conn, "patient")
    assert analyst is not None and analyst.facility == ""
    assert me is not None and me.patient == "pt-1"
    # Clinicians are linked to a Practitioner of their facility (they author what they write).
    with store.read() as conn:
        doctor = find_account(conn, "doctor")
        registrar = find_account(conn, "registrar")
        assert doctor is not None and doctor.practitioner is not None
        owner = conn.scalar(
            sa.select(resource.c.facility).where(
                resource.c.rtype == "Practitioner", resource.c.id == doctor.practitioner
            )
        )
    assert owner == "27001"
    assert registrar is not None and registrar.practitioner is None

    # Again: nothing new, nothing changed (a changed password stays changed).
    with store.begin() as conn:
        rows = set(conn.execute(sa.select(account)))
        audited = conn.scalar(sa.select(sa.func.count()).where(resource.c.rtype == "AuditEvent"))
    # 12 account events + the CA, 4 practitioners' certificates and the facility's
    assert audited == 18
    assert ensure_demo_accounts(store, "27001", "pt-1") == made
    with store.begin() as conn:
        assert set(conn.execute(sa.select(account))) == rows
        again = conn.scalar(sa.select(sa.func.count()).where(resource.c.rtype == "AuditEvent"))
    assert again == audited  # no certificate issued twice


def test_demo_accounts_without_a_patient(store: Store) -> None:
    made = ensure_demo_accounts(store, "27001", None)
    assert "patient" not in [u for u, _, _ in made] and len(made) == 11


@pytest.mark.real_argon2
def test_passwords_are_stored_as_argon2id_at_the_rfc_9106_cost() -> None:
    from argon2 import extract_parameters

    stored = hash_password("mot-mat-khau-rat-dai")
    params = extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    assert params.memory_cost >= 64 * 1024 and params.time_cost >= 3  # RFC 9106 §4, second choice
    assert "mot-mat-khau" not in stored


def test_the_demo_facility_gets_a_certificate_so_its_ledger_is_checkpointed(store: Store) -> None:
    with store.begin() as conn:
        Repo(conn, Actor.job("27001", "test")).create({
            "resourceType": "Organization", "name": "Bệnh viện Đa khoa tỉnh Bắc Ninh",
            "identifier": [{"system": MA_CSKCB, "value": "27001"}],
        })  # fmt: skip
    with store.read() as conn:
        assert checkpoints.chain_states(conn)  # the facility's chain has entries to sign
    ensure_demo_accounts(store, "27001", None)
    with store.read() as conn:
        [record] = pki.certificates(conn, owner="Organization/27001")
        signer = facility_signer(conn, "27001")
    assert (record.kind, record.facility) == ("facility", "27001")
    assert record.common_name == "Bệnh viện Đa khoa tỉnh Bắc Ninh"
    assert signer.chain[0] == record.certificate
    made = Checkpointer(store, Schedule(entries=1, minutes=0)).step()
    assert [c.facility for c in made] == ["27001"]


def test_a_facility_missing_from_the_registry_is_certified_by_its_code(store: Store) -> None:
    with store.begin() as conn:
        pki.issue(conn, kind="facility", owner="Organization/27002", common_name="Trạm Y tế",
                  facility="27002")  # fmt: skip
    ensure_demo_accounts(store, "27001", None)
    ensure_demo_accounts(store, "27002", None)  # the accounts exist: nothing new for 27002
    with store.read() as conn:
        [ours] = pki.certificates(conn, owner="Organization/27001")
        [kept] = pki.certificates(conn, owner="Organization/27002")
    assert ours.common_name == "Cơ sở 27001"
    assert kept.common_name == "Trạm Y tế"  # a facility that has one keeps it
