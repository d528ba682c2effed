"""The tricky cases as literal record pairs, linked among a synthetic province's records (so the
model is trained as in production), each with the outcome it must get."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from benhan.identity import Linkage, Thresholds, explain, link
from benhan.identity.decide import REASONS
from benhan.identity.normalise import Person, normalise_phone, parse_birth_date, parse_name

from .conftest import SynthCsv


def rec(rid: str, name: str, born: str, sex: str, *, cccd: str | None = None,
        cmnd: str | None = None, phone: str | None = None, commune: str | None = None,
        fmt: str = "%Y-%m-%d") -> Person:  # fmt: skip
    return Person(rid, parse_name(name), parse_birth_date(born, fmt), sex,  # type: ignore[arg-type]
                  cccd=cccd, cmnd=cmnd, phone=normalise_phone(phone), commune=commune)  # fmt: skip


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
