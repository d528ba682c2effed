"""Import of a facility's own drug or service catalogue from CSV or XLSX, collecting every error."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from benhan.catalog.drugs import Drug, Problems, parse_drug
from benhan.catalog.services import Service, parse_service
from benhan.fhir.primitives import fold

Kind = Literal["drug", "service"]

# Canonical field → header spellings seen in HIS exports (compared folded: no case, no accents,
# any run of spaces/punctuation as "_"); XML 130 names first, then Vietnamese and English labels.
ALIASES: dict[Kind, dict[str, tuple[str, ...]]] = {
    "drug": {
        "code": ("ma_thuoc", "ma_hoat_chat", "code", "drug_code"),
        "name": ("ten_thuoc", "ten_thuoc_thanh_pham", "name", "drug_name", "generic_name"),
        "ingredient": ("hoat_chat", "ten_hoat_chat", "ingredient", "active_ingredient"),
        "strength": ("ham_luong", "nong_do_ham_luong", "ham_luong_nong_do", "strength"),
        "form": ("dang_bao_che", "form", "dosage_form"),
        "route": ("duong_dung", "ma_duong_dung", "route"),
        "unit": ("don_vi_tinh", "dvt", "don_vi", "unit"),
        "atc": ("ma_atc", "atc", "atc_code"),
        "price": ("don_gia", "don_gia_bh", "gia", "price", "unit_price"),
        "tender": ("tt_thau", "thong_tin_thau", "tender"),
        "registration": ("so_dang_ky", "sdk", "registration", "registration_number"),
        "dose": ("dose",),
        "per_day": ("per_day",),
        "days": ("days",),
        "indications": ("indications", "chi_dinh_icd"),
        "code_source": ("code_source",),
    },
    "service": {
        "code": ("ma_dich_vu", "ma_dvkt", "code", "service_code"),
        "name": ("ten_dich_vu", "ten_dvkt", "name", "service_name"),
        "price": ("don_gia", "don_gia_bh", "gia", "price", "unit_price"),
        "group": ("ma_nhom", "group", "cost_group"),
        "kind": ("loai", "kind"),
        "unit": ("don_vi_tinh", "dvt", "unit"),
        "technique": ("ma_lien_ket", "technique"),
        "loinc": ("ma_loinc", "loinc"),
        "result_unit": ("don_vi_do", "result_unit"),
        "ref_low": ("ref_low",),
        "ref_high": ("ref_high",),
        "ref_text": ("ref_text",),
        "code_source": ("code_source",),
    },
}
REQUIRED: dict[Kind, tuple[str, ...]] = {
    "drug": ("code", "name", "strength", "route", "unit"),
    "service": ("code", "name", "price"),
}
XML_NAME = {  # how a missing column is named in messages: the XML 130 field
    "drug": {"code": "MA_THUOC", "name": "TEN_THUOC", "strength": "HAM_LUONG",
             "route": "DUONG_DUNG", "unit": "DON_VI_TINH"},
    "service": {"code": "MA_DICH_VU", "name": "TEN_DICH_VU", "price": "DON_GIA"},
}  # fmt: skip


@dataclass
class CatalogImport:
    """What one file gave: the good items, and one `file:line: field: problem` per bad value."""

    path: Path
    kind: Kind
    items: list[Drug | Service] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rows: int = 0  # data rows read (blank rows not counted)

    @property
    def ok(self) -> bool:
        return not self.errors


def header_key(header: str) -> str:
    """ "Mã thuốc", "MA_THUOC" and "ma thuoc" all become "ma_thuoc"."""
    return re.sub(r"[^a-z0-9]+", "_", fold(header)).strip("_")


def map_headers(headers: list[str], kind: Kind) -> dict[str, int]:
    """Canonical field → column index; the first matching column wins."""
    lookup = {alias: name for name, aliases in ALIASES[kind].items() for alias in aliases}
    mapping: dict[str, int] = {}
    for index, header in enumerate(headers):
        name = lookup.get(header_key(header))
        if name is not None and name not in mapping:
            mapping[name] = index
    return mapping


def load_catalog(path: Path, kind: Kind) -> CatalogImport:
    """Read a CSV (UTF-8, BOM or not, `,` or `;`) or XLSX catalogue; bad rows are reported and
    skipped, good rows kept, so one typo does not block a facility's whole catalogue."""
    result = CatalogImport(path, kind)
    table = _xlsx_rows(path) if path.suffix.lower() in (".xlsx", ".xlsm") else _csv_rows(path)
    header = next(table, None)
    if header is None:
        result.errors.append(f"{path}:1: -: tệp rỗng / empty file")
        return result
    headers = [str(h or "").strip() for h in header[1]]
    mapping = map_headers(headers, kind)
    missing = [f for f in REQUIRED[kind] if f not in mapping]
    if missing:
        result.errors.extend(
            f"{path}:1: {XML_NAME[kind][f]}: thiếu cột / column missing" for f in missing
        )
        return result
    for line, cells in table:
        if not any(str(c or "").strip() for c in cells):
            continue
        result.rows += 1
        _add_row(result, line, {f: _cell(cells, i) for f, i in mapping.items()}, headers, mapping)
    return result


def _add_row(
    result: CatalogImport,
    line: int,
    row: dict[str, str],
    headers: list[str],
    mapping: dict[str, int],
) -> None:
    item: Drug | Service | None
    problems: Problems
    if result.kind == "drug":
        item, problems = parse_drug(row)
    else:
        item, problems = parse_service(row)
    for name, text in problems:
        result.errors.append(f"{result.path}:{line}: {headers[mapping[name]]}: {text}")
    if item is not None:
        result.items.append(item)


def _cell(cells: list[Any], index: int) -> str:
    value = cells[index] if index < len(cells) else None
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 42100 as 42100.0
    return str(value)


def _csv_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    text = path.read_bytes().decode("utf-8-sig")  # utf-8-sig drops a BOM when there is one
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    for cells in reader:
        yield start, list(cells)
        start = reader.line_num + 1  # a quoted field may span lines: report where the row starts


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    from openpyxl import load_workbook  # type: ignore[import-untyped]  # only XLSX needs it

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, list(cells)
    finally:
        workbook.close()
