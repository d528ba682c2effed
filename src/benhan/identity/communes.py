"""Communes across the 2025 reform: however a record names its commune (a 2025 code, a code
from before 1 July 2025, an old name with its district, a new name), the 2025 unit's code, so
that a record written before the reform and one written after compare equal.

Law 72/2025/QH15 removed the district level and Resolution 202/2025/QH15 merged provinces; a
2025 commune mostly keeps the code of a unit it was formed from (QĐ 19/2025/QĐ-TTg; all 99 of
Bắc Ninh do), so a code may be old and new at once: it is read as the 2025 unit (187 old
codes in the country are also the code of another 2025 unit; their old meaning is lost). The
table is vietnamadminunits' data (`converter_2025.json`: each 2025 unit → the old units it was
formed from; `dataset.db`: names and codes), read without importing the package, whose import
loads geopy and shapely.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sqlite3
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from benhan.fhir.primitives import fold

# Unit types as written, folded, with the usual abbreviations (TP. Bắc Giang, H. Tiên Du).
_TYPES = {
    "thanh pho": "thanhpho", "thi tran": "thitran", "thi xa": "thixa", "dac khu": "dackhu",
    "phuong": "phuong", "xa": "xa", "huyen": "huyen", "quan": "quan", "tinh": "tinh",
    "tp": "thanhpho", "tx": "thixa", "tt": "thitran", "p": "phuong", "x": "xa", "h": "huyen",
    "q": "quan",
}  # fmt: skip
_PROVINCE_TYPES = frozenset({"tinh", "thanhpho"})
_PARTS = re.compile(r"[,;]")
_WORD = re.compile(r"\w+")


def data_dir() -> Path:
    """vietnamadminunits' data folder, found without importing the package."""
    spec = importlib.util.find_spec("vietnamadminunits")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("vietnamadminunits is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


Reading = tuple[str | None, str, str]  # (type, folded name, accent-aware name), no spaces


def readings(text: str) -> tuple[Reading, ...]:
    """A name read with its leading type (if it has one) and as a bare name: "Xã Tân Chi" →
    (xa, tanchi, tânchi) and (None, xatanchi, xãtânchi); both, as a name may begin with a
    word that is also a type (Quán Toan, Xa Lý)."""
    accented = _WORD.findall(unicodedata.normalize("NFC", text).casefold())
    words = [fold(w) for w in accented]
    out: list[Reading] = [(None, "".join(words), "".join(accented))]
    for n in (2, 1):
        kind = _TYPES.get(" ".join(words[:n])) if len(words) > n else None
        if kind:
            return ((kind, "".join(words[n:]), "".join(accented[n:])), *out)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit by name: the 2025 code it is (or became), and what may qualify its name."""

    code: str
    kind: str | None  # canonical folded type: xa, phuong, thitran, dackhu
    name: str  # folded, without type or spaces: "tanchi"
    accented: str  # "tânchi": tells apart names that fold alike (Minh Quán, Minh Quân)
    provinces: frozenset[str]  # folded names of the provinces it lies in, old and new
    districts: frozenset[str] = frozenset()  # an old unit's district ("tiendu")


@dataclass(slots=True)
class Reform:
    """The 2025 codes, the code each old code became, and every unit by its folded name."""

    codes: set[str] = field(default_factory=set)
    became: dict[str, str] = field(default_factory=dict)  # old code → 2025 code
    new_units: defaultdict[str, list[Unit]] = field(default_factory=lambda: defaultdict(list))
    old_units: defaultdict[str, list[Unit]] = field(default_factory=lambda: defaultdict(list))
    provinces: set[str] = field(default_factory=set)  # every province name, folded


@cache
def _key(name: str | None) -> tuple[str, str]:
    """A name as the data writes it without its type ("Tiên Du") → (tiendu, tiêndu)."""
    return readings(name or "")[-1][1:]


@cache
def reform() -> Reform:
    """The whole country's table (some 3,300 units of 2025 and 10,000 before), loaded once."""
    folder = data_dir()
    converter = json.loads((folder / "converter_2025.json").read_text(encoding="utf-8"))
    with sqlite3.connect(f"file:{folder / 'dataset.db'}?mode=ro", uri=True) as db:
        new_rows = db.execute(
            "SELECT wardCode, wardShort, wardType, provinceKey, provinceShort, wardKey"
            " FROM admin_units"
        ).fetchall()
        old_rows = db.execute(
            "SELECT wardCode, wardShort, wardType, districtShort, provinceKey, provinceShort,"
            " provinceKey || '_' || districtKey || '_' || wardKey"
            " FROM admin_units_legacy WHERE ward IS NOT NULL"
        ).fetchall()
    out = Reform()
    new_of_old = {old: new for new, olds in converter["DICT_PROVINCE"].items() for old in olds}
    names: defaultdict[str, set[str]] = defaultdict(set)  # new province key → its names
    for row in new_rows:
        names[row[3]].add(_key(row[4])[0])
    for row in old_rows:  # a record may still name the old province
        names[new_of_old[row[4]]].add(_key(row[5])[0])
    out.provinces = {n for ns in names.values() for n in ns}
    code_of = {f"{r[3]}_{r[5]}": r[0] for r in new_rows}
    for code, ward, wtype, pkey, _, _ in new_rows:
        out.codes.add(code)
        _add(out.new_units, Unit(code, _kind(wtype), *_key(ward), frozenset(names[pkey])))
    became = dict(_old_to_new(converter, code_of))
    for code, ward, wtype, district, pkey, pshort, old_key in old_rows:
        new = became.get(old_key)
        if new is None:
            continue
        if code not in out.codes:  # a code both old and 2025 means the 2025 unit: records
            out.became[code] = new  # are written with the 2025 codes now
        provinces = frozenset({_key(pshort)[0], *names[new_of_old[pkey]]})
        unit = Unit(new, _kind(wtype), *_key(ward), provinces, frozenset({_key(district)[0]}))
        _add(out.old_units, unit)
    return out


def _add(index: defaultdict[str, list[Unit]], unit: Unit) -> None:
    index[unit.name].append(unit)


@cache
def _kind(kind: str | None) -> str | None:
    """The canonical type of a type as the data writes it ("Thị trấn" → thitran)."""
    return _TYPES.get(" ".join(fold(w) for w in _WORD.findall(kind or "")))


def _old_to_new(converter: dict[str, Any], code_of: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(old "province_district_ward" key, the 2025 code it became). An old unit split between
    several 2025 units takes the one the package names its default (the one most of it went
    to); a record names one commune, not a share of one."""
    for province, wards in converter["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for ward, olds in wards.items():
            if (code := code_of.get(f"{province}_{ward}")) is not None:
                yield from ((old, code) for old in olds)
    for province, olds in converter["DICT_PROVINCE_WARD_DIVIDED"].items():
        for old, news in olds.items():
            default = next((n["newWardKey"] for n in news if n["isDefaultNewWard"]), None)
            if (code := code_of.get(f"{province}_{default}")) is not None:
                yield old, code


@lru_cache(maxsize=65_536)
def to_2025(text: str) -> str | None:
    """The 2025 code of the commune `text` names, or None when it names none, or several.

    A code (5 digits; 4 when a spreadsheet dropped the leading zero) is read as a 2025 code,
    else as an old one. A name is "commune[, district][, province]", most specific first: with
    a district it is an old unit; without one, a 2025 unit if one has that name, else an old
    unit. The province, when given, may be the old or the new one."""
    text = text.strip()
    if text.isdigit():
        return _by_code(text.zfill(5)) if len(text) <= 5 else None
    parts = [readings(p) for p in _PARTS.split(text) if p.strip()]
    if not parts or len(parts) > 3:
        return None
    ward, rest = parts[0], parts[1:]
    province = rest.pop() if rest and _is_province(rest[-1]) else None
    if len(rest) > 1:
        return None
    table = reform()
    if not rest:
        found = _one(ward, table.new_units, province, None)
        if found:
            return found
    return _one(ward, table.old_units, province, rest[0] if rest else None)


def _by_code(code: str) -> str | None:
    table = reform()
    return code if code in table.codes else table.became.get(code)


def _is_province(part: tuple[Reading, ...]) -> bool:
    provinces = reform().provinces
    return any(k in (None, *_PROVINCE_TYPES) and n in provinces for k, n, _ in part)


def _one(
    ward: tuple[Reading, ...],
    index: dict[str, list[Unit]],
    province: tuple[Reading, ...] | None,
    district: tuple[Reading, ...] | None,
) -> str | None:
    """The one code the units fitting these parts share; accents decide between names that
    fold alike; None when none fits or several codes remain."""
    fits = [
        u
        for _, name, _ in ward
        for u in index.get(name, ())
        if _fits(ward, u.kind, u.name)
        and (province is None or _named(province, u.provinces))
        and (district is None or _named(district, u.districts))
    ]
    codes = {u.code for u in fits}
    if len(codes) > 1:
        codes = {u.code for u in fits if any(a == u.accented for _, _, a in ward)}
    return codes.pop() if len(codes) == 1 else None


def _fits(part: Iterable[Reading], kind: str | None, name: str) -> bool:
    return any(n == name and k in (None, kind) for k, n, _ in part)


def _named(part: Iterable[Reading], names: frozenset[str]) -> bool:
    return any(n in names for _, n, _ in part)
