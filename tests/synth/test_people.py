"""The person generator: identifiers pass their checks, output is reproducible, shapes are real."""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from functools import cache

import orjson
import pytest

from benhan.fhir import systems
from benhan.fhir.validation import check
from benhan.synth.people import PeopleGenerator, Person, to_fhir_patient
from benhan.synth.places import communes


@cache
def _people(seed: int, n: int) -> tuple[Person, ...]:
    return tuple(PeopleGenerator(seed, communes(), ma_dkbd=lambda c: "24001").people(n))


def _json(people: tuple[Person, ...]) -> bytes:
    return orjson.dumps([dataclasses.asdict(p) for p in people])


def test_every_identifier_passes_its_check() -> None:
    for p in _people(7, 5000):
        assert p.cccd is not None
        assert systems.check_cccd(p.cccd, birth_year=p.birth_date.year, sex=p.sex) == [], p
        assert p.cmnd is None or systems.check_cmnd(p.cmnd) == []
        if p.bhyt:
            assert systems.check_bhyt(p.bhyt.legacy_code) == [], p.bhyt
            assert systems.check_bhyt(p.bhyt.bhxh_number) == []
            assert p.bhyt.valid_from <= p.bhyt.valid_to
            assert p.bhyt.ma_dkbd == "24001"
        assert p.phone is None or (
            len(p.phone) == 10 and p.phone[:2] in {"03", "05", "07", "08", "09"}
        )


def test_cccd_numbers_are_unique_and_mostly_local() -> None:
    people = _people(7, 5000)
    numbers = [p.cccd for p in people]
    assert len(set(numbers)) == len(numbers)
    local = sum(p.cccd[:3] in {"024", "027"} for p in people if p.cccd) / len(people)
    assert 0.88 < local < 0.97


def test_same_seed_same_people_byte_for_byte() -> None:
    a = PeopleGenerator(11, communes()).people(1000)
    b = PeopleGenerator(11, communes()).people(1000)
    assert repr(a) == repr(b)
    assert _json(tuple(a)) == _json(tuple(b))


def test_different_seed_different_people() -> None:
    assert _json(_people(1, 1000)) != _json(_people(2, 1000))


def test_family_names_follow_the_spec() -> None:
    people = _people(3, 20000)
    share = Counter(p.family for p in people)
    n = len(people)
    assert 0.36 <= share["Nguyễn"] / n <= 0.42  # specs §6.1: 38–40 %
    assert 0.09 <= share["Trần"] / n <= 0.13
    top14 = {"Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi"}
    top14 |= {"Đỗ", "Hồ", "Ngô", "Dương", "Lý"}  # with Huỳnh and Võ: 14 names, 16 spellings
    assert 0.85 <= sum(share[f] for f in top14) / n <= 0.93


def test_middle_names_are_a_tendency() -> None:
    people = _people(3, 20000)
    van = [p.sex for p in people if "Văn" in p.middle]
    thi = [p.sex for p in people if "Thị" in p.middle]
    assert van.count("male") / len(van) > 0.97
    assert thi.count("female") / len(thi) == 1.0
    women = [p for p in people if p.sex == "female"]
    assert 0.25 < sum("Thị" in p.middle for p in women) / len(women) < 0.65


def test_sex_ratio_and_age_pyramid() -> None:
    people = _people(3, 20000)
    n = len(people)
    assert 0.47 < sum(p.sex == "male" for p in people) / n < 0.52
    ages = [p.age() for p in people]
    assert 0.20 <= sum(a < 15 for a in ages) / n <= 0.26  # GSO 2019: 24.3 %
    assert 0.06 <= sum(a >= 65 for a in ages) / n <= 0.12
    assert max(ages) < 90 and min(ages) >= 0
    old = [p for p in people if p.age() >= 75]
    assert sum(p.sex == "female" for p in old) / len(old) > 0.5


def test_households_share_address_and_fathers_name() -> None:
    members: dict[str, list[Person]] = defaultdict(list)
    for p in _people(3, 20000):
        members[p.household_id].append(p)
    sizes = Counter(len(m) for m in members.values())
    assert set(sizes) <= set(range(1, 8))
    assert 3.0 < sum(k * v for k, v in sizes.items()) / sum(sizes.values()) < 4.0
    for people in members.values():
        assert len({(p.commune.code, p.address_line) for p in people}) == 1
        head = people[0]
        for child in (p for p in people if p.role == "child"):
            assert child.family == head.family
            assert child.age() < head.age()


def test_insurance_coverage_and_groups() -> None:
    people = _people(3, 20000)
    insured = [p for p in people if p.bhyt]
    assert 0.91 < len(insured) / len(people) < 0.95  # ~93 %
    for p in insured:
        assert p.bhyt is not None
        if p.age() < 6:
            assert p.bhyt.group == "TE"
    assert {"TE", "HS", "HT", "DN", "GD", "HN"} <= {p.bhyt.group for p in insured if p.bhyt}


def test_every_patient_is_valid_fhir() -> None:
    for i, p in enumerate(_people(7, 2000)):
        patient = to_fhir_patient(p, "24001", f"BN{i:06d}")
        assert check(patient) == [], (p, patient)


def test_patient_carries_identifiers_name_and_commune() -> None:
    p = _people(7, 10)[0]
    patient = to_fhir_patient(p, "27005", "BN1")
    systems_used = {i["system"] for i in patient["identifier"]}
    assert {systems.CCCD, systems.ma_bn("27005")} <= systems_used
    assert patient["name"][0]["family"] == p.family
    assert patient["name"][0]["given"] == [*p.middle, p.given]
    assert patient["birthDate"] == p.birth_date.isoformat()
    address = patient["address"][0]
    assert address["extension"] == [{"url": systems.COMMUNE_CODE_EXT, "valueCode": p.commune.code}]
    assert address["state"] == "Bắc Ninh"
    assert "district" not in address


def test_no_communes_is_an_error() -> None:
    with pytest.raises(ValueError, match="communes"):
        PeopleGenerator(1, [])
