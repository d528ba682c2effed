"""The tricky cases as literal record pairs, linked among a synthetic province's records (so the
model is trained as in production), each with the outcome it must get."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from benhan.identity import Linkage, Thresholds, explain, link
from benhan.identity.columns import to_columns
from benhan.identity.decide import REASONS, given_disagrees
from benhan.identity.normalise import (
    Person,
    normalise_commune,
    normalise_phone,
    parse_birth_date,
    parse_name,
)

from .conftest import SynthCsv


def rec(rid: str, name: str, born: str, sex: str, *, cccd: str | None = None,
        cmnd: str | None = None, phone: str | None = None, commune: str | None = None,
        fmt: str = "%Y-%m-%d") -> Person:  # fmt: skip
    return Person(rid, parse_name(name), parse_birth_date(born, fmt), sex,  # type: ignore[arg-type]
                  cccd=cccd, cmnd=cmnd, phone=normalise_phone(phone),
                  commune=normalise_commune(commune))  # fmt: skip


@dataclass(frozen=True)
class Case:
    label: str
    a: Person
    b: Person
    expected: str  # link | review | apart | conflict


CASES = [
    Case("dropped accents, capitals",
         rec("c1a", "Nguyễn Thị Hương", "1987-03-12", "female", phone="0911000001",
             commune="07582"),
         rec("c1b", "NGUYEN THI HUONG", "12/03/1987", "female", phone="0911000001",
             commune="07582", fmt="%d/%m/%Y"), "link"),
    Case("day and month swapped",
         rec("c2a", "Trần Văn Bình", "1990-05-04", "male", phone="0911000002", commune="07654"),
         rec("c2b", "Trần Văn Bình", "1990-04-05", "male", phone="0911000002", commune="07654"),
         "link"),
    Case("typo in the given name",
         rec("c3a", "Lê Thị Thảo", "1975-08-21", "female", phone="0911000003", commune="07600"),
         rec("c3b", "Lê Thị Thảp", "1975-08-21", "female", phone="0911000003", commune="07600"),
         "link"),
    Case("old CMND only, the other the CCCD",
         rec("c4a", "Phùng Quang Khải", "1968-02-14", "male", cccd="024068001234",
             phone="0911000004", commune="07582"),
         rec("c4b", "Phung Quang Khai", "1968-02-14", "male", cmnd="121234567",
             phone="0911000004", commune="07582"), "link"),
    Case("changed phone",
         rec("c5a", "Đào Thị Nhàn", "1982-11-30", "female", phone="0911000005", commune="07621"),
         rec("c5b", "Đào Thị Nhàn", "1982-11-30", "female", phone="0988000005", commune="07621"),
         "link"),
    Case("year-only birth date",
         rec("c6a", "Kiều Văn Tư", "1941", "male", phone="0911000006", commune="07600"),
         rec("c6b", "Kiều Văn Tư", "1941-06-07", "male", phone="0911000006", commune="07600"),
         "link"),
    Case("same CCCD, typed differently: certain",
         rec("c7a", "Vương Thị Yến", "1993-07-02", "female", cccd="027193004321"),
         rec("c7b", "VUONG THI YEN", "1993-02-07", "female", cccd="027193004321"), "link"),
    Case("same common name and year, other day and commune",
         rec("c8a", "Nguyễn Văn Hùng", "1980-03-15", "male", phone="0911000008", commune="07582"),
         rec("c8b", "Nguyễn Văn Hùng", "1980-09-02", "male", phone="0977000008", commune="07654"),
         "apart"),
    Case("twins: same family, birth date, phone, commune; other given name",
         rec("c9a", "Nguyễn Thị Lan", "2001-04-10", "female", phone="0911000009", commune="07621"),
         rec("c9b", "Nguyễn Thị Hoa", "2001-04-10", "female", phone="0911000009", commune="07621"),
         "apart"),
    Case("a short given name mistyped (Hà → Jà), no identifier: still one person",
         rec("c13a", "Phan Ngọc Hà", "1936-02-06", "female", phone="0911000013", commune="07582"),
         rec("c13b", "Phan Ngoc Ja", "1936-02-06", "female", phone="0911000013", commune="07582"),
         "link"),
    Case("father and son of one name, other birth year",
         rec("c10a", "Trần Văn Hải", "1958-01-20", "male", phone="0911000010", commune="07600"),
         rec("c10b", "Trần Văn Hải", "1986-01-20", "male", phone="0911000010", commune="07600"),
         "apart"),
    Case("same CCCD, other sex: conflict",
         rec("c11a", "Bùi Văn Toàn", "1979-05-05", "male", cccd="024079005555"),
         rec("c11b", "Bùi Thị Loan", "1979-05-05", "female", cccd="024079005555"), "conflict"),
    Case("same CCCD, other birth year and given name: conflict",
         rec("c12a", "Đỗ Văn Kiên", "1970-10-10", "male", cccd="024070006666"),
         rec("c12b", "Đỗ Văn Long", "1995-03-03", "male", cccd="024070006666"), "conflict"),
    Case("a letter dropped from the family name, no identifier, no phone, other commune",
         rec("c14a", "Nguyễn Xuân Tùng", "2020-06-22", "male", phone="0911000014",
             commune="07654"),
         rec("c14b", "Nguen Xuan Tung", "2020-06-22", "male", commune="07621"), "review"),
    Case("a letter dropped from the middle name, no identifier, no phone, other commune",
         rec("c15a", "Phan Văn Quang", "2016-11-25", "male", phone="0911000015", commune="07582"),
         rec("c15b", "Phan Vă Quang", "2016-11-25", "male", commune="07654"), "review"),
    Case("01/01 standing for the birth year, against a January date",
         rec("c16a", "Hoàng Thị Thuỷ", "1953-01-01", "female", phone="0911000016",
             commune="07621"),
         rec("c16b", "HOANG THI THUY", "1953-01-13", "female", phone="0922000016",
             commune="07621"), "link"),
    Case("twins with common names one letter apart (Hùng, Dũng): two people",
         rec("c17a", "Nguyễn Văn Hùng", "2015-09-02", "male", phone="0911000017", commune="07621"),
         rec("c17b", "Nguyễn Văn Dũng", "2015-09-02", "male", phone="0911000017", commune="07621"),
         "apart"),
    Case("a slip that makes another common name (Vân → Ân), no identifier: two people",
         rec("c18a", "Lê Phương Vân", "2023-02-01", "female", phone="0911000018", commune="07582"),
         rec("c18b", "Lê Phương Ân", "2023-02-01", "female", phone="0911000018", commune="07582"),
         "apart"),
    Case("the commune before the 2025 reform, by name and district; the 2025 code",
         rec("c19a", "Nguyễn Thị Hương", "1990-07-19", "female", phone="0911000019",
             commune="Xã Tân Chi, Huyện Tiên Du, Tỉnh Bắc Ninh"),
         rec("c19b", "Nguyen Thi Huong", "1990-07-19", "female", phone="0922000019",
             commune="09343"), "link"),
    Case("the commune before the 2025 reform, by its old code; the 2025 name",
         rec("c20a", "Nguyễn Văn Nam", "1972-03-09", "male", phone="0911000020", commune="07201"),
         rec("c20b", "Nguyen Van Nam", "1972-03-09", "male", phone="0922000020",
             commune="Phường Bắc Giang, Bắc Ninh"), "link"),
    Case("an old commune that became another unit is still another commune",
         rec("c21a", "Nguyễn Văn Nam", "1972-03-10", "male", phone="0911000021", commune="07201"),
         rec("c21b", "Nguyen Van Nam", "1972-03-10", "male", commune="09343"), "review"),
]  # fmt: skip


@pytest.fixture(scope="module")
def linked(province_csv: SynthCsv) -> Linkage:
    extra = [p for c in CASES for p in (c.a, c.b)]
    return link([*province_csv.people, *extra])


def outcome(result: Linkage, a: str, b: str) -> str:
    ids = {rid: i for i, rid in enumerate(result.cols.ids)}
    i, j = sorted((ids[a], ids[b]))
    hit = np.flatnonzero((result.ia == i) & (result.ib == j))
    if not len(hit):
        return "apart"  # never a candidate
    k = int(hit[0])
    if REASONS[int(result.reason[k])] == "conflict":
        return "conflict"
    return Thresholds().outcome(float(result.probability[k]))


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_pair_outcome(linked: Linkage, case: Case) -> None:
    assert outcome(linked, case.a.record_id, case.b.record_id) == case.expected


def test_every_score_is_explained_field_by_field(linked: Linkage) -> None:
    ids = {rid: i for i, rid in enumerate(linked.cols.ids)}
    lines = explain(linked.model, linked.cols, ids["c2a"], ids["c2b"])
    by_name = {f.comparison: f for f in lines}
    assert by_name["birth_date"].level == "day/month swapped"
    assert by_name["name"].level == "exact" and by_name["name"].tf_adjusted
    assert by_name["phone"].weight > 5  # a shared phone is strong evidence
    assert by_name["cccd"].level == "null" and by_name["cccd"].weight == 0.0


def level(result: Linkage, a: str, b: str, comparison: str) -> str:
    ids = {rid: i for i, rid in enumerate(result.cols.ids)}
    lines = explain(result.model, result.cols, ids[a], ids[b])
    return next(x.level for x in lines if x.comparison == comparison)


@pytest.mark.parametrize(
    ("a", "b", "comparison", "label"),
    [
        ("c14a", "c14b", "name", "one letter off, given name equal"),  # Nguyễn / Nguen
        ("c15a", "c15b", "name", "one letter off, given name equal"),  # Văn / Vă
        ("c3a", "c3b", "name", "one letter off in the given name"),  # Thảo / Thảp
        ("c16a", "c16b", "birth_date", "year-only, same year"),  # not "same year and month"
        ("c19a", "c19b", "commune", "equal"),
        ("c20a", "c20b", "commune", "equal"),
        ("c21a", "c21b", "commune", "else"),
    ],
)
def test_the_level_each_case_falls_in(
    linked: Linkage, a: str, b: str, comparison: str, label: str
) -> None:
    assert level(linked, a, b, comparison) == label


def given_guard(names: list[str], a: str, b: str) -> bool:
    """given_disagrees for the first records named `a` and `b` among people named `names`."""
    people = [rec(f"g{i}", f"Phan Thị {n}", "1990-01-01", "female") for i, n in enumerate(names)]
    cols = to_columns(people)
    i, j = names.index(a), names.index(b)
    pair = np.asarray([i], np.int32), np.asarray([j], np.int32)
    return bool(given_disagrees(cols, *pair)[0])


def test_a_slip_is_told_from_another_name_by_how_few_bear_it() -> None:
    # 40 Hà and 4 Jà: a tenth as many, so Jà is Hà mistyped, however many records there are.
    assert not given_guard(["Hà"] * 40 + ["Jà"] * 4, "Hà", "Jà")
    # 40 Vân and 30 Ân: both real names; one letter apart, they are two people.
    assert given_guard(["Vân"] * 40 + ["Ân"] * 30, "Vân", "Ân")
    # Hùng and Dũng are close by Jaro-Winkler (0.83) but both common: twins, not a slip.
    assert given_guard(["Hùng"] * 40 + ["Dũng"] * 30, "Hùng", "Dũng")
    assert not given_guard(["Khang"] * 40 + ["Khanf"], "Khang", "Khanf")
    assert given_guard(["Lan"] * 40 + ["Hoa"], "Lan", "Hoa")  # rare, but no slip of Lan
