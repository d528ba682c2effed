"""Prescribing: a MedicationRequest from the drug catalogue and a dosage, and the checks before
it is saved against the patient's allergies and the medicines they take.

- allergy: an active AllergyIntolerance whose substance names one of the drug's ingredients, or
  its pharmacological class ("penicillin" → ATC J01C), or carries an ATC code the drug's ATC falls
  under (allergy J01C warns for amoxicillin J01CA04);
- duplicate: an ingredient of the drug is already in another active MedicationRequest of the
  patient, of this visit or one from earlier whose supply has not run out;
- same class: another current medicine in the same ATC chemical subgroup (level 4), as a note.

Allergy and duplicate warnings block saving until the prescriber overrides them with a reason;
the override is recorded as a DetectedIssue (http://hl7.org/fhir/R4/detectedissue.html) that the
MedicationRequest points to with `detectedIssue`: the resource R4 defines for "an actual or
potential clinical issue with one or more proposed clinical actions", whose `mitigation` holds
who decided to go ahead, when and why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any, Literal

from benhan.catalog.drugs import Drug, drugs
from benhan.catalog.fhir import route_coding
from benhan.emr.model import codes_of, parse_stamp, ref, search_all
from benhan.emr.visit import (
    Problem,
    Visit,
    VisitError,
    coding_of,
    decimal_of,
    raise_problems,
)
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.outcome import FhirError, Issue
from benhan.fhir.primitives import fold
from benhan.store.repository import Repo

Kind = Literal["allergy", "duplicate", "class"]
MAX_CURRENT = 200  # active medicines and allergies read per check; a patient has far fewer

# Allergy words for a class of drugs → the ATC groups they cover (WHO ATC index, 2024).
CLASSES: dict[str, tuple[str, ...]] = {
    "penicillin": ("J01C",),
    "beta lactam": ("J01C", "J01D"),
    "cephalosporin": ("J01DB", "J01DC", "J01DD", "J01DE"),
    "cefalosporin": ("J01DB", "J01DC", "J01DD", "J01DE"),
    "carbapenem": ("J01DH",),
    "sulfonamide": ("J01E",),
    "sulfamid": ("J01E",),
    "sulfa": ("J01E",),
    "macrolide": ("J01FA",),
    "quinolone": ("J01M",),
    "aminoglycoside": ("J01G",),
    "tetracycline": ("J01AA",),
    "nsaid": ("M01A", "N02BA"),
    "khang viem khong steroid": ("M01A", "N02BA"),
    "aspirin": ("N02BA", "B01AC06"),
    "opioid": ("N02A",),
    "ace inhibitor": ("C09A", "C09B"),
}
# Detected-issue codes (http://terminology.hl7.org/CodeSystem/v3-ActCode).
ISSUE_CODE = {
    "allergy": ("ALGY", "Allergy Alert"),
    "duplicate": ("DUPTHPY", "Duplicate Therapy Alert"),
    "class": ("DUPTHPCLS", "Duplicate Therapeutic Class Alert"),
}


@dataclass(frozen=True)
class Alert:
    """A warning for the prescriber; `blocking` ones need an override with a reason."""

    kind: Kind
    drug: str  # the drug being prescribed, as shown
    other: str  # the allergy's substance or the other medicine, as recorded
    reference: str  # "AllergyIntolerance/…" or "MedicationRequest/…"
    because: str  # the ingredient or ATC group that matched

    @property
    def blocking(self) -> bool:
        return self.kind != "class"


def squash(text: str) -> str:
    """Folded, with doubled letters single: "Penicilin" (Vietnamese) meets "penicillin"."""
    return re.sub(r"(\w)\1+", r"\1", fold(text)).strip()


def ingredients(drug: Drug) -> list[str]:
    return [i.strip() for i in (drug.ingredient or drug.name).split(",") if i.strip()]


@cache
def _by_code() -> dict[str, Drug]:
    """One catalogue line per MA_THUOC: the code names the ingredient, whatever the strength."""
    out: dict[str, Drug] = {}
    for d in drugs():
        out.setdefault(d.code, d)
    return out


def _current_drug(mr: Resource) -> tuple[list[str], str, str]:
    """(ingredients, ATC, label) of a recorded MedicationRequest, via the catalogue when coded."""
    concept = mr.get("medicationCodeableConcept") or {}
    label = concept.get("text") or next(
        (c.get("display", "") for c in concept.get("coding", [])), ""
    )
    atc = next(iter(codes_of(concept, sy.ATC)), "")
    known = next((_by_code()[c] for c in codes_of(concept, sy.DRUGS) if c in _by_code()), None)
    names = ingredients(known) if known else [label]
    return names, atc or (known.atc if known else ""), label


def _allergy_match(drug: Drug, allergy: Resource) -> str | None:
    """What in the drug the allergy names (an ingredient or an ATC group), or None."""
    code = allergy.get("code") or {}
    words = [code.get("text", ""), *(c.get("display", "") for c in code.get("coding", []))]
    allergen = " ".join(squash(w) for w in words if w)
    for name in [*ingredients(drug), drug.name]:
        if len(squash(name)) >= 4 and re.search(rf"\b{re.escape(squash(name))}", allergen):
            return name
    for word, groups in CLASSES.items():
        if re.search(rf"\b{re.escape(squash(word))}", allergen):
            hit = next((g for g in groups if drug.atc.startswith(g)), None)
            if hit:
                return f"{word} ({hit})"
    for atc in codes_of(code, sy.ATC):
        if drug.atc.startswith(atc):
            return atc
    for other in codes_of(code, sy.DRUGS):
        known = _by_code().get(other)
        if known and set(map(squash, ingredients(known))) & set(map(squash, ingredients(drug))):
            return known.ingredient
    return None


def still_taken(mr: Resource, now: datetime, encounter: str) -> bool:
    """Active and, unless it belongs to this visit, its supply not yet run out."""
    if mr.get("status") != "active":
        return False
    if (mr.get("encounter") or {}).get("reference") == encounter:
        return True
    authored = parse_stamp(mr.get("authoredOn"))
    supply = ((mr.get("dispenseRequest") or {}).get("expectedSupplyDuration") or {}).get("value")
    if authored is None or supply is None:
        return True  # no end known: better one warning too many
    return authored + timedelta(days=float(supply) + 1) >= now


def check(
    drug: Drug, allergies: list[Resource], current: list[Resource], now: datetime, encounter: str
) -> list[Alert]:
    """Every warning for prescribing `drug` to a patient with these allergies and medicines."""
    shown = f"{drug.name} {drug.strength}"
    out = []
    for a in allergies:
        hit = _allergy_match(drug, a)
        if hit:
            substance = (a.get("code") or {}).get("text", "")
            out.append(Alert("allergy", shown, substance, f"AllergyIntolerance/{a['id']}", hit))
    mine = {squash(i): i for i in ingredients(drug)}
    for mr in current:
        if not still_taken(mr, now, encounter):
            continue
        names, atc, label = _current_drug(mr)
        ref_ = f"MedicationRequest/{mr['id']}"
        same = [mine[k] for k in map(squash, names) if k in mine]
        if same:
            out.append(Alert("duplicate", shown, label, ref_, ", ".join(same)))
        elif atc and drug.atc and atc[:5] == drug.atc[:5]:
            out.append(Alert("class", shown, label, ref_, drug.atc[:5]))
    return out


def patient_context(repo: Repo, patient: str) -> tuple[list[Resource], list[Resource]]:
    """The patient's active allergies and active medicine orders (two searches)."""
    allergies = search_all(
        repo,
        "AllergyIntolerance",
        [("patient", patient), ("clinical-status", "active"), ("_count", str(MAX_CURRENT))],
    )
    current = search_all(
        repo,
        "MedicationRequest",
        [("patient", patient), ("status", "active"), ("_count", str(MAX_CURRENT))],
    )
    return allergies, current


