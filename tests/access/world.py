"""A small province for access tests: two facilities, one person registered at both, a patient
who withheld sharing, a claim, and an actor for every role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benhan.access import ROLES, Actor
from benhan.fhir.systems import CCCD
from benhan.store.database import Store
from benhan.store.repository import Repo

A, B = "27001", "27002"


@dataclass
class World:
    pa: str  # Nguyễn Thị Hương at A
    pb: str  # the same person at B (a Person links them)
    pc: str  # another patient at B, who withheld sharing
    ea: str  # her encounter at A (finished)
    eb: str
    oa: str  # an Observation at A
    ob: str  # an Observation at B, of the same person
    oc: str  # an Observation at B of the withholding patient
    org: str  # directory: an Organization of A
    group: str  # a Group at B listing pb and pc
    claim: str  # a Claim at A for ea


def _create(store: Store, facility: str, res: dict[str, Any]) -> str:
    with store.begin() as conn:
        return Repo(conn, Actor.job(facility, "test")).create(res).id


def patient(name: str, cccd: str, birth: str = "1987-03-12") -> dict[str, Any]:
    family, *given = name.split()
    return {
        "resourceType": "Patient",
        "identifier": [{"system": CCCD, "value": cccd}],
        "name": [{"family": family, "given": [" ".join(given)], "text": name}],
        "gender": "female",
        "birthDate": birth,
        "telecom": [{"system": "phone", "value": "0912345678"}],
        "address": [{"line": ["12 Lý Thái Tổ"], "district": "Từ Sơn", "state": "Bắc Ninh"}],
    }


def encounter(pid: str, status: str = "finished") -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
    }


def observation(pid: str, eid: str | None = None, value: float = 120) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": value, "unit": "mmHg"},
        "note": [{"text": "Bà Hương kêu đau đầu"}],
    }
    if eid:
        obs["encounter"] = {"reference": f"Encounter/{eid}"}
    return obs


def build(store: Store) -> World:
    org = _create(store, A, {"resourceType": "Organization", "name": "Bệnh viện A"})
    pa = _create(store, A, patient("Nguyễn Thị Hương", "027187000123"))
    pb = _create(store, B, patient("NGUYEN THI HUONG", "027187000123"))
    pc = _create(store, B, patient("Trần Văn Bình", "027090000456", "1990-01-01"))
    ea = _create(store, A, encounter(pa))
    eb = _create(store, B, encounter(pb))
    oa = _create(store, A, observation(pa, ea))
    ob = _create(store, B, observation(pb, eb, 150))
    oc = _create(store, B, observation(pc, None, 90))
    _create(
        store,
        "",
        {
            "resourceType": "Person",
            "link": [
                {"target": {"reference": f"Patient/{pa}"}, "assurance": "level4"},
                {"target": {"reference": f"Patient/{pb}"}, "assurance": "level4"},
            ],
        },
    )
    _create(
        store,
        B,
        {
            "resourceType": "Consent",
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{pc}"},
            "provision": {"type": "deny"},
        },
    )
    group = _create(
        store,
        B,
        {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "member": [
                {"entity": {"reference": f"Patient/{pb}"}},
                {"entity": {"reference": f"Patient/{pc}"}},
            ],
        },
    )
    claim = _create(
        store,
        A,
        {
            "resourceType": "Claim",
            "status": "active",
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                        "code": "professional",
                    }
                ]
            },
            "use": "claim",
            "patient": {"reference": f"Patient/{pa}"},
            "created": "2025-03-01",
            "provider": {"reference": f"Organization/{org}"},
            "priority": {"coding": [{"code": "normal"}]},
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "BHYT"}}],
            "item": [
                {
                    "sequence": 1,
                    "productOrService": {"text": "Khám bệnh"},
                    "encounter": [{"reference": f"Encounter/{ea}"}],
                }
            ],
        },
    )
    return World(pa, pb, pc, ea, eb, oa, ob, oc, org, group, claim)


def actor(role_code: str, facility: str = A, **kw: Any) -> Actor:
    r = ROLES[role_code]
    return Actor(
        kind="client" if r.machine else "user",
        name=f"{role_code}@{facility or 'province'}",
        role=r,
        facility=facility,
        scopes=r.scopes,
        account=f"acc-{role_code}-{facility}",
        **kw,
    )
