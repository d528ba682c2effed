"""The compiled FHIRPath subset against the official R4 search expressions and small resources."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import pytest

from benhan.fhir.fhirpath import Node, compile_items, compile_path, compile_relative

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "name": [{"family": "Tremblay", "given": ["Marie", "Ève"]}, {"family": "Roy"}],
    "birthDate": "1980-02-29",
    "gender": "female",
    "telecom": [
        {"system": "phone", "value": "514-555-0100"},
        {"system": "email", "value": "marie@example.org"},
    ],
    "contact": [{"name": {"family": "Gagnon"}}],
    "generalPractitioner": [{"reference": "Practitioner/dr1"}],
}


def search_expressions() -> list[str]:
    path = files("benhan.fhir") / "definitions" / "searchparameters.json"
    params = json.loads(path.read_text(encoding="utf-8"))
    out = [p["expression"] for p in params if p.get("expression")]
    out += [c["expression"] for p in params for c in p.get("component", [])]
    return out


def test_every_official_expression_compiles() -> None:
    compiled, failed = 0, set()
    for expression in search_expressions():
        try:
            compile_path(expression)
            compiled += 1
        except ValueError:
            failed.add(expression)
    assert compiled >= 1300
    assert failed == set()


def observation(**value: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", **value}


QUANTITY = {"value": 7.2, "unit": "mmol/L"}
TABLE: list[tuple[str, dict[str, Any], list[Node]]] = [
    ("Patient.name", PATIENT, [Node(n, "HumanName") for n in PATIENT["name"]]),
    ("Patient.birthDate", PATIENT, [Node("1980-02-29", "date")]),
    ("Patient.gender", PATIENT, [Node("female", "code")]),
    ("Patient.name.given", PATIENT, [Node("Marie", "string"), Node("Ève", "string")]),
    ("Patient.contact.name", PATIENT, [Node({"family": "Gagnon"}, "HumanName")]),
    ("Patient.contact", PATIENT, [Node(PATIENT["contact"][0], "Patient.contact")]),
    (
        "Patient.telecom.where(system='email')",
        PATIENT,
        [Node(PATIENT["telecom"][1], "ContactPoint")],
    ),
    ("Patient.telecom.where(system='fax')", PATIENT, []),
    ("Patient.foo", PATIENT, []),
    ("Patient.name.foo.bar", PATIENT, []),
    ("Observation.code", PATIENT, []),
    ("Resource.id", PATIENT, [Node("p1", "string")]),
    ("DomainResource.id", PATIENT, [Node("p1", "string")]),
    ("Patient.name[1].family", PATIENT, [Node("Roy", "string")]),
    ("Patient.name[5]", PATIENT, []),
    (
        "Patient.name.family | Patient.birthDate | Practitioner.name",
        PATIENT,
        [Node("Tremblay", "string"), Node("Roy", "string"), Node("1980-02-29", "date")],
    ),
    ("Patient.gender | Patient.gender", PATIENT, [Node("female", "code")]),
    ("Patient.active", PATIENT, []),
    (
        "Encounter.period",
        {"resourceType": "Encounter", "period": {"start": "2024"}},
        [Node({"start": "2024"}, "Period")],
    ),
    (
        "(Observation.value as Quantity)",
        observation(valueQuantity=QUANTITY),
        [Node(QUANTITY, "Quantity")],
    ),
    (
        "Observation.value.ofType(Quantity)",
        observation(valueQuantity=QUANTITY),
        [Node(QUANTITY, "Quantity")],
    ),
    (
        "(Observation.value.ofType(Quantity))",
        observation(valueQuantity=QUANTITY),
        [Node(QUANTITY, "Quantity")],
    ),
    (
        "Observation.value.as(Quantity)",
        observation(valueQuantity=QUANTITY),
        [Node(QUANTITY, "Quantity")],
    ),
    ("(Observation.value as Quantity)", observation(valueString="high"), []),
    ("Observation.value.ofType(Quantity)", observation(valueString="high"), []),
    ("Observation.value", observation(valueString="high"), [Node("high", "string")]),
    ("Observation.value", observation(valueDateTime="2024-05"), [Node("2024-05", "dateTime")]),
    ("Observation.value.ofType(string)", observation(valueString="high"), [Node("high", "string")]),
    (
        "(Observation.value.ofType(string)) | (Observation.value.ofType(CodeableConcept)).text",
        observation(valueCodeableConcept={"text": "positive"}),
        [Node("positive", "string")],
    ),
    (
        "Observation.component.value.ofType(Quantity)",
        observation(component=[{"valueQuantity": QUANTITY}, {"valueString": "x"}]),
        [Node(QUANTITY, "Quantity")],
    ),
    (
        "Condition.onset.ofType(Age) | Condition.onset.ofType(Range)",
        {"resourceType": "Condition", "onsetAge": {"value": 40}},
        [Node({"value": 40}, "Age")],
    ),
    (
        "Observation.value.ofType(DateTime)",  # the spec's own spelling in code-value-date
        observation(valueDateTime="2024-05"),
        [Node("2024-05", "dateTime")],
    ),
]


@pytest.mark.parametrize(("expression", "resource", "expected"), TABLE)
def test_table(expression: str, resource: dict[str, Any], expected: list[Node]) -> None:
    assert compile_path(expression)(resource) == expected


@pytest.mark.parametrize(("expression", "resource", "expected"), TABLE)
def test_compile_items_agrees_with_compile_path(
    expression: str, resource: dict[str, Any], expected: list[Node]
) -> None:
    selector = compile_items(expression, resource["resourceType"])
    assert selector.run(resource) == [(n.value, n.type) for n in expected]
    if selector.keys is not None and resource.keys().isdisjoint(selector.keys):
        assert expected == []  # skipping on absent keys must never lose a result


def test_compile_items_keys() -> None:
    value = compile_items("Observation.value.ofType(Quantity)", "Observation").keys
    assert value is not None and "valueQuantity" in value and "valueString" in value
    union = compile_items("Patient.name | Practitioner.name | Patient.address", "Patient").keys
    assert union == ("name", "address")
    assert compile_items(DECEASED, "Patient").keys is None  # false when absent
    assert compile_items("Observation.code", "Patient").keys == ()
    assert compile_items("Observation.code", "Patient").run(PATIENT) == []


def test_compile_items_falls_back_for_nested_resources() -> None:
    bundle = {"resourceType": "Bundle", "entry": [{"resource": PATIENT}]}
    selector = compile_items("Bundle.entry.resource.birthDate", "Bundle")
    assert selector.run(bundle) == [("1980-02-29", "date")]
    assert selector.keys is None


SUBJECT = "Observation.subject.where(resolve() is Patient)"


@pytest.mark.parametrize(
    ("reference", "kept"),
    [
        ("Patient/1", True),
        ("http://example.org/fhir/Patient/1", True),
        ("Patient/1/_history/2", True),
        ("Group/1", False),
        ("urn:uuid:0c3a8f3e-3c4e-4a1e-9a52-5b9f1f0a0a0a", False),
        ("#contained", False),
        ("Patient?identifier=http://ramq|123", False),
        ("Patient/", False),
    ],
)
def test_where_resolve_is(reference: str, kept: bool) -> None:
    subject = {"reference": reference}
    result = compile_path(SUBJECT)(observation(subject=subject))
    assert result == ([Node(subject, "Reference")] if kept else [])
    items = compile_items(SUBJECT, "Observation").run(observation(subject=subject))
    assert items == ([(subject, "Reference")] if kept else [])


def test_resolve_without_reference_string() -> None:
    subject = {"identifier": {"value": "1"}, "type": "Patient"}
    assert compile_path(SUBJECT)(observation(subject=subject)) == []


def test_generic_where_with_resolve() -> None:
    expression = "Patient.generalPractitioner.where(resolve() is Practitioner or false)"
    assert compile_path(expression)(PATIENT) == [
        Node({"reference": "Practitioner/dr1"}, "Reference")
    ]


DECEASED = "Patient.deceased.exists() and Patient.deceased != false"


@pytest.mark.parametrize(
    ("deceased", "expected"),
    [
        ({"deceasedBoolean": False}, False),
        ({"deceasedBoolean": True}, True),
        ({"deceasedDateTime": "2020-03-01"}, True),
        ({}, False),
    ],
)
def test_deceased(deceased: dict[str, Any], expected: bool) -> None:
    resource = {"resourceType": "Patient", **deceased}
    assert compile_path(DECEASED)(resource) == [Node(expected, "boolean")]


def test_nested_resources_keep_their_own_type() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "Composition", "id": "c"}}, {"resource": PATIENT}],
    }
    first = compile_path("Bundle.entry[0].resource")(bundle)
    assert [n.type for n in first] == ["Composition"]
    assert compile_path("Bundle.entry.resource.birthDate")(bundle) == [Node("1980-02-29", "date")]
    contained = {**PATIENT, "contained": [{"resourceType": "Organization", "name": "CLSC"}]}
    assert compile_path("Patient.contained.name")(contained) == [Node("CLSC", "string")]
    assert compile_path("Patient.contained.ofType(Organization).name")(contained) == [
        Node("CLSC", "string")
    ]


def test_component_expressions_on_typed_context() -> None:
    component = {"code": {"text": "systolic"}, "valueQuantity": QUANTITY}
    resource = observation(component=[component], code={"text": "bp"})
    (node,) = compile_path("Observation.component")(resource)
    assert node == Node(component, "Observation.component")
    evaluate = compile_relative("value.ofType(Quantity)")
    assert evaluate(node, resource) == [Node(QUANTITY, "Quantity")]
    assert compile_relative("code")(node, resource) == [
        Node({"text": "systolic"}, "CodeableConcept")
    ]
    root = compile_relative("%resource.code")(node, resource)
    assert root == [Node({"text": "bp"}, "CodeableConcept")]


def test_relative_expression_on_untyped_dict_reads_choice_keys() -> None:
    component = {"code": {"text": "systolic"}, "valueQuantity": QUANTITY}
    assert compile_path("value.ofType(Quantity)")(component) == [Node(QUANTITY, "Quantity")]
    assert compile_path("code.text")(component) == [Node("systolic", "string")]


def test_literals_and_escapes() -> None:
    expression = r"Patient.name.where(family = 'Tr\u0065mblay' and given = 'Marie' | 'Ève')"
    assert compile_path(expression)(PATIENT) == [Node(PATIENT["name"][0], "HumanName")]
    assert compile_path("Patient.name.given.exists()")(PATIENT) == [Node(True, "boolean")]
    assert compile_path("Patient.active.exists()")(PATIENT) == [Node(False, "boolean")]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("Patient.telecom.exists(system = 'fax')", False),
        ("Patient.telecom.exists(system = 'email')", True),
        ("Patient.active.empty()", True),
        ("Patient.name.empty()", False),
        ("Patient.active.exists().not()", True),
        ("Patient.active.exists() or Patient.name.exists()", True),
        ("Patient.gender = 'male' or Patient.gender != 'female'", False),
        ("Patient.name.first().family = 'Tremblay'", True),
        ("%resource.birthDate = $this.birthDate", True),
        ("Patient.gender is code", True),
        ("Patient.name.given.first().is(FHIR.string)", True),
    ],
)
def test_boolean_functions(expression: str, expected: bool) -> None:
    assert compile_path(expression)(PATIENT) == [Node(expected, "boolean")]


def test_compiled_once() -> None:
    assert compile_path("Patient.name") is compile_path("Patient.name")


@pytest.mark.parametrize(
    "expression",
    [
        "Patient.name.foo(",
        "Patient.name.foo()",
        "Patient.name + 1",
        "Patient..name",
        "Patient.name.ofType(NoSuchType)",
        "'unterminated",
        "Patient.name[",
        "%context.name",
        "",
    ],
)
def test_unsupported_syntax_raises(expression: str) -> None:
    with pytest.raises(ValueError, match="unsupported FHIRPath"):
        compile_path(expression)
