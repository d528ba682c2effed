"""The chart, the worklist and the visit record, assembled from resources written here."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from benhan.access import Actor, role
from benhan.catalog.fhir import service_coding
from benhan.catalog.services import services_of_kind
from benhan.emr import chart as ch
from benhan.emr import model
from benhan.emr.chart import age_on, chart, timeline
from benhan.emr.model import ref, stamp
from benhan.emr.visit_record import narrative_text, visit_record
from benhan.emr.worklist import worklist
from benhan.fhir import systems as sy
from benhan.fhir.outcome import FhirError
from benhan.identity.persons import relink
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.store.unit import unit
from benhan.synth.output import to_store
from benhan.synth.province import Province, SynthConfig, generate
from tests.conftest import FROZEN
from tests.emr.world import FACILITY, OTHER_FACILITY, Place, create, person, place, visit

TODAY = FROZEN.date()
XHTML = '<div xmlns="http://www.w3.org/1999/xhtml">'
LAB = next(s for s in services_of_kind("lab") if s.ref_high is not None and s.loinc)


def clinician(code: str = "doctor", facility: str = "27001") -> Actor:
    r = role(code)
    return Actor("user", f"t.{code}", r, facility, r.scopes, account="acc-1")


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "now", lambda: FROZEN)


def _subject(pid: str, eid: str, when: str) -> dict[str, Any]:
    return {
        "subject": ref(f"Patient/{pid}"),
        "encounter": ref(f"Encounter/{eid}"),
        "effectiveDateTime": when,
    }


def lab(
    store: Store,
    pid: str,
    eid: str,
    when: str,
    value: float,
    flag: str | None,
    facility: str = FACILITY,
) -> str:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": sy.OBSERVATION_CATEGORY, "code": "laboratory"}]}],
        "code": {"coding": [service_coding(LAB)], "text": LAB.name},
        **_subject(pid, eid, when),
        "valueQuantity": {"value": value, "unit": LAB.result_unit},
        "referenceRange": [
            {
                "low": {"value": float(LAB.ref_low or 0)},
                "high": {"value": float(LAB.ref_high or 0)},
            }
        ],
    }
    if flag:
        obs["interpretation"] = [{"coding": [{"system": sy.OBS_INTERPRETATION, "code": flag}]}]
    return create(store, obs, facility)


def vital(store: Store, pid: str, eid: str, when: str, code: str, value: float, unit: str) -> str:
    return create(
        store,
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": sy.OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
            "code": {"coding": [{"system": sy.LOINC, "code": code}]},
            **_subject(pid, eid, when),
            "valueQuantity": {"value": value, "unit": unit, "system": sy.UCUM, "code": unit},
        },
    )


def bp(store: Store, pid: str, eid: str, when: str, systolic: int, diastolic: int) -> str:
    def part(code: str, v: int) -> dict[str, Any]:
        return {
            "code": {"coding": [{"system": sy.LOINC, "code": code}]},
            "valueQuantity": {"value": v, "unit": "mm[Hg]", "system": sy.UCUM, "code": "mm[Hg]"},
        }

    return create(
        store,
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": sy.OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
            "code": {"coding": [{"system": sy.LOINC, "code": ch.BP}]},
            **_subject(pid, eid, when),
            "component": [part(ch.SYSTOLIC, systolic), part(ch.DIASTOLIC, diastolic)],
        },
    )


def condition(
    store: Store,
    pid: str,
    eid: str,
    code: str,
    status: str,
    recorded: str,
    facility: str = FACILITY,
) -> str:
    return create(
        store,
        {
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": sy.CONDITION_CLINICAL, "code": status}]},
            "category": [
                {"coding": [{"system": sy.CONDITION_CATEGORY, "code": "encounter-diagnosis"}]}
            ],
            "code": {"coding": [{"system": sy.ICD10_VN, "code": code, "display": f"Bệnh {code}"}]},
            "subject": ref(f"Patient/{pid}"),
            "encounter": ref(f"Encounter/{eid}"),
            "recordedDate": recorded,
        },
        facility,
    )


def medication(
    store: Store,
    pid: str,
    eid: str,
    name: str,
    status: str,
    authored: str,
    facility: str = FACILITY,
) -> str:
    return create(
        store,
        {
            "resourceType": "MedicationRequest",
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": {"text": name},
            "subject": ref(f"Patient/{pid}"),
            "encounter": ref(f"Encounter/{eid}"),
            "authoredOn": authored,
            "requester": {"display": "BS. Trần Minh"},
            "dosageInstruction": [
                {
                    "text": "1 Viên/lần * 2 lần/ngày * 7 ngày",
                    "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                    "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "Viên"}}],
                }
            ],
            "dispenseRequest": {
                "quantity": {"value": 14, "unit": "Viên"},
                "expectedSupplyDuration": {"value": 7, "unit": "d", "system": sy.UCUM, "code": "d"},
            },
        },
        facility,
    )


def allergy(store: Store, pid: str, text: str, status: str) -> str:
    return create(
        store,
        {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        "code": status,
                    }
                ]
            },
            "criticality": "high",
            "code": {"text": text},
            "patient": ref(f"Patient/{pid}"),
            "reaction": [{"manifestation": [{"text": "Phát ban"}]}],
        },
    )


def coverage(store: Store, pid: str, number: str, start: str, end: str) -> str:
    return create(
        store,
        {
            "resourceType": "Coverage",
            "identifier": [{"system": sy.BHYT, "value": number}],
            "status": "active",
            "beneficiary": ref(f"Patient/{pid}"),
            "payor": [{"display": "Bảo hiểm xã hội Việt Nam"}],
            "period": {"start": start, "end": end},
        },
    )


def day(days_ago: int, hour: int = 8) -> datetime:
    return (FROZEN - timedelta(days=days_ago)).replace(hour=hour, minute=0, second=0)


@pytest.fixture
def world(store: Store) -> tuple[Place, str, list[str]]:
    where = place(store)
    pid = person(store)
    visits = [
        visit(store, where, pid, arrived=day(d), status="finished", number=1)
        for d in (300, 200, 100)
    ]
    return where, pid, visits


def read_chart(store: Store, pid: str, code: str = "doctor") -> ch.Chart:
    with unit(store, clinician(code), write=False) as repo:
        return chart(repo, pid, TODAY)


def test_chart_gathers_allergies_problems_medicines_and_a_flagged_trend(
    store: Store, world: tuple[Place, str, list[str]]
) -> None:
    _where, pid, (v1, v2, v3) = world
    allergy(store, pid, "Penicillin", "active")
    allergy(store, pid, "Tôm", "resolved")
    condition(store, pid, v1, "I10", "active", stamp(day(300)))
    condition(store, pid, v3, "I10", "active", stamp(day(100)))
    condition(store, pid, v2, "J06", "resolved", stamp(day(200)))
    medication(store, pid, v3, "Amlodipin 5mg", "active", stamp(day(100)))
    medication(store, pid, v2, "Paracetamol 500mg", "completed", stamp(day(200)))
    high = float(LAB.ref_high or 0) * 1.5
    normal = float(LAB.ref_high or 0) * 0.9
    lab(store, pid, v1, stamp(day(300)), normal, "N")
    lab(store, pid, v2, stamp(day(200)), high, "H")
    lab(store, pid, v3, stamp(day(100)), normal, None)  # no interpretation: read from the range
    coverage(store, pid, "DN4270123456789", "2024-01-01", "2025-12-31")

    c = read_chart(store, pid)
    assert c.person.name == "Nguyễn Thị Hương" and c.person.cccd == "027187000123"
    assert c.person.age == 37 and c.person.sex == "female"
    assert (c.person.bhyt, c.person.bhyt_until) == ("DN4270123456789", "2025-12-31")
    assert [(a.substance, a.reactions, a.criticality) for a in c.allergies] == [
        ("Penicillin", ("Phát ban",), "high")
    ]
    assert [(p.code, p.times, p.since) for p in c.problems] == [
        ("I10", 2, day(300).date().isoformat())
    ]
    assert [m.name for m in c.medicines] == ["Amlodipin 5mg"]
    assert (
        c.medicines[0].per_day == 2
        and c.medicines[0].days == 7
        and c.medicines[0].quantity == "14 Viên"
    )
    assert [m.name for m in c.recent_medicines] == ["Paracetamol 500mg"]
    (trend,) = c.results
    assert trend.name == LAB.name and trend.last.flag == "N"
    assert [p.when[:10] for p in trend.points] == [
        day(d).date().isoformat() for d in (300, 200, 100)
    ]
    assert [p.flag for p in trend.points] == ["N", "H", "N"]
    assert trend.points[1].value == pytest.approx(high)
    assert [v.id for v in c.timeline.visits] == [v3, v2, v1] and c.timeline.next_offset is None
    assert c.timeline.visits[0].facility == "Bệnh viện Đa khoa A"
    assert c.timeline.visits[0].clinic == "Phòng khám Nội 1"
    assert [v.diagnosis for v in c.timeline.visits] == [
        "I10 – Bệnh I10",
        "J06 – Bệnh J06",
        "I10 – Bệnh I10",
    ]


def test_imaging_reports_show_with_their_conclusion_lab_reports_do_not(
    store: Store, world: tuple[Place, str, list[str]]
) -> None:
    _where, pid, (v1, v2, _v3) = world
    for eid, section, name, conclusion, when in (
        (v1, "RAD", "Chụp X-quang ngực thẳng", "Không thấy tổn thương", day(300)),
        (v2, "RAD", "Siêu âm ổ bụng", "Gan nhiễm mỡ độ I", day(200)),
        (v2, "LAB", "Phiếu kết quả xét nghiệm", "", day(200)),
    ):
        report = {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "category": [{"coding": [{"system": sy.DIAG_SECTION, "code": section}]}],
            "code": {"text": name},
            "issued": stamp(when),
            **_subject(pid, eid, stamp(when)),
        }
        if conclusion:
            report["conclusion"] = conclusion
        create(store, report)
    c = read_chart(store, pid)
    assert [(i.name, i.conclusion) for i in c.imaging] == [
        ("Siêu âm ổ bụng", "Gan nhiễm mỡ độ I"),  # the latest first
        ("Chụp X-quang ngực thẳng", "Không thấy tổn thương"),
    ]
    assert c.imaging[0].issued == day(200).date().isoformat()


def test_vital_trends_flag_high_pressure_and_fever(
    store: Store, world: tuple[Place, str, list[str]]
) -> None:
    _where, pid, (v1, v2, _v3) = world
    bp(store, pid, v1, stamp(day(300)), 120, 80)
    bp(store, pid, v2, stamp(day(200)), 165, 95)
    vital(store, pid, v2, stamp(day(200)), ch.TEMP, 38.9, "Cel")
    c = read_chart(store, pid, "nurse")
    by_code = {t.code: t for t in c.vitals}
    assert [t.code for t in c.vitals] == [ch.BP, ch.TEMP]
    assert by_code[ch.BP].last.text == "165/95 mmHg" and by_code[ch.BP].last.flag == "H"
    assert [p.flag for p in by_code[ch.BP].points] == ["N", "H"]
    assert by_code[ch.TEMP].last.text == "38.9 °C" and by_code[ch.TEMP].last.flag == "H"


def test_the_timeline_pages(store: Store) -> None:
    where = place(store)
    pid = person(store)
    ids = [visit(store, where, pid, arrived=day(d), status="finished") for d in range(1, 13)]
    with unit(store, clinician(), write=False) as repo:
        first = timeline(repo, f"Patient/{pid}", 0)
        second = timeline(repo, f"Patient/{pid}", first.next_offset or 0)
    assert len(first.visits) == ch.PAGE and first.next_offset == ch.PAGE
    assert [v.id for v in first.visits + second.visits] == ids  # newest (1 day ago) first
    assert len(second.visits) == 2 and second.next_offset is None


def test_an_unknown_patient_is_404(store: Store) -> None:
    with pytest.raises(FhirError) as err, unit(store, clinician(), write=False) as repo:
        chart(repo, "no-such-person", TODAY)
    assert err.value.status == 404


def test_age_on() -> None:
    assert age_on("1987-03-12", date(2025, 3, 11)) == (37, None)
    assert age_on("1987-03-12", date(2025, 3, 12)) == (38, None)
    assert age_on("2023-01-15", date(2025, 3, 1)) == (2, 25)
    assert age_on("1950", date(2025, 3, 1)) == (75, None)
    assert age_on("", date(2025, 3, 1)) == (None, None)
    assert age_on("2030-01-01", date(2025, 3, 1)) == (None, None)


# ---------------------------------------------------------------- worklist


def test_worklist_shows_todays_visits_here_only_with_waiting_minutes(store: Store) -> None:
    where = place(store)
    other = place(store, OTHER_FACILITY, "Trạm Y tế B")
    a, b, c = (
        person(store, name=n, cccd=f"02718700{i:04d}")
        for i, n in enumerate(("Lê Văn A", "Trần Thị B", "Phạm C"))
    )
    waiting = visit(store, where, a, arrived=FROZEN - timedelta(minutes=45), number=1)
    seen = visit(
        store, where, b, arrived=FROZEN - timedelta(minutes=70), status="in-progress", number=2
    )
    done = visit(store, where, c, arrived=FROZEN - timedelta(hours=2), status="finished", number=3)
    # Left open since 23:00 yesterday in Vietnam (the same UTC day as FROZEN); another facility.
    visit(store, where, c, arrived=FROZEN.replace(hour=0) - timedelta(hours=1), number=9)
    d = person(store, name="Đỗ D", cccd="027187009999", facility=OTHER_FACILITY)
    visit(store, other, d, arrived=FROZEN - timedelta(minutes=10))

    with unit(store, clinician(), write=False) as repo:
        now = model.local_now()
        under_way = worklist(repo, now, done=False, clinic=None, offset=0)
        finished = worklist(repo, now, done=True, clinic=None, offset=0)
        nhi = worklist(repo, now, done=False, clinic=where.clinics["03.9002"], offset=0)
    assert [(r.id, r.number, r.name, r.minutes) for r in under_way.rows] == [
        (seen, "002", "Trần Thị B", 20),  # arrived → seen (world.visit sees after 20 minutes)
        (waiting, "001", "Lê Văn A", 45),  # arrived → now
    ]
    assert under_way.rows[0].clinic == "Phòng khám Nội 1" and under_way.rows[1].age is not None
    assert [r.id for r in finished.rows] == [done]
    assert nhi.rows == () and len(nhi.clinics) == 2


def test_worklist_pages(store: Store) -> None:
    where = place(store)
    pid = person(store)
    for n in range(1, 24):
        visit(store, where, pid, arrived=FROZEN - timedelta(minutes=60 - n), number=n)
    with unit(store, clinician("nurse"), write=False) as repo:
        first = worklist(repo, FROZEN, done=False, clinic=None, offset=0)
        rest = worklist(repo, FROZEN, done=False, clinic=None, offset=first.next_offset or 0)
    assert [r.number for r in first.rows + rest.rows] == [f"{n:03d}" for n in range(1, 24)]
    assert rest.next_offset is None


def test_worklist_without_a_registered_facility_is_empty(store: Store) -> None:
    with unit(store, clinician(facility="27099"), write=False) as repo:
        wl = worklist(repo, FROZEN, done=False, clinic=None, offset=0)
    assert not wl.known and wl.rows == ()


# ---------------------------------------------------------------- visit record


def test_visit_record_links_orders_results_diagnoses_and_medicines(store: Store) -> None:
    where = place(store)
    pid = person(store)
    eid = visit(store, where, pid, arrived=FROZEN - timedelta(hours=1), status="in-progress")
    main = condition(store, pid, eid, "E11", "active", stamp(FROZEN))
    second = condition(store, pid, eid, "I10", "active", stamp(FROZEN))
    with store.begin() as conn:
        repo = Repo(conn, Actor.job("27001", "test"))
        enc = repo.read("Encounter", eid).resource
        enc["diagnosis"] = [
            {"condition": ref(f"Condition/{second}"), "rank": 2},
            {"condition": ref(f"Condition/{main}"), "rank": 1},
        ]
        enc["hospitalization"] = {
            "dischargeDisposition": {
                "coding": [{"system": sy.DISCHARGE_DISPOSITION, "code": "home"}],
                "text": "Về nhà",
            }
        }
        repo.update("Encounter", eid, enc)
    order = create(
        store,
        {
            "resourceType": "ServiceRequest",
            "status": "completed",
            "intent": "order",
            "code": {"coding": [service_coding(LAB)], "text": LAB.name},
            "subject": ref(f"Patient/{pid}"),
            "encounter": ref(f"Encounter/{eid}"),
        },
    )
    result = lab(store, pid, eid, stamp(FROZEN), float(LAB.ref_high or 0) * 2, "H")
    create(
        store,
        {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "basedOn": [ref(f"ServiceRequest/{order}")],
            "code": {"text": "Phiếu kết quả xét nghiệm"},
            "subject": ref(f"Patient/{pid}"),
            "encounter": ref(f"Encounter/{eid}"),
            "result": [ref(f"Observation/{result}")],
            "conclusion": "Đường huyết cao",
        },
    )
    medication(store, pid, eid, "Metformin 500mg", "active", stamp(FROZEN))
    create(
        store,
        {
            "resourceType": "Composition",
            "status": "preliminary",
            "type": {"coding": [{"system": sy.LOINC, "code": "11488-4"}]},
            "subject": ref(f"Patient/{pid}"),
            "encounter": ref(f"Encounter/{eid}"),
            "date": stamp(FROZEN),
            "author": [{"display": "BS. Trần Minh"}],
            "title": "Phiếu khám",
            "section": [
                {
                    "title": "Lý do khám",
                    "code": {"coding": [{"system": sy.LOINC, "code": "29299-5"}]},
                    "text": {
                        "status": "generated",
                        "div": f"{XHTML}Khát nhiều &amp; tiểu nhiều</div>",
                    },
                },
                {
                    "title": "Lời dặn",
                    "code": {"coding": [{"system": sy.LOINC, "code": "69730-0"}]},
                    "text": {
                        "status": "generated",
                        "div": f"{XHTML}Ăn ít đường</div>",
                    },
                },
            ],
        },
    )
    with unit(store, clinician("nurse"), write=False) as repo:
        v = visit_record(repo, eid, TODAY)
    assert [(d.code, d.main) for d in v.diagnoses] == [("E11", True), ("I10", False)]
    assert v.reason == "Khát nhiều & tiểu nhiều" and v.advice == "Ăn ít đường"
    (o,) = v.orders
    assert o.name == LAB.name and o.conclusion == "Đường huyết cao"
    assert [r.point.flag for r in o.results] == ["H"] and v.other_results == ()
    assert [m.name for m in v.medicines] == ["Metformin 500mg"]
    assert v.doctor == "BS. Trần Minh" and v.facility_code == "27001"
    assert (v.disposition, v.disposition_text) == ("home", "Về nhà")


def test_visit_record_of_an_unknown_encounter_is_404(store: Store) -> None:
    with pytest.raises(FhirError) as err, unit(store, clinician(), write=False) as repo:
        visit_record(repo, "no-such-visit", TODAY)
    assert err.value.status == 404


def test_narrative_text_is_plain_text() -> None:
    div = f"{XHTML}<p>Ho <b>3</b> ngày</p><p>&lt;script&gt;</p></div>"
    assert narrative_text(div) == "Ho 3 ngày\n<script>"


# ---------------------------------------------------------------- cost with years of history


def test_a_chart_with_five_years_of_history_costs_a_fixed_number_of_searches(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not timed (tests never assert on wall-clock time): counted, which is what a clock hides."""
    config = SynthConfig(seed=7, people=150, years=5, private_clinics=2, random_outbreaks=0)
    resources = list(generate(config, Province(config, [])))
    to_store(store, resources)
    visits = Counter(
        (r["subject"]["reference"], code)
        for code, r in resources
        if r["resourceType"] == "Encounter"
    )
    (subject, facility), n = visits.most_common(1)[0]
    assert n >= 30  # years of visits
    calls: list[str] = []
    search, read = Repo.search, Repo.read

    def counted_search(self: Repo, sreq: Any, names: list[str]) -> Any:
        calls.append(f"search {sreq.rtype}")
        return search(self, sreq, names)

    def counted_read(self: Repo, rtype: str, rid: str) -> Any:
        calls.append(f"read {rtype}")
        return read(self, rtype, rid)

    monkeypatch.setattr(Repo, "search", counted_search)
    monkeypatch.setattr(Repo, "read", counted_read)
    with unit(store, clinician(facility=facility), write=False) as repo:
        c = chart(repo, subject.removeprefix("Patient/"), TODAY)
    busy, calls[:] = list(calls), []
    where = place(store, facility)
    newcomer = person(store, facility=facility)
    visit(store, where, newcomer)
    with unit(store, clinician(facility=facility), write=False) as repo:
        chart(repo, newcomer, TODAY)
    assert len(busy) == 13 and sorted(busy) == sorted(calls)  # one read, 12 searches, for anyone
    assert len(c.timeline.visits) == ch.PAGE and c.timeline.next_offset == ch.PAGE
    assert c.problems or c.results or c.vitals
    assert all(v.facility for v in c.timeline.visits)  # places come from _include, not a query each


