"""Index rows extracted on write: literal rows per search-parameter type, and a golden fingerprint
of every row extracted from the shared Synthea and bulk-export data (so that optimisations of
`extract` cannot change its output unnoticed).

Regenerate the golden file — only when a change of output is intended — with
`python tests/fhir/test_searchparams.py`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from benhan.fhir.primitives import MAX_US, date_range
from benhan.fhir.searchparams import INDEXED_TYPES, Row, extract

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
GOLDEN = Path(__file__).resolve().parent / "data" / "extract_golden.json"


# ---------------------------------------------------------------- golden fingerprint


def _rewrite(node: Any, ids: dict[str, str]) -> Any:
    """urn:uuid references → "Type/id", as the transaction path stores them."""
    if isinstance(node, dict):
        return {
            k: ids.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, ids)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(v, ids) for v in node]
    return node


def _bundle_resources(path: Path) -> list[dict[str, Any]]:
    entries = orjson.loads(path.read_bytes())["entry"]
    ids = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{e['fullUrl'].removeprefix('urn:uuid:')}"
        for e in entries
        if e.get("fullUrl", "").startswith("urn:uuid:")
    }
    return [_rewrite(e["resource"], ids) for e in entries]


def shared_resources() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(file label, its resources) for every shared data file, in a stable order."""
    for path in sorted((SHARED / "synthea-r4-bundles").glob("*.json")):
        yield f"synthea/{path.name}", _bundle_resources(path)
    for path in sorted((SHARED / "bulk-ndjson-10-patients").glob("*.ndjson")):
        lines = path.read_bytes().splitlines()
        yield f"bulk/{path.name}", [orjson.loads(line) for line in lines if line.strip()]


def _canonical(rows: dict[str, list[Row]]) -> bytes:
    """Rows per index type, sorted: the fingerprint ignores row order, not multiplicity."""
    dump = orjson.OPT_SORT_KEYS
    return orjson.dumps(
        {
            kind: sorted(orjson.dumps(r, option=dump).decode() for r in rows[kind])
            for kind in sorted(rows)
        },
        option=dump,
    )


def fingerprints() -> dict[str, dict[str, str]]:
    """File label → resource type → digest of the canonical rows of its resources, in order."""
    out: dict[str, dict[str, str]] = {}
    for label, resources in shared_resources():
        digests: dict[str, Any] = {}
        for res in resources:
            h = digests.setdefault(res["resourceType"], hashlib.sha256())
            h.update(_canonical(extract(res)))
            h.update(b"\n")
        out[label] = {rtype: h.hexdigest()[:32] for rtype, h in sorted(digests.items())}
    return out


def test_golden_extraction_of_shared_data() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"shared test data missing: {SHARED}")
    expected = orjson.loads(GOLDEN.read_bytes())
    got = fingerprints()
    differ = sorted(
        f"{label}:{rtype}"
        for label in expected.keys() | got.keys()
        for rtype in expected.get(label, {}).keys() | got.get(label, {}).keys()
        if expected.get(label, {}).get(rtype) != got.get(label, {}).get(rtype)
    )
    assert differ == []


# ---------------------------------------------------------------- rows per parameter type


def rows_of(resource: dict[str, Any], kind: str, param: str) -> list[Row]:
    rows = extract(resource)[kind]
    return [{k: v for k, v in r.items() if k != "param"} for r in rows if r["param"] == param]


def test_every_index_type_is_present_even_when_empty() -> None:
    assert set(extract({"resourceType": "Basic"})) == INDEXED_TYPES


def test_string_human_name_parts() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [
            {"text": "Đặng Văn Ấn", "family": "Đặng", "given": ["Văn", "Ấn"], "suffix": ["Jr"]}
        ],
    }
    assert rows_of(patient, "string", "name") == [
        {"norm": "dang van an", "value": "Đặng Văn Ấn"},
        {"norm": "dang", "value": "Đặng"},
        {"norm": "van", "value": "Văn"},
        {"norm": "an", "value": "Ấn"},
        {"norm": "jr", "value": "Jr"},
    ]
    assert rows_of(patient, "string", "family") == [{"norm": "dang", "value": "Đặng"}]
    assert rows_of(patient, "string", "given") == [
        {"norm": "van", "value": "Văn"},
        {"norm": "an", "value": "Ấn"},
    ]


def test_string_address_parts_and_truncation() -> None:
    long = "X" * 300
    patient = {
        "resourceType": "Patient",
        "address": [{"line": ["12 Lê Lợi", long], "city": "Huế", "postalCode": "530000"}],
    }
    assert rows_of(patient, "string", "address") == [
        {"norm": "12 le loi", "value": "12 Lê Lợi"},
        {"norm": "x" * 256, "value": "X" * 256},
        {"norm": "hue", "value": "Huế"},
        {"norm": "530000", "value": "530000"},
    ]
    assert rows_of(patient, "string", "address-city") == [{"norm": "hue", "value": "Huế"}]


def test_token_codeable_concept() -> None:
    obs = {
        "resourceType": "Observation",
        "code": {
            "coding": [
                {"system": "http://loinc.org", "code": "8302-2", "display": "Body Height"},
                {"code": "h"},
            ],
            "text": "Chiều cao",
        },
    }
    assert rows_of(obs, "token", "code") == [
        {"system": "http://loinc.org", "code": "8302-2", "text": "body height"},
        {"system": None, "code": "h", "text": None},
        {"system": None, "code": None, "text": "chieu cao"},
    ]


