"""A small facility for the EMR tests: its Organization and Location, clinics, people, visits.

Everything is written as a trusted job of the facility, in the shape `benhan.emr.model` describes,
so that each part of the EMR can be tested without going through the others' pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from benhan.access import Actor
from benhan.catalog.fhir import service_coding
from benhan.catalog.services import services
from benhan.emr.model import QUEUE_NUMBER, local_now, queue_value, ref, stamp
from benhan.fhir import systems as sy
from benhan.store.database import Store
from benhan.store.repository import Repo

FACILITY = "27001"
OTHER_FACILITY = "27002"
KHAM_NOI = "02.9001"  # exam services of the curated catalogue
KHAM_NHI = "03.9002"


@dataclass(frozen=True)
class Place:
    facility: str
    organization: str  # "Organization/…"
    location: str  # "Location/…"
    clinics: dict[str, str]  # exam service code → clinic Location id


def create(store: Store, res: dict[str, Any], facility: str = FACILITY) -> str:
    with store.begin() as conn:
        return Repo(conn, Actor.job(facility, "test")).create(res).id


def clinic_location(name: str, service_code: str, parent: str, org: str) -> dict[str, Any]:
    s = services()[service_code]
    return {
        "resourceType": "Location",
        "status": "active",
        "name": name,
        "mode": "instance",
        "type": [{"coding": [service_coding(s)], "text": s.name}],
        "physicalType": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                    "code": "ro",
                    "display": "Room",
                }
            ]
        },
        "partOf": ref(parent),
        "managingOrganization": ref(org),
    }


def place(store: Store, facility: str = FACILITY, name: str = "Bệnh viện Đa khoa A") -> Place:
    """The facility in the registry, with a Khám Nội and a Khám Nhi clinic."""
    ident = [{"system": sy.MA_CSKCB, "value": facility}]
    org = create(
        store, {"resourceType": "Organization", "identifier": ident, "name": name}, facility
    )
    loc = create(
        store,
        {
            "resourceType": "Location",
            "identifier": ident,
            "status": "active",
            "name": name,
            "managingOrganization": ref(f"Organization/{org}"),
        },
        facility,
    )
    clinics = {
        code: create(
            store,
            clinic_location(label, code, f"Location/{loc}", f"Organization/{org}"),
            facility,
        )
        for code, label in ((KHAM_NOI, "Phòng khám Nội 1"), (KHAM_NHI, "Phòng khám Nhi"))
    }
    return Place(facility, f"Organization/{org}", f"Location/{loc}", clinics)


def person(
    store: Store,
    name: str = "Nguyễn Thị Hương",
    cccd: str = "027187000123",
    birth: str = "1987-03-12",
    gender: str = "female",
    facility: str = FACILITY,
) -> str:
    family, *given = name.split()
    return create(
        store,
        {
            "resourceType": "Patient",
            "identifier": [{"system": sy.CCCD, "value": cccd}],
            "name": [
                {"use": "official", "family": family, "given": [" ".join(given)], "text": name}
            ],
            "gender": gender,
            "birthDate": birth,
        },
        facility,
    )


def visit(
    store: Store,
    where: Place,
    patient_id: str,
    *,
    service_code: str = KHAM_NOI,
    number: int = 1,
    arrived: datetime | None = None,
    status: str = "arrived",
) -> str:
    """A registered visit (Encounter) in the shape of benhan.emr.model; its id."""
    start = arrived or local_now() - timedelta(minutes=30)
    clinic = where.clinics[service_code]
    s = services()[service_code]
    enc: dict[str, Any] = {
        "resourceType": "Encounter",
        "identifier": [
            {"system": QUEUE_NUMBER, "value": queue_value(start.date(), clinic, number)}
        ],
        "status": status,
        "class": {"system": sy.V3_ACT_CODE, "code": "AMB", "display": "ambulatory"},
        "type": [{"coding": [service_coding(s)], "text": s.name}],
        "subject": ref(f"Patient/{patient_id}"),
        "period": {"start": stamp(start)},
        "location": [{"location": ref(f"Location/{clinic}"), "status": "active"}],
        "serviceProvider": ref(where.organization),
    }
    if status != "arrived":
        seen = start + timedelta(minutes=20)
        enc["statusHistory"] = [
            {"status": "arrived", "period": {"start": stamp(start), "end": stamp(seen)}}
        ]
    if status == "finished":
        enc["period"]["end"] = stamp(start + timedelta(minutes=40))
    return create(store, enc, where.facility)
