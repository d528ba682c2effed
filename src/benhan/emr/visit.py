"""Documenting a visit: what a clinician records on the visit page, written as FHIR resources.

Every resource refers to the visit's Patient (`subject`/`patient`) and Encounter (`encounter`),
and names the clinician (requester, recorder, asserter, author, performer): their Practitioner
when the account has one, else their name as a display-only Reference.

Input is checked before anything is written; each problem names its form field and a stable rule
the page turns into a sentence. Problems found against stored data (an unknown facility, an
order already placed) raise VisitError inside the unit of work, which rolls everything back.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from benhan.catalog.fhir import service_coding
from benhan.catalog.icd10 import lookup
from benhan.catalog.services import Service, services
from benhan.emr.model import codes_of, ref, search_all, seen, stamp
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.outcome import FhirError, Issue
from benhan.store.repository import Repo

# HL7 code systems used only here (http://hl7.org/fhir/R4/terminologies-systems.html).
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
DIAGNOSIS_ROLE = "http://terminology.hl7.org/CodeSystem/diagnosis-role"
XHTML = "http://www.w3.org/1999/xhtml"
CLOSED = ("finished", "cancelled", "entered-in-error")
MAX_TEXT = 4000  # characters per note section, reason or summary
MAX_ROWS = 200  # documents of one kind read per visit; an outpatient visit has a handful


@dataclass(frozen=True)
class Problem:
    """One wrong field: `rule` is a stable name the page words (and tests key on)."""

    field: str
    rule: str
    values: dict[str, Any] = dataclasses.field(default_factory=dict)


class VisitError(FhirError):
    """Bad input for a visit form: a 400 whose problems name the fields."""

    def __init__(self, *problems: Problem, status: int = 400) -> None:
        issues = [Issue("invalid", f"{p.field}: {p.rule}") for p in problems]
        super().__init__(status, *issues)
        self.problems = problems


@dataclass(frozen=True)
class Visit:
    """The visit being documented, who documents it, and when."""

    encounter: Resource
    author: dict[str, str]  # a Reference: {"reference": "Practitioner/…"} or {"display": name}
    when: datetime

    @property
    def id(self) -> str:
        return str(self.encounter["id"])

    @property
    def ref(self) -> str:
        return f"Encounter/{self.id}"

    @property
    def patient(self) -> str:
        return str(self.encounter["subject"]["reference"])

    @property
    def stamp(self) -> str:
        return stamp(self.when)

    @property
    def closed(self) -> bool:
        return self.encounter.get("status") in CLOSED

    def base(self, rtype: str) -> Resource:
        """What every resource written in the visit starts with."""
        return {"resourceType": rtype, "subject": ref(self.patient), "encounter": ref(self.ref)}


def author_of(practitioner: str | None, name: str) -> dict[str, str]:
    return ref(practitioner) if practitioner else {"display": name}


def open_visit(repo: Repo, encounter_id: str, author: dict[str, str], when: datetime) -> Visit:
    """The visit to write in: 404 (FhirError) if unseen, 409 once it is closed."""
    visit = Visit(repo.read("Encounter", encounter_id).resource, author, when)
    if visit.closed:
        raise VisitError(Problem("visit", "closed"), status=409)
    return visit


def raise_problems(problems: list[Problem]) -> None:
    if problems:
        raise VisitError(*problems)


def text_field(
    form: Mapping[str, str], name: str, problems: list[Problem], limit: int = MAX_TEXT
) -> str:
    value = (form.get(name) or "").strip()
    if len(value) > limit:
        problems.append(Problem(name, "too-long", {"max": limit}))
    return value


def decimal_of(value: str) -> Decimal | None:
    """A decimal as people type it ("37,5" or "37.5"), None when it is not one."""
    cleaned = value.strip().replace(",", ".")
    if not re.fullmatch(r"-?\d{1,6}(\.\d{1,3})?", cleaned):
        return None
    try:
        return Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the pattern already refuses these
        return None


# ---------------------------------------------------------------- vital signs


@dataclass(frozen=True)
class VitalSign:
    """One measurement of the vital-signs profile (http://hl7.org/fhir/R4/observation-vitalsigns.html)."""

    name: str  # the form field
    loinc: str
    display: str
    unit: str  # UCUM
    low: Decimal  # plausible range on an adult or child at a clinic
    high: Decimal


def _v(name: str, loinc: str, display: str, unit: str, low: str, high: str) -> VitalSign:
    return VitalSign(name, loinc, display, unit, Decimal(low), Decimal(high))


VITALS = (
    _v("systolic", "8480-6", "Systolic blood pressure", "mm[Hg]", "50", "260"),
    _v("diastolic", "8462-4", "Diastolic blood pressure", "mm[Hg]", "30", "160"),
    _v("pulse", "8867-4", "Heart rate", "/min", "20", "250"),
    _v("temperature", "8310-5", "Body temperature", "Cel", "30", "45"),
    _v("respiration", "9279-1", "Respiratory rate", "/min", "4", "80"),
    _v(
        "spo2", "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "50", "100"
    ),
    _v("weight", "29463-7", "Body weight", "kg", "0.5", "300"),
    _v("height", "8302-2", "Body height", "cm", "30", "250"),
)
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
BMI = ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2")
SPO2_ALSO = ("2708-6", "Oxygen saturation in Arterial blood")  # the profile's required code


def parse_vitals(form: Mapping[str, str]) -> dict[str, Decimal]:
    """The typed measurements, each inside its plausible range; VisitError naming each bad one."""
    problems: list[Problem] = []
    values: dict[str, Decimal] = {}
    for v in VITALS:
        raw = (form.get(v.name) or "").strip()
        if not raw:
            continue
        number = decimal_of(raw)
        if number is None:
            problems.append(Problem(v.name, "not-a-number"))
        elif not v.low <= number <= v.high:
            problems.append(Problem(v.name, "out-of-range", {"low": v.low, "high": v.high}))
        else:
            values[v.name] = number
    pair = {"systolic", "diastolic"}
    typed = {n for n in pair if (form.get(n) or "").strip()}
    if typed and typed != pair:
        problems.append(Problem((pair - typed).pop(), "bp-pair"))
    elif {"systolic", "diastolic"} <= values.keys() and values["diastolic"] >= values["systolic"]:
        problems.append(Problem("diastolic", "bp-order"))
    if not problems and not values:
        problems.append(Problem("vitals", "empty"))
    raise_problems(problems)
    return values


def _quantity(value: Decimal, unit: str) -> dict[str, Any]:
    return {"value": float(value), "unit": unit, "system": sy.UCUM, "code": unit}


def coding_of(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _vital(visit: Visit, codings: list[dict[str, str]]) -> Resource:
    category = coding_of(sy.OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")
    return {
        **visit.base("Observation"),
        "status": "final",
        "category": [{"coding": [category]}],
        "code": {"coding": codings},
        "effectiveDateTime": visit.stamp,
        "performer": [visit.author],
    }


def vital_observations(visit: Visit, values: dict[str, Decimal]) -> list[Resource]:
    """One Observation per measurement; blood pressure as the panel; BMI from weight and height."""
    out = []
    by_name = {v.name: v for v in VITALS}
    if "systolic" in values:
        panel = _vital(visit, [coding_of(sy.LOINC, *BP_PANEL)])
        panel["component"] = [
            {
                "code": {"coding": [coding_of(sy.LOINC, v.loinc, v.display)]},
                "valueQuantity": _quantity(values[v.name], v.unit),
            }
            for v in (by_name["systolic"], by_name["diastolic"])
        ]
        out.append(panel)
    for v in VITALS[2:]:
        if v.name in values:
            codings = [coding_of(sy.LOINC, v.loinc, v.display)]
            if v.name == "spo2":
                codings.append(coding_of(sy.LOINC, *SPO2_ALSO))
            obs = _vital(visit, codings)
            obs["valueQuantity"] = _quantity(values[v.name], v.unit)
            out.append(obs)
    if "weight" in values and "height" in values:
        bmi = values["weight"] / (values["height"] / 100) ** 2
        obs = _vital(visit, [coding_of(sy.LOINC, BMI[0], BMI[1])])
        obs["valueQuantity"] = _quantity(bmi.quantize(Decimal("0.1")), BMI[2])
        out.append(obs)
    return out


def record_vitals(repo: Repo, visit: Visit, values: dict[str, Decimal]) -> list[str]:
    return [repo.create(o).id for o in vital_observations(visit, values)]


# ---------------------------------------------------------------- notes (one Composition)


@dataclass(frozen=True)
class Section:
    name: str
    loinc: str
    display: str
    title: str  # Vietnamese, as printed


SECTIONS = (
    Section("reason", "29299-5", "Reason for visit Narrative", "Lý do khám"),
    Section("history", "10164-2", "History of Present illness Narrative", "Bệnh sử"),
    Section("exam", "29545-1", "Physical findings Narrative", "Khám lâm sàng"),
    Section("plan", "51847-2", "Evaluation + Plan note", "Chẩn đoán và hướng xử trí"),
    Section("advice", "69730-0", "Instructions", "Lời dặn"),
)
NOTE_TYPE = coding_of(sy.LOINC, "11488-4", "Consult note")
# The visit's own note among its Compositions (signed documents are Compositions too).
NOTE_SEARCH = ("type", f"{sy.LOINC}|11488-4")
NOTE_FIELDS = ("reason", "history", "exam", "plan")  # "advice" is written when closing


def narrative(text: str) -> dict[str, str]:
    """Plain text as an XHTML narrative: escaped, line breaks kept."""
    body = "<br/>".join(html.escape(line) for line in text.splitlines())
    return {"status": "additional", "div": f'<div xmlns="{XHTML}"><p>{body}</p></div>'}


def narrative_text(div: str) -> str:
    """The plain text `narrative` wrote."""
    inner = re.sub(r"^<div[^>]*><p>|</p></div>$", "", div)
    return "\n".join(html.unescape(line) for line in inner.split("<br/>"))


def parse_notes(form: Mapping[str, str]) -> dict[str, str]:
    problems: list[Problem] = []
    texts = {name: text_field(form, name, problems) for name in NOTE_FIELDS}
    if not texts["reason"]:
        problems.append(Problem("reason", "required"))
    raise_problems(problems)
    return texts


def note_texts(composition: Resource | None) -> dict[str, str]:
    """Section name → text of a visit's Composition."""
    by_code = {s.loinc: s.name for s in SECTIONS}
    out = {}
    for sec in (composition or {}).get("section", []):
        code = next((c["code"] for c in sec.get("code", {}).get("coding", [])), "")
        if code in by_code and sec.get("text"):
            out[by_code[code]] = narrative_text(sec["text"]["div"])
    return out


def composition(visit: Visit, texts: dict[str, str], status: str) -> Resource:
    sections = [
        {
            "title": s.title,
            "code": {"coding": [coding_of(sy.LOINC, s.loinc, s.display)]},
            "text": narrative(texts[s.name]),
        }
        for s in SECTIONS
        if texts.get(s.name)
    ]
    res = {
        **visit.base("Composition"),
        "status": status,
        "type": {"coding": [NOTE_TYPE], "text": "Phiếu khám bệnh"},
        "date": visit.stamp,
        "author": [visit.author],
        "title": "Phiếu khám bệnh",
    }
    return {**res, "section": sections} if sections else res


def find_note(repo: Repo, visit: Visit) -> Resource | None:
    params = [("encounter", visit.ref), NOTE_SEARCH, ("_count", "1")]
    found = search_all(repo, "Composition", params)
    return found[0] if found else None


def write_note(repo: Repo, visit: Visit, texts: dict[str, str], status: str) -> str:
    current = find_note(repo, visit)
    merged = {**note_texts(current), **texts}
    res = composition(visit, merged, status)
    if current is None:
        return repo.create(res).id
    return repo.update("Composition", current["id"], {**res, "id": current["id"]}).id


def save_notes(repo: Repo, visit: Visit, texts: dict[str, str]) -> str:
    """The visit's note (preliminary until closing) and the Encounter's reason, as typed."""
    note = write_note(repo, visit, texts, "preliminary")
    enc = {**visit.encounter, "reasonCode": [{"text": texts["reason"]}]}
    repo.update("Encounter", visit.id, enc)
    return note


# ---------------------------------------------------------------- diagnoses


def _role(rank: int) -> dict[str, Any]:
    # The main diagnosis is the one the visit is billed and reported under (XML 130 MA_BENH_CHINH);
    # the others accompany it (MA_BENH_KT).
    if rank == 1:
        return {"coding": [coding_of(DIAGNOSIS_ROLE, "DD", "Discharge diagnosis")]}
    return {"coding": [coding_of(DIAGNOSIS_ROLE, "CM", "Comorbidity diagnosis")]}


def ranked(diagnoses: list[Resource]) -> list[Resource]:
    return [
        {"condition": d["condition"], "use": _role(i), "rank": i}
        for i, d in enumerate(diagnoses, start=1)
    ]


def icd_coding(code: str) -> dict[str, str]:
    entry = lookup(code)
    assert entry is not None
    return coding_of(sy.ICD10_VN, entry.code, entry.name_vi)


def condition(visit: Visit, code: str, provisional: bool) -> Resource:
    verification = "provisional" if provisional else "confirmed"
    coding = icd_coding(code)
    category = coding_of(sy.CONDITION_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis")
    return {
        **visit.base("Condition"),
        "clinicalStatus": {"coding": [{"system": sy.CONDITION_CLINICAL, "code": "active"}]},
        "verificationStatus": {
            "coding": [{"system": sy.CONDITION_VER_STATUS, "code": verification}]
        },
        "category": [{"coding": [category]}],
        "code": {"coding": [coding], "text": coding["display"]},
        "recordedDate": visit.stamp,
        "recorder": visit.author,
        "asserter": visit.author,
    }


def parse_icd(code: str) -> str:
    entry = lookup(code) if code.strip() else None
    if entry is None:
        rule = "unknown-icd" if code.strip() else "required"
        raise VisitError(Problem("code", rule, {"code": code.strip()}))
    return entry.code


def add_diagnosis(repo: Repo, visit: Visit, code: str, *, main: bool, provisional: bool) -> str:
    """A Condition, listed on the Encounter: first (rank 1) when main or the first one."""
    current = diagnoses(repo, visit)
    if any(code in codes_of_condition(c) for c in current):
        raise VisitError(Problem("code", "already-diagnosed", {"code": code}))
    saved = repo.create(condition(visit, code, provisional))
    entry = {"condition": ref(f"Condition/{saved.id}")}
    listed = list(visit.encounter.get("diagnosis", []))
    listed = [entry, *listed] if main or not listed else [*listed, entry]
    repo.update("Encounter", visit.id, {**visit.encounter, "diagnosis": ranked(listed)})
    return saved.id


def remove_diagnosis(repo: Repo, visit: Visit, condition_id: str) -> None:
    """Taken back (entered in error) and off the Encounter's list; the next one becomes main."""
    target = f"Condition/{condition_id}"
    listed = [
        d for d in visit.encounter.get("diagnosis", []) if d["condition"]["reference"] != target
    ]
    if len(listed) == len(visit.encounter.get("diagnosis", [])):
        raise VisitError(Problem("condition", "not-in-visit"))
    cond = repo.read("Condition", condition_id).resource
    cond.pop("clinicalStatus", None)  # con-5: no clinical status on an entry made in error
    cond["verificationStatus"] = {
        "coding": [{"system": sy.CONDITION_VER_STATUS, "code": "entered-in-error"}]
    }
    repo.update("Condition", condition_id, cond)
    repo.update("Encounter", visit.id, {**visit.encounter, "diagnosis": ranked(listed)})


def codes_of_condition(cond: Resource) -> list[str]:
    return codes_of(cond.get("code") or {}, sy.ICD10_VN)


def diagnoses(repo: Repo, visit: Visit) -> list[Resource]:
    """The visit's Conditions in the Encounter's rank order."""
    found = search_all(repo, "Condition", [("encounter", visit.ref), ("_count", str(MAX_ROWS))])
    return in_rank_order(visit.encounter, found)


def in_rank_order(encounter: Resource, conditions: list[Resource]) -> list[Resource]:
    by_ref = {f"Condition/{c['id']}": c for c in conditions}
    listed = sorted(encounter.get("diagnosis", []), key=lambda d: d.get("rank", 99))
    return [
        by_ref[d["condition"]["reference"]] for d in listed if d["condition"]["reference"] in by_ref
    ]


# ---------------------------------------------------------------- orders


ORDER_KINDS = {
    "lab": coding_of(sy.SNOMED, "108252007", "Laboratory procedure"),
    "imaging": coding_of(sy.SNOMED, "363679005", "Imaging"),
}
REFERRAL = coding_of(sy.SNOMED, "3457005", "Patient referral")


def parse_service(code: str) -> Service:
    s = services().get(code.strip())
    if s is None or s.kind not in ORDER_KINDS:
        rule = "unknown-service" if code.strip() else "required"
        raise VisitError(Problem("service", rule, {"code": code.strip()}))
    return s


def service_request(visit: Visit, s: Service) -> Resource:
    return {
        **visit.base("ServiceRequest"),
        "status": "active",
        "intent": "order",
        "category": [{"coding": [ORDER_KINDS[s.kind]]}],
        "code": {"coding": [service_coding(s)], "text": s.name},
        "authoredOn": visit.stamp,
        "requester": visit.author,
    }


def place_order(repo: Repo, visit: Visit, s: Service) -> str:
    current = search_all(
        repo,
        "ServiceRequest",
        [("encounter", visit.ref), ("code", f"{sy.SERVICES}|{s.code}"), ("_count", "5")],
    )
    if any(o.get("status") in ("active", "completed") for o in current):
        raise VisitError(Problem("service", "already-ordered", {"name": s.name}))
    return repo.create(service_request(visit, s)).id


# ---------------------------------------------------------------- allergies

# Drug classes a nurse can pick for an allergy, with the ATC group they stand for.
ALLERGY_CLASSES = {
    "J01C": "Penicillin (J01C)",
    "J01D": "Cephalosporin (J01D)",
    "J01E": "Sulfonamide (J01E)",
    "J01F": "Macrolide (J01F)",
    "J01M": "Quinolone (J01M)",
    "M01A": "NSAID (M01A)",
    "N02BA": "Aspirin / salicylate (N02BA)",
}
CRITICALITY = ("low", "high", "unable-to-assess")


@dataclass(frozen=True)
class AllergyInput:
    substance: str
    atc: str
    criticality: str
    reaction: str


def parse_allergy(form: Mapping[str, str]) -> AllergyInput:
    problems: list[Problem] = []
    substance = text_field(form, "substance", problems, 200)
    if not substance:
        problems.append(Problem("substance", "required"))
    atc = (form.get("atc") or "").strip()
    if atc and atc not in ALLERGY_CLASSES:
        problems.append(Problem("atc", "unknown-class"))
    criticality = (form.get("criticality") or "").strip()
    if criticality and criticality not in CRITICALITY:
        problems.append(Problem("criticality", "unknown-choice"))
    reaction = text_field(form, "reaction", problems, 500)
    raise_problems(problems)
    return AllergyInput(substance, atc, criticality, reaction)


def allergy(visit: Visit, a: AllergyInput) -> Resource:
    code: dict[str, Any] = {"text": a.substance}
    if a.atc:
        code["coding"] = [{"system": sy.ATC, "code": a.atc, "display": ALLERGY_CLASSES[a.atc]}]
    res: Resource = {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION, "code": "confirmed"}]},
        "type": "allergy",
        "category": ["medication"],
        "code": code,
        "patient": ref(visit.patient),
        "encounter": ref(visit.ref),
        "recordedDate": visit.stamp,
        "recorder": visit.author,
    }
    if a.criticality:
        res["criticality"] = a.criticality
    if a.reaction:
        res["reaction"] = [{"manifestation": [{"text": a.reaction}]}]
    return res


def record_allergy(repo: Repo, visit: Visit, a: AllergyInput) -> str:
    return repo.create(allergy(visit, a)).id


# ---------------------------------------------------------------- the page's read


@dataclass(frozen=True)
class VisitView:
    """Everything the visit page shows, read in a handful of searches."""

    encounter: Resource
    patient: Resource
    vitals: list[Resource]
    labs: list[Resource]
    conditions: list[Resource]
    orders: list[Resource]
    referrals: list[Resource]
    prescriptions: list[Resource]
    reports: list[Resource]
    allergies: list[Resource]
    note: Resource | None

    @property
    def closed(self) -> bool:
        return self.encounter.get("status") in CLOSED


def _category(res: Resource) -> str:
    return next(
        (c.get("code", "") for cc in res.get("category", []) for c in cc.get("coding", [])), ""
    )


def load(repo: Repo, encounter_id: str) -> VisitView:
    """The visit and what was documented in it; FhirError 404 for a visit the user cannot see."""
    enc = repo.read("Encounter", encounter_id).resource
    patient_ref = enc["subject"]["reference"]
    patient = repo.read("Patient", patient_ref.split("/", 1)[1]).resource
    mine = [("encounter", f"Encounter/{encounter_id}"), ("_count", str(MAX_ROWS))]
    obs = sorted(
        search_all(repo, "Observation", mine), key=lambda o: o.get("effectiveDateTime", "")
    )
    requests = search_all(repo, "ServiceRequest", mine)
    notes = search_all(repo, "Composition", [*mine[:1], NOTE_SEARCH, ("_count", "1")])
    allergies = search_all(
        repo,
        "AllergyIntolerance",
        [("patient", patient_ref), ("clinical-status", "active"), ("_count", str(MAX_ROWS))],
    )
    meds = search_all(repo, "MedicationRequest", mine)
    return VisitView(
        enc,
        patient,
        vitals=[o for o in obs if _category(o) == "vital-signs"],
        labs=[o for o in obs if _category(o) != "vital-signs"],
        conditions=in_rank_order(enc, search_all(repo, "Condition", mine)),
        orders=[r for r in requests if _category(r) in ("108252007", "363679005")],
        referrals=[r for r in requests if _category(r) == REFERRAL["code"]],
        prescriptions=[m for m in meds if m.get("status") != "entered-in-error"],
        reports=search_all(repo, "DiagnosticReport", mine),
        allergies=allergies,
        note=notes[0] if notes else None,
    )


def start(repo: Repo, encounter: Resource, practitioner: str | None, when: datetime) -> Resource:
    """The visit marked seen (in progress) the first time a doctor opens it."""
    if encounter.get("status") != "arrived":
        return encounter
    saved = repo.update("Encounter", encounter["id"], seen(encounter, when, practitioner))
    return repo.read("Encounter", saved.id).resource


__all__ = [
    "ALLERGY_CLASSES",
    "SECTIONS",
    "VITALS",
    "Problem",
    "Visit",
    "VisitError",
    "VisitView",
    "add_diagnosis",
    "author_of",
    "coding_of",
    "load",
    "open_visit",
    "place_order",
    "raise_problems",
    "record_allergy",
    "record_vitals",
    "save_notes",
    "start",
    "text_field",
    "write_note",
]
