"""Registration: the person (Patient), their insurance card (Coverage), today's visit (Encounter).

Called by the desk and the kiosk inside one unit of work, so that a failure saves nothing. Every
problem with what was typed is collected and reported at once, each naming its field, as
`(field, "tiếng Việt / English")` pairs like emr/insurance.py's.

Numbers without a global sequence (DESIGN.md: a shard must be able to generate them):
- the patient code (MA_BN, one namespace per facility) is the year's two digits and a six-digit
  counter: under a per-facility lock, the count of the facility's coded patients plus one, moved
  on while that code is taken (a deleted patient lowers the count; the probe keeps codes unique);
- the queue number is per clinic and day: under a lock on that clinic's day, one more than the
  highest number issued that day (cancelled visits included, so a number is never reused).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from benhan.catalog.fhir import service_coding
from benhan.catalog.services import services
from benhan.emr.citizen_card import CitizenCard
from benhan.emr.clinics import Clinic
from benhan.emr.insurance import CardCheck
from benhan.emr.model import (
    ACTIVE,
    QUEUE_NUMBER,
    FacilityRefs,
    local_now,
    queue_value,
    ref,
    search_all,
    stamp,
)
from benhan.emr.queue import day_visits, number_of, present
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.store.repository import Repo
from benhan.store.search import parse_search

Problems = list[tuple[str, str]]  # (field, "vi / en")
SEXES = ("male", "female", "other")
MAX_NAME = 120
MAX_ADDRESS = 300
VSS = "Bảo hiểm xã hội Việt Nam"
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
COPAY_TYPE = "http://terminology.hl7.org/CodeSystem/coverage-copay-type"
_PHONE = re.compile(r"(?:\+84|0)\d{9,10}")


class PersonError(ValueError):
    """What is wrong with a person's details, every problem at once."""

    def __init__(self, problems: Problems) -> None:
        super().__init__("; ".join(f"{f}: {t}" for f, t in problems))
        self.problems = problems


@dataclass(frozen=True)
class Person:
    """A person's details as the desk or the card gives them; None means "not said: keep"."""

    name: str
    birth_date: date
    sex: str  # FHIR administrative gender
    cccd: str | None
    cmnd: str | None = None
    phone: str | None = None
    address: str | None = None


def person_from_card(card: CitizenCard) -> Person:
    return Person(card.name, card.birth_date, card.sex, card.cccd, card.cmnd, None, card.address)


def read_person(form: dict[str, str], *, today: date) -> Person:
    """A Person from the desk's form fields; PersonError naming every wrong field."""
    problems: Problems = []
    name = " ".join(form.get("name", "").split())
    if not name:
        problems.append(("name", "hãy nhập họ tên / the full name is required"))
    elif any(c.isdigit() for c in name) or len(name) > MAX_NAME:
        problems.append(("name", "họ tên không hợp lệ / not a valid name"))
    birth = _birth_date(form.get("birth_date", ""), today, problems)
    sex = form.get("sex", "")
    if sex not in SEXES:
        problems.append(("sex", "hãy chọn giới tính / choose the sex"))
    cccd = form.get("cccd", "").replace(" ", "")
    if cccd:
        year = birth.year if birth else None
        checked = sy.check_cccd(cccd, birth_year=year, sex=sex if sex in SEXES else None)
        problems += [("cccd", p.text) for p in checked]
    cmnd = form.get("cmnd", "").replace(" ", "")
    if cmnd:
        problems += [("cmnd", p.text) for p in sy.check_cmnd(cmnd)]
    phone = re.sub(r"[\s.\-]", "", form.get("phone", ""))
    if phone and not _PHONE.fullmatch(phone):
        problems.append(("phone", "số điện thoại không hợp lệ / not a phone number"))
    address = " ".join(form.get("address", "").split())
    if len(address) > MAX_ADDRESS:
        problems.append(("address", "địa chỉ quá dài / the address is too long"))
    if problems or birth is None:
        raise PersonError(problems)
    return Person(name, birth, sex, cccd, cmnd, phone, address)


def _birth_date(text: str, today: date, problems: Problems) -> date | None:
    """ISO (a date input) or dd/mm/yyyy (typed), not in the future, not before 1900."""
    value = text.strip()
    if not value:
        problems.append(("birth_date", "hãy nhập ngày sinh / the birth date is required"))
        return None
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", value) or None
    d = re.fullmatch(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})", value)
    try:
        if m:
            born = date(int(m[1]), int(m[2]), int(m[3]))
        elif d:
            born = date(int(d[3]), int(d[2]), int(d[1]))
        else:
            raise ValueError(value)
    except ValueError:
        problems.append(("birth_date", "ngày sinh không có thật / not a real date (dd/mm/yyyy)"))
        return None
    if born > today:
        problems.append(("birth_date", "ngày sinh ở tương lai / in the future"))
    elif born.year < 1900:
        problems.append(("birth_date", "ngày sinh trước năm 1900 / before 1900"))
    return born


# ---- the Patient ---------------------------------------------------------------------------