def test_the_chart_holds_every_facility_the_index_links_the_person_to(store: Store) -> None:
    here = place(store)
    there = place(store, OTHER_FACILITY, "Trạm Y tế xã Phù Chẩn")
    pid = person(store)
    elsewhere = person(store, name="Nguyen Thi Huong", facility=OTHER_FACILITY)  # same CCCD
    visit(store, here, pid, arrived=day(0, hour=6))  # under way here: the doctor treats her
    old = visit(store, there, elsewhere, arrived=day(40), status="finished")
    result = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": sy.OBSERVATION_CATEGORY, "code": "laboratory"}]}],
        "code": {"coding": [service_coding(LAB)], "text": LAB.name},
        **_subject(elsewhere, old, stamp(day(40))),
        "valueQuantity": {"value": 7.5, "unit": LAB.result_unit},
    }
    create(store, result, OTHER_FACILITY)
    assert old not in [v.id for v in read_chart(store, pid).timeline.visits]

    relink(store, "27000")  # the index finds one person in the two records
    c = read_chart(store, pid)
    (seen,) = [v for v in c.timeline.visits if v.id == old]
    assert seen.facility == "Trạm Y tế xã Phù Chẩn"  # marked by where it happened
    assert [p.value for t in c.results for p in t.points] == [7.5]


