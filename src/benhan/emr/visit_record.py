"""One visit as the printed prescription and summary show it, read in eight searches."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from benhan.emr.chart import (
    Medicine,
    Person,
    Point,
    concept_text,
    medicine,
    name_of,
    person,
    point,
    reference_text,
    vital_point,
)
from benhan.emr.model import search_all, search_page
from benhan.emr.visit import NOTE_SEARCH
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.outcome import not_found
from benhan.store.repository import Repo

REFERRAL = "3457005"  # SNOMED "Patient referral" (ServiceRequest.category)
REASON = "29299-5"  # LOINC "Reason for visit" (the visit note's first section)
# Sections read as the doctor's advice: LOINC "Instructions", "Plan of care note".
ADVICE_CODES = frozenset({"69730-0", "18776-5"})
_TAG = re.compile(r"<[^>]*>")
_BREAK = re.compile(r"<br\s*/?>|</p>|</li>|</div>", re.IGNORECASE)


@dataclass(frozen=True)
class Diagnosis:
    code: str
    name: str
    main: bool


@dataclass(frozen=True)
class Result:
    name: str
    point: Point
    reference: str


@dataclass(frozen=True)
class Order:
    name: str
    status: str
    results: tuple[Result, ...]
    conclusion: str


@dataclass(frozen=True)
class Section:
    code: str
    title: str
    text: str


@dataclass(frozen=True)
class VisitRecord:
    id: str
    person: Person
    facility: str
    facility_code: str
    clinic: str
    type: str
    status: str
    start: str
    end: str
    doctor: str
    reason: str
    diagnoses: tuple[Diagnosis, ...]
    vitals: tuple[tuple[str, str, Point], ...]  # (LOINC, name, value)
    notes: tuple[Section, ...]
    orders: tuple[Order, ...]
    other_results: tuple[Result, ...]  # results that no order of this visit asked for
    medicines: tuple[Medicine, ...]
    advice: str
    disposition: str  # discharge-disposition code
    disposition_text: str
    referral_to: str
    referral_note: str


def narrative_text(div: str) -> str:
    """The plain text of an XHTML narrative (printed as text, never as markup)."""
    text = _TAG.sub("", _BREAK.sub("\n", div))
    lines = (" ".join(line.split()) for line in html.unescape(text).splitlines())
    return "\n".join(line for line in lines if line)


def _by_encounter(
    repo: Repo, rtype: str, eid: str, count: int, *extra: tuple[str, str]
) -> tuple[list[Resource], dict[str, Resource]]:
    params = [("encounter", f"Encounter/{eid}"), ("_count", str(count)), *extra]
    found, included, _more = search_page(repo, rtype, params)
    return found, included


def visit_record(repo: Repo, encounter_id: str, today: date) -> VisitRecord:
    """The visit; FhirError 404 when there is no such visit for this user to see."""
    found, inc, _more = search_page(
        repo,
        "Encounter",
        [
            ("_id", encounter_id),
            ("_include", "Encounter:subject"),
            ("_include", "Encounter:service-provider"),
            ("_include", "Encounter:location"),
            ("_include", "Encounter:practitioner"),
            ("_include", "Encounter:diagnosis"),
        ],
    )
    patient = inc.get((found[0].get("subject") or {}).get("reference", "")) if found else None
    if not found or patient is None:
        raise not_found("Encounter", encounter_id)
    enc = found[0]
    conditions, _ = _by_encounter(repo, "Condition", encounter_id, 50)
    observations, _ = _by_encounter(repo, "Observation", encounter_id, 300)
    requests, req_inc = _by_encounter(
        repo, "ServiceRequest", encounter_id, 100, ("_include", "ServiceRequest:performer")
    )
    reports, _ = _by_encounter(repo, "DiagnosticReport", encounter_id, 100)
    meds, med_inc = _by_encounter(
        repo, "MedicationRequest", encounter_id, 100, ("_include", "MedicationRequest:requester")
    )
    notes = _notes(repo, encounter_id)
    orders, others = _orders(requests, reports, observations)
    referral = next((r for r in requests if _is_referral(r)), None)
    org = inc.get((enc.get("serviceProvider") or {}).get("reference", ""), {})
    disposition = ((enc.get("hospitalization") or {}).get("dischargeDisposition")) or {}
    period = enc.get("period") or {}
    return VisitRecord(
        id=enc["id"],
        person=person(repo, patient, today),
        facility=str(org.get("name", "")),
        facility_code=next(
            (i["value"] for i in org.get("identifier", []) if i.get("system") == sy.MA_CSKCB), ""
        ),
        clinic=name_of(inc, (enc.get("location") or [{}])[0].get("location")),
        type=concept_text((enc.get("type") or [{}])[0]),
        status=enc.get("status", ""),
        start=period.get("start", ""),
        end=period.get("end", ""),
        doctor=_doctor(enc, inc, meds, med_inc),
        reason=_reason(enc, notes),
        diagnoses=_diagnoses(enc, inc, conditions),
        vitals=_vitals(observations),
        notes=tuple(n for n in notes if n.code not in ADVICE_CODES),
        orders=orders,
        other_results=others,
        medicines=tuple(medicine(m) for m in meds if m.get("status") != "entered-in-error"),
        advice="\n".join(n.text for n in notes if n.code in ADVICE_CODES or "dặn" in n.title),
        disposition=next((c.get("code", "") for c in disposition.get("coding", [])), ""),
        disposition_text=concept_text(disposition),
        referral_to=name_of(req_inc, (referral or {}).get("performer", [{}])[0])
        if referral
        else "",
        referral_note="\n".join(n.get("text", "") for n in (referral or {}).get("note", [])),
    )


def _notes(repo: Repo, encounter_id: str) -> tuple[Section, ...]:
    """The sections of the visit's latest note."""
    params = [("encounter", f"Encounter/{encounter_id}"), NOTE_SEARCH, ("_sort", "-date"),
              ("_count", "1")]  # fmt: skip
    found = search_all(repo, "Composition", params)
    if not found:
        return ()
    return tuple(
        Section(
            next((c.get("code", "") for c in (s.get("code") or {}).get("coding", [])), ""),
            s.get("title") or concept_text(s.get("code")),
            narrative_text((s.get("text") or {}).get("div", "")),
        )
        for s in found[0].get("section", [])
    )


