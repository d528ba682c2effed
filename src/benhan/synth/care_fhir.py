"""FHIR R4 resources of one synthetic visit, built as plain dicts (no models, no copies)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from benhan.catalog.drugs import Drug, drugs_for
from benhan.catalog.fhir import route_coding, service_coding, service_loinc
from benhan.catalog.icd10 import lookup
from benhan.catalog.services import Service, services, services_of_kind
from benhan.catalog.units import UCUM_OF
from benhan.fhir import systems
from benhan.fhir.systems import (
    ADMIT_SOURCE,
    CONDITION_CATEGORY,
    DIAG_SECTION,
    DISCHARGE_DISPOSITION,
    OBS_INTERPRETATION,
)
from benhan.synth.care_tables import Direction
from benhan.synth.people import Bhyt

Resource = dict[str, Any]

VSS_NAME = "Bảo hiểm xã hội Việt Nam"  # the payor of every BHYT card

CLASS_DISPLAY = {"AMB": "ambulatory", "EMER": "emergency", "IMP": "inpatient encounter"}
DISPOSITION_DISPLAY = {"home": "Home", "other-hcf": "Other healthcare facility", "exp": "Expired"}
_VITALS_CAT = [
    {
        "coding": [
            {
                "system": systems.OBSERVATION_CATEGORY,
                "code": "vital-signs",
                "display": "Vital Signs",
            }
        ]
    }
]
_LAB_CAT = [
    {
        "coding": [
            {"system": systems.OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}
        ]
    }
]
_LAB_SECTION = [{"coding": [{"system": DIAG_SECTION, "code": "LAB", "display": "Laboratory"}]}]
_LAB_ORDER_CAT = [
    {"coding": [{"system": systems.SNOMED, "code": "108252007", "display": "Laboratory procedure"}]}
]
_DIAGNOSIS_CAT = [
    {
        "coding": [
            {
                "system": CONDITION_CATEGORY,
                "code": "encounter-diagnosis",
                "display": "Encounter Diagnosis",
            }
        ]
    }
]


def new_id(rng: random.Random) -> str:
    """str(uuid.UUID(int=rng.getrandbits(128), version=4)), without the UUID object's cost."""
    n = (rng.getrandbits(128) & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(slots=True)
class Ctx:
    """What every resource of one encounter refers to."""

    new_id: Callable[[], str]
    patient: str  # "Patient/…"
    encounter: str  # "Encounter/…"
    when: str  # dateTime with +07:00


def ref(reference: str) -> dict[str, str]:
    return {"reference": reference}


def stamp(day: date, minutes: int) -> str:
    """A dateTime in Vietnam's offset (DESIGN.md: ISO 8601 with +07:00)."""
    return f"{day.isoformat()}T{minutes // 60:02d}:{minutes % 60:02d}:00+07:00"


# ---------------------------------------------------------------- encounter and diagnosis


def icd_coding(code: str) -> dict[str, str]:
    entry = lookup(code)
    coding = {"system": systems.ICD10_VN, "code": code}
    if entry is not None:
        coding["display"] = entry.name_vi
    return coding


def encounter(
    rid: str, cls: str, exam: Service, c: Ctx, end: str, org: str, location: str, icd: str
) -> Resource:
    return {
        "resourceType": "Encounter",
        "id": rid,
        "status": "finished",
        "class": {"system": systems.V3_ACT_CODE, "code": cls, "display": CLASS_DISPLAY[cls]},
        "type": [{"coding": [service_coding(exam)], "text": exam.name}],
        "subject": ref(c.patient),
        "period": {"start": c.when, "end": end},
        "reasonCode": [{"coding": [icd_coding(icd)]}],
        "location": [{"location": ref(f"Location/{location}"), "status": "completed"}],
        "serviceProvider": ref(f"Organization/{org}"),
    }


def hospitalization(
    origin_org: str | None, admit_source: str | None, disposition: str | None
) -> Resource:
    """Encounter.hospitalization: where the patient came from and how they left."""
    out: Resource = {}
    if origin_org:
        out["origin"] = ref(f"Organization/{origin_org}")
    if admit_source:
        out["admitSource"] = {"coding": [{"system": ADMIT_SOURCE, "code": admit_source}]}
    if disposition:
        coding = {
            "system": DISCHARGE_DISPOSITION,
            "code": disposition,
            "display": DISPOSITION_DISPLAY[disposition],
        }
        out["dischargeDisposition"] = {"coding": [coding]}
    return out


def condition(c: Ctx, icd: str, chronic: bool, confirmed: bool) -> Resource:
    clinical = "active" if chronic else "resolved"  # an acute episode is over once recorded
    verification = "confirmed" if confirmed else "provisional"
    return {
        "resourceType": "Condition",
        "id": c.new_id(),
        "clinicalStatus": {"coding": [{"system": systems.CONDITION_CLINICAL, "code": clinical}]},
        "verificationStatus": {
            "coding": [{"system": systems.CONDITION_VER_STATUS, "code": verification}]
        },
        "category": _DIAGNOSIS_CAT,
        "code": {"coding": [icd_coding(icd)]},
        "subject": ref(c.patient),
        "encounter": ref(c.encounter),
        "recordedDate": c.when,
    }


# ---------------------------------------------------------------- observations


def vital(c: Ctx, loinc: str, display: str, value: float, unit: str) -> Resource:
    return {
        "resourceType": "Observation",
        "id": c.new_id(),
        "status": "final",
        "category": _VITALS_CAT,
        "code": {"coding": [{"system": systems.LOINC, "code": loinc, "display": display}]},
        "subject": ref(c.patient),
        "encounter": ref(c.encounter),
        "effectiveDateTime": c.when,
        "valueQuantity": {"value": value, "unit": unit, "system": systems.UCUM, "code": unit},
    }


def _mmhg(value: int) -> dict[str, Any]:
    return {"value": value, "unit": "mm[Hg]", "system": systems.UCUM, "code": "mm[Hg]"}


def blood_pressure(c: Ctx, systolic: int, diastolic: int) -> Resource:
    obs = vital(c, "85354-9", "Blood pressure panel", 0, "mm[Hg]")
    del obs["valueQuantity"]  # a panel carries its values in components (vitalsigns profile)
    obs["component"] = [
        {
            "code": {
                "coding": [{"system": systems.LOINC, "code": "8480-6", "display": "Systolic"}]
            },
            "valueQuantity": _mmhg(systolic),
        },
        {
            "code": {
                "coding": [{"system": systems.LOINC, "code": "8462-4", "display": "Diastolic"}]
            },
            "valueQuantity": _mmhg(diastolic),
        },
    ]
    return obs


@cache
def lab_by_loinc() -> dict[str, Service]:
    return {s.loinc: s for s in services_of_kind("lab") if s.loinc}


def lab_value(s: Service, direction: Direction, rng: random.Random) -> float:
    """A result in the service's unit: inside its range, or beyond it in `direction`."""
    low = float(s.ref_low or 0)
    high = float(s.ref_high) if s.ref_high is not None else max(low * 2, 1.0)
    if direction == "high":
        value = high * rng.uniform(1.15, 2.5)
    elif direction == "low" and low > 0:
        value = low * rng.uniform(0.3, 0.85)
    else:
        value = rng.uniform(low + 0.1 * (high - low), high - 0.1 * (high - low))
    return round(value, 0 if high >= 100 else 1 if high >= 10 else 2)


def _interpretation(code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": OBS_INTERPRETATION, "code": code}]}]


def lab_result(c: Ctx, s: Service, value: float) -> Resource:
    unit = UCUM_OF.get(s.result_unit)
    quantity: dict[str, Any] = {"value": value, "unit": s.result_unit}
    if unit:
        quantity |= {"system": systems.UCUM, "code": unit}
    low, high = s.ref_low, s.ref_high
    flag = "H" if high is not None and value > high else "L" if low and value < low else "N"
    obs = _lab_obs(c, s)
    obs["valueQuantity"] = quantity
    obs["interpretation"] = _interpretation(flag)
    ref_range: dict[str, Any] = {}
    if low is not None:
        ref_range["low"] = {**quantity, "value": float(low)}
    if high is not None:
        ref_range["high"] = {**quantity, "value": float(high)}
    if ref_range:
        obs["referenceRange"] = [ref_range]
    return obs


def qualitative_result(c: Ctx, s: Service | None, name: str, positive: bool) -> Resource:
    obs = _lab_obs(c, s, name)
    obs["valueString"] = "dương tính" if positive else "âm tính"
    obs["interpretation"] = _interpretation("POS" if positive else "NEG")
    return obs


def _lab_obs(c: Ctx, s: Service | None, name: str = "") -> Resource:
    code: dict[str, Any] = {"text": name}
    if s is not None:
        loinc = service_loinc(s)
        code = {"coding": [service_coding(s), *([loinc] if loinc else [])], "text": s.name}
    return {
        "resourceType": "Observation",
        "id": c.new_id(),
        "status": "final",
        "category": _LAB_CAT,
        "code": code,
        "subject": ref(c.patient),
        "encounter": ref(c.encounter),
        "effectiveDateTime": c.when,
    }


def lab_order(c: Ctx, s: Service | None, name: str) -> Resource:
    code = {"coding": [service_coding(s)], "text": s.name} if s else {"text": name}
    return {
        "resourceType": "ServiceRequest",
        "id": c.new_id(),
        "status": "completed",
        "intent": "order",
        "category": _LAB_ORDER_CAT,
        "code": code,
        "subject": ref(c.patient),
        "encounter": ref(c.encounter),
        "authoredOn": c.when,
    }


def lab_report(c: Ctx, orders: list[Resource], results: list[Resource], issued: str) -> Resource:
    return {
        "resourceType": "DiagnosticReport",
        "id": c.new_id(),
        "basedOn": [ref(f"ServiceRequest/{o['id']}") for o in orders],
        "status": "final",
        "category": _LAB_SECTION,
        "code": {"text": "Phiếu kết quả xét nghiệm"},
        "subject": ref(c.patient),
        "encounter": ref(c.encounter),
        "effectiveDateTime": c.when,
        "issued": issued,
        "result": [ref(f"Observation/{r['id']}") for r in results],
    }


# ---------------------------------------------------------------- orders and coverage


@cache
def drug_options(icds: tuple[str, ...], oral_only: bool) -> tuple[Drug, ...]:
    """Prescribable drugs for the codes: with a dose (for the XML 130 LIEU_DUNG), oral for
    outpatients (injections are given on the ward)."""
    seen: dict[tuple[str, str, str], Drug] = {}
    for icd in icds:
        for d in drugs_for(icd):
            if d.dosage_text() and (d.route == "1.01" or not oral_only):
                seen.setdefault((d.code, d.name, d.strength), d)
    return tuple(seen.values())


def medication_request(c: Ctx, drug: Drug) -> Resource:
    coding = [{"system": systems.DRUGS, "code": drug.code, "display": drug.name}]
    if drug.atc:
        coding.append({"system": systems.ATC, "code": drug.atc})
    dosage: dict[str, Any] = {"text": drug.dosage_text()}
    route = route_coding(drug)
    if route:
        dosage["route"] = {"coding": [route]}
    assert drug.dose is not None and drug.per_day and drug.days  # drug_options keeps these only
    return {
        "resourceType": "MedicationRequest",
        "id": c.new_id(),
        "status": "completed",
        "intent": "order",
        "medicationCodeableConcept": {"coding": coding, "text": f"{drug.name} {drug.strength}"},
        "subject": ref(c.patient),
        "encounter": ref(c.encounter),
        "authoredOn": c.when,
        "dosageInstruction": [dosage],
        "dispenseRequest": {
            "quantity": {"value": float(drug.dose) * drug.per_day * drug.days, "unit": drug.unit},
            "expectedSupplyDuration": {
                "value": drug.days,
                "unit": "d",
                "system": systems.UCUM,
                "code": "d",
            },
        },
    }


def procedure(c: Ctx, service_code: str) -> Resource:
    s = services()[service_code]
    return {
        "resourceType": "Procedure",
        "id": c.new_id(),
        "status": "completed",
        "code": {"coding": [service_coding(s)], "text": s.name},
        "subject": ref(c.patient),
        "encounter": ref(c.encounter),
        "performedDateTime": c.when,
    }


def coverage(rid: str, patient: str, card: Bhyt, shown: str) -> Resource:
    """The BHYT card as the registering facility recorded it (QĐ 1351 / QĐ 1666 layouts)."""
    number = card.legacy_code if shown == "legacy" else card.bhxh_number
    return {
        "resourceType": "Coverage",
        "id": rid,
        "identifier": [{"system": systems.BHYT, "value": number}],
        "status": "active",
        "type": {
            "coding": [
                {"system": systems.V3_ACT_CODE, "code": "PUBLICPOL", "display": "public healthcare"}
            ],
            "text": "Bảo hiểm y tế",
        },
        "subscriberId": number,
        "beneficiary": ref(patient),
        "period": {"start": card.valid_from.isoformat(), "end": card.valid_to.isoformat()},
        "payor": [{"display": VSS_NAME}],
    }
