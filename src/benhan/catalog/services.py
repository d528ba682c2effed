"""The service catalogue (exams, tests, imaging, procedures, bed-days) keyed by MA_DICH_VU."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from benhan.catalog._data import rows
from benhan.catalog.drugs import Problems, optional, parse_decimal

# specs/xml130.md §2.4: `XX.YYYY.ZZZZ`, exam (and here bed-day) codes the shorter `XX.YYYY`.
MA_DICH_VU_RE = re.compile(r"\d{2}\.\d{4}(\.\d{4})?")
LOINC_RE = re.compile(r"\d{1,7}-\d")

# MA_NHOM cost group (specs/xml130.md §3.7) → kind, for files that carry only the group.
KIND_BY_GROUP = {1: "lab", 2: "imaging", 3: "function", 8: "surgery", 13: "exam", 18: "procedure"}
KIND_BY_GROUP |= dict.fromkeys((14, 15, 16), "bed-day")
KINDS = frozenset(KIND_BY_GROUP.values()) | {"other"}


@dataclass(frozen=True, slots=True)
class Service:
    """One billable service; labs carry what is needed to generate a plausible result."""

    code: str  # MA_DICH_VU
    name: str  # TEN_DICH_VU
    price: Decimal  # DON_GIA (BHYT), VND
    kind: str = "other"  # exam, lab, imaging, function, procedure, surgery, bed-day, other
    group: int | None = None  # MA_NHOM
    unit: str = "Lần"
    technique: str = ""  # TT 23/2024 Annex 02 link code (chapter.STT of TT 43/TT 21)
    loinc: str = ""
    result_unit: str = ""
    ref_low: Decimal | None = None
    ref_high: Decimal | None = None
    ref_text: str = ""  # expected result of a qualitative test ("âm tính")
    code_source: str = "facility"  # "local", "local-tt23" (benhan-made), "facility"


def _text(row: Mapping[str, str], field: str) -> str:
    return (row.get(field) or "").strip()


def _group(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 19:
        raise ValueError(value)
    return number


def _kind(row: Mapping[str, str], group: int | None, p: Problems) -> str:
    kind = _text(row, "kind").lower()
    if kind and kind not in KINDS:
        p.append(("kind", f"loại dịch vụ không rõ / unknown kind {kind!r}"))
    return kind or KIND_BY_GROUP.get(group or 0, "other")


def parse_service(
    row: Mapping[str, str], source: str = "facility"
) -> tuple[Service | None, Problems]:
    """A Service from a row keyed by canonical field names, or None and every problem found."""
    p: Problems = [
        (f, "thiếu giá trị / missing value") for f in ("code", "name", "price") if not _text(row, f)
    ]
    code, loinc = _text(row, "code").upper(), _text(row, "loinc")
    if code and not MA_DICH_VU_RE.fullmatch(code):
        p.append(("code", f"mã dịch vụ sai định dạng / bad MA_DICH_VU {code!r}"))
    if loinc and not LOINC_RE.fullmatch(loinc):
        p.append(("loinc", f"mã LOINC sai định dạng / bad LOINC code {loinc!r}"))
    price = optional(row, "price", parse_decimal, p)
    group = optional(row, "group", _group, p)
    low = optional(row, "ref_low", parse_decimal, p)
    high = optional(row, "ref_high", parse_decimal, p)
    kind = _kind(row, group, p)
    if p or price is None:
        return None, p
    service = Service(
        code=code,
        name=_text(row, "name"),
        price=price,
        kind=kind,
        group=group,
        unit=_text(row, "unit") or "Lần",
        technique=_text(row, "technique"),
        loinc=loinc,
        result_unit=_text(row, "result_unit"),
        ref_low=low,
        ref_high=high,
        ref_text=_text(row, "ref_text"),
        code_source=_text(row, "code_source") or source,
    )
    return service, []


@cache
def services() -> dict[str, Service]:
    """benhan's curated service catalogue (data/services.csv) by MA_DICH_VU."""
    items: dict[str, Service] = {}
    for line, row in rows("services.csv"):
        service, problems = parse_service(row, "local")
        if service is None or service.code in items:  # shipped data: a bug, not user input
            raise ValueError(f"services.csv:{line}: {problems or 'duplicate code'}")
        items[service.code] = service
    return items


def services_of_kind(kind: str) -> list[Service]:
    """Curated services of one kind ("lab", "imaging", "exam", …)."""
    return [s for s in services().values() if s.kind == kind]
