"""The drug catalogue: benhan's curated list and the Drug record facility imports produce too."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import TypeVar

from benhan.catalog._data import rows
from benhan.fhir.primitives import fold

Problems = list[tuple[str, str]]  # (canonical field, problem text)
T = TypeVar("T")

# MA_THUOC: common-catalogue code `NN.NNN`, a `+`-joined compound, a blood-product suffix (.KT,
# .NAT, .KTNAT) or 00.0000 for an ingredient outside the BHYT list (specs/xml130.md §3.11).
MA_THUOC_RE = re.compile(r"\d{2}\.\d{1,4}(\.[A-Z]{2,5})?(\+\d{2}\.\d{1,4})*")
ATC_RE = re.compile(r"[A-Z]\d{2}[A-Z]{2}(\d{2})?")  # level 5, or level 4 where WHO has no 5
ICD_TERM_RE = re.compile(r"[A-Z]\d{2}(\.[0-9A-Z]{1,2})?(-[A-Z]\d{2})?")
ROUTE_RE = re.compile(r"\d\.\d{2}")


@dataclass(frozen=True, slots=True)
class Route:
    """A route of administration: XML 130 DUONG_DUNG code with its SNOMED CT route."""

    code: str
    name_vi: str
    snomed: str
    snomed_display: str


# DUONG_DUNG codes: only 1.01 (uống) appears in specs/xml130.md, as a placeholder; the others
# follow its "group.number" shape and are benhan assumptions until checked against the MoH list.
ROUTES: dict[str, Route] = {
    r.code: r
    for r in (
        Route("1.01", "Uống", "26643006", "Oral route"),
        Route("1.04", "Ngậm dưới lưỡi", "37839007", "Sublingual route"),
        Route("2.01", "Tiêm bắp", "78421000", "Intramuscular route"),
        Route("2.02", "Tiêm dưới da", "34206005", "Subcutaneous route"),
        Route("2.03", "Tiêm trong da", "372464004", "Intradermal route"),
        Route("2.04", "Tiêm tĩnh mạch", "47625008", "Intravenous route"),
        Route("2.05", "Tiêm truyền tĩnh mạch", "47625008", "Intravenous route"),
        Route("3.01", "Dùng ngoài", "6064005", "Topical route"),
        Route("3.02", "Nhỏ mắt", "54485002", "Ophthalmic route"),
        Route("3.03", "Nhỏ mũi", "46713006", "Nasal route"),
        Route("3.04", "Nhỏ tai", "10547007", "Otic route"),
        Route("4.01", "Đặt âm đạo", "16857009", "Vaginal route"),
        Route("4.02", "Đặt hậu môn", "37161004", "Rectal route"),
        Route("5.01", "Hít", "447694001", "Respiratory tract route"),
    )
}
_ROUTE_NAMES = {fold(r.name_vi): r.code for r in ROUTES.values()} | {
    "tiem": "2.01",
    "bôi": "3.01",
    "boi": "3.01",
    "xit mui": "3.03",
    "khi dung": "5.01",
    "truyen tinh mach": "2.05",
}


@dataclass(frozen=True, slots=True)
class Drug:
    """One catalogue line: an active ingredient at one strength, form and route."""

    code: str  # MA_THUOC
    name: str  # TEN_THUOC (generic name, Vietnamese spelling)
    strength: str  # HAM_LUONG
    route: str  # DUONG_DUNG code, a key of ROUTES
    unit: str  # DON_VI_TINH
    ingredient: str = ""  # INN of the active ingredient(s), English
    form: str = ""  # DANG_BAO_CHE
    atc: str = ""
    dose: Decimal | None = None  # units per dose, typical adult
    per_day: int | None = None
    days: int | None = None
    indications: tuple[str, ...] = ()  # ICD-10 prefixes or ranges ("J00-J06")
    price: Decimal | None = None  # DON_GIA, VND per unit
    tender: str = ""  # TT_THAU
    registration: str = ""  # SO_DANG_KY
    code_source: str = "facility"  # "local" (benhan-made), "qd4750", "facility"

    def indicated_for(self, icd10_code: str) -> bool:
        """True when the diagnosis falls under one of the drug's indications."""
        return any(_covers(term, icd10_code) for term in self.indications)

    def dosage_text(self) -> str:
        """LIEU_DUNG in the outpatient form of XML 130: `1 Viên/lần * 3 lần/ngày * 5 ngày`."""
        if self.dose is None or self.per_day is None or self.days is None:
            return ""
        return f"{self.dose} {self.unit}/lần * {self.per_day} lần/ngày * {self.days} ngày"