def test_token_identifier_contact_point_boolean_code() -> None:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:cccd", "value": "0790", "type": {"text": "CCCD"}}],
        "telecom": [{"system": "phone", "value": "0905"}],
        "active": True,
        "gender": "female",
    }
    assert rows_of(patient, "token", "identifier") == [
        {"system": "urn:cccd", "code": "0790", "text": "cccd"}
    ]
    assert rows_of(patient, "token", "telecom") == [
        {"system": "phone", "code": "0905", "text": None}
    ]
    assert rows_of(patient, "token", "phone") == [{"system": "phone", "code": "0905", "text": None}]
    assert rows_of(patient, "token", "active") == [{"system": None, "code": "true", "text": None}]
    assert rows_of(patient, "token", "gender") == [{"system": None, "code": "female", "text": None}]


def test_token_coding_and_deceased_expression() -> None:
    patient = {"resourceType": "Patient", "deceasedBoolean": False}
    assert rows_of(patient, "token", "deceased") == [
        {"system": None, "code": "false", "text": None}
    ]
    enc = {"resourceType": "Encounter", "class": {"system": "urn:act", "code": "AMB"}}
    assert rows_of(enc, "token", "class") == [{"system": "urn:act", "code": "AMB", "text": None}]


def test_date_partial_period_timing() -> None:
    year = date_range("2024")
    assert year is not None
    patient = {"resourceType": "Patient", "birthDate": "2024"}
    assert rows_of(patient, "date", "birthdate") == [{"lo": year[0], "hi": year[1]}]
    day = date_range("2024-03-01")
    assert day is not None
    assert day[1] - day[0] == 86_400_000_000 - 1
    enc = {"resourceType": "Encounter", "period": {"start": "2024-03-01"}}
    assert rows_of(enc, "date", "date") == [{"lo": day[0], "hi": MAX_US}]
    enc = {"resourceType": "Encounter", "period": {"end": "2024-03-01"}}
    assert rows_of(enc, "date", "date") == [{"lo": -MAX_US, "hi": day[1]}]
    assert rows_of({"resourceType": "Encounter", "period": {}}, "date", "date") == []
    request = {"resourceType": "ServiceRequest", "occurrenceTiming": {"event": ["2024", "bad"]}}
    assert rows_of(request, "date", "occurrence") == [{"lo": year[0], "hi": year[1]}]
    assert rows_of({"resourceType": "Patient", "birthDate": "24-1"}, "date", "birthdate") == []


def test_reference_relative_absolute_canonical_urn() -> None:
    obs = {"resourceType": "Observation", "subject": {"reference": "Patient/p1"}}
    assert rows_of(obs, "reference", "subject") == [
        {"target_type": "Patient", "target_id": "p1", "url": None}
    ]
    assert rows_of(obs, "reference", "patient") == [
        {"target_type": "Patient", "target_id": "p1", "url": None}
    ]
    url = "https://other.org/fhir/Patient/p2/_history/3"
    obs = {"resourceType": "Observation", "subject": {"reference": url}}
    assert rows_of(obs, "reference", "subject") == [
        {"target_type": "Patient", "target_id": None, "url": url}
    ]
    obs = {"resourceType": "Observation", "subject": {"reference": "urn:uuid:1f2e"}}
    assert rows_of(obs, "reference", "subject") == [
        {"target_type": None, "target_id": None, "url": "urn:uuid:1f2e"}
    ]
    assert rows_of(obs, "reference", "patient") == []  # where(resolve() is Patient) drops urn
    plan = {"resourceType": "CarePlan", "instantiatesCanonical": ["http://x.org/PlanDefinition/a"]}
    assert rows_of(plan, "reference", "instantiates-canonical") == [
        {"target_type": None, "target_id": None, "url": "http://x.org/PlanDefinition/a"}
    ]
    obs = {"resourceType": "Observation", "subject": {"display": "no reference"}}
    assert rows_of(obs, "reference", "subject") == []


def test_quantity_number_uri() -> None:
    obs = {
        "resourceType": "Observation",
        "valueQuantity": {"value": 7, "unit": "mmol/L", "system": "http://unitsofmeasure.org"},
    }
    assert rows_of(obs, "quantity", "value-quantity") == [
        {"value": 7.0, "system": "http://unitsofmeasure.org", "code": None, "unit": "mmol/L"}
    ]
    obs = {"resourceType": "Observation", "valueQuantity": {"value": True, "unit": "x"}}
    assert rows_of(obs, "quantity", "value-quantity") == []
    assessment = {"resourceType": "RiskAssessment", "prediction": [{"probabilityDecimal": 0.25}]}
    assert rows_of(assessment, "number", "probability") == [{"value": 0.25}]
    vs = {"resourceType": "ValueSet", "url": "http://x.org/ValueSet/a"}
    assert rows_of(vs, "uri", "url") == [{"value": "http://x.org/ValueSet/a"}]


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_bytes(orjson.dumps(fingerprints(), option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {GOLDEN}")
