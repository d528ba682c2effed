"""Closing a visit: the disposition, the note made final, and a referral to another facility.

A referral is a ServiceRequest (category SNOMED 3457005 "Patient referral") to the target
Organization, with the main diagnosis as its reason, the visit's diagnoses as supporting
information and a summary (diagnoses, key results, treatment given) as its note.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from benhan.emr.model import finished, ref, search_all
from benhan.emr.visit import (
    REFERRAL,
    Problem,
    Visit,
    VisitError,
    coding_of,
    diagnoses,
    raise_problems,
    text_field,
    write_note,
)
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.outcome import FhirError
from benhan.store.repository import Repo

# http://terminology.hl7.org/CodeSystem/discharge-disposition; R4 has no "admitted to this
# facility", so admission is "oth" with the words in text.
DISPOSITIONS = {
    "home": ("Home", "Về nhà"),
    "other-hcf": ("Other healthcare facility", "Chuyển tuyến"),
    "oth": ("Other", "Nhập viện điều trị nội trú"),
    "aadvice": ("Left against advice", "Tự bỏ về / xin về"),
    "exp": ("Expired", "Tử vong"),
}


@dataclass(frozen=True)
class Closing:
    disposition: str
    advice: str
    referral_to: str  # Organization id, for "other-hcf"
    summary: str


def parse_closing(form: Mapping[str, str]) -> Closing:
    problems: list[Problem] = []
    disposition = (form.get("disposition") or "").strip()
    if disposition not in DISPOSITIONS:
        problems.append(Problem("disposition", "unknown-choice"))
    advice = text_field(form, "advice", problems)
    summary = text_field(form, "summary", problems)
    target = (form.get("referral_to") or "").strip()
    if disposition == "other-hcf" and not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", target):
        problems.append(Problem("referral_to", "unknown-facility" if target else "required"))
    raise_problems(problems)
    return Closing(disposition, advice, target if disposition == "other-hcf" else "", summary)


def referral_target(repo: Repo, org_id: str) -> Resource:
    """A facility of the registry other than the user's own, else VisitError."""
    try:
        org = repo.read("Organization", org_id).resource
    except FhirError as exc:
        if exc.status in (404, 410):
            raise VisitError(Problem("referral_to", "unknown-facility")) from None
        raise
    codes = [i.get("value") for i in org.get("identifier", []) if i.get("system") == sy.MA_CSKCB]
    if not codes or repo.facility in codes:
        raise VisitError(Problem("referral_to", "unknown-facility"))
    return org


def close_visit(repo: Repo, visit: Visit, c: Closing) -> str | None:
    """Encounter finished with its disposition, the note final, and the referral if any; the
    referral's id."""
    conditions = diagnoses(repo, visit)
    if not conditions:
        raise VisitError(Problem("diagnosis", "needs-diagnosis"))
    referral = None
    if c.disposition == "other-hcf":
        org = referral_target(repo, c.referral_to)
        summary = c.summary or summarise(repo, visit, conditions)
        referral = repo.create(referral_request(visit, org, conditions, summary)).id
    display, text = DISPOSITIONS[c.disposition]
    enc = finished(visit.encounter, visit.when)
    disposition = {
        "coding": [coding_of(sy.DISCHARGE_DISPOSITION, c.disposition, display)],
        "text": text,
    }
    enc["hospitalization"] = {**enc.get("hospitalization", {}), "dischargeDisposition": disposition}
    repo.update("Encounter", visit.id, enc)
    write_note(repo, visit, {"advice": c.advice} if c.advice else {}, "final")
    return referral


def referral_request(
    visit: Visit, org: Resource, conditions: list[Resource], summary: str
) -> Resource:
    main = conditions[0]
    return {
        **visit.base("ServiceRequest"),
        "status": "active",
        "intent": "order",
        "category": [{"coding": [REFERRAL]}],
        "code": {"coding": [REFERRAL], "text": "Chuyển tuyến"},
        "authoredOn": visit.stamp,
        "requester": visit.author,
        "performer": [{"reference": f"Organization/{org['id']}", "display": org.get("name", "")}],
        "reasonCode": [main["code"]],
        "reasonReference": [ref(f"Condition/{main['id']}")],
        "supportingInfo": [ref(f"Condition/{c['id']}") for c in conditions],
        "note": [{"text": summary}],
    }


def summarise(repo: Repo, visit: Visit, conditions: list[Resource]) -> str:
    """The referral letter's summary: diagnoses, results, treatment given (Vietnamese, as sent)."""
    lines = ["Chẩn đoán: " + "; ".join(condition_label(c) for c in conditions)]
    obs = search_all(
        repo,
        "Observation",
        [("encounter", visit.ref), ("category", "laboratory"), ("_count", "50")],
    )
    results = [r for r in (result_label(o) for o in obs) if r]
    if results:
        lines.append("Kết quả cận lâm sàng: " + "; ".join(results))
    meds = search_all(repo, "MedicationRequest", [("encounter", visit.ref), ("_count", "50")])
    given = [medication_label(m) for m in meds if m.get("status") == "active"]
    lines.append("Điều trị: " + ("; ".join(given) if given else "chưa dùng thuốc"))
    return "\n".join(lines)


def condition_label(c: Resource) -> str:
    coding: dict[str, str] = next(iter((c.get("code") or {}).get("coding", [])), {})
    return f"{coding.get('code', '')} {coding.get('display', '')}".strip()


def medication_label(m: Resource) -> str:
    name = (m.get("medicationCodeableConcept") or {}).get("text", "")
    dose = next((d.get("text", "") for d in m.get("dosageInstruction", [])), "")
    return f"{name}, {dose}" if dose else name


def result_label(o: Resource) -> str:
    name = (o.get("code") or {}).get("text", "")
    q = o.get("valueQuantity")
    value = f"{q.get('value')} {q.get('unit', '')}".strip() if q else o.get("valueString", "")
    flag = next(
        (c.get("code", "") for i in o.get("interpretation", []) for c in i.get("coding", [])), ""
    )
    return f"{name} {value}{f' ({flag})' if flag and flag != 'N' else ''}".strip() if value else ""
