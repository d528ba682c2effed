"""De-identification for province-level analysis: no names, identifiers, contacts or free text.

The walk follows each element's FHIR datatype (fhir/definitions elements), so the rules hold in
every resource type, including ones no rule names: whole datatypes that identify a person are
dropped, free text is dropped, an address keeps only its commune, district and province, and a
birth date keeps its year (the HIPAA Safe Harbor list, adapted to Vietnamese records). Resource
ids stay: they are random, carry nothing about the person, and let an analyst count people.
"""

from __future__ import annotations

from typing import Any

from benhan.fhir.definitions import Resource, element_types
from benhan.fhir.systems import COMMUNE_CODE_EXT

# Datatypes that identify a person or carry free text: dropped wherever they occur.
DROPPED_TYPES = frozenset(
    {"HumanName", "ContactPoint", "Identifier", "Attachment", "Narrative", "Annotation",
     "Signature", "markdown"}
)  # fmt: skip
# Free-text strings (elements of type string with these names); codes and displays stay.
FREE_TEXT = frozenset({"text", "comment", "description", "valueString", "note", "display"})
# Elements never kept, whatever their type: other people and embedded resources.
DROPPED_ELEMENTS = frozenset({"contained", "contact", "photo", "link", "generalPractitioner"})
ADDRESS_KEPT = frozenset({"district", "state", "country", "use", "type", "extension"})
YEAR_ONLY = frozenset({"birthDate"})
CODED_VALUES = frozenset(
    {"Code", "Coding", "CodeableConcept", "Boolean", "Integer", "Decimal", "Date", "DateTime"}
)


def deidentify(res: Resource) -> Resource:
    out = _walk(res, res["resourceType"])
    out.pop("meta", None)
    out["meta"] = {"security": [_REDACTED]}
    return out


_REDACTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "REDACTED",
    "display": "redacted",
}


def _walk(node: dict[str, Any], tname: str) -> dict[str, Any]:
    elements = element_types().get(tname, {})
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED_ELEMENTS and tname != "Extension":
            continue
        etype = _type_of(elements, key, tname)
        if etype in DROPPED_TYPES:
            continue
        if etype in ("string", None) and key in FREE_TEXT and tname not in ("Coding",):
            continue
        if key in YEAR_ONLY and isinstance(value, str):
            out[key] = value[:4]
            continue
        out[key] = _value(value, etype, key)
    return out


def _value(value: Any, etype: str | None, key: str) -> Any:
    if isinstance(value, list):
        kept = [_value(v, etype, key) for v in value]
        return [v for v in kept if v not in (None, {})]
    if not isinstance(value, dict) or etype is None:
        return value
    if etype == "Address":
        return _address(value)
    if etype == "Extension":
        return _extension(value)
    return _walk(value, etype)


def _address(addr: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in addr.items() if k in ADDRESS_KEPT}
    if "extension" in out:
        out["extension"] = [e for e in out["extension"] if e.get("url") == COMMUNE_CODE_EXT]
        if not out["extension"]:
            del out["extension"]
    return out


def _extension(ext: dict[str, Any]) -> dict[str, Any]:
    """Extensions keep their coded values only: a string or free text could be anything."""
    out: dict[str, Any] = {"url": ext.get("url")}
    for k, v in ext.items():
        if k.startswith("value") and k[5:] in CODED_VALUES:
            out[k] = v
        elif k == "extension" and isinstance(v, list):
            out[k] = [_extension(e) for e in v if isinstance(e, dict)]
    return out


def _type_of(elements: dict[str, list[Any]], key: str, tname: str) -> str | None:
    """The FHIR datatype of one JSON key (choice types like valueQuantity resolved)."""
    spec = elements.get(key)
    if spec is None:
        for name, s in elements.items():
            if name.endswith("[x]") and key.startswith(name[:-3]):
                suffix = key[len(name) - 3 :]
                types = [t for t in s[0] if t.lower() == suffix.lower()]
                return types[0] if types else None
        return None
    types = spec[0]
    if not types:
        return None
    first: str = types[0]
    if first in ("BackboneElement", "Element") or first.startswith(f"{tname}."):
        return first if first.startswith(f"{tname}.") else f"{tname}.{key}"
    return first
