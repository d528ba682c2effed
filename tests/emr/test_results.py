"""Results entry: the technicians' work list, lab and imaging results, flags, corrections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from benhan.access import Actor
from benhan.catalog.fhir import service_coding
from benhan.catalog.services import services
from benhan.emr import results as r
from benhan.emr.model import local_now, stamp
from benhan.fhir import systems as sy
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.store.schema import resource
from benhan.store.unit import unit
from tests.access.world import actor
from tests.emr.world import FACILITY, OTHER_FACILITY, Place, create, person, place, visit

GLUCOSE = "23.9036.9036"  # 3.9–6.4 mmol/L, LOINC 14749-6
HDL = "23.9049.9049"  # low limit only: 0.9 mmol/L
HBSAG = "24.9070.9070"  # qualitative, expected "âm tính"
ABO = "22.9032.9032"  # qualitative, ref_text lists the answers
CBC = "22.9027.9027"  # a panel: no unit, no range
XRAY = "18.0122.9117"  # Chụp X-quang ngực thẳng
LAB, IMAGING = "108252007", "363679005"


@dataclass(frozen=True)
class Ward:
    place: Place
    patient: str
    encounter: str
    me: r.Performer | None = None  # the technician, a Practitioner of the facility


def order(
    store: Store,
    ward: Ward,
    code: str = GLUCOSE,
    *,
    minutes_ago: int = 10,
    status: str = "active",
    facility: str = FACILITY,
) -> str:
    """A ServiceRequest in the shape the visit page writes."""
    s = services()[code]
    category = IMAGING if s.kind == "imaging" else LAB
    return create(
        store,
        {
            "resourceType": "ServiceRequest",
            "status": status,
            "intent": "order",
            "category": [{"coding": [{"system": sy.SNOMED, "code": category}]}],
            "code": {"coding": [service_coding(s)], "text": s.name},
            "subject": {"reference": f"Patient/{ward.patient}"},
            "encounter": {"reference": f"Encounter/{ward.encounter}"},
            "authoredOn": stamp(local_now() - timedelta(minutes=minutes_ago)),
            "requester": {"display": "BS Nguyễn An"},
        },
        facility,
    )


@pytest.fixture
def ward(store: Store) -> Ward:
    where = place(store)
    pid = person(store)
    kt = create(store, {"resourceType": "Practitioner", "name": [{"text": "KTV Trần Bình"}]})
    me = r.Performer(f"Practitioner/{kt}", "KTV Trần Bình")
    return Ward(where, pid, visit(store, where, pid, status="in-progress", number=7), me)


def tech(facility: str = FACILITY) -> Actor:
    return actor("lab-technician", facility)


def count(store: Store, rtype: str) -> int:
    with store.read() as conn:
        q = sa.select(sa.func.count()).where(resource.c.rtype == rtype)
        return int(conn.scalar(q) or 0)


def counts(store: Store) -> tuple[int, int, int]:
    return count(store, "Observation"), count(store, "DiagnosticReport"), version_sum(store)


def version_sum(store: Store) -> int:
    with store.read() as conn:
        q = sa.select(sa.func.sum(resource.c.version_id)).where(
            resource.c.rtype == "ServiceRequest"
        )
        return int(conn.scalar(q) or 0)


def read(store: Store, rtype: str, rid: str) -> dict[str, Any]:
    with store.read() as conn:
        return Repo(conn, Actor.job(FACILITY, "test")).read(rtype, rid).resource


ANON = r.Performer(None, "KTV Bình")


def enter(
    store: Store, order_id: str, at: datetime | None = None, *, me: r.Performer = ANON, **typed: str
) -> r.Result:
    with unit(store, tech(), write=True) as repo:
        return r.record(repo, order_id, r.Entry(**typed), me, at or local_now())


def listing(store: Store, who: Actor | None = None, **kw: Any) -> r.Listing:
    args = {"kind": None, "text": "", "page": 0, "today": local_now().date()} | kw
    with unit(store, who or tech(), write=False) as repo:
        return r.worklist(repo, **args)


def ids(page: r.Listing) -> list[str]:
    return [o.id for o in page.items]


# ---- the work list ----------------------------------------------------------------------


def test_worklist_holds_the_active_orders_of_the_facility_oldest_first(
    store: Store, ward: Ward
) -> None:
    newer = order(store, ward, minutes_ago=5)
    older = order(store, ward, XRAY, minutes_ago=50)
    order(store, ward, status="completed")
    order(store, ward, status="revoked")
    page = listing(store)
    assert ids(page) == [older, newer]
    first = page.items[0]
    assert (first.kind, first.patient_name, first.queue) == ("imaging", "Nguyễn Thị Hương", "007")
    assert first.name == "Chụp X-quang ngực thẳng"
    assert page.has_next is False


def test_other_facilities_orders_stay_out_even_for_a_patient_treated_here(
    store: Store, ward: Ward
) -> None:
    there = place(store, OTHER_FACILITY, "Trạm Y tế B")
    stranger = person(store, "Lê Văn Nam", "027190000456", facility=OTHER_FACILITY)
    far = visit(store, there, stranger, number=2)
    unrelated = order(store, Ward(there, stranger, far), facility=OTHER_FACILITY, minutes_ago=30)
    # the same patient, also seen at the other facility: visible to a clinician, not our work
    theirs = visit(store, there, ward.patient)
    treated = order(store, Ward(there, ward.patient, theirs), facility=OTHER_FACILITY)
    mine = order(store, ward)
    assert ids(listing(store)) == [mine]
    assert ids(listing(store, tech(OTHER_FACILITY))) == [unrelated, treated]


def test_kind_filter(store: Store, ward: Ward) -> None:
    lab = order(store, ward, GLUCOSE)
    img = order(store, ward, XRAY)
    assert ids(listing(store, kind="lab")) == [lab]
    assert ids(listing(store, kind="imaging")) == [img]


def test_paging(store: Store, ward: Ward) -> None:
    made = [order(store, ward, minutes_ago=100 - i) for i in range(r.PAGE_SIZE + 2)]
    first, second = listing(store), listing(store, page=1)
    assert ids(first) == made[: r.PAGE_SIZE] and first.has_next
    assert ids(second) == made[r.PAGE_SIZE :] and not second.has_next


def test_search_by_part_of_the_name_or_queue_number(store: Store, ward: Ward) -> None:
    mine = order(store, ward)
    other_id = person(store, "Phạm Minh Tuấn", "027190000789", gender="male")
    other = order(store, Ward(ward.place, other_id, visit(store, ward.place, other_id, number=8)))
    assert ids(listing(store, text="huong")) == [mine]
    assert ids(listing(store, text="  Minh  Tuấn ")) == [other]
    assert ids(listing(store, text="7")) == [mine]
    assert ids(listing(store, text="008")) == [other]
    assert ids(listing(store, text="9")) == []
    assert ids(listing(store, text="không có ai")) == []


# ---- flags ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3.9", "N"),  # the limits are inside the range
        ("6.4", "N"),
        ("6.41", "H"),
        ("3.89", "L"),
        ("11.4", "H"),  # 6.4 + 2 × 2.5: still only high
        ("11.41", "HH"),
        ("0", "L"),  # 3.9 − 2 × 2.5 < 0: a glucose cannot be critically low by this rule
    ],
)
def test_glucose_flags_at_the_boundaries(value: str, expected: str) -> None:
    assert r.flag(Decimal(value), Decimal("3.9"), Decimal("6.4")) == expected


def test_critical_low_and_one_sided_ranges() -> None:
    assert r.flag(Decimal("119"), Decimal(120), Decimal(160)) == "L"  # Hb g/L
    assert r.flag(Decimal("40"), Decimal(120), Decimal(160)) == "L"
    assert r.flag(Decimal("39.9"), Decimal(120), Decimal(160)) == "LL"
    assert r.flag(Decimal("0.1"), Decimal("0.9"), None) == "L"  # HDL: no width, never critical
    assert r.flag(Decimal("99"), Decimal("0.9"), None) == "N"
    assert r.flag(Decimal("99"), None, Decimal(5)) == "H"


@pytest.mark.parametrize(
    ("typed", "number"), [("5,6", "5.6"), (" 5.60 ", "5.60"), ("12", "12"), ("+0,5", "0.5")]
)
def test_numbers_as_typed(typed: str, number: str) -> None:
    assert r.parse_number(typed) == Decimal(number)


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("", "missing-value"),
        ("   ", "missing-value"),
        ("cao", "not-a-number"),
        ("5,6,7", "not-a-number"),
        ("1.234,5", "not-a-number"),
        ("NaN", "not-a-number"),
        ("1e3", "not-a-number"),
        ("-1", "negative"),
    ],
)
def test_numbers_refused(typed: str, code: str) -> None:
    with pytest.raises(r.ResultError) as err:
        r.parse_number(typed)
    assert (err.value.code, err.value.field) == (code, "value")


def test_qualitative_flags() -> None:
    assert r.qualitative_flag("Âm tính", "âm tính") == "N"
    assert r.qualitative_flag("am tinh", "âm tính") == "N"
    assert r.qualitative_flag("dương tính", "âm tính") == "A"
    assert r.qualitative_flag("O, Rh(D)+", "A/B/AB/O, Rh(D)") is None


# ---- entering results -------------------------------------------------------------------


def test_a_numeric_lab_result_is_recorded_linked_and_flagged(store: Store, ward: Ward) -> None:
    sr = order(store, ward)
    assert ward.me is not None
    done = enter(store, sr, me=ward.me, value="7,2", comment="Mẫu hơi vỡ hồng cầu")
    obs = read(store, "Observation", done.observations[0]["id"])
    dr = read(store, "DiagnosticReport", done.report["id"])
    assert obs["status"] == "final"
    assert obs["category"][0]["coding"][0]["code"] == "laboratory"
    codes = {(c["system"], c["code"]) for c in obs["code"]["coding"]}
    assert codes == {(sy.SERVICES, GLUCOSE), (sy.LOINC, "14749-6")}
    assert obs["valueQuantity"] == {
        "value": 7.2,
        "unit": "mmol/L",
        "system": sy.UCUM,
        "code": "mmol/L",
    }
    assert obs["referenceRange"] == [
        {
            "low": {"value": 3.9, "unit": "mmol/L", "system": sy.UCUM, "code": "mmol/L"},
            "high": {"value": 6.4, "unit": "mmol/L", "system": sy.UCUM, "code": "mmol/L"},
        }
    ]
    assert obs["interpretation"][0]["coding"][0] == {
        "system": sy.OBS_INTERPRETATION,
        "code": "H",
        "display": "High",
    }
    assert obs["basedOn"] == [{"reference": f"ServiceRequest/{sr}"}]
    assert obs["subject"] == {"reference": f"Patient/{ward.patient}"}
    assert obs["encounter"] == {"reference": f"Encounter/{ward.encounter}"}
    assert obs["performer"] == [{"reference": ward.me.practitioner, "display": "KTV Trần Bình"}]
    assert dr_performer(store, done) == obs["performer"]
    assert obs["note"][0]["text"] == "Mẫu hơi vỡ hồng cầu"
    assert obs["issued"].endswith("+07:00") and obs["effectiveDateTime"]
    assert dr["status"] == "final"
    assert dr["category"][0]["coding"][0] == {
        "system": sy.DIAG_SECTION,
        "code": "LAB",
        "display": "Laboratory",
    }
    assert dr["result"] == [{"reference": f"Observation/{obs['id']}"}]
    assert dr["basedOn"] == obs["basedOn"]
    assert (dr["encounter"], dr["subject"]) == (obs["encounter"], obs["subject"])
    assert read(store, "ServiceRequest", sr)["status"] == "completed"
    assert ids(listing(store)) == []


def dr_performer(store: Store, done: r.Result) -> Any:
    return read(store, "DiagnosticReport", done.report["id"])["performer"]


def test_a_technician_without_a_practitioner_is_named(store: Store, ward: Ward) -> None:
    done = enter(store, order(store, ward), value="5")
    assert dr_performer(store, done) == [{"display": "KTV Bình"}]
    assert done.observations[0]["performer"] == [{"display": "KTV Bình"}]
    assert done.flag == "N"


def test_a_qualitative_result(store: Store, ward: Ward) -> None:
    sr = order(store, ward, HBSAG)
    done = enter(store, sr, value="Dương Tính")
    obs = read(store, "Observation", done.observations[0]["id"])
    assert obs["valueString"] == "dương tính"
    assert "valueQuantity" not in obs
    assert obs["referenceRange"] == [{"text": "âm tính"}]
    assert r.flag_of(obs) == "A"
    abo = enter(store, order(store, ward, ABO), value="O, Rh(D)+")
    assert "interpretation" not in abo.observations[0]
    cbc = enter(store, order(store, ward, CBC), value="HC 4,5 T/L; BC 7 G/L")
    assert cbc.observations[0]["valueString"] == "HC 4,5 T/L; BC 7 G/L"
    assert "referenceRange" not in cbc.observations[0]


def test_an_imaging_report(store: Store, ward: Ward) -> None:
    sr = order(store, ward, XRAY)
    done = enter(
        store, sr, findings="Hai phế trường sáng, bóng tim không to.", conclusion="Bình thường"
    )
    dr = read(store, "DiagnosticReport", done.report["id"])
    obs = read(store, "Observation", done.observations[0]["id"])
    assert dr["category"][0]["coding"][0]["code"] == "RAD"
    assert dr["conclusion"] == "Bình thường"
    assert dr["code"]["coding"] == [service_coding(services()[XRAY])]
    assert dr["result"] == [{"reference": f"Observation/{obs['id']}"}]
    assert dr["basedOn"] == [{"reference": f"ServiceRequest/{sr}"}]
    assert obs["category"][0]["coding"][0]["code"] == "imaging"
    assert obs["valueString"] == "Hai phế trường sáng, bóng tim không to."
    assert "interpretation" not in obs and "referenceRange" not in obs
    assert read(store, "ServiceRequest", sr)["status"] == "completed"


@pytest.mark.parametrize(
    ("code", "typed", "error", "field"),
    [
        (GLUCOSE, {"value": "cao"}, "not-a-number", "value"),
        (GLUCOSE, {"value": ""}, "missing-value", "value"),
        (GLUCOSE, {"value": "-2"}, "negative", "value"),
        (GLUCOSE, {"value": "5", "comment": "x" * 1001}, "too-long", "comment"),
        (HBSAG, {"value": "  "}, "missing-value", "value"),
        (XRAY, {"findings": "", "conclusion": "Bình thường"}, "missing-findings", "findings"),
        (XRAY, {"findings": "Bình thường", "conclusion": " "}, "missing-conclusion", "conclusion"),
    ],
)
def test_bad_entries_write_nothing(
    store: Store, ward: Ward, code: str, typed: dict[str, str], error: str, field: str
) -> None:
    sr = order(store, ward, code)
    before = counts(store)
    with pytest.raises(r.ResultError) as err:
        enter(store, sr, **typed)
    assert (err.value.code, err.value.field) == (error, field)
    assert counts(store) == before
    assert read(store, "ServiceRequest", sr)["status"] == "active"


def test_an_order_done_or_withdrawn_or_unknown_is_refused(store: Store, ward: Ward) -> None:
    sr = order(store, ward)
    enter(store, sr, value="5")
    revoked = order(store, ward, status="revoked")
    there = place(store, OTHER_FACILITY, "Trạm Y tế B")
    theirs = order(
        store, Ward(there, ward.patient, visit(store, there, ward.patient)), facility=OTHER_FACILITY
    )
    before = counts(store)
    for order_id, code in (
        (sr, "already-done"),
        (revoked, "not-active"),
        ("khong-co", "unknown-order"),
        (theirs, "unknown-order"),
        (ward.encounter, "unknown-order"),
    ):
        with pytest.raises(r.ResultError) as err:
            enter(store, order_id, value="6")
        assert err.value.code == code
    assert counts(store) == before


# ---- corrections and the recent list ----------------------------------------------------


def fix(store: Store, order_id: str, **typed: str) -> r.Result:
    with unit(store, tech(), write=True) as repo:
        return r.correct(repo, order_id, r.Entry(**typed), ANON, local_now())


def test_a_correction_updates_value_flag_and_status(store: Store, ward: Ward) -> None:
    sr = order(store, ward)
    done = enter(store, sr, value="72", comment="")
    assert done.flag == "HH"
    fixed = fix(store, sr, value="7,2", reason="Nhập nhầm dấu thập phân")
    obs = read(store, "Observation", done.observations[0]["id"])
    dr = read(store, "DiagnosticReport", done.report["id"])
    assert obs["id"] == fixed.observations[0]["id"]
    assert (obs["status"], obs["valueQuantity"]["value"], r.flag_of(obs)) == ("corrected", 7.2, "H")
    assert obs["meta"]["versionId"] == "2"
    assert obs["note"][-1]["text"] == "Sửa kết quả: Nhập nhầm dấu thập phân"
    assert obs["referenceRange"][0]["high"]["value"] == 6.4
    assert dr["status"] == "corrected"
    assert count(store, "Observation") == 1


def test_an_imaging_correction(store: Store, ward: Ward) -> None:
    sr = order(store, ward, XRAY)
    enter(store, sr, findings="Bóng tim to.", conclusion="Bóng tim to")
    fixed = fix(
        store, sr, findings="Bóng tim không to.", conclusion="Bình thường", reason="Nhầm phim"
    )
    assert fixed.report["conclusion"] == "Bình thường"
    assert fixed.observations[0]["valueString"] == "Bóng tim không to."
    assert fixed.report["status"] == fixed.observations[0]["status"] == "corrected"


@pytest.mark.parametrize(
    ("typed", "code", "field"),
    [
        ({"value": "7", "reason": "sai"}, "bad-reason", "reason"),
        ({"value": "bảy", "reason": "Nhập nhầm"}, "not-a-number", "value"),
    ],
)
def test_bad_corrections_write_nothing(
    store: Store, ward: Ward, typed: dict[str, str], code: str, field: str
) -> None:
    sr = order(store, ward)
    enter(store, sr, value="72")
    before = counts(store)
    with pytest.raises(r.ResultError) as err:
        fix(store, sr, **typed)
    assert (err.value.code, err.value.field) == (code, field)
    assert counts(store) == before
    active = order(store, ward)
    with pytest.raises(r.ResultError) as err:
        fix(store, active, value="5", reason="Nhập nhầm")
    assert err.value.code == "nothing-to-correct"


def test_recent_results_newest_first(store: Store, ward: Ward) -> None:
    first = enter(store, order(store, ward), local_now() - timedelta(minutes=5), value="5")
    second = enter(
        store, order(store, ward, XRAY), findings="Bình thường.", conclusion="Bình thường"
    )
    with unit(store, tech(), write=False) as repo:
        page = r.recent(repo, page=0)
    assert [x.report["id"] for x in page.items] == [second.report["id"], first.report["id"]]
    assert page.items[1].flag == "N"
    assert page.items[0].patient is not None and page.items[0].patient["id"] == ward.patient
    with unit(store, tech(OTHER_FACILITY), write=False) as repo:
        assert r.recent(repo, page=0).items == []


def test_age() -> None:
    on = date(2025, 3, 11)
    assert r.age({"birthDate": "1987-03-12"}, on) == 37
    assert r.age({"birthDate": "1987-03-11"}, on) == 38
    assert r.age({"birthDate": "1987"}, on) == 38
    assert r.age({}, on) is None


def test_a_report_covering_several_orders_answers_each_with_its_own_value(
    store: Store, ward: Ward
) -> None:
    """Imported reports (the synthetic province's) cover several orders, without basedOn on
    their Observations: each order shows, and corrects, only its own value."""
    glucose, hdl = (
        order(store, ward, GLUCOSE, status="completed"),
        order(store, ward, HDL, status="completed"),
    )
    obs = [
        create(
            store,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [service_coding(services()[code])]},
                "subject": {"reference": f"Patient/{ward.patient}"},
                "encounter": {"reference": f"Encounter/{ward.encounter}"},
                "valueQuantity": {"value": value, "unit": "mmol/L"},
            },
        )
        for code, value in ((GLUCOSE, 5.0), (HDL, 1.2))
    ]
    create(
        store,
        {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "basedOn": [{"reference": f"ServiceRequest/{i}"} for i in (glucose, hdl)],
            "code": {"text": "Phiếu kết quả xét nghiệm"},
            "subject": {"reference": f"Patient/{ward.patient}"},
            "encounter": {"reference": f"Encounter/{ward.encounter}"},
            "issued": stamp(local_now()),
            "result": [{"reference": f"Observation/{i}"} for i in obs],
        },
    )
    with unit(store, tech(), write=False) as repo:
        found = r.find_order(repo, hdl)
        assert found is not None
        shown = r.result_of(repo, found)
    assert shown is not None and [o["id"] for o in shown.observations] == [obs[1]]
    fixed = fix(store, hdl, value="0,5", reason="Nhầm ống mẫu")
    assert fixed.observations[0]["id"] == obs[1] and r.flag_of(fixed.observations[0]) == "L"
    assert read(store, "Observation", obs[0])["status"] == "final"
