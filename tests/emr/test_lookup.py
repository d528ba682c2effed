"""The registration desk's one search box: QR text, IDs, insurance numbers, names with a year."""

from __future__ import annotations

from datetime import date

import pytest

from benhan.access import Actor
from benhan.emr.citizen_card import CardError
from benhan.emr.lookup import find, understand
from benhan.fhir.systems import BHYT, CCCD, CMND
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.store.unit import unit
from tests.access.world import actor

TODAY = date(2025, 3, 1)
QR = "027187000123|125678901|Nguyễn Thị Hương|12031987|Nữ|Từ Sơn, Bắc Ninh|15062021"


def _patient(family: str, given: str, birth: str, *ids: tuple[str, str]) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": s, "value": v} for s, v in ids],
        "name": [{"family": family, "given": [given], "text": f"{family} {given}"}],
        "gender": "female",
        "birthDate": birth,
    }


@pytest.fixture
def people(store: Store) -> dict[str, str]:
    with store.begin() as conn:
        repo = Repo(conn, Actor.job("27001", "test"))
        huong = repo.create(
            _patient(
                "Nguyễn",
                "Thị Hương",
                "1987-03-12",
                (CCCD, "027187000123"),
                (CMND, "125678901"),
                (BHYT, "DN4270123456789"),
            )
        ).id
        namesake = repo.create(
            _patient("Nguyễn", "Thị Hương", "1990-07-01", (CCCD, "027190000456"))
        ).id
        other = (
            Repo(conn, Actor.job("27002", "test"))
            .create(_patient("Nguyễn", "Thị Hương", "1987-05-05", (CCCD, "027187000999")))
            .id
        )
    return {
        "huong": huong,
        "namesake": namesake,
        "other": other,
    }


def _ids(store: Store, text: str) -> list[str]:
    with unit(store, actor("registrar"), write=False) as repo:
        people, _more = find(repo, understand(text, today=TODAY))
        return [p["id"] for p in people]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (QR, "qr"),
        ("027187000123", "cccd"),
        (" 0271 8700 0123 ", "cccd"),
        ("125678901", "cmnd"),
        ("DN4270123456789", "bhyt"),
        ("dn4270123456789", "bhyt"),
        ("nguyen thi huong 1987", "name"),
    ],
)
def test_each_kind_of_input_finds_her(
    store: Store, people: dict[str, str], text: str, kind: str
) -> None:
    assert understand(text, today=TODAY).kind == kind
    assert _ids(store, text) == [people["huong"]]


def test_a_name_without_a_year_finds_the_namesakes_of_this_facility_only(
    store: Store, people: dict[str, str]
) -> None:
    found = _ids(store, "NGUYỄN THỊ HƯƠNG")
    assert set(found) == {people["huong"], people["namesake"]}  # not 27002's patient


def test_a_qr_text_that_does_not_read_says_why(store: Store, people: dict[str, str]) -> None:
    with pytest.raises(CardError) as err:
        understand(QR.replace("12031987", "31021987"), today=TODAY)
    assert [p.field for p in err.value.problems] == ["birth_date"]


def test_nothing_to_search_finds_nothing(store: Store, people: dict[str, str]) -> None:
    assert _ids(store, "   ") == []
    assert _ids(store, "000000000000") == []
