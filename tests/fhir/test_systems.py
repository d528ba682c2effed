"""Identifier checks: literal good and bad values, each bad one failing on the rule it breaks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from benhan.fhir import systems
from benhan.fhir.systems import check_bhyt, check_cccd, check_cmnd, check_ma_cskcb


def _rules(problems: list[systems.Problem]) -> set[str]:
    return {p.rule for p in problems}


@pytest.mark.parametrize(
    ("value", "birth_year", "sex", "rules"),
    [
        ("024085123456", 1985, "male", set()),  # Decree 137/2015: 024 Bắc Giang, 0 = 1900s male
        ("027185123456", 1985, "female", set()),
        ("027312000001", 2012, "female", set()),
        ("001299000000", None, None, set()),  # no check digit: any random part is valid
        ("02708512345", None, None, {"cccd.format"}),  # 11 digits
        ("0270851234567", None, None, {"cccd.format"}),
        ("02708512345a", None, None, {"cccd.format"}),
        ("003085123456", None, None, {"cccd.province"}),  # 003 is not in TT 07/2016
        ("099085123456", None, None, {"cccd.province"}),
        ("027585123456", None, None, {"cccd.century"}),  # a 22nd-century birth
        ("027085123456", 1985, "female", {"cccd.century-sex"}),
        ("027285123456", 1985, "male", {"cccd.century-sex"}),
        ("027285123456", 2085, None, set()),
        ("027085123456", 2005, None, {"cccd.century-sex", "cccd.birth-year"}),
        ("027185123456", None, "male", {"cccd.century-sex"}),
        ("027086123456", 1985, "male", {"cccd.birth-year"}),
    ],
)
def test_cccd(value: str, birth_year: int | None, sex: str | None, rules: set[str]) -> None:
    assert _rules(check_cccd(value, birth_year=birth_year, sex=sex)) == rules


@pytest.mark.parametrize(
    ("value", "rules"),
    [
        ("DN4272702996023", set()),  # QĐ 1351: DN is benefit 4
        ("TE1240000000001", set()),
        ("HT3271234567890", set()),
        ("CA5011234567890", set()),
        ("2702996023", set()),  # QĐ 1666 card: the 10-digit BHXH number alone
        ("DN1272702996023", {"bhyt.benefit"}),  # DN cannot be 100 %
        ("TE4242702996023", {"bhyt.benefit"}),
        ("ZZ4272702996023", {"bhyt.group"}),
        ("DN4032702996023", {"bhyt.province"}),  # 03 is not a province code
        ("DN6272702996023", {"bhyt.format"}),  # benefit level 6 does not exist
        ("dn4272702996023", {"bhyt.format"}),
        ("DN427270299602", {"bhyt.format"}),
        ("270299602", {"bhyt.format"}),
        ("", {"bhyt.format"}),
    ],
)
def test_bhyt(value: str, rules: set[str]) -> None:
    assert _rules(check_bhyt(value)) == rules


@pytest.mark.parametrize(
    ("value", "rules"),
    [
        ("24001", set()),
        ("27012", set()),
        ("01001", set()),  # Bạch Mai (QĐ 384/QĐ-BYT example)
        ("97003", set()),  # Ministry of Defence
        ("24000", {"ma-cskcb.sequence"}),
        ("03001", {"ma-cskcb.province"}),
        ("2400", {"ma-cskcb.format"}),
        ("240011", {"ma-cskcb.format"}),
        ("A4001", {"ma-cskcb.format"}),
    ],
)
def test_ma_cskcb(value: str, rules: set[str]) -> None:
    assert _rules(check_ma_cskcb(value)) == rules


@pytest.mark.parametrize(
    ("value", "rules"),
    [
        ("125123456", set()),
        ("012345678901", set()),
        ("12512345", {"cmnd.format"}),
        ("x" * 9, {"cmnd.format"}),
    ],
)
def test_cmnd(value: str, rules: set[str]) -> None:
    assert _rules(check_cmnd(value)) == rules


def test_problem_names_its_rule() -> None:
    (problem,) = check_cccd("1")
    assert str(problem).startswith("cccd.format: ")


def test_province_list_is_the_63_of_2004_and_matches_the_package() -> None:
    """TT 07/2016 codes = the pre-2025 administrative list, which vietnamadminunits also holds."""
    assert len(systems.PROVINCES_2004) == 63
    import importlib.util

    spec = importlib.util.find_spec("vietnamadminunits")
    assert spec is not None and spec.submodule_search_locations
    db = Path(next(iter(spec.submodule_search_locations))) / "data" / "dataset.db"
    with sqlite3.connect(db) as conn:
        codes = {r[0] for r in conn.execute("SELECT DISTINCT provinceCode FROM admin_units_legacy")}
    assert codes == set(systems.PROVINCES_2004)


def test_uris_are_unique_and_per_facility_patient_codes_differ() -> None:
    uris = [v for k, v in vars(systems).items() if k.isupper() and isinstance(v, str)]
    assert len(uris) == len(set(uris))
    assert systems.ma_bn("24001") != systems.ma_bn("27001")
    assert systems.CCCD == "https://benhan.vn/sid/cccd"
