"""Normalisation: Vietnamese names, birth dates, identifiers and communes across the 2025
reform."""

from __future__ import annotations

from datetime import date

import pytest

from benhan.fhir.systems import COMMUNE_CODE_EXT
from benhan.identity.fhir_csv import patient_row
from benhan.identity.normalise import (
    normalise_bhyt,
    normalise_cccd,
    normalise_cmnd,
    normalise_commune,
    normalise_phone,
    normalise_sex,
    parse_birth_date,
    parse_name,
    tone_key,
)


def test_accented_and_capitals_fold_to_one_name() -> None:
    a, b = parse_name("Nguyễn Thị Hương"), parse_name("NGUYEN THI HUONG")
    assert a.folded == b.folded == "nguyen thi huong"
    assert a.accented != b.accented  # the accent-aware key still tells them apart
    assert (a.family, a.middle, a.given) == ("nguyen", ("thi",), "huong")
    assert a.gender_hint == "female" and parse_name("Trần Văn Nam").gender_hint == "male"


def test_family_and_given_columns_split_like_a_full_name() -> None:
    assert parse_name(family="Nguyễn", given="Thị Hương") == parse_name("Nguyễn Thị Hương")


@pytest.mark.parametrize(("a", "b"), [("Hoà", "Hòa"), ("Thuỷ", "Thủy"), ("hOÀ", "hòa")])
def test_old_and_new_tone_placement_are_one_accented_key(a: str, b: str) -> None:
    assert tone_key(a) == tone_key(b)
    assert tone_key("Hòa") != tone_key("Hóa")  # a different tone is a different word


def test_y_and_i_rhymes_fold_alike_but_not_after_u() -> None:
    assert parse_name("Lê Thị Mỹ").folded == parse_name("Lê Thị Mĩ").folded
    assert parse_name("Trần Huy").given == "huy"  # uy keeps its y


def test_dd_is_mapped_and_lookalike_eth_too() -> None:
    assert parse_name("Đặng Đức").folded == parse_name("Ðặng Ðức").folded == "dang duc"


def test_birth_date_in_a_given_format_and_year_only() -> None:
    assert parse_birth_date("12/03/1987", "%d/%m/%Y").value == date(1987, 3, 12)
    year = parse_birth_date("1950", "%d/%m/%Y")
    assert year.precision == "year" and year.maybe_year_only
    assert parse_birth_date("01/01/1950", "%d/%m/%Y").maybe_year_only  # claims convention
    with pytest.raises(ValueError, match="%d/%m/%Y"):
        parse_birth_date("1987-03-12", "%d/%m/%Y")


def test_phone_forms_are_one_number() -> None:
    assert normalise_phone("+84 912 345 678") == normalise_phone("0912.345.678") == "0912345678"
    assert normalise_phone("84912345678") == "0912345678"
    assert normalise_phone("12") is None


def test_bhyt_legacy_code_and_bhxh_number_compare_on_ten_digits() -> None:
    assert normalise_bhyt("DN4240123456789") == normalise_bhyt("0123456789") == "0123456789"
    assert normalise_bhyt("DN42401234") is None


def test_cccd_and_cmnd_stay_different_numbers() -> None:
    # A CCCD's last 9 digits are not the person's old CMND: no equivalence is invented.
    assert normalise_cccd("001087012345") == "001087012345"
    assert normalise_cccd("087012345") is None
    assert normalise_cmnd("087012345") == "087012345"


@pytest.mark.parametrize(("text", "sex"), [("Nữ", "female"), ("1", "male"), ("F", "female"),
                                           ("x", None)])  # fmt: skip
def test_sex_codes(text: str, sex: str | None) -> None:
    assert normalise_sex(text) == sex


# Phường Bắc Giang (07210) was formed in 2025 from, among others, the old Thọ Xương ward
# (07201) of Bắc Giang city; Xã Tân Chi of Tiên Du district (09352) became Xã Tân Chi (09343).
@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("07210", "07210"),  # a 2025 code is itself
        ("07201", "07210"),  # an old code: the unit it became
        ("7201", "07210"),  # … with the leading zero a spreadsheet dropped
        (" 09352 ", "09343"),
        ("Phường Thọ Xương, Thành phố Bắc Giang, Tỉnh Bắc Giang", "07210"),  # old names
        ("phuong tho xuong, tp bac giang", "07210"),  # unaccented, abbreviated, no province
        ("P. Thọ Xương, TP. Bắc Giang", "07210"),
        ("Xã Tân Chi, Huyện Tiên Du, Tỉnh Bắc Ninh", "09343"),
        ("Tân Chi, Tiên Du", "09343"),  # without the types
        ("Phường Bắc Giang, Bắc Ninh", "07210"),  # a 2025 name, its province
        ("Phường Bắc Giang", "07210"),
        ("Phường Hàng Bạc, Quận Hoàn Kiếm, Thành phố Hà Nội", "00070"),  # anywhere in Vietnam
        ("Xã Minh Quân", "04543"),  # accents tell apart two names that fold alike
        ("Xã Minh Quán", "04498"),
    ],
)
def test_a_commune_old_or_new_is_read_as_its_2025_code(text: str, code: str) -> None:
    assert normalise_commune(text) == code


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Xã Đồng Tiến", "xa dong tien"),  # two old units of that name: which one is unknown
        ("Thôn Đoài", "thon doai"),  # not a commune: compared as the text it is
        ("99999", "99999"),  # no unit has this code
        ("123456", "123456"),
    ],
)
def test_a_commune_text_naming_no_single_unit_stays_text(text: str, kept: str) -> None:
    assert normalise_commune(text) == kept


@pytest.mark.parametrize("text", [None, "", "  "])
def test_no_commune(text: str | None) -> None:
    assert normalise_commune(text) is None


def test_every_old_unit_of_bac_ninh_reads_as_its_2025_unit_by_code_and_by_name() -> None:
    from benhan.synth.places import communes, predecessors

    for unit in communes():
        for old in predecessors(unit):
            assert normalise_commune(old.code) == unit.code, old
            named = f"{old.name}, {old.district}, {old.province}"
            assert normalise_commune(named) == unit.code, old


def _patient(address: dict[str, object]) -> dict[str, object]:
    return {"resourceType": "Patient", "id": "p1", "address": [address]}


def test_patient_row_gives_an_uncoded_address_its_district_and_province() -> None:
    old = {"use": "home", "city": "Xã Tân Chi", "district": "Huyện Tiên Du", "state": "Bắc Ninh"}
    assert patient_row(_patient(old))["commune"] == "Xã Tân Chi, Huyện Tiên Du, Bắc Ninh"
    coded = {**old, "extension": [{"url": COMMUNE_CODE_EXT, "valueCode": "09352"}]}
    assert patient_row(_patient(coded))["commune"] == "09352"
    assert patient_row(_patient({"use": "home", "state": "Bắc Ninh"}))["commune"] == ""
