"""Demo accounts, one per human role, with one published password: for `benhan demo` only.

Never run this on a server that holds real patients' data: everyone can read the password here.
"""

from __future__ import annotations

import sqlalchemy as sa

from benhan.access import ROLES, Actor
from benhan.auth.accounts import create_account, find_account
from benhan.emr.model import search_all
from benhan.fhir.systems import CCHN, MA_CSKCB
from benhan.signing import pki
from benhan.store.audit import ROLES_CHANGED, record_security, security_event
from benhan.store.database import Store
from benhan.store.repository import Repo

QUALIFICATION = "http://terminology.hl7.org/CodeSystem/v2-0360"  # degree / licence

DEMO_PASSWORD = "benhan-demo-2026"  # noqa: S105 (published on purpose: demo data only)
FACILITY_ROLES = (
    "registrar",
    "kiosk",
    "nurse",
    "doctor",
    "lab-technician",
    "pharmacist",
    "facility-admin",
    "privacy-officer",
)
PROVINCE_ROLES = ("doh-analyst", "mpi-steward", "insurance-assessor")
# Clinicians sign what they write: their accounts are linked to a Practitioner of the facility.
PRACTITIONERS = {
    "doctor": ("Nguyễn Văn", "An", "BS", "MD"),
    "nurse": ("Trần Thị", "Bình", "ĐD", "RN"),
    "lab-technician": ("Lê Văn", "Cường", "KTV", "MT"),
    "pharmacist": ("Phạm Thị", "Dung", "DS", "PHARM"),
}


def _practitioner(repo: Repo, code: str) -> str:
    family, given, prefix, qualification = PRACTITIONERS[code]
    res = {
        "resourceType": "Practitioner",
        "identifier": [{"system": CCHN, "value": f"DEMO-{repo.facility}-{code}"}],
        "active": True,
        "name": [
            {
                "use": "official",
                "text": f"{prefix}. {family} {given}",
                "family": family,
                "given": [given],
                "prefix": [prefix],
            }
        ],
        "qualification": [{"code": {"coding": [{"system": QUALIFICATION, "code": qualification}]}}],
    }
    return repo.create(res).id


def _certify(conn: sa.Connection, job: Actor, practitioner: str, code: str, facility: str) -> None:
    """A document-signing certificate from the provincial CA, so the demo clinician can sign;
    one that already has a certificate keeps it."""
    owner = f"Practitioner/{practitioner}"
    if pki.certificates(conn, owner=owner):
        return
    family, given, prefix, _ = PRACTITIONERS[code]
    pki.issue(conn, kind="practitioner", owner=owner, common_name=f"{prefix}. {family} {given}",
              facility=facility, actor=job)  # fmt: skip


def _certify_facility(repo: Repo, facility: str) -> None:
    """The facility's own certificate (`Organization/<MA_CSKCB>`, as ledger_signing's
    facility_signer looks it up), so the server can sign its ledger checkpoints; named as the
    registry names the facility. One that already has a certificate keeps it."""
    owner = f"Organization/{facility}"
    if pki.certificates(repo.conn, owner=owner):
        return
    found = search_all(repo, "Organization", [("identifier", f"{MA_CSKCB}|{facility}")])
    name = str((found[0] if found else {}).get("name") or f"Cơ sở {facility}")[:64].strip()
    pki.issue(repo.conn, kind="facility", owner=owner, common_name=name, facility=facility,
              organization=name, actor=repo.actor)  # fmt: skip


def ensure_demo_accounts(
    store: Store, facility: str, patient_id: str | None
) -> list[tuple[str, str, str]]:
    """(username, password, role) of the demo accounts, creating those that are missing.

    The username is the role's code (`doctor`, `privacy-officer`…); staff work at `facility`,
    the DoH analyst, the identity steward and the insurance assessor at province level, and
    `patient` is linked to `patient_id` (left out when None). An account that already exists is
    left as it is. The clinicians' Practitioners get a certificate of the provincial CA (created
    if need be), so that they can sign documents, and so does the facility, so that the server
    signs its ledger checkpoints.
    """
    wanted: list[tuple[str, str, str | None]] = [(code, facility, None) for code in FACILITY_ROLES]
    wanted += [(code, "", None) for code in PROVINCE_ROLES]
    if patient_id:
        wanted.append(("patient", "", patient_id))
    out: list[tuple[str, str, str]] = []
    job = Actor.job(facility, "demo")
    with store.begin() as conn:
        repo = Repo(conn, job)
        for code, where, patient in wanted:
            if find_account(conn, code) is None:
                r = ROLES[code]
                practitioner = _practitioner(repo, code) if code in PRACTITIONERS else None
                create_account(
                    conn,
                    username=code,
                    password=DEMO_PASSWORD,
                    role_code=code,
                    facility=where,
                    display_name=f"{r.vi} (demo)",
                    practitioner=practitioner,
                    patient=patient,
                )
                event = security_event(ROLES_CHANGED, detail=f"account {code} created, role {code}")
                record_security(conn, job, event)
            acc = find_account(conn, code)
            if code in PRACTITIONERS and acc is not None and acc.practitioner:
                _certify(conn, job, acc.practitioner, code, where)
            out.append((code, DEMO_PASSWORD, code))
        _certify_facility(repo, facility)
    return out


__all__ = ["DEMO_PASSWORD", "ensure_demo_accounts"]
