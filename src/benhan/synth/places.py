"""The merged Bắc Ninh (code 24) and its 99 communes and wards, from vietnamadminunits' data."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from benhan.fhir.systems import COMMUNE_CODE_EXT

PROVINCE_CODE = "24"  # Resolution 202/2025/QH15 + QĐ 19/2025/QĐ-TTg: merged Bắc Ninh keeps 24
PROVINCE_NAME = "Bắc Ninh"
_PROVINCE_KEY = "tinhbacninh"  # the package's normalised key for the new province
_LEGACY_KEYS = {"tinhbacgiang": "24", "tinhbacninh": "27"}  # pre-2025 codes (QĐ 124/2004)
# Wards are urban: a ward's predecessor units are denser than a rural commune's. The factor is
# our assumption (old Bắc Ninh city wards held ~2–3× a rural commune's people), not package data.
_WARD_DENSITY = 2.0


@dataclass(frozen=True, slots=True)
class Commune:
    """One commune-level unit after 1 Jul 2025 (Law 72/2025/QH15: no district level)."""

    code: str  # 5 digits, QĐ 19/2025/QĐ-TTg
    name: str  # with its type: "Phường Bắc Giang", "Xã Tiên Du"
    kind: Literal["ward", "commune"]
    lat: float
    lon: float
    legacy_province: Literal["24", "27"]  # old Bắc Giang (24) or old Bắc Ninh (27)
    population_weight: float  # relative; predecessor units × ward density
    # A unit from before 1 July 2025 (`predecessors`) has a district and its old province;
    # its code is the old one (QĐ 124/2004/QĐ-TTg), or "" where a record gives names only.
    district: str | None = None
    province: str = PROVINCE_NAME


def _data_dir() -> Path:
    """The package's data folder, found without importing it (its import loads geopy/shapely)."""
    spec = importlib.util.find_spec("vietnamadminunits")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("vietnamadminunits is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _predecessors() -> dict[str, list[str]]:
    """New ward key → old "province_district_ward" keys it was formed from (converter data)."""
    data = json.loads((_data_dir() / "converter_2025.json").read_text(encoding="utf-8"))
    out: dict[str, list[str]] = dict(data["DICT_PROVINCE_WARD_NO_DIVIDED"][_PROVINCE_KEY])
    for old, news in data["DICT_PROVINCE_WARD_DIVIDED"].get(_PROVINCE_KEY, {}).items():
        for new in news:  # an old unit split across several new ones counts for each
            out.setdefault(new["newWardKey"], []).append(old)
    return out


def _legacy_province(old_keys: list[str]) -> Literal["24", "27"]:
    """The old province most of a unit's predecessors belonged to (all of them, in the data)."""
    counts = Counter(_LEGACY_KEYS[k.split("_", 1)[0]] for k in old_keys)
    return "27" if counts["27"] > counts["24"] else "24"


@cache
def _load() -> tuple[tuple[Commune, ...], dict[str, tuple[Commune, ...]]]:
    """The 2025 units, and each one's predecessors (by its code)."""
    query = (
        "SELECT wardCode, ward, wardType, wardLat, wardLon, wardKey FROM admin_units"
        " WHERE provinceCode = ? ORDER BY wardCode"
    )
    legacy_query = (
        "SELECT provinceKey || '_' || districtKey || '_' || wardKey, wardCode, ward, wardType,"
        " wardLat, wardLon, district, province, provinceCode FROM admin_units_legacy"
        " WHERE provinceCode IN ('24', '27')"
    )
    with sqlite3.connect(f"file:{_data_dir() / 'dataset.db'}?mode=ro", uri=True) as db:
        rows = db.execute(query, (PROVINCE_CODE,)).fetchall()
        legacy = {row[0]: row[1:] for row in db.execute(legacy_query)}
    preds = _predecessors()
    out, before = [], {}
    for code, name, wtype, lat, lon, key in rows:
        kind: Literal["ward", "commune"] = "ward" if wtype == "Phường" else "commune"
        olds = preds[key]
        weight = len(olds) * (_WARD_DENSITY if kind == "ward" else 1.0)
        out.append(Commune(code, name, kind, lat, lon, _legacy_province(olds), weight))
        before[code] = tuple(_old_unit(*legacy[k]) for k in olds)
    return tuple(out), before


def _old_unit(
    code: str, name: str, wtype: str, lat: float, lon: float, district: str, province: str,
    province_code: Literal["24", "27"],
) -> Commune:  # fmt: skip
    kind: Literal["ward", "commune"] = "ward" if wtype == "Phường" else "commune"
    return Commune(code, name, kind, lat, lon, province_code, 1.0, district, province)


def communes() -> list[Commune]:
    """The 99 units of the merged Bắc Ninh, ordered by code."""
    return list(_load()[0])


def predecessors(commune: Commune) -> list[Commune]:
    """The units before 1 July 2025 that `commune` was formed from (each with its district and
    old province), as a record written before the reform names them."""
    return list(_load()[1].get(commune.code, ()))


def vn_address(commune: Commune, use: str, line: str | None = None) -> dict[str, Any]:
    """A two-level FHIR Address (Law 72/2025: no district): commune as `city`, province as
    `state`, the commune code in an extension so that analytics never parse names. A unit
    from before the reform keeps its district (three levels, as it was written then)."""
    text = ", ".join(x for x in (line, commune.name, commune.district, commune.province) if x)
    address: dict[str, Any] = {"use": use, "type": "physical", "text": text}
    if commune.code:
        address = {"extension": [{"url": COMMUNE_CODE_EXT, "valueCode": commune.code}], **address}
    if line:
        address["line"] = [line]
    address["city"] = commune.name
    if commune.district:
        address["district"] = commune.district
    address.update({"state": commune.province, "country": "VN"})
    return address
