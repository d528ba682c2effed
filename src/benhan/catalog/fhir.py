"""Catalogue items as FHIR R4 data: a Medication for a drug, a Coding for a service."""

from __future__ import annotations

import re
from typing import Any

from benhan.catalog.drugs import ROUTES, Drug
from benhan.catalog.services import Service
from benhan.fhir import systems

_AMOUNT_RE = re.compile(r"(\d+(?:[.,]\d+)?)\s*([a-zA-Zµ%]+)")


def drug_to_medication(drug: Drug) -> dict[str, Any]:
    """An R4 Medication: MA_THUOC and ATC codings, dose form text, strength per unit."""
    coding = [{"system": systems.DRUGS, "code": drug.code, "display": drug.name}]
    if drug.atc:
        coding.append({"system": systems.ATC, "code": drug.atc})
    medication: dict[str, Any] = {
        "resourceType": "Medication",
        "code": {"coding": coding, "text": f"{drug.name} {drug.strength}"},
    }
    if drug.form:
        medication["form"] = {"text": drug.form}
    ingredient: dict[str, Any] = {"itemCodeableConcept": {"text": drug.ingredient or drug.name}}
    strength = _strength(drug)
    if strength is not None:
        ingredient["strength"] = strength
    medication["ingredient"] = [ingredient]
    return medication


def _strength(drug: Drug) -> dict[str, Any] | None:
    # Only a single-ingredient "500mg" is a quantity we can state per unit; compound and
    # percentage strengths stay in code.text rather than being guessed into a Ratio.
    match = _AMOUNT_RE.fullmatch(drug.strength.strip())
    if match is None or "+" in drug.strength:
        return None
    value = float(match.group(1).replace(",", "."))
    return {
        "numerator": {"value": value, "unit": match.group(2)},
        "denominator": {"value": 1, "unit": drug.unit},
    }


def route_coding(drug: Drug) -> dict[str, Any] | None:
    """The SNOMED CT route of a drug (for Dosage.route), None for a route we do not know."""
    route = ROUTES.get(drug.route)
    if route is None:
        return None
    return {"system": systems.SNOMED, "code": route.snomed, "display": route.snomed_display}


def service_coding(service: Service) -> dict[str, Any]:
    """A Coding of the service in the MA_DICH_VU system."""
    return {"system": systems.SERVICES, "code": service.code, "display": service.name}


def service_loinc(service: Service) -> dict[str, Any] | None:
    """The LOINC Coding of a lab service (for Observation.code), when it has one."""
    if not service.loinc:
        return None
    return {"system": systems.LOINC, "code": service.loinc, "display": service.name}