def _covers(term: str, code: str) -> bool:
    if "-" in term:
        low, high = term.split("-")
        return low <= code[:3] <= high  # ranges are written between 3-character categories
    return code.startswith(term)


def _text(row: Mapping[str, str], field: str) -> str:
    return (row.get(field) or "").strip()


def parse_decimal(value: str) -> Decimal:
    """A non-negative number with "." or "," as decimal mark (XML 130 allows ≤ 3 decimals)."""
    cleaned = value.replace(" ", "").replace("\u00a0", "").replace(",", ".")
    if not re.fullmatch(r"\d+(\.\d{1,3})?", cleaned):
        raise ValueError(value)
    try:
        return Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the pattern already rejects these
        raise ValueError(value) from None


def optional(
    row: Mapping[str, str], field: str, parse: Callable[[str], T], p: Problems
) -> T | None:
    """The parsed value of an optional field, None when empty; a problem when unparsable."""
    value = _text(row, field)
    if not value:
        return None
    try:
        return parse(value)
    except ValueError:
        p.append((field, f"giá trị không hợp lệ / invalid value {value!r}"))
        return None


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(value)
    return number


def _route(value: str, p: Problems) -> str:
    if ROUTE_RE.fullmatch(value):
        return value
    code = _ROUTE_NAMES.get(fold(value))
    if code is None:
        p.append(("route", f"đường dùng không rõ / unknown route {value!r}"))
        return ""
    return code


def _indications(value: str, p: Problems) -> tuple[str, ...]:
    terms = tuple(t.strip().upper() for t in value.split(";") if t.strip())
    bad = [t for t in terms if not ICD_TERM_RE.fullmatch(t)]
    p.extend(("indications", f"không phải mã ICD-10 / not ICD-10 {t!r}") for t in bad)
    return terms


REQUIRED = ("code", "name", "strength", "route", "unit")


def parse_drug(row: Mapping[str, str], source: str = "facility") -> tuple[Drug | None, Problems]:
    """A Drug from a row keyed by canonical field names, or None and every problem found."""
    p: Problems = [(f, "thiếu giá trị / missing value") for f in REQUIRED if not _text(row, f)]
    code, atc = _text(row, "code").upper(), _text(row, "atc").upper()
    if code and not MA_THUOC_RE.fullmatch(code):
        p.append(("code", f"mã thuốc sai định dạng / bad MA_THUOC {code!r}"))
    if atc and not ATC_RE.fullmatch(atc):
        p.append(("atc", f"mã ATC sai định dạng / bad ATC code {atc!r}"))
    route = _route(_text(row, "route"), p) if _text(row, "route") else ""
    terms = _indications(_text(row, "indications"), p)
    dose = optional(row, "dose", parse_decimal, p)
    per_day = optional(row, "per_day", _positive_int, p)
    days = optional(row, "days", _positive_int, p)
    price = optional(row, "price", parse_decimal, p)
    if p:
        return None, p
    drug = Drug(
        code=code,
        name=_text(row, "name"),
        strength=_text(row, "strength"),
        route=route,
        unit=_text(row, "unit"),
        ingredient=_text(row, "ingredient"),
        form=_text(row, "form"),
        atc=atc,
        dose=dose,
        per_day=per_day,
        days=days,
        indications=terms,
        price=price,
        tender=_text(row, "tender"),
        registration=_text(row, "registration"),
        code_source=_text(row, "code_source") or source,
    )
    return drug, []


@cache
def drugs() -> tuple[Drug, ...]:
    """benhan's curated drug catalogue (data/drugs.csv), in file order."""
    items = []
    for line, row in rows("drugs.csv"):
        drug, problems = parse_drug(row, "local")
        if drug is None:  # shipped data: a broken line is a bug, not user input
            raise ValueError(f"drugs.csv:{line}: {problems}")
        items.append(drug)
    return tuple(items)


def drugs_for(icd10_code: str) -> list[Drug]:
    """Curated drugs indicated for a diagnosis (for prescription generation)."""
    return [d for d in drugs() if d.indicated_for(icd10_code)]
