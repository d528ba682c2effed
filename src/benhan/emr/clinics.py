"""The facility's clinics: examination rooms as `Location`s under the facility's own Location.

A clinic is a Location whose `partOf` is the facility's Location, whose `physicalType` is a room
("ro") and whose `type` carries the exam service (MA_DICH_VU of kind "exam") that a visit there
is billed as (see emr/model.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benhan.catalog.fhir import service_coding
from benhan.catalog.services import Service, services
from benhan.emr.model import FacilityRefs, ref, search_all
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.outcome import FhirError
from benhan.store.repository import Repo

PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
# The rooms a small facility opens first: internal medicine, paediatrics, surgery, obstetrics, ENT.
DEFAULT_SERVICES = ("02.9001", "03.9002", "10.9003", "13.9004", "15.9006")
MAX_CLINICS = 200


@dataclass(frozen=True)
class Clinic:
    id: str
    name: str
    service: str  # MA_DICH_VU of the exam
    service_name: str

    @property
    def reference(self) -> str:
        return f"Location/{self.id}"


def exam_service(location: Resource) -> tuple[str, str] | None:
    """(code, display) of the exam service a Location is typed with, if it is one."""
    for concept in location.get("type", []):
        for coding in concept.get("coding", []):
            found = services().get(coding.get("code", ""))
            if coding.get("system") == sy.SERVICES and found and found.kind == "exam":
                return found.code, found.name
    return None


def _is_room(location: Resource) -> bool:
    codings = (location.get("physicalType") or {}).get("coding", [])
    return any(c.get("system") == PHYSICAL_TYPE and c.get("code") == "ro" for c in codings)


def as_clinic(location: Resource, refs: FacilityRefs) -> Clinic | None:
    """The clinic a Location is, or None when it is not one of this facility's clinics."""
    service = exam_service(location)
    part_of = (location.get("partOf") or {}).get("reference")
    if service is None or part_of != refs.location or not _is_room(location):
        return None
    if location.get("status", "active") != "active":
        return None
    return Clinic(location["id"], location.get("name") or service[1], *service)


def clinics(repo: Repo, refs: FacilityRefs) -> list[Clinic]:
    """The facility's open clinics, by name."""
    found = search_all(
        repo,
        "Location",
        [("partof", refs.location), ("_sort", "name"), ("_count", str(MAX_CLINICS))],
    )
    return [c for loc in found if (c := as_clinic(loc, refs)) is not None]


def clinic(repo: Repo, refs: FacilityRefs, clinic_id: str) -> Clinic | None:
    """One of the facility's clinics by id; None for anything else (unknown, another facility)."""
    try:
        location = repo.read("Location", clinic_id).resource
    except FhirError as exc:
        if exc.status in (404, 410):
            return None
        raise
    return as_clinic(location, refs)


def clinic_location(name: str, service: Service, refs: FacilityRefs) -> Resource:
    """A clinic's Location in the shape emr/model.py describes."""
    location: dict[str, Any] = {
        "resourceType": "Location",
        "status": "active",
        "name": name,
        "mode": "instance",
        "type": [{"coding": [service_coding(service)], "text": service.name}],
        "physicalType": {"coding": [{"system": PHYSICAL_TYPE, "code": "ro", "display": "Room"}]},
        "partOf": ref(refs.location),
        "managingOrganization": ref(refs.organization),
    }
    return location


def ensure_default_clinics(repo: Repo, refs: FacilityRefs) -> list[Clinic]:
    """The facility's clinics, after opening one per common exam service if it had none."""
    repo.lock(f"clinics/{refs.code}")  # two first sign-ins must not open the rooms twice
    existing = clinics(repo, refs)
    if existing:
        return existing
    for code in DEFAULT_SERVICES:
        service = services()[code]
        name = f"Phòng {service.name[0].lower()}{service.name[1:]}"  # "Phòng khám Nội"
        repo.create(clinic_location(name, service, refs))
    return clinics(repo, refs)


__all__ = [
    "DEFAULT_SERVICES",
    "Clinic",
    "as_clinic",
    "clinic",
    "clinic_location",
    "clinics",
    "ensure_default_clinics",
    "exam_service",
]
