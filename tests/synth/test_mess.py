"""Registration mess: each error appears at its rate, the truth is kept, records stay valid FHIR."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from functools import cache

import pytest

from benhan.fhir.validation import check
from benhan.synth.mess import (
    MUTATIONS,
    MessRates,
    RegisteredPerson,
    _swap_tone,
    _swap_y_i,
    ascii_fold,
    register,
)
from benhan.synth.people import PeopleGenerator, Person, to_fhir_patient
from benhan.synth.places import communes, predecessors


@cache
def _registrations() -> tuple[RegisteredPerson, ...]:
    people = PeopleGenerator(5, communes()).people(10000)
    rng = random.Random(9)
    return tuple(register(p, rng, "24001", communes=communes()) for p in people)


@cache
def _truth() -> dict[str, Person]:
    return {p.person_id: p for p in PeopleGenerator(5, communes()).people(10000)}


def _names_vary(fn: Callable[[str], str]) -> Callable[[Person], bool]:
    return lambda p: any(fn(w) != w for w in (p.family, *p.middle, p.given))


R = MessRates()
# mutation → (rate, which true people it can apply to, which earlier outcome excludes it)
CASES: list[tuple[str, float, Callable[[Person], bool], str | None]] = [
    ("no_diacritics", R.no_diacritics, lambda p: True, None),
    ("all_caps", R.all_caps, lambda p: True, None),
    ("typo_adjacent", R.typo_adjacent, lambda p: True, None),
    ("typo_dropped", R.typo_dropped, lambda p: True, None),
    ("tone_variant", R.tone_variant, _names_vary(_swap_tone), None),
    ("y_i", R.y_i, _names_vary(_swap_y_i), None),
    ("year_only_0101", R.year_only * (1 - R.year_only_partial), lambda p: True, None),
    ("year_only_partial", R.year_only * R.year_only_partial, lambda p: True, None),
    (
        "swap_day_month",
        R.swap_day_month,
        lambda p: p.birth_date.day <= 12 and p.birth_date.day != p.birth_date.month,
        "year_only",
    ),
    ("cmnd_instead", R.cmnd_instead, lambda p: p.cmnd is not None, None),
    ("missing_cccd", R.missing_cccd, lambda p: p.cccd is not None, "cmnd_instead"),
    ("bhyt_bhxh10", R.bhyt_bhxh10, lambda p: p.bhyt is not None and p.bhyt_shown == "legacy", None),
    ("missing_bhyt", R.missing_bhyt, lambda p: p.bhyt is not None, None),
    ("changed_phone", R.changed_phone, lambda p: p.phone is not None, None),
    ("moved_commune", R.moved_commune, lambda p: True, None),
    ("old_commune", R.old_commune, lambda p: True, None),  # 0 unless hard: the data stay
]


def test_cases_cover_every_mutation() -> None:
    assert {c[0] for c in CASES} == set(MUTATIONS)


@pytest.mark.parametrize(
    ("name", "rate", "applies", "excluded_by"), CASES, ids=[c[0] for c in CASES]
)
def test_each_mutation_at_its_rate(
    name: str, rate: float, applies: Callable[[Person], bool], excluded_by: str | None
) -> None:
    truth = _truth()
    pool = [
        r
        for r in _registrations()
        if applies(truth[r.true_person_id])
        and not (excluded_by and any(m.startswith(excluded_by) for m in r.mutations))
    ]
    hits = sum(name in r.mutations for r in pool)
    sigma = math.sqrt(len(pool) * rate * (1 - rate))
    assert len(pool) > 300, name
    assert abs(hits - len(pool) * rate) < 4 * sigma + 3, (name, hits, len(pool))


def test_truth_is_kept_and_mutations_are_visible() -> None:
    truth = _truth()
    for r in _registrations():
        true = truth[r.true_person_id]
        assert r.record.person_id == true.person_id and r.facility == "24001"
        if not r.mutations:
            assert r.record == dataclasses.replace(true, cmnd=None)  # CCCD typed, CMND not
            assert r.record.full_name == true.full_name
        if "no_diacritics" in r.mutations and "all_caps" not in r.mutations:
            assert r.record.full_name == ascii_fold(r.record.full_name)
        if "year_only_partial" in r.mutations:
            assert r.record.birth_precision == "year"
        if "missing_cccd" in r.mutations or "cmnd_instead" in r.mutations:
            assert r.record.cccd is None
        if "cmnd_instead" in r.mutations:
            assert r.record.cmnd == true.cmnd
        if "moved_commune" in r.mutations:
            assert r.record.commune != true.commune


def test_mutated_records_are_valid_fhir() -> None:
    for i, r in enumerate(_registrations()[:3000]):
        patient = to_fhir_patient(r.record, r.facility, f"BN{i}")
        assert check(patient) == [], (r, patient)
        if r.record.birth_precision == "year":
            assert len(patient["birthDate"]) == 4


def test_register_is_reproducible() -> None:
    people = PeopleGenerator(5, communes()).people(300)
    a = [register(p, random.Random(1), "24001", communes=communes()) for p in people]
    b = [register(p, random.Random(1), "24001", communes=communes()) for p in people]
    assert a == b


def test_zero_rates_change_nothing_but_the_unused_cmnd() -> None:
    zero = MessRates(**{f: 0.0 for f in MessRates.__dataclass_fields__})
    for p in PeopleGenerator(5, communes()).people(500):
        r = register(p, random.Random(1), "24001", rates=zero, communes=communes())
        assert r.mutations == ()
        assert r.record.full_name == p.full_name and r.record.birth_date == p.birth_date


@pytest.mark.parametrize(
    ("word", "tone", "y_i"),
    [
        ("Hòa", "Hoà", "Hòa"),
        ("Thuỷ", "Thủy", "Thuỷ"),
        ("Quý", "Quý", "Quí"),  # the u of "qu" is a consonant: no tone moves onto it
        ("Thúy", "Thuý", "Thúy"),  # y after the vowel u never becomes i
        ("Huy", "Huy", "Huy"),
        ("Mỹ", "Mỹ", "Mĩ"),
        ("Kỳ", "Kỳ", "Kì"),
        ("Vy", "Vy", "Vi"),
        ("Đức", "Đức", "Đức"),
    ],
)
def test_spelling_variants(word: str, tone: str, y_i: str) -> None:
    assert _swap_tone(word) == tone
    assert _swap_y_i(word) == y_i


def test_ascii_fold_maps_d_with_stroke() -> None:
    assert ascii_fold("Đặng Thị Ngọc Ánh") == "Dang Thi Ngoc Anh"


def test_the_hard_desk_leaves_many_records_without_a_shared_identifier() -> None:
    hard = MessRates.hard()
    people = PeopleGenerator(5, communes()).people(4000)
    rng = random.Random(9)
    regs = [register(p, rng, "24001", rates=hard, communes=communes()) for p in people]
    insured = [r for r, p in zip(regs, people, strict=True) if p.bhyt is not None]
    dropped = sum("missing_bhyt" in r.mutations for r in insured)
    sigma = math.sqrt(len(insured) * hard.missing_bhyt * (1 - hard.missing_bhyt))
    assert abs(dropped - len(insured) * hard.missing_bhyt) < 4 * sigma
    assert all(r.record.bhyt is None for r in insured if "missing_bhyt" in r.mutations)
    bare = sum(r.record.cccd is None and r.record.bhyt is None for r in regs)
    assert bare / len(regs) > 0.15  # names, birth dates and places must carry these


def test_the_hard_desk_writes_some_communes_as_before_the_2025_reform() -> None:
    hard = MessRates.hard()
    people = PeopleGenerator(5, communes()).people(4000)
    rng = random.Random(9)
    regs = [register(p, rng, "24001", rates=hard, communes=communes()) for p in people]
    old = [(r, p) for r, p in zip(regs, people, strict=True) if "old_commune" in r.mutations]
    sigma = math.sqrt(len(regs) * hard.old_commune * (1 - hard.old_commune))
    assert abs(len(old) - len(regs) * hard.old_commune) < 4 * sigma
    coded = 0
    for r, p in old:
        now = p.commune if "moved_commune" not in r.mutations else None
        unit = r.record.commune
        assert unit.district and unit.province in ("Tỉnh Bắc Giang", "Tỉnh Bắc Ninh")
        if now is not None:  # a unit the person's 2025 commune was formed from
            assert unit.name in {u.name for u in predecessors(now)}
        patient = to_fhir_patient(r.record, r.facility, "BN1")
        assert check(patient) == []
        address = patient["address"][0]
        assert address["district"] == unit.district and address["city"] == unit.name
        coded += "extension" in address
        assert ("extension" in address) == bool(unit.code)
    assert 0.3 < coded / len(old) < 0.7  # half with the old code, half by names only
