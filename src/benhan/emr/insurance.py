"""Checking a health-insurance (BHYT) card at the registration desk: number, dates, benefit.

The legacy 15-character code carries the beneficiary group and the benefit level (QĐ 1351/QĐ-
BHXH, specs/vietnam.md §3.2); cards on the QĐ 1666 template print only the 10-digit BHXH number,
whose group and level are held by Vietnam Social Security, so the desk records "unknown" rather
than guess. A card is usable on a day inside its validity period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from benhan.fhir import systems as sy

# What the fund pays for covered services at each benefit level (§3.2); level 2 has caps on some
# services and level 5 also covers services outside the normal scope.
FUND_SHARE = {1: 100, 2: 100, 3: 95, 4: 80, 5: 100}
EXPIRES_SOON_DAYS = 30


@dataclass(frozen=True)
class CardCheck:
    number: str
    valid_from: date | None
    valid_to: date | None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field, vi / en text)
    group: str | None = None  # beneficiary group, e.g. "DN" (legacy codes only)
    level: int | None = None  # benefit level 1–5 (legacy codes only)
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.problems

    @property
    def fund_share(self) -> int | None:
        """Percent the fund pays for covered services, when the card says its level."""
        return FUND_SHARE.get(self.level) if self.level else None


def check_card(
    number: str, valid_from: date | None, valid_to: date | None, *, today: date
) -> CardCheck:
    """Every problem with a card presented today, each naming its field."""
    code = number.replace(" ", "").upper()
    problems = [("number", p.text) for p in sy.check_bhyt(code)]
    if valid_from is None:
        problems.append(("valid_from", "thiếu ngày bắt đầu / the start date is missing"))
    if valid_to is None:
        problems.append(("valid_to", "thiếu ngày hết hạn / the end date is missing"))
    if valid_from and valid_to and valid_to < valid_from:
        problems.append(("valid_to", "trước ngày bắt đầu / before the start date"))
    elif valid_from and today < valid_from:
        problems.append(
            ("valid_from", f"thẻ chưa có hiệu lực đến {valid_from:%d/%m/%Y} / not valid yet")
        )
    elif valid_to and today > valid_to:
        problems.append(("valid_to", f"thẻ đã hết hạn ngày {valid_to:%d/%m/%Y} / expired"))
    warnings = []
    if not problems and valid_to and (valid_to - today).days <= EXPIRES_SOON_DAYS:
        warnings.append(f"thẻ hết hạn ngày {valid_to:%d/%m/%Y} / expires soon")
    legacy = len(code) == 15 and not any(f == "number" for f, _ in problems)
    return CardCheck(
        code,
        valid_from,
        valid_to,
        problems,
        group=code[:2] if legacy else None,
        level=int(code[2]) if legacy else None,
        warnings=warnings,
    )