def detected_issue(
    warnings: list[Alert], patient: str, author: dict[str, str], when: str, reason: str
) -> Resource:
    """The warnings the prescriber saw and overrode, and why (DetectedIssue.mitigation)."""
    worst = next((w for w in warnings if w.kind == "allergy"), warnings[0])
    code, display = ISSUE_CODE[worst.kind]
    lines = [f"{w.kind}: {w.drug} — {w.other} ({w.because})" for w in warnings]
    return {
        "resourceType": "DetectedIssue",
        "status": "final",
        "code": {"coding": [{"system": sy.V3_ACT_CODE, "code": code, "display": display}]},
        "severity": "high" if worst.kind == "allergy" else "moderate",
        "patient": ref(patient),
        "identifiedDateTime": when,
        "author": author,
        "implicated": [ref(r) for r in dict.fromkeys(w.reference for w in warnings)],
        "detail": "; ".join(lines),
        "mitigation": [
            {
                "action": {
                    "coding": [
                        {"system": sy.V3_ACT_CODE, "code": "1", "display": "Therapy Appropriate"}
                    ],
                    "text": reason,
                },
                "date": when,
                "author": author,
            }
        ],
    }


class Blocked(FhirError):
    """The prescription raised warnings the prescriber has not yet overridden."""

    def __init__(self, alerts: list[Alert]) -> None:
        super().__init__(409, Issue("business-rule", "cảnh báo kê đơn / prescribing alert"))
        self.alerts = alerts


# ---------------------------------------------------------------- prescriptions

MAX_DOSE = Decimal(20)  # units per take
MAX_PER_DAY = 12
MAX_DAYS = 90  # the longest BHYT outpatient prescription for a chronic disease (TT 26/2025)
MAX_QUANTITY = Decimal(1000)


def drug_key(d: Drug) -> str:
    """A catalogue line: MA_THUOC alone names the ingredient, not the strength or form."""
    return f"{d.code}|{d.strength}|{d.form}|{d.route}"


@cache
def drugs_by_key() -> dict[str, Drug]:
    return {drug_key(d): d for d in drugs()}