def _reason(enc: Resource, notes: tuple[Section, ...]) -> str:
    written = next((n.text for n in notes if n.code == REASON and n.text), "")
    return written or "; ".join(concept_text(r) for r in enc.get("reasonCode", []))


def _diagnoses(
    enc: Resource, inc: dict[str, Resource], conditions: list[Resource]
) -> tuple[Diagnosis, ...]:
    """The Encounter's ranked diagnoses first (rank 1 is the main one), then any other of its
    encounter-diagnosis Conditions."""
    by_ref = {f"Condition/{c['id']}": c for c in conditions} | {
        k: v for k, v in inc.items() if k.startswith("Condition/")
    }
    ordered: list[Resource] = []
    for d in sorted(enc.get("diagnosis", []), key=lambda d: d.get("rank", 99)):
        cond = by_ref.get((d.get("condition") or {}).get("reference", ""))
        if cond is not None and cond not in ordered:
            ordered.append(cond)
    ordered += [c for c in conditions if c not in ordered and _is_diagnosis(c)]
    out = []
    for i, c in enumerate(ordered):
        coding: dict[str, Any] = next(
            (x for x in (c.get("code") or {}).get("coding", []) if x.get("system") == sy.ICD10_VN),
            {},
        )
        name = str(coding.get("display") or concept_text(c.get("code")))
        out.append(Diagnosis(str(coding.get("code", "")), name, i == 0))
    return tuple(out)


def _is_diagnosis(c: Resource) -> bool:
    verification = (c.get("verificationStatus") or {}).get("coding", [{}])[0].get("code")
    categories = [x.get("code") for cat in c.get("category", []) for x in cat.get("coding", [])]
    return verification != "entered-in-error" and "encounter-diagnosis" in categories


def _category(res: Resource) -> list[str]:
    return [x.get("code", "") for cat in res.get("category", []) for x in cat.get("coding", [])]


def _is_referral(req: Resource) -> bool:
    return REFERRAL in _category(req)


def _vitals(observations: list[Resource]) -> tuple[tuple[str, str, Point], ...]:
    out = []
    for o in observations:
        if "vital-signs" in _category(o):
            code = next((c.get("code", "") for c in o["code"].get("coding", [])), "")
            out.append((code, concept_text(o.get("code")), vital_point(o)))
    return tuple(out)


def _result(obs: Resource) -> Result:
    return Result(concept_text(obs.get("code")), point(obs), reference_text(obs))


def _orders(
    requests: list[Resource], reports: list[Resource], observations: list[Resource]
) -> tuple[tuple[Order, ...], tuple[Result, ...]]:
    """Each order with the results its reports (or the results themselves) say answer it."""
    labs = {f"Observation/{o['id']}": o for o in observations if "vital-signs" not in _category(o)}
    used: set[str] = set()
    orders = []
    for req in requests:
        if _is_referral(req):
            continue
        key = f"ServiceRequest/{req['id']}"
        answering = [r for r in reports if key in _refs(r.get("basedOn"))]
        refs = [x for r in answering for x in _refs(r.get("result"))]
        refs += [k for k, o in labs.items() if key in _refs(o.get("basedOn")) and k not in refs]
        used.update(refs)
        results = tuple(_result(labs[x]) for x in refs if x in labs)
        conclusion = "; ".join(r["conclusion"] for r in answering if r.get("conclusion"))
        orders.append(
            Order(concept_text(req.get("code")), req.get("status", ""), results, conclusion)
        )
    others = tuple(_result(o) for k, o in labs.items() if k not in used)
    return tuple(orders), others


def _refs(items: list[dict[str, Any]] | None) -> list[str]:
    return [str(x.get("reference", "")) for x in items or []]


def _doctor(
    enc: Resource, inc: dict[str, Resource], meds: list[Resource], med_inc: dict[str, Resource]
) -> str:
    """Who saw the patient: the Encounter's practitioner, else who signed the prescriptions."""
    for p in enc.get("participant", []):
        who = inc.get((p.get("individual") or {}).get("reference", ""))
        if who:
            return practitioner_name(who)
    for m in meds:
        requester = m.get("requester") or {}
        who = med_inc.get(requester.get("reference", ""))
        if who or requester.get("display"):
            return practitioner_name(who) if who else str(requester["display"])
    return ""


def practitioner_name(p: Resource) -> str:
    names = p.get("name") or [{}]
    n = names[0]
    return str(n.get("text") or " ".join([n.get("family", ""), *n.get("given", [])]).strip())
