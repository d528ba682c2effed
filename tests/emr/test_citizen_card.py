"""The chip card's QR text: good scans become a Patient, bad ones say which field is wrong."""

from __future__ import annotations

from datetime import date

import orjson
import pytest

from benhan.emr.citizen_card import CardError, parse
from benhan.fhir.systems import CCCD, CMND
from benhan.fhir.validation import validate

TODAY = date(2025, 3, 1)
ADDRESS = "Thôn Đông, Phường Từ Sơn, Bắc Ninh"
GOOD = f"027187000123|125678901|Nguyễn Thị Hương|12031987|Nữ|{ADDRESS}|15062021"


def test_a_scan_becomes_a_valid_patient() -> None:
    card = parse(GOOD, today=TODAY)
    assert (card.cccd, card.cmnd, card.sex) == ("027187000123", "125678901", "female")
    assert card.birth_date == date(1987, 3, 12) and card.issued == date(2021, 6, 15)
    assert (card.family, card.given) == ("Nguyễn", "Thị Hương")
    patient = card.patient()
    validate(patient, orjson.dumps(patient))
    assert {"system": CCCD, "value": "027187000123"} in patient["identifier"]
    assert {"system": CMND, "value": "125678901"} in patient["identifier"]
    assert patient["birthDate"] == "1987-03-12" and patient["gender"] == "female"


@pytest.mark.parametrize(
    "text",
    [
        "\ufeff" + GOOD + "\r\n",  # a scanner's byte-order mark and line end
        GOOD.replace("|", " | "),  # spaces around the separators
        GOOD.replace("Nữ", "NỮ"),
        # decomposed Unicode (NFD), as some keyboards and scanners send it
        __import__("unicodedata").normalize("NFD", GOOD),
    ],
)
def test_what_scanners_add_is_tolerated(text: str) -> None:
    assert parse(text, today=TODAY).name == "Nguyễn Thị Hương"


def test_the_old_id_may_be_empty() -> None:
    card = parse(GOOD.replace("|125678901|", "||"), today=TODAY)
    assert card.cmnd is None
    assert [i["system"] for i in card.patient()["identifier"]] == [CCCD]


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("027187000123|Nguyễn Thị Hương|12031987", {"qr"}),
        (GOOD.replace("12031987", "30021987"), {"birth_date"}),  # 30 February
        (GOOD.replace("12031987", "1987-03-12"), {"birth_date"}),
        (GOOD.replace("|Nữ|", "|F|"), {"sex"}),
        (GOOD.replace("|Nữ|", "|Nam|"), {"cccd"}),  # digit 4 says female
        (GOOD.replace("027187000123", "02718700012"), {"cccd"}),
        (GOOD.replace("027187000123", "999187000123"), {"cccd"}),  # no such province
        (GOOD.replace("12031987", "12031990"), {"cccd"}),  # birth year digits disagree
        (GOOD.replace("15062021", "15062031"), {"issued"}),  # in the future
        (GOOD.replace("15062021", "15061980"), {"issued"}),  # before the birth
        (GOOD.replace("|125678901|", "|12345|"), {"cmnd"}),
        (GOOD.replace("Nguyễn Thị Hương", "   "), {"name"}),
        (GOOD.replace(ADDRESS, ""), {"address"}),
        ("a|b|c|d|e|f|g", {"cccd", "birth_date", "sex", "issued", "cmnd"}),
    ],
)
def test_each_problem_names_its_field(text: str, fields: set[str]) -> None:
    with pytest.raises(CardError) as err:
        parse(text, today=TODAY)
    assert {p.field for p in err.value.problems} == fields
    assert all(" / " in p.text for p in err.value.problems)  # Vietnamese, then English


def test_a_birth_in_the_future_is_refused() -> None:
    with pytest.raises(CardError) as err:
        parse(GOOD, today=date(1987, 3, 1))
    assert {p.field for p in err.value.problems} >= {"birth_date", "issued"}
