"""Checks before a prescription is saved: the patient's allergies and the medicines they take.

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
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal

from benhan.catalog.drugs import Drug, drugs
from benhan.emr.model import parse_stamp, ref, search_all
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
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


def codes_of(concept: dict[str, Any], system: str) -> list[str]:
    return [c["code"] for c in concept.get("coding", []) if c.get("system") == system]


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


__all__ = [
    "CLASSES",
    "Alert",
    "check",
    "detected_issue",
    "ingredients",
    "patient_context",
    "squash",
    "still_taken",
]