def address_text(patient: Resource) -> str:
    """The home address as one line."""
    for a in patient.get("address", []):
        if a.get("text"):
            return str(a["text"])
        parts = [*a.get("line", []), a.get("district"), a.get("city"), a.get("state")]
        if any(parts):
            return ", ".join(p for p in parts if p)
    return ""


def identifier(patient: Resource, system: str) -> str:
    return next(
        (str(i["value"]) for i in patient.get("identifier", []) if i.get("system") == system), ""
    )


def phone_of(patient: Resource) -> str:
    return next(
        (str(t["value"]) for t in patient.get("telecom", []) if t.get("system") == "phone"), ""
    )


def patient_resource(person: Person, current: Resource | None, refs: FacilityRefs) -> Resource:
    """The Patient with `person`'s details, keeping what the person does not say (other
    identifiers, names, contacts) from `current`."""
    out: dict[str, Any] = dict(current or {"resourceType": "Patient"})
    ids = list(out.get("identifier", []))
    for system, value in ((sy.CCCD, person.cccd), (sy.CMND, person.cmnd)):
        if value is not None:
            ids = [i for i in ids if i.get("system") != system]
            ids += [{"system": system, "value": value}] if value else []
    out["identifier"] = ids
    family, *given = person.name.split()
    name: dict[str, Any] = {"use": "official", "text": person.name, "family": family}
    if given:
        name["given"] = [" ".join(given)]
    out["name"] = [name, *(n for n in out.get("name", []) if n.get("use") != "official")]
    out["gender"] = person.sex
    out["birthDate"] = person.birth_date.isoformat()
    if person.phone is not None:
        others = [t for t in out.get("telecom", []) if t.get("system") != "phone"]
        phone = [{"system": "phone", "value": person.phone, "use": "mobile"}]
        out["telecom"] = [*(phone if person.phone else []), *others]
    if person.address is not None and person.address != address_text(out):
        others = [a for a in out.get("address", []) if a.get("use") != "home"]
        home = [{"use": "home", "text": person.address, "country": "VN"}]
        out["address"] = [*(home if person.address else []), *others]
    out.setdefault("managingOrganization", ref(refs.organization))
    return {k: v for k, v in out.items() if v != []}


def by_cccd(repo: Repo, cccd: str) -> Resource | None:
    found = search_all(repo, "Patient", [("identifier", f"{sy.CCCD}|{cccd}"), ("_count", "1")])
    return found[0] if found else None


def _count(repo: Repo, rtype: str, params: list[tuple[str, str]]) -> int:
    params = [*params, ("_summary", "count")]
    result = repo.search(parse_search(rtype, params, strict=True), [k for k, _ in params])
    return result.total or 0


def new_patient_code(repo: Repo, facility: str, today: date) -> str:
    """The next MA_BN of the facility (see the module's docstring)."""
    repo.lock(f"ma-bn/{facility}")
    system = sy.ma_bn(facility)
    n = _count(repo, "Patient", [("identifier", f"{system}|")]) + 1
    while True:
        code = f"{today.year % 100:02d}{n:06d}"
        if not _count(repo, "Patient", [("identifier", f"{system}|{code}")]):
            return code
        n += 1


@dataclass(frozen=True)
class SavedPerson:
    id: str
    created: bool
    code: str  # the facility's patient code (MA_BN)


def save_person(
    repo: Repo, refs: FacilityRefs, person: Person, patient_id: str | None = None
) -> SavedPerson:
    """Create or update a Patient; one found by its CCCD is updated, never duplicated."""
    if person.cccd:
        repo.lock(f"patient/{refs.code}/{person.cccd}")  # two desks registering one card
    holder = by_cccd(repo, person.cccd) if person.cccd else None
    if patient_id is not None:
        current: Resource | None = repo.read("Patient", patient_id).resource
        if holder is not None and holder["id"] != patient_id:
            text = "số định danh này là của người bệnh khác / belongs to another patient"
            raise PersonError([("cccd", text)])
    else:
        current = holder
    res = patient_resource(person, current, refs)
    system = sy.ma_bn(refs.code)
    code = identifier(res, system)
    if not code:
        code = new_patient_code(repo, refs.code, local_now().date())
        res["identifier"] = [
            *res.get("identifier", []),
            {
                "use": "usual",
                "type": {"coding": [{"system": sy.V2_0203, "code": "MR"}]},
                "system": system,
                "value": code,
            },
        ]
    if current is None:
        return SavedPerson(repo.create(res).id, True, code)
    repo.update("Patient", current["id"], res)
    return SavedPerson(current["id"], False, code)


# ---- the insurance card ------------------------------------------------------------------------


