"""The insurance card at the desk: usable today or not, and what the fund pays."""

from __future__ import annotations

from datetime import date

import pytest

from benhan.emr.insurance import check_card

TODAY = date(2025, 3, 1)
YEAR = (date(2025, 1, 1), date(2025, 12, 31))


@pytest.mark.parametrize(
    ("number", "group", "level", "share"),
    [
        ("DN4270123456789", "DN", 4, 80),
        ("dn4 27 0123456789", "DN", 4, 80),  # typed with spaces, lower case
        ("TE1270123456789", "TE", 1, 100),
        ("HT3270123456789", "HT", 3, 95),
        ("0123456789", None, None, None),  # QĐ 1666 card: the level is held by the fund
    ],
)
def test_a_valid_card(number: str, group: str | None, level: int | None, share: int | None) -> None:
    card = check_card(number, *YEAR, today=TODAY)
    assert card.usable and card.problems == []
    assert (card.group, card.level, card.fund_share) == (group, level, share)


@pytest.mark.parametrize(
    ("number", "start", "end", "fields"),
    [
        ("DN4270123456789", date(2024, 1, 1), date(2024, 12, 31), ["valid_to"]),  # expired
        ("DN4270123456789", date(2025, 6, 1), date(2025, 12, 31), ["valid_from"]),  # not yet
        ("DN4270123456789", date(2025, 6, 1), date(2025, 1, 1), ["valid_to"]),  # reversed
        ("DN4270123456789", None, None, ["valid_from", "valid_to"]),
        ("DN9270123456789", *YEAR, ["number"]),  # no level 9
        ("TE4270123456789", *YEAR, ["number"]),  # children are level 1, not 4
        ("12345", *YEAR, ["number"]),
    ],
)
def test_an_unusable_card_says_why(
    number: str, start: date | None, end: date | None, fields: list[str]
) -> None:
    card = check_card(number, start, end, today=TODAY)
    assert not card.usable
    assert [f for f, _ in card.problems] == fields
    assert all(" / " in text for _, text in card.problems)
    assert card.level is None or fields != ["number"]


def test_a_card_about_to_expire_is_usable_with_a_warning() -> None:
    card = check_card("DN4270123456789", date(2024, 4, 1), date(2025, 3, 20), today=TODAY)
    assert card.usable and len(card.warnings) == 1 and "20/03/2025" in card.warnings[0]
