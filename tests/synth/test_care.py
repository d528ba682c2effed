"""Synthetic care: reproducible, valid R4, references that resolve, and the rates it promises."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from functools import cache
from typing import Any

import orjson
import pytest

from benhan.fhir import systems
from benhan.fhir.validation import check
from benhan.synth.care import CareGenerator, PersonCare
from benhan.synth.epidemic import CaseEvent
from benhan.synth.facilities import Facility, build_facilities
from benhan.synth.people import PeopleGenerator, Person
from benhan.synth.places import communes

START, END = date(2023, 7, 1), date(2025, 6, 30)
YEARS = ((END - START).days + 1) / 365.25


@cache
def _facilities() -> tuple[Facility, ...]:
    return tuple(build_facilities(3, communes()))


@cache
def _people(n: int) -> tuple[Person, ...]:
    return tuple(PeopleGenerator(11, communes()).people(n))


def _generator(seed: int = 5) -> CareGenerator:
    return CareGenerator(seed, _facilities(), START, END)


@cache
def _care(n: int = 300) -> tuple[PersonCare, ...]:
    gen = _generator()
    return tuple(gen.person_care(p, ()) for p in _people(n))


def _resources(cares: tuple[PersonCare, ...]) -> list[dict[str, Any]]:
    return [r for pc in cares for _, r in pc.resources]


def _of(pc: PersonCare, rtype: str) -> list[dict[str, Any]]:
    return [r for _, r in pc.resources if r["resourceType"] == rtype]


def _codes(concept: dict[str, Any]) -> set[str]:
    return {c["code"] for c in concept.get("coding", ())}


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    people = _people(50)
    a = [_generator(5).person_care(p, ()).resources for p in people]
    b = [_generator(5).person_care(p, ()).resources for p in reversed(people)][::-1]
    c = [_generator(6).person_care(p, ()).resources for p in people]
    assert orjson.dumps(a) == orjson.dumps(b)  # per-person streams: order of people is irrelevant
    assert orjson.dumps(a) != orjson.dumps(c)


def test_every_resource_is_valid_r4() -> None:
    resources = _resources(_care())
    assert len(resources) > 3000
    problems = [(r["resourceType"], issue) for r in resources for issue in check(r)]
    assert problems == []


def test_resource_kinds_are_all_there() -> None:
    kinds = Counter(r["resourceType"] for r in _resources(_care()))
    for rtype in (
        "Patient", "Coverage", "Encounter", "Condition", "Observation", "ServiceRequest",
        "DiagnosticReport", "MedicationRequest", "Procedure",
    ):  # fmt: skip
        assert kinds[rtype] > 0, rtype


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return own + [x for v in node.values() for x in _references(v)]
    if isinstance(node, list):
        return [x for v in node for x in _references(v)]
    return []


def test_references_resolve_in_dependency_order() -> None:
    known = {f"Organization/{f.org_id}" for f in _facilities()}
    known |= {f"Location/{f.location_id}" for f in _facilities()}
    for pc in _care():
        seen = set(known)
        for _, res in pc.resources:
            for target in _references(res):
                assert target in seen, (res["resourceType"], target)  # defined before use
            seen.add(f"{res['resourceType']}/{res['id']}")


def test_resources_are_recorded_by_the_facility_of_their_patient() -> None:
    for pc in _care(100):
        owner = {f"Patient/{r['id']}": code for code, r in pc.resources if "gender" in r}
        for code, res in pc.resources:
            subject = res.get("subject") or res.get("beneficiary")
            if subject:
                assert owner[subject["reference"]] == code


def test_utilisation_per_person_year_is_between_one_and_four() -> None:
    encounters = sum(len(_of(pc, "Encounter")) for pc in _care())
    rate = encounters / (len(_care()) * YEARS)
    assert 1 <= rate <= 4, rate


def test_children_and_the_old_use_care_more_than_young_adults() -> None:
    visits: dict[str, list[int]] = defaultdict(list)
    for person, pc in zip(_people(300), _care(), strict=True):
        age = person.age(START)
        group = "child" if age < 5 else "old" if age >= 60 else "young" if 18 <= age < 40 else ""
        visits[group].append(len(_of(pc, "Encounter")))
    mean = {k: sum(v) / len(v) for k, v in visits.items() if v}
    assert mean["child"] > mean["young"] and mean["old"] > mean["young"], mean


def test_inpatient_stays_have_a_discharge_disposition_and_length() -> None:
    stays = [
        r for r in _resources(_care()) if r["resourceType"] == "Encounter"
        and r["class"]["code"] == "IMP"
    ]  # fmt: skip
    assert stays
    for e in stays:
        disposition = e["hospitalization"]["dischargeDisposition"]["coding"][0]["code"]
        assert disposition in {"home", "other-hcf", "exp"}
        assert e["period"]["end"][:10] > e["period"]["start"][:10]


def test_a_death_ends_the_record() -> None:
    gen = _generator()
    for person in _people(3000):
        pc = gen.person_care(person, ())
        encounters = _of(pc, "Encounter")
        dead = [e for e in encounters if _codes(e.get("hospitalization", {}).get(
            "dischargeDisposition", {})) == {"exp"}]  # fmt: skip
        if dead:
            assert encounters[-1] is dead[0]
            assert any("deceasedDateTime" in p for p in _of(pc, "Patient"))
            return
    pytest.fail("no in-hospital death among 3000 people over two years")


def test_chronic_patients_get_repeat_prescriptions() -> None:
    checked = 0
    for pc in _care():
        chronic = [c for c in _of(pc, "Condition") if _codes(c["clinicalStatus"]) == {"active"}]
        if not chronic:
            continue
        drugs = Counter(
            next(iter(_codes(m["medicationCodeableConcept"])))
            + m["medicationCodeableConcept"]["text"]
            for m in _of(pc, "MedicationRequest")
        )
        assert drugs.most_common(1)[0][1] >= 3, drugs
        checked += 1
    assert checked >= 10


def test_prescriptions_carry_dosage_text_and_atc() -> None:
    for m in (r for r in _resources(_care(100)) if r["resourceType"] == "MedicationRequest"):
        assert "lần/ngày" in m["dosageInstruction"][0]["text"]
        systems_used = {c["system"] for c in m["medicationCodeableConcept"]["coding"]}
        assert systems.DRUGS in systems_used


def test_vital_signs_are_plausible() -> None:
    by_code: dict[str, list[float]] = defaultdict(list)
    for r in _resources(_care(100)):
        if r["resourceType"] == "Observation" and "valueQuantity" in r:
            by_code[r["code"]["coding"][0]["code"]].append(r["valueQuantity"]["value"])
    assert all(35.5 <= t <= 41 for t in by_code["8310-5"])
    assert all(40 <= h <= 200 for h in by_code["8867-4"])
    assert all(2 <= w <= 120 for w in by_code["29463-7"])


def _case(person: Person, disease: str, icd: str, setting: Any, lab: bool) -> CaseEvent:
    return CaseEvent(
        date(2024, 9, 17), person.commune.code, disease, icd, "15-59", setting, lab, None
    )


@pytest.mark.parametrize(
    ("disease", "icd", "setting", "kind"),
    [
        ("dengue", "A97.0", "station", "commune-station"),
        ("dengue", "A97.1", "hospital", "general-hospital"),
        ("hfmd", "B08.4", "station", "commune-station"),
        ("ili", "J10.1", "hospital", "general-hospital"),
        ("measles", "B05.9", "hospital", "general-hospital"),
    ],
)
def test_case_events_become_encounters_where_the_event_says(
    disease: str, icd: str, setting: str, kind: str
) -> None:
    person = _people(50)[7]
    facility_kind = {f.code: f.kind for f in _facilities()}
    pc = _generator().person_care(person, [_case(person, disease, icd, setting, True)])
    on_day = [
        (code, r) for code, r in pc.resources
        if r["resourceType"] == "Encounter" and r["period"]["start"].startswith("2024-09-17")
        and icd in _codes(r["reasonCode"][0])
    ]  # fmt: skip
    assert on_day, "no encounter for the case"
    code, enc = on_day[0]
    assert facility_kind[code] == kind
    conditions = [
        c for c in _of(pc, "Condition") if c["encounter"]["reference"].endswith(enc["id"])
    ]
    assert _codes(conditions[0]["code"]) == {icd}
    assert _codes(conditions[0]["verificationStatus"]) == {"confirmed"}
    positive = [
        o for o in _of(pc, "Observation")
        if o["encounter"]["reference"].endswith(enc["id"]) and o.get("valueString") == "dương tính"
    ]  # fmt: skip
    assert len(positive) == 1


def test_dengue_confirmation_is_the_ns1_test() -> None:
    person = _people(50)[3]
    pc = _generator().person_care(person, [_case(person, "dengue", "A97.0", "station", True)])
    positive = [o for o in _of(pc, "Observation") if o.get("valueString") == "dương tính"]
    assert "75377-7" in _codes(positive[0]["code"])  # Dengue NS1 antigen


def test_unconfirmed_case_is_provisional_without_a_positive_test() -> None:
    person = _people(50)[3]
    pc = _generator().person_care(person, [_case(person, "dengue", "A97.0", "station", False)])
    cases = [c for c in _of(pc, "Condition") if _codes(c["code"]) == {"A97.0"}]
    assert _codes(cases[0]["verificationStatus"]) == {"provisional"}
    assert not any(o.get("valueString") == "dương tính" for o in _of(pc, "Observation"))


def test_one_patient_per_person_and_facility_with_truth() -> None:
    for person, pc in zip(_people(300), _care(), strict=True):
        patients = {
            r["id"]: (code, r) for code, r in pc.resources if r["resourceType"] == "Patient"
        }
        assert len(patients) == len(pc.registrations)
        assert len({reg.facility_code for reg in pc.registrations}) == len(pc.registrations)
        for reg in pc.registrations:
            code, patient = patients[reg.patient_id]
            assert (
                code == reg.facility_code == patient["managingOrganization"]["identifier"]["value"]
            )
            assert reg.true_person_id == person.person_id
        encounter_facilities = {
            code for code, r in pc.resources if r["resourceType"] == "Encounter"
        }
        assert encounter_facilities == {reg.facility_code for reg in pc.registrations}


def test_coverage_once_per_registration_of_an_insured_person() -> None:
    for person, pc in zip(_people(300), _care(), strict=True):
        coverages = _of(pc, "Coverage")
        assert len(coverages) == (len(pc.registrations) if person.bhyt else 0)
        for cov in coverages:
            assert cov["subscriberId"] == cov["identifier"][0]["value"]
            assert cov["payor"] == [{"display": "Bảo hiểm xã hội Việt Nam"}]


def test_patient_codes_are_unique_within_a_facility() -> None:
    codes: dict[str, set[str]] = defaultdict(set)
    count = 0
    for code, r in ((c, r) for pc in _care() for c, r in pc.resources):
        if r["resourceType"] == "Patient":
            mrn = r["identifier"][0]["value"]
            assert mrn not in codes[code]
            codes[code].add(mrn)
            count += 1
    assert count > 300


def test_referrals_climb_the_levels() -> None:
    kinds = {f.org_id: f.kind for f in _facilities()}
    pairs = Counter(
        (kinds[e["hospitalization"]["origin"]["reference"].split("/")[1]],
         kinds[e["serviceProvider"]["reference"].split("/")[1]])
        for e in _resources(_care()) if e["resourceType"] == "Encounter"
        and "origin" in e.get("hospitalization", {})
    )  # fmt: skip
    assert pairs[("commune-station", "medical-centre")] > 0
    assert set(pairs) <= {
        ("commune-station", "medical-centre"),
        ("medical-centre", "general-hospital"),
        ("medical-centre", "medical-centre"),  # admitted on the ward after the outpatient visit
        ("general-hospital", "general-hospital"),
    }