def coverage_resource(patient_id: str, check: CardCheck) -> Resource:
    """The checked BHYT card as a Coverage (shape of synth.care_fhir.coverage, plus the benefit)."""
    assert check.valid_from and check.valid_to
    cov: dict[str, Any] = {
        "resourceType": "Coverage",
        "identifier": [{"system": sy.BHYT, "value": check.number}],
        "status": "active",
        "type": {
            "coding": [
                {"system": sy.V3_ACT_CODE, "code": "PUBLICPOL", "display": "public healthcare"}
            ],
            "text": "Bảo hiểm y tế",
        },
        "subscriberId": check.number,
        "beneficiary": ref(f"Patient/{patient_id}"),
        "period": {"start": check.valid_from.isoformat(), "end": check.valid_to.isoformat()},
        "payor": [{"display": VSS}],
    }
    if check.group and check.level:
        cov["class"] = [
            _class("group", check.group, f"Đối tượng {check.group}"),
            _class("plan", str(check.level), f"Mức hưởng {check.level}"),
        ]
    if check.fund_share is not None:
        pay = {"system": COPAY_TYPE, "code": "copaypct", "display": "Copay Percentage"}
        cov["costToBeneficiary"] = [
            {
                "type": {"coding": [pay]},
                "valueQuantity": {
                    "value": 100 - check.fund_share,
                    "unit": "%",
                    "system": sy.UCUM,
                    "code": "%",
                },
            }
        ]
    return cov


def _class(kind: str, value: str, name: str) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": COVERAGE_CLASS, "code": kind}]},
        "value": value,
        "name": name,
    }


def record_coverage(repo: Repo, patient_id: str, check: CardCheck) -> str:
    """Record a usable card as the person's active Coverage (the same card again is updated),
    and its number on the Patient so the desk finds them by it; the Coverage id."""
    if not check.usable:
        raise ValueError("an unusable card is not recorded")
    patient = repo.read("Patient", patient_id).resource
    repo.lock(f"coverage/{patient_id}")
    found = search_all(
        repo,
        "Coverage",
        [
            ("beneficiary", f"Patient/{patient_id}"),
            ("identifier", f"{sy.BHYT}|{check.number}"),
            ("_count", "1"),
        ],
    )
    res = coverage_resource(patient_id, check)
    if found:
        repo.update("Coverage", found[0]["id"], {**res, "id": found[0]["id"]})
        cov_id = str(found[0]["id"])
    else:
        cov_id = repo.create(res).id
    period = {"start": res["period"]["start"], "end": res["period"]["end"]}
    ids = [i for i in patient.get("identifier", []) if i.get("system") != sy.BHYT]
    patient["identifier"] = [*ids, {"system": sy.BHYT, "value": check.number, "period": period}]
    repo.update("Patient", patient_id, patient)
    return cov_id


def coverages(repo: Repo, patient_id: str) -> list[Resource]:
    """The person's recorded cards, newest validity first."""
    found = search_all(
        repo, "Coverage", [("beneficiary", f"Patient/{patient_id}"), ("_count", "20")]
    )
    return sorted(found, key=lambda c: (c.get("period") or {}).get("end", ""), reverse=True)


# ---- the visit -----------------------------------------------------------------------------------


class AlreadyQueued(Exception):
    """The person already has a visit under way today at that clinic."""

    def __init__(self, encounter: Resource) -> None:
        super().__init__(encounter["id"])
        self.encounter = encounter


def visit_resource(
    refs: FacilityRefs, patient_id: str, clinic: Clinic, number: int, when: datetime
) -> Resource:
    """A registered visit, exactly as emr/model.py describes it."""
    service = services()[clinic.service]
    return {
        "resourceType": "Encounter",
        "identifier": [
            {"system": QUEUE_NUMBER, "value": queue_value(when.date(), clinic.id, number)}
        ],
        "status": "arrived",
        "class": {"system": sy.V3_ACT_CODE, "code": "AMB", "display": "ambulatory"},
        "type": [{"coding": [service_coding(service)], "text": service.name}],
        "subject": ref(f"Patient/{patient_id}"),
        "period": {"start": stamp(when)},
        "location": [{"location": ref(clinic.reference), "status": "active"}],
        "serviceProvider": ref(refs.organization),
    }


def register_visit(
    repo: Repo,
    refs: FacilityRefs,
    patient_id: str,
    clinic: Clinic,
    when: datetime | None = None,
) -> Resource:
    """Today's visit at a clinic with the next queue number; AlreadyQueued when the person is
    already waiting or being seen there today."""
    moment = when or local_now()
    day = moment.date()
    repo.lock(f"queue/{clinic.id}/{day.isoformat()}")
    visits = day_visits(repo, day, [("location", clinic.reference)])
    subject = f"Patient/{patient_id}"
    for e in present(visits):
        if (e.get("subject") or {}).get("reference") == subject and e.get("status") in ACTIVE:
            raise AlreadyQueued(e)
    number = max((number_of(e) for e in visits), default=0) + 1
    return repo.create(visit_resource(refs, patient_id, clinic, number, moment)).resource


__all__ = [
    "AlreadyQueued",
    "Person",
    "PersonError",
    "Problems",
    "SavedPerson",
    "address_text",
    "by_cccd",
    "coverage_resource",
    "coverages",
    "identifier",
    "new_patient_code",
    "patient_resource",
    "person_from_card",
    "phone_of",
    "read_person",
    "record_coverage",
    "register_visit",
    "save_person",
    "visit_resource",
]
