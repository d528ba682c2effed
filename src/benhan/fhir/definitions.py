"""The official R4 (4.0.1) definitions benhan runs on, loaded once from definitions/*.json.

The files are extracted from the HL7 specification by tools/build_fhir_definitions.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import orjson

Resource = dict[str, Any]


def _load(name: str) -> Any:
    return orjson.loads((files("benhan.fhir") / "definitions" / name).read_bytes())


@dataclass(frozen=True, slots=True)
class SearchParamDef:
    code: str
    base: tuple[str, ...]
    type: str  # number | date | string | token | reference | composite | quantity | uri | special
    expression: str | None
    target: tuple[str, ...] = ()
    id: str = ""


@cache
def resource_types() -> frozenset[str]:
    return frozenset(_load("resourcetypes.json"))


# Parameters of our own, for rules that must run in SQL (store/policy.py: a withheld Consent).
BENHAN_PARAMS = (
    SearchParamDef(
        code="provision-type",
        base=("Consent",),
        type="token",
        expression="Consent.provision.type",
        id="benhan-consent-provision-type",
    ),
)


@cache
def search_param_defs() -> tuple[SearchParamDef, ...]:
    return BENHAN_PARAMS + tuple(
        SearchParamDef(
            code=d["code"],
            base=tuple(d["base"]),
            type=d["type"],
            expression=d.get("expression"),
            target=tuple(d.get("target", ())),
            id=d["id"],
        )
        for d in _load("searchparameters.json")
    )


@cache
def element_types() -> dict[str, dict[str, list[Any]]]:
    """Type name → element name → [type codes, is_list] (see tools/build_fhir_definitions.py)."""
    data: dict[str, dict[str, list[Any]]] = _load("elements.json")
    return data


@cache
def required_bindings() -> dict[str, frozenset[str]]:
    """ "Patient.gender" → allowed codes, for every enumerable required binding of R4."""
    return {path: frozenset(b["codes"]) for path, b in _load("bindings.json").items()}


@cache
def binding_value_sets() -> dict[str, str]:
    return {path: b["valueSet"] for path, b in _load("bindings.json").items()}


@cache
def patient_compartment() -> dict[str, tuple[str, ...]]:
    """Resource type → the search parameters that put it in a Patient's compartment."""
    return {k: tuple(v) for k, v in _load("compartment-patient.json").items()}
