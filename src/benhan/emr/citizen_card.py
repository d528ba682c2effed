"""The QR code on a chip citizen-ID card, read at the registration desk or the kiosk.

The code holds seven fields separated by `|`: the 12-digit personal ID, the old 9-digit ID
(often empty), the full name, the birth date `ddmmyyyy`, the sex (`Nam`/`Nữ`), the permanent
address, and the card's issue date `ddmmyyyy`. Scanners type it as text, sometimes with a
trailing newline, a byte-order mark or stray spaces. Every problem is reported at once, each
naming its field, so the desk can say exactly what is wrong with a scan.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any

from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource

FIELDS = ("cccd", "cmnd", "name", "birth_date", "sex", "address", "issued")
LABELS = {
    "cccd": "số định danh / personal ID",
    "cmnd": "số CMND cũ / old ID",
    "name": "họ tên / full name",
    "birth_date": "ngày sinh / birth date",
    "sex": "giới tính / sex",
    "address": "nơi thường trú / address",
    "issued": "ngày cấp / issue date",
}
SEXES = {"nam": "male", "nữ": "female", "nu": "female"}


@dataclass(frozen=True)
class CardProblem:
    field: str  # one of FIELDS, or "qr" for the whole text
    text: str  # Vietnamese first, English after " / "

    def __str__(self) -> str:
        label = LABELS.get(self.field, "mã QR / QR code")
        return f"{label}: {self.text}"


class CardError(ValueError):
    def __init__(self, problems: list[CardProblem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


@dataclass(frozen=True)
class CitizenCard:
    cccd: str
    cmnd: str | None
    name: str
    birth_date: date
    sex: str  # FHIR administrative gender: male | female
    address: str
    issued: date

    @property
    def family(self) -> str:
        return self.name.split()[0]

    @property
    def given(self) -> str:
        return " ".join(self.name.split()[1:])

    def patient(self) -> Resource:
        """A Patient with what the card says (the desk adds the facility's code and coverage)."""
        identifiers: list[dict[str, Any]] = [{"system": sy.CCCD, "value": self.cccd}]
        if self.cmnd:
            identifiers.append({"system": sy.CMND, "value": self.cmnd})
        name: dict[str, Any] = {"use": "official", "text": self.name, "family": self.family}
        if self.given:
            name["given"] = [self.given]
        return {
            "resourceType": "Patient",
            "identifier": identifiers,
            "name": [name],
            "gender": self.sex,
            "birthDate": self.birth_date.isoformat(),
            "address": [{"use": "home", "text": self.address, "country": "VN"}],
        }


def parse(text: str, *, today: date) -> CitizenCard:
    """The card in a scanned or pasted QR text; CardError listing every problem otherwise."""
    raw = unicodedata.normalize("NFC", text.replace("\ufeff", "")).strip()
    parts = [p.strip() for p in raw.split("|")]
    if len(parts) != len(FIELDS):
        raise CardError(
            [
                CardProblem(
                    "qr",
                    f"cần {len(FIELDS)} trường ngăn bởi '|', có {len(parts)} / "
                    f"expected {len(FIELDS)} fields separated by '|', got {len(parts)}",
                )
            ]
        )
    values = dict(zip(FIELDS, parts, strict=True))
    problems: list[CardProblem] = []
    birth = _date(values["birth_date"], "birth_date", problems)
    issued = _date(values["issued"], "issued", problems)
    sex = SEXES.get(values["sex"].lower())
    if sex is None:
        problems.append(
            CardProblem("sex", f"phải là Nam hoặc Nữ, có {values['sex']!r} / must be Nam or Nữ")
        )
    name = " ".join(values["name"].split())
    if not name or any(c.isdigit() for c in name):
        problems.append(CardProblem("name", "trống hoặc có chữ số / empty or contains digits"))
    if not values["address"]:
        problems.append(CardProblem("address", "trống / empty"))
    problems += [
        CardProblem("cccd", p.text)
        for p in sy.check_cccd(values["cccd"], birth_year=birth.year if birth else None, sex=sex)
    ]
    cmnd = values["cmnd"] or None
    if cmnd:
        problems += [CardProblem("cmnd", p.text) for p in sy.check_cmnd(cmnd)]
    if birth and birth > today:
        problems.append(CardProblem("birth_date", "ở tương lai / in the future"))
    if issued and issued > today:
        problems.append(CardProblem("issued", "ở tương lai / in the future"))
    if birth and issued and issued < birth:
        problems.append(CardProblem("issued", "trước ngày sinh / before the birth date"))
    if problems or birth is None or issued is None or sex is None:
        raise CardError(problems)
    return CitizenCard(values["cccd"], cmnd, name, birth, sex, values["address"], issued)


def _date(value: str, field: str, problems: list[CardProblem]) -> date | None:
    """`ddmmyyyy` → date; a readable problem for anything else (e.g. 30 February)."""
    if len(value) != 8 or not value.isdigit():
        problems.append(CardProblem(field, f"phải là ddmmyyyy, có {value!r} / must be ddmmyyyy"))
        return None
    try:
        return date(int(value[4:]), int(value[2:4]), int(value[:2]))
    except ValueError:
        problems.append(CardProblem(field, f"ngày không có thật: {value} / no such date"))
        return None
