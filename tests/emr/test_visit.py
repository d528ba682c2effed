"""Documenting a visit: each writer's FHIR, linked to the visit, and what each refuses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from benhan.access import Actor, role
from benhan.emr import closing as cl
from benhan.emr import visit as v
from benhan.emr.model import local_now, search_all
from benhan.fhir import systems as sy
from benhan.fhir.validation import check
from benhan.store.database import Store
from benhan.store.unit import unit
from tests.emr.world import FACILITY, OTHER_FACILITY, Place, create, person, place, visit

DOCTOR = {"display": "BS. Trần Minh"}


def doctor(facility: str = FACILITY) -> Actor:
    r = role("doctor")
    return Actor("user", "bs.minh", r, facility, r.scopes, account="acc-1")


@pytest.fixture
def world(store: Store) -> tuple[Place, str, str]:
    where = place(store)
    pid = person(store)
    return where, pid, visit(store, where, pid)


def write(store: Store, enc_id: str, fn: Any, *args: Any, **kw: Any) -> Any:
    with unit(store, doctor(), write=True) as repo:
        return fn(repo, v.open_visit(repo, enc_id, DOCTOR, local_now()), *args, **kw)


def read(store: Store, rtype: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    with unit(store, doctor(), write=False) as repo:
        return search_all(repo, rtype, [*params, ("_count", "100")])


def read_one(store: Store, rtype: str, rid: str) -> dict[str, Any]:
    with unit(store, doctor(), write=False) as repo:
        return repo.read(rtype, rid).resource


def assert_linked(res: dict[str, Any], pid: str, enc_id: str) -> None:
    assert check(res) == []
    subject = res.get("subject") or res.get("patient")
    assert subject == {"reference": f"Patient/{pid}"}
    assert res["encounter"] == {"reference": f"Encounter/{enc_id}"}


def codes(concept: dict[str, Any]) -> list[str]:
    return [c["code"] for c in concept.get("coding", [])]


# ---------------------------------------------------------------- vital signs


def test_vitals_are_observations_of_the_visit(store: Store, world: tuple[Place, str, str]) -> None:
    _, pid, enc = world
    form = {"systolic": "130", "diastolic": "85", "temperature": "37,8", "weight": "60"}
    values = v.parse_vitals(form | {"height": "160", "spo2": "97", "pulse": "88"})
    ids = write(store, enc, v.record_vitals, values)
    assert len(ids) == 7  # BP panel, pulse, temperature, SpO2, weight, height and BMI
    obs = read(store, "Observation", [("encounter", f"Encounter/{enc}")])
    by_code = {codes(o["code"])[0]: o for o in obs}
    assert set(by_code) == {
        "85354-9",
        "8867-4",
        "8310-5",
        "59408-5",
        "29463-7",
        "8302-2",
        "39156-5",
    }
    for o in obs:
        assert_linked(o, pid, enc)
        assert o["category"][0]["coding"][0]["code"] == "vital-signs"
        assert o["performer"] == [DOCTOR]
    bp = by_code["85354-9"]
    assert [(codes(c["code"]), c["valueQuantity"]["value"]) for c in bp["component"]] == [
        (["8480-6"], 130.0),
        (["8462-4"], 85.0),
    ]
    assert by_code["8310-5"]["valueQuantity"] == {
        "value": 37.8,
        "unit": "Cel",
        "system": sy.UCUM,
        "code": "Cel",
    }
    assert by_code["39156-5"]["valueQuantity"]["value"] == 23.4  # 60 / 1.6²
    assert codes(by_code["59408-5"]["code"]) == ["59408-5", "2708-6"]


@pytest.mark.parametrize(
    ("form", "field", "rule"),
    [
        ({"temperature": "60"}, "temperature", "out-of-range"),
        ({"temperature": "ba mươi"}, "temperature", "not-a-number"),
        ({"pulse": "-5"}, "pulse", "out-of-range"),
        ({"systolic": "120"}, "diastolic", "bp-pair"),
        ({"systolic": "80", "diastolic": "90"}, "diastolic", "bp-order"),
        ({"spo2": "101"}, "spo2", "out-of-range"),
        ({}, "vitals", "empty"),
    ],
)
def test_implausible_vitals_are_refused(form: dict[str, str], field: str, rule: str) -> None:
    with pytest.raises(v.VisitError) as exc:
        v.parse_vitals(form)
    assert (field, rule) in [(p.field, p.rule) for p in exc.value.problems]


# ---------------------------------------------------------------- notes


def test_notes_are_one_composition_escaped(store: Store, world: tuple[Place, str, str]) -> None:
    _, pid, enc = world
    texts = v.parse_notes({"reason": "Sốt <3 ngày> & ho", "history": "Ho khan\nkhông sốt cao"})
    first = write(store, enc, v.save_notes, texts)
    note = read_one(store, "Composition", first)
    assert_linked(note, pid, enc)
    assert (note["status"], codes(note["type"])) == ("preliminary", ["11488-4"])
    sections = {codes(s["code"])[0]: s["text"]["div"] for s in note["section"]}
    assert set(sections) == {"29299-5", "10164-2"}  # empty sections are left out
    assert "Ho khan<br/>không sốt cao" in sections["10164-2"]
    assert v.note_texts(note)["history"] == "Ho khan\nkhông sốt cao"
    again = write(store, enc, v.save_notes, v.parse_notes({"reason": "Sốt, ho", "exam": "Ran"}))
    assert first == again  # one note per visit, updated as the form now reads
    assert v.note_texts(read_one(store, "Composition", first)) == {
        "reason": "Sốt, ho",
        "exam": "Ran",
    }
    write(store, enc, v.save_notes, texts)
    note = read_one(store, "Composition", first)
    assert "Sốt &lt;3 ngày&gt; &amp; ho" in note["section"][0]["text"]["div"]
    assert v.note_texts(note)["reason"] == "Sốt <3 ngày> & ho"
    assert read_one(store, "Encounter", enc)["reasonCode"] == [{"text": "Sốt <3 ngày> & ho"}]


def test_a_note_needs_a_reason() -> None:
    with pytest.raises(v.VisitError) as exc:
        v.parse_notes({"reason": "  ", "exam": "x" * 5000})
    assert {(p.field, p.rule) for p in exc.value.problems} == {
        ("reason", "required"),
        ("exam", "too-long"),
    }


# ---------------------------------------------------------------- diagnoses


def test_diagnoses_are_conditions_ranked_on_the_encounter(
    store: Store, world: tuple[Place, str, str]
) -> None:
    _, pid, enc = world
    first = write(store, enc, v.add_diagnosis, "J18.9", main=False, provisional=True)
    second = write(store, enc, v.add_diagnosis, "I10", main=False, provisional=False)
    main = write(store, enc, v.add_diagnosis, "J20.9", main=True, provisional=False)
    cond = read_one(store, "Condition", first)
    assert_linked(cond, pid, enc)
    assert cond["code"]["coding"] == [
        {"system": sy.ICD10_VN, "code": "J18.9", "display": cond["code"]["coding"][0]["display"]}
    ]
    assert "Viêm phổi" in cond["code"]["coding"][0]["display"]
    assert codes(cond["verificationStatus"]) == ["provisional"]
    assert codes(cond["clinicalStatus"]) == ["active"]
    assert codes(cond["category"][0]) == ["encounter-diagnosis"]
    assert codes(read_one(store, "Condition", second)["verificationStatus"]) == ["confirmed"]
    listed = read_one(store, "Encounter", enc)["diagnosis"]
    assert [(d["condition"]["reference"], d["rank"], codes(d["use"])) for d in listed] == [
        (f"Condition/{main}", 1, ["DD"]),
        (f"Condition/{first}", 2, ["CM"]),
        (f"Condition/{second}", 3, ["CM"]),
    ]
    write(store, enc, v.remove_diagnosis, main)
    listed = read_one(store, "Encounter", enc)["diagnosis"]
    assert [(d["condition"]["reference"], d["rank"]) for d in listed] == [
        (f"Condition/{first}", 1),
        (f"Condition/{second}", 2),
    ]
    gone = read_one(store, "Condition", main)
    assert codes(gone["verificationStatus"]) == ["entered-in-error"]
    assert "clinicalStatus" not in gone


def test_unknown_or_repeated_icd10_codes_are_refused(
    store: Store, world: tuple[Place, str, str]
) -> None:
    _, _, enc = world
    with pytest.raises(v.VisitError) as exc:
        v.parse_icd("Z99.999")
    assert [(p.field, p.rule) for p in exc.value.problems] == [("code", "unknown-icd")]
    assert v.parse_icd("j189") == "J18.9"
    write(store, enc, v.add_diagnosis, "J18.9", main=True, provisional=False)
    with pytest.raises(v.VisitError):
        write(store, enc, v.add_diagnosis, "J18.9", main=False, provisional=False)
    assert len(read(store, "Condition", [("encounter", f"Encounter/{enc}")])) == 1


# ---------------------------------------------------------------- orders


def test_orders_are_service_requests(store: Store, world: tuple[Place, str, str]) -> None:
    _, pid, enc = world
    lab = write(store, enc, v.place_order, v.parse_service("22.9028.9028"))
    scan = write(store, enc, v.place_order, v.parse_service("18.0001.9106"))
    got = {rid: read_one(store, "ServiceRequest", rid) for rid in (lab, scan)}
    for sr in got.values():
        assert_linked(sr, pid, enc)
        assert (sr["status"], sr["intent"], sr["requester"]) == ("active", "order", DOCTOR)
    assert codes(got[lab]["category"][0]) == ["108252007"]
    assert codes(got[scan]["category"][0]) == ["363679005"]
    assert got[lab]["code"]["coding"][0] == {
        "system": sy.SERVICES,
        "code": "22.9028.9028",
        "display": "Định lượng huyết sắc tố (Hb)",
    }
    with pytest.raises(v.VisitError) as exc:
        write(store, enc, v.place_order, v.parse_service("22.9028.9028"))
    assert exc.value.problems[0].rule == "already-ordered"


@pytest.mark.parametrize("code", ["99.9999.9999", "02.9001", ""])  # unknown; an exam is no order
def test_unknown_services_are_refused(code: str) -> None:
    with pytest.raises(v.VisitError) as exc:
        v.parse_service(code)
    assert exc.value.problems[0].field == "service"


# ---------------------------------------------------------------- allergies


def test_an_allergy_is_recorded(store: Store, world: tuple[Place, str, str]) -> None:
    _, pid, enc = world
    a = v.parse_allergy(
        {"substance": "Penicilin", "atc": "J01C", "criticality": "high", "reaction": "Mề đay"}
    )
    rid = write(store, enc, v.record_allergy, a)
    res = read_one(store, "AllergyIntolerance", rid)
    assert_linked(res, pid, enc)
    assert codes(res["clinicalStatus"]) == ["active"]
    assert codes(res["verificationStatus"]) == ["confirmed"]
    assert res["code"]["text"] == "Penicilin"
    assert res["code"]["coding"][0]["code"] == "J01C"
    assert res["reaction"] == [{"manifestation": [{"text": "Mề đay"}]}]
    assert res["recorder"] == DOCTOR


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"substance": ""}, "substance"),
        ({"substance": "x", "atc": "X99"}, "atc"),
        ({"substance": "x", "criticality": "fatal"}, "criticality"),
    ],
)
def test_bad_allergies_are_refused(form: dict[str, str], field: str) -> None:
    with pytest.raises(v.VisitError) as exc:
        v.parse_allergy(form)
    assert exc.value.problems[0].field == field


# ---------------------------------------------------------------- closing and referral


def other_facility(store: Store) -> str:
    ident = [{"system": sy.MA_CSKCB, "value": OTHER_FACILITY}]
    org = {"resourceType": "Organization", "identifier": ident, "name": "Bệnh viện Tỉnh"}
    return create(store, org, OTHER_FACILITY)


def test_closing_finishes_the_visit_and_the_note(
    store: Store, world: tuple[Place, str, str]
) -> None:
    _, _, enc = world
    write(store, enc, v.save_notes, v.parse_notes({"reason": "Sốt"}))
    write(store, enc, v.add_diagnosis, "J18.9", main=True, provisional=False)
    plan = cl.parse_closing({"disposition": "home", "advice": "Tái khám sau 5 ngày"})
    assert write(store, enc, cl.close_visit, plan) is None
    e = read_one(store, "Encounter", enc)
    assert e["status"] == "finished" and e["period"]["end"]
    assert codes(e["hospitalization"]["dischargeDisposition"]) == ["home"]
    [note] = read(store, "Composition", [("encounter", f"Encounter/{enc}")])
    assert note["status"] == "final"
    assert v.note_texts(note) == {"reason": "Sốt", "advice": "Tái khám sau 5 ngày"}
    with pytest.raises(v.VisitError) as exc:  # closed is final
        write(store, enc, v.save_notes, v.parse_notes({"reason": "Khác"}))
    assert (exc.value.status, exc.value.problems[0].rule) == (409, "closed")


def test_closing_needs_a_diagnosis(store: Store, world: tuple[Place, str, str]) -> None:
    _, _, enc = world
    with pytest.raises(v.VisitError) as exc:
        write(store, enc, cl.close_visit, cl.parse_closing({"disposition": "home"}))
    assert exc.value.problems[0].rule == "needs-diagnosis"
    assert read_one(store, "Encounter", enc)["status"] == "arrived"


def test_referral_carries_the_summary(store: Store, world: tuple[Place, str, str]) -> None:
    _, pid, enc = world
    org = other_facility(store)
    cid = write(store, enc, v.add_diagnosis, "J18.9", main=True, provisional=False)
    form = {"disposition": "other-hcf", "referral_to": org}
    rid = write(store, enc, cl.close_visit, cl.parse_closing(form))
    sr = read_one(store, "ServiceRequest", rid)
    assert_linked(sr, pid, enc)
    assert codes(sr["category"][0]) == ["3457005"]
    assert sr["performer"][0]["reference"] == f"Organization/{org}"
    assert codes(sr["reasonCode"][0]) == ["J18.9"]
    assert sr["reasonReference"] == [{"reference": f"Condition/{cid}"}]
    assert sr["note"][0]["text"].startswith("Chẩn đoán: J18.9 Viêm phổi")
    e = read_one(store, "Encounter", enc)
    assert codes(e["hospitalization"]["dischargeDisposition"]) == ["other-hcf"]


@pytest.mark.parametrize("target", ["no-such-org", "own"])
def test_referral_to_an_unknown_facility_is_refused(
    store: Store, world: tuple[Place, str, str], target: str
) -> None:
    where, _, enc = world
    write(store, enc, v.add_diagnosis, "J18.9", main=True, provisional=False)
    org = where.organization.split("/")[1] if target == "own" else target
    with pytest.raises(v.VisitError) as exc:
        write(
            store,
            enc,
            cl.close_visit,
            cl.parse_closing({"disposition": "other-hcf", "referral_to": org}),
        )
    assert [(p.field, p.rule) for p in exc.value.problems] == [("referral_to", "unknown-facility")]
    assert read_one(store, "Encounter", enc)["status"] == "arrived"
    assert read(store, "ServiceRequest", [("encounter", f"Encounter/{enc}")]) == []


def test_a_doctor_opening_the_visit_marks_it_seen_once(
    store: Store, world: tuple[Place, str, str]
) -> None:
    _, _, enc = world
    with unit(store, doctor(), write=True) as repo:
        first = v.start(repo, repo.read("Encounter", enc).resource, None, local_now())
    with unit(store, doctor(), write=True) as repo:
        later = local_now() + timedelta(minutes=5)
        again = v.start(repo, repo.read("Encounter", enc).resource, None, later)
    assert first["status"] == again["status"] == "in-progress"
    assert again["statusHistory"] == first["statusHistory"]
    assert again["meta"]["versionId"] == first["meta"]["versionId"]


def test_a_visit_of_another_facility_is_not_found(store: Store) -> None:
    where = place(store, OTHER_FACILITY)
    enc = visit(store, where, person(store, facility=OTHER_FACILITY))
    with unit(store, doctor(), write=False) as repo, pytest.raises(Exception) as exc:
        v.load(repo, enc)
    assert getattr(exc.value, "status", None) == 404