@dataclass(frozen=True)
class Dosage:
    dose: Decimal
    per_day: int
    days: int
    quantity: Decimal


def _whole(value: str) -> int | None:
    return int(value) if re.fullmatch(r"\d{1,4}", value.strip()) else None


def parse_dosage(form: Mapping[str, str]) -> Dosage:
    """Dose, times a day, days and quantity, each positive and sane; quantity computed if empty."""
    problems: list[Problem] = []
    dose = decimal_of(form.get("dose", ""))
    if dose is None or not 0 < dose <= MAX_DOSE:
        problems.append(Problem("dose", "dose-range", {"max": MAX_DOSE}))
    per_day = _whole(form.get("per_day", ""))
    if per_day is None or not 0 < per_day <= MAX_PER_DAY:
        problems.append(Problem("per_day", "per-day-range", {"max": MAX_PER_DAY}))
    days = _whole(form.get("days", ""))
    if days is None or not 0 < days <= MAX_DAYS:
        problems.append(Problem("days", "days-range", {"max": MAX_DAYS}))
    raise_problems(problems)
    assert dose is not None and per_day is not None and days is not None
    needed = dose * per_day * days
    typed = (form.get("quantity") or "").strip()
    quantity = decimal_of(typed) if typed else needed
    limit = min(MAX_QUANTITY, max(needed * 2, needed + 10))
    if quantity is None or not 0 < quantity <= limit:
        raise VisitError(Problem("quantity", "quantity-range", {"max": _plain(limit)}))
    return Dosage(dose, per_day, days, quantity)


def _plain(n: Decimal) -> str:
    return format(n.normalize(), "f")


def dosage_text(drug: Drug, d: Dosage) -> str:
    """LIEU_DUNG as XML 130 writes it: `1 Viên/lần * 3 lần/ngày * 5 ngày`."""
    return f"{_plain(d.dose)} {drug.unit}/lần * {d.per_day} lần/ngày * {d.days} ngày"


def medication_request(visit: Visit, drug: Drug, d: Dosage) -> Resource:
    coding = [coding_of(sy.DRUGS, drug.code, drug.name)]
    if drug.atc:
        coding.append({"system": sy.ATC, "code": drug.atc})
    days = {"value": d.days, "unit": "d", "system": sy.UCUM, "code": "d"}
    dosage: dict[str, Any] = {
        "text": dosage_text(drug, d),
        "timing": {
            "repeat": {
                "boundsDuration": days,
                "frequency": d.per_day,
                "period": 1,
                "periodUnit": "d",
            }
        },
        "doseAndRate": [{"doseQuantity": {"value": float(d.dose), "unit": drug.unit}}],
    }
    route = route_coding(drug)
    if route:
        dosage["route"] = {"coding": [route]}
    return {
        **visit.base("MedicationRequest"),
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": coding, "text": f"{drug.name} {drug.strength}"},
        "authoredOn": visit.stamp,
        "requester": visit.author,
        "dosageInstruction": [dosage],
        "dispenseRequest": {
            "quantity": {"value": float(d.quantity), "unit": drug.unit},
            "expectedSupplyDuration": days,
        },
    }


def parse_drug(key: str) -> Drug:
    drug = drugs_by_key().get(key.strip())
    if drug is None:
        raise VisitError(Problem("drug", "unknown-drug" if key.strip() else "required"))
    return drug


@dataclass(frozen=True)
class Prescribed:
    id: str
    notes: list[Alert]  # same-class notes, shown once saved
    overridden: list[Alert]


def prescribe(
    repo: Repo, visit: Visit, drug: Drug, d: Dosage, *, override: bool, reason: str
) -> Prescribed:
    """The MedicationRequest, unless allergy or duplicate warnings stand without an override."""
    allergies, current = patient_context(repo, visit.patient)
    alerts = check(drug, allergies, current, visit.when, visit.ref)
    blocking = [a for a in alerts if a.blocking]
    notes = [a for a in alerts if not a.blocking]
    mr = medication_request(visit, drug, d)
    if blocking:
        if not override:
            raise Blocked(alerts)
        reason = reason.strip()
        if not 5 <= len(reason) <= 500:
            raise VisitError(Problem("override_reason", "override-reason"))
        issue = detected_issue(blocking, visit.patient, visit.author, visit.stamp, reason)
        mr["detectedIssue"] = [ref(f"DetectedIssue/{repo.create(issue).id}")]
    return Prescribed(repo.create(mr).id, notes, blocking)


__all__ = [
    "CLASSES",
    "MAX_DAYS",
    "MAX_DOSE",
    "MAX_PER_DAY",
    "MAX_QUANTITY",
    "Alert",
    "Blocked",
    "Dosage",
    "Prescribed",
    "check",
    "detected_issue",
    "dosage_text",
    "drug_key",
    "drugs_by_key",
    "ingredients",
    "medication_request",
    "parse_dosage",
    "parse_drug",
    "patient_context",
    "prescribe",
    "squash",
    "still_taken",
]