def test_entries_of_two_facilities_are_marked_and_the_timeline_is_in_date_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = place(store)
    there = place(store, OTHER_FACILITY, "Trạm Y tế xã Phù Chẩn")
    pid = person(store)
    elsewhere = person(store, name="Nguyen Thi Huong", facility=OTHER_FACILITY)  # same CCCD
    today = visit(store, here, pid, arrived=day(0, hour=6))  # under way here
    visits = {  # days ago → (visit, facility), the two facilities' visits interleaved
        d: (visit(store, where, p, arrived=day(d), status="finished"), where.facility)
        for d, where, p in ((100, here, pid), (60, there, elsewhere), (30, here, pid))
    }
    (v100, _), (v60, _), (v30, _) = visits.values()
    condition(store, elsewhere, v60, "I10", "active", stamp(day(60)), OTHER_FACILITY)
    condition(store, pid, v30, "I10", "active", stamp(day(30)))
    condition(store, elsewhere, v60, "J45", "active", stamp(day(60)), OTHER_FACILITY)
    medication(store, elsewhere, v60, "Salbutamol 2mg", "active", stamp(day(60)), OTHER_FACILITY)
    medication(store, pid, v30, "Amlodipin 5mg", "active", stamp(day(30)))
    lab(store, pid, v100, stamp(day(100)), 5.0, "N")
    lab(store, elsewhere, v60, stamp(day(60)), 6.0, "N", OTHER_FACILITY)  # the latest result
    relink(store, "27000")  # the index finds one person in the two records

    searched: list[str] = []
    search = Repo.search

    def counted(self: Repo, sreq: Any, names: list[str]) -> Any:
        searched.append(str(sreq.rtype))
        return search(self, sreq, names)

    monkeypatch.setattr(Repo, "search", counted)
    c = read_chart(store, pid)
    assert searched.count("Organization") == 1  # every facility's name in one directory search

    assert [(v.id, v.source, v.facility) for v in c.timeline.visits] == [
        (today, FACILITY, "Bệnh viện Đa khoa A"),
        (v30, FACILITY, "Bệnh viện Đa khoa A"),
        (v60, OTHER_FACILITY, "Trạm Y tế xã Phù Chẩn"),
        (v100, FACILITY, "Bệnh viện Đa khoa A"),
    ]
    starts = [v.start for v in c.timeline.visits]
    assert starts == sorted(starts, reverse=True)
    f = c.facilities
    assert f.other(OTHER_FACILITY) and not f.other(FACILITY) and not f.other("")
    assert f.name(OTHER_FACILITY) == "Trạm Y tế xã Phù Chẩn"
    assert {p.code: p.sources for p in c.problems} == {
        "I10": (FACILITY, OTHER_FACILITY),  # recorded at both, most recently here
        "J45": (OTHER_FACILITY,),
    }
    assert {m.name: m.source for m in c.medicines} == {
        "Salbutamol 2mg": OTHER_FACILITY,
        "Amlodipin 5mg": FACILITY,
    }
    (trend,) = c.results
    assert trend.last.source == OTHER_FACILITY and trend.last.value == 6.0
    assert [p.source for p in trend.points] == [FACILITY, OTHER_FACILITY]

    with unit(store, clinician(), write=False) as repo:  # the next page's own lookup
        page = timeline(repo, ch.linked(repo, pid), 2)
    assert [(v.id, v.facility) for v in page.visits] == [
        (v60, "Trạm Y tế xã Phù Chẩn"),
        (v100, "Bệnh viện Đa khoa A"),
    ]
    assert page.facilities.other(OTHER_FACILITY)


def test_a_facility_missing_from_the_directory_shows_its_code(store: Store) -> None:
    here = place(store)
    pid = person(store)
    visit(store, here, pid, arrived=day(0, hour=6))
    with store.begin() as conn:  # a record a province job relayed from a facility not registered
        Repo(conn, Actor.job("", "test")).create(
            {
                "resourceType": "AllergyIntolerance",
                "meta": {"source": sy.facility_source("27099")},
                "code": {"text": "Penicillin"},
                "patient": ref(f"Patient/{pid}"),
            }
        )
    c = read_chart(store, pid)
    (allergy,) = c.allergies
    assert allergy.source == "27099" and c.facilities.name("27099") == "27099"
    assert c.facilities.other("27099")
