"""Registration: people created or updated without duplicates, their card, and queue numbers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from benhan.emr.citizen_card import parse
from benhan.emr.clinics import Clinic, clinics
from benhan.emr.insurance import check_card
from benhan.emr.model import QUEUE_NUMBER, FacilityRefs, facility_refs, local_now, queue_label
from benhan.emr.registration import (
    AlreadyQueued,
    Person,
    PersonError,
    by_cccd,
    person_from_card,
    read_person,
    record_coverage,
    register_visit,
    save_person,
)
from benhan.fhir import systems as sy
from benhan.store.database import Store
from benhan.store.schema import resource
from benhan.store.unit import unit
from tests.access.world import actor
from tests.emr.world import KHAM_NHI, KHAM_NOI, Place, person, place, visit

TODAY = date(2025, 3, 1)
QR = "027187000123|125678901|Nguyễn Thị Hương|12031987|Nữ|Từ Sơn, Bắc Ninh|15062021"
FORM = {
    "name": "Trần  Văn Nam",
    "birth_date": "05/09/1986",
    "sex": "male",
    "cccd": "027086000111",
    "cmnd": "",
    "phone": "0912 345 678",
    "address": "12 Lý Thái Tổ, Từ Sơn",
}


def count(store: Store, rtype: str) -> int:
    q = sa.select(sa.func.count()).where(resource.c.rtype == rtype, resource.c.deleted.is_(False))
    with store.read() as conn:
        return int(conn.scalar(q) or 0)


def setup(store: Store) -> tuple[FacilityRefs, dict[str, Clinic]]:
    place(store)
    with unit(store, actor("registrar"), write=False) as repo:
        refs = facility_refs(repo)
        assert refs is not None
        rooms = {c.service: c for c in clinics(repo, refs)}
    return refs, rooms


# ---- the person ------------------------------------------------------------------------------


def test_a_typed_form_reads_into_a_person() -> None:
    p = read_person(FORM, today=TODAY)
    assert p == Person(
        "Trần Văn Nam", date(1986, 9, 5), "male", "027086000111", "", "0912345678",
        "12 Lý Thái Tổ, Từ Sơn",
    )  # fmt: skip
    assert read_person({**FORM, "birth_date": "1986-09-05"}, today=TODAY).birth_date == date(
        1986, 9, 5
    )


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"name": ""}, ["name"]),
        ({"name": "Nam 2"}, ["name"]),
        ({"birth_date": "31/02/1986"}, ["birth_date"]),
        ({"birth_date": "02/03/2025", "cccd": ""}, ["birth_date"]),  # tomorrow
        ({"birth_date": "01/01/1890", "cccd": ""}, ["birth_date"]),
        ({"birth_date": "05/09/1996"}, ["cccd"]),  # the CCCD says born in 1986
        ({"birth_date": ""}, ["birth_date"]),
        ({"sex": "x"}, ["sex"]),
        ({"cccd": "12345"}, ["cccd"]),
        ({"cccd": "027186000111"}, ["cccd"]),  # digit 4 says female, the form says male
        ({"cmnd": "12ab"}, ["cmnd"]),
        ({"phone": "12345"}, ["phone"]),
        ({"name": "", "sex": "", "phone": "abc"}, ["name", "sex", "phone"]),
    ],
)
def test_every_wrong_field_is_named(changes: dict[str, str], fields: list[str]) -> None:
    with pytest.raises(PersonError) as err:
        read_person({**FORM, **changes}, today=TODAY)
    assert [f for f, _ in err.value.problems] == fields
    assert all(" / " in text for _, text in err.value.problems)  # Vietnamese / English


def test_a_new_person_gets_the_facility_patient_code(store: Store) -> None:
    refs, _ = setup(store)
    with unit(store, actor("registrar"), write=True) as repo:
        a = save_person(repo, refs, read_person(FORM, today=TODAY))
        b = save_person(repo, refs, person_from_card(parse(QR, today=TODAY)))
        stored = repo.read("Patient", b.id).resource
    year = local_now().year % 100
    assert (a.created, b.created) == (True, True)
    assert (a.code, b.code) == (f"{year:02d}000001", f"{year:02d}000002")
    ids = {i["system"]: i["value"] for i in stored["identifier"]}
    assert ids == {sy.CCCD: "027187000123", sy.CMND: "125678901", sy.ma_bn("27001"): b.code}
    assert stored["name"][0] == {
        "use": "official",
        "text": "Nguyễn Thị Hương",
        "family": "Nguyễn",
        "given": ["Thị Hương"],
    }
    assert (stored["gender"], stored["birthDate"]) == ("female", "1987-03-12")
    assert stored["address"] == [{"use": "home", "text": "Từ Sơn, Bắc Ninh", "country": "VN"}]
    assert stored["managingOrganization"] == {"reference": refs.organization}


def test_the_same_card_updates_never_duplicates(store: Store) -> None:
    refs, _ = setup(store)
    existing = person(store)  # 027187000123, registered before, without a patient code
    card = person_from_card(parse(QR, today=TODAY))
    with unit(store, actor("registrar"), write=True) as repo:
        first = save_person(repo, refs, card)
        again = save_person(repo, refs, Person(**{**card.__dict__, "phone": "0987654321"}))
        stored = repo.read("Patient", existing).resource
    assert (first.id, again.id) == (existing, existing)
    assert (first.created, again.created, first.code) == (False, False, again.code)
    assert count(store, "Patient") == 1
    assert stored["telecom"] == [{"system": "phone", "value": "0987654321", "use": "mobile"}]
    assert len([i for i in stored["identifier"] if i["system"] == sy.ma_bn("27001")]) == 1


def test_a_cccd_of_someone_else_is_refused(store: Store) -> None:
    refs, _ = setup(store)
    huong = person(store)
    nam = person(store, "Trần Văn Nam", "027086000111", "1986-09-05", "male")
    taken = Person("Trần Văn Nam", date(1986, 9, 5), "male", "027187000123")
    with pytest.raises(PersonError) as err, unit(store, actor("registrar"), write=True) as repo:
        save_person(repo, refs, taken, nam)
    assert [f for f, _ in err.value.problems] == ["cccd"]
    with unit(store, actor("registrar"), write=False) as repo:
        holder = by_cccd(repo, "027187000123")
    assert holder is not None and holder["id"] == huong


def test_patient_codes_skip_a_code_already_taken(store: Store) -> None:
    refs, _ = setup(store)
    year = local_now().year % 100
    taken = f"{year:02d}000001"
    pid = person(store)
    with unit(store, actor("registrar"), write=True) as repo:
        p = repo.read("Patient", pid).resource
        p["identifier"].append({"system": sy.ma_bn("27001"), "value": f"{year:02d}000002"})
        repo.update("Patient", pid, p)
        # one coded patient → the count proposes ...002, which is taken: the next free one
        made = save_person(repo, refs, read_person(FORM, today=TODAY))
    assert made.code == f"{year:02d}000003" and taken != made.code


# ---- the card --------------------------------------------------------------------------------


def test_a_usable_card_is_recorded_once_with_its_benefit(store: Store) -> None:
    _refs, _ = setup(store)
    pid = person(store)
    today = local_now().date()
    check = check_card(
        "DN4270123456789", today - timedelta(days=100), today + timedelta(days=20), today=today
    )
    assert check.usable and check.warnings  # expires within 30 days
    with unit(store, actor("registrar"), write=True) as repo:
        cid = record_coverage(repo, pid, check)
        again = record_coverage(repo, pid, check)
        cov = repo.read("Coverage", cid).resource
        patient = repo.read("Patient", pid).resource
    assert cid == again and count(store, "Coverage") == 1
    assert cov["beneficiary"] == {"reference": f"Patient/{pid}"}
    assert cov["status"] == "active" and cov["subscriberId"] == "DN4270123456789"
    assert [(c["type"]["coding"][0]["code"], c["value"]) for c in cov["class"]] == [
        ("group", "DN"),
        ("plan", "4"),
    ]
    assert cov["costToBeneficiary"][0]["valueQuantity"]["value"] == 20  # the fund pays 80 %
    assert {"system": sy.BHYT, "value": "DN4270123456789"}.items() <= next(
        i for i in patient["identifier"] if i["system"] == sy.BHYT
    ).items()


def test_an_unusable_card_is_not_recorded(store: Store) -> None:
    setup(store)
    pid = person(store)
    today = local_now().date()
    expired = check_card(
        "DN4270123456789", date(2020, 1, 1), today - timedelta(days=1), today=today
    )
    with pytest.raises(ValueError), unit(store, actor("registrar"), write=True) as repo:
        record_coverage(repo, pid, expired)
    assert count(store, "Coverage") == 0


# ---- the visit -------------------------------------------------------------------------------


def test_numbers_count_per_clinic_and_day(store: Store) -> None:
    refs, rooms = setup(store)
    a, b = person(store), person(store, "Trần Văn Nam", "027086000111", "1986-09-05", "male")
    with unit(store, actor("registrar"), write=True) as repo:
        e1 = register_visit(repo, refs, a, rooms[KHAM_NOI])
        e2 = register_visit(repo, refs, b, rooms[KHAM_NOI])
        e3 = register_visit(repo, refs, a, rooms[KHAM_NHI])
    assert [queue_label(e) for e in (e1, e2, e3)] == ["001", "002", "001"]
    day = local_now().date().isoformat()
    assert e2["identifier"] == [{"system": QUEUE_NUMBER, "value": f"{day}/{rooms[KHAM_NOI].id}/2"}]
    assert e1["status"] == "arrived" and e1["class"]["code"] == "AMB"
    assert e1["subject"] == {"reference": f"Patient/{a}"}
    assert e1["location"][0]["location"] == {"reference": f"Location/{rooms[KHAM_NOI].id}"}
    assert e1["type"][0]["coding"][0]["code"] == KHAM_NOI
    assert e1["serviceProvider"] == {"reference": refs.organization}
    assert e1["period"]["start"].startswith(day) and e1["period"]["start"].endswith("+07:00")


def test_a_second_visit_at_the_same_clinic_is_refused_with_the_number(store: Store) -> None:
    refs, rooms = setup(store)
    a = person(store)
    with unit(store, actor("registrar"), write=True) as repo:
        first = register_visit(repo, refs, a, rooms[KHAM_NOI])
    with pytest.raises(AlreadyQueued) as err, unit(store, actor("registrar"), write=True) as repo:
        register_visit(repo, refs, a, rooms[KHAM_NOI])
    assert err.value.encounter["id"] == first["id"]
    assert count(store, "Encounter") == 1


def test_after_a_finished_visit_the_next_number_follows_and_yesterday_is_ignored(
    store: Store,
) -> None:
    refs, rooms = setup(store)
    a = person(store)
    now = local_now()
    here = Place("27001", refs.organization, refs.location, {s: c.id for s, c in rooms.items()})
    visit(store, here, a, number=1, arrived=now - timedelta(minutes=5), status="finished")
    visit(store, here, a, number=7, arrived=now - timedelta(days=1))  # yesterday, never closed
    with unit(store, actor("registrar"), write=True) as repo:
        again = register_visit(repo, refs, a, rooms[KHAM_NOI])
    assert queue_label(again) == "002"


def test_desks_registering_at_once_get_different_numbers(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    refs, rooms = setup(store)
    people = [person(store, cccd=f"02718700{i:04d}") for i in range(6)]

    def one(pid: str) -> str:
        with unit(store, actor("registrar"), write=True) as repo:
            return queue_label(register_visit(repo, refs, pid, rooms[KHAM_NOI]))

    with ThreadPoolExecutor(max_workers=3) as pool:
        labels = list(pool.map(one, people))
    assert sorted(labels) == [f"{n:03d}" for n in range(1, 7)]
