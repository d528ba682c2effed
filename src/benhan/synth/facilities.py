"""The province's facilities: the 56 on EMR, one station per commune, private clinics; as FHIR."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from benhan.fhir import systems
from benhan.fhir.systems import (
    BEDS_EXT,
    FACILITY_KIND,
    LEVEL_EXT,
    ON_EMR_EXT,
    ORG_TYPE,
    OWNERSHIP_EXT,
    ROLE_CODE,
)
from benhan.synth.places import Commune, vn_address

Kind = Literal[
    "general-hospital",
    "specialty-hospital",
    "medical-centre",
    "private-hospital",
    "cdc",
    "commune-station",
    "private-clinic",
]
Ownership = Literal["public", "private"]
Level = Literal["province", "regional", "commune"]  # tuyến tỉnh / khu vực (former district) / xã


@dataclass(frozen=True, slots=True)
class Facility:
    """One facility of the registry (issue 9): an Organization and the Location it works from."""

    # MA_CSKCB (QĐ 384/QĐ-BYT): old province code + 3-digit sequence. Facilities in old Bắc Ninh
    # communes keep 27xxx and old Bắc Giang 24xxx: whether VSS/MoH re-code them after the 2025
    # merger is unknown (specs/vietnam.md §3.3, §3.6 q.2), so we keep the codes they had.
    code: str
    name: str
    kind: Kind
    ownership: Ownership
    level: Level
    beds: int  # 0 for facilities without beds
    commune: Commune
    on_emr: bool  # in the DoH report's 56; stations and clinics are due by end of 2026
    org_id: str
    location_id: str


@dataclass(frozen=True, slots=True)
class _Kind:
    """What follows from a facility's kind, as one row of `_KINDS`."""

    label: str  # Vietnamese display of the facility-kind code
    ownership: Ownership
    level: Level
    on_emr: bool
    role: tuple[str, str] | None  # v3 ServiceDeliveryLocationRoleType for Location.type


# Private hospitals sit at the former-district level (basic care, tuyến khu vực); clinics at the
# commune level (first contact). The 56 on EMR are the DoH report's groups (issue 9).
_GACH: Final = ("GACH", "Hospitals; General Acute Care Hospital")
_HOSP: Final = ("HOSP", "Hospital")
_PC: Final = ("PC", "primary care clinic")
_OF: Final = ("OF", "Outpatient facility")
_KINDS: Final[dict[Kind, _Kind]] = {
    "general-hospital": _Kind("Bệnh viện đa khoa", "public", "province", True, _GACH),
    "specialty-hospital": _Kind("Bệnh viện chuyên khoa", "public", "province", True, _HOSP),
    "medical-centre": _Kind("Trung tâm y tế khu vực", "public", "regional", True, _HOSP),
    "private-hospital": _Kind("Bệnh viện tư nhân", "private", "regional", True, _HOSP),
    "cdc": _Kind("Trung tâm Kiểm soát bệnh tật", "public", "province", True, None),
    "commune-station": _Kind("Trạm y tế xã, phường", "public", "commune", False, _PC),
    "private-clinic": _Kind("Phòng khám đa khoa tư nhân", "private", "commune", False, _OF),
}

# The 15 public hospitals: (name, kind, old province, commune it stands in, nominal beds). Modelled
# on the two former provinces' provincial hospitals; beds are plausible, not registry figures.
# Old Bắc Ninh city's curative care is a city general hospital (the regional general hospital).
_PUBLIC_HOSPITALS: Final[tuple[tuple[str, Kind, str, str, int], ...]] = (
    ("Bệnh viện Đa khoa tỉnh Bắc Ninh", "general-hospital", "27", "Võ Cường", 1200),
    ("Bệnh viện Đa khoa tỉnh Bắc Giang", "general-hospital", "24", "Bắc Giang", 1100),
    ("Bệnh viện Đa khoa Thành phố Bắc Ninh", "general-hospital", "27", "Kinh Bắc", 300),
    ("Bệnh viện Sản - Nhi Bắc Ninh", "specialty-hospital", "27", "Kinh Bắc", 700),
    ("Bệnh viện Sản - Nhi Bắc Giang", "specialty-hospital", "24", "Bắc Giang", 600),
    ("Bệnh viện Phổi Bắc Ninh", "specialty-hospital", "27", "Vũ Ninh", 200),
    ("Bệnh viện Phổi Bắc Giang", "specialty-hospital", "24", "Đa Mai", 250),
    ("Bệnh viện Tâm thần Bắc Ninh", "specialty-hospital", "27", "Võ Cường", 150),
    ("Bệnh viện Tâm thần Bắc Giang", "specialty-hospital", "24", "Đa Mai", 150),
    ("Bệnh viện Y học cổ truyền Bắc Ninh", "specialty-hospital", "27", "Kinh Bắc", 250),
    ("Bệnh viện Y học cổ truyền Bắc Giang", "specialty-hospital", "24", "Bắc Giang", 250),
    ("Bệnh viện Phục hồi chức năng Bắc Giang", "specialty-hospital", "24", "Bắc Giang", 150),
    ("Bệnh viện Mắt Bắc Ninh", "specialty-hospital", "27", "Vũ Ninh", 100),
    ("Bệnh viện Ung bướu Bắc Giang", "specialty-hospital", "24", "Tân An", 400),
    ("Bệnh viện Nội tiết Bắc Giang", "specialty-hospital", "24", "Đa Mai", 100),
)

# 16 medical centres out of the 18 former district-level units (8 old Bắc Ninh + 10 old Bắc
# Giang): the two provincial cities have none here — Bắc Ninh city's curative care is its city
# general hospital (above) and Bắc Giang city's patients use the provincial hospitals next door.
# Each stands in the 2025 unit named after its former district town (all 16 exist in the data).
_MEDICAL_CENTRES: Final[tuple[tuple[str, str], ...]] = (
    ("Từ Sơn", "27"), ("Tiên Du", "27"), ("Yên Phong", "27"), ("Quế Võ", "27"),
    ("Thuận Thành", "27"), ("Gia Bình", "27"), ("Lương Tài", "27"),
    ("Việt Yên", "24"), ("Hiệp Hòa", "24"), ("Tân Yên", "24"), ("Lạng Giang", "24"),
    ("Yên Dũng", "24"), ("Lục Nam", "24"), ("Lục Ngạn", "24"), ("Sơn Động", "24"),
    ("Yên Thế", "24"),
)  # fmt: skip

_CDCS: Final[tuple[tuple[str, str, str], ...]] = (  # pre-merger names, as the DoH report counts two
    ("Trung tâm Kiểm soát bệnh tật tỉnh Bắc Ninh", "27", "Kinh Bắc"),
    ("Trung tâm Kiểm soát bệnh tật tỉnh Bắc Giang", "24", "Bắc Giang"),
)

# Invented brand words for private facilities: any likeness to a real facility is chance.
_BRANDS: Final = (
    "An Phúc", "Bình An", "Hưng Phát", "Minh Tâm", "Phúc Lâm", "Thiên Ân", "Hòa Bình Xanh",
    "Kinh Bắc Việt", "Gia An", "Quang Minh", "Hồng Phúc", "Tâm An", "Đức Hạnh", "Vạn An",
    "Tràng An Bắc", "Sao Mai Xanh", "Hải Đăng", "Thành Công", "Trường Xuân", "Hạnh Phúc Mới",
    "Nhân Ái", "Đông Đô Bắc", "Phương Nam Việt", "Lạc Việt", "Bảo Châu", "Kim Ngân",
    "An Khánh Việt", "Thái Hòa", "Hữu Nghị Bắc", "Song An",
)  # fmt: skip
_PRIVATE_HOSPITAL_TYPES: Final = {  # type word → weight (most private hospitals are general)
    "Bệnh viện Đa khoa": 14.0, "Bệnh viện Sản - Nhi": 3.0, "Bệnh viện Mắt": 2.0,
    "Bệnh viện Chấn thương Chỉnh hình": 1.0, "Bệnh viện Răng Hàm Mặt": 1.0,
}  # fmt: skip
# 2025 units holding the big industrial parks (Yên Phong, Quế Võ, Tiên Sơn, VSIP, Quang Châu,
# Vân Trung, Đình Trám…): private hospitals cluster near the workers.
_INDUSTRIAL: Final = frozenset(
    {"Yên Phong", "Yên Trung", "Tam Giang", "Quế Võ", "Phương Liễu", "Nam Sơn", "Tiên Du",
     "Đồng Nguyên", "Từ Sơn", "Việt Yên", "Nếnh", "Vân Hà", "Tự Lạn", "Song Liễu"}
)  # fmt: skip
_UNIT_WORD: Final = {"ward": "phường", "commune": "xã"}


def _short(commune: Commune) -> str:
    """The unit's name without its type word: "Phường Từ Sơn" → "Từ Sơn"."""
    return commune.name.split(" ", 1)[1]


def _place(communes: Sequence[Commune], hint: str, legacy: str) -> Commune:
    """The unit named `hint`; else the most populous ward of the old province; else any."""
    for c in communes:
        if _short(c) == hint:
            return c
    pool = [c for c in communes if c.legacy_province == legacy] or list(communes)
    return max(pool, key=lambda c: (c.kind == "ward", c.population_weight, c.code))


class _Codes:
    """MA_CSKCB sequences per old province, handed out in build order (hospitals first)."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def take(self, commune: Commune) -> str:
        prefix = commune.legacy_province
        seq = self.next.get(prefix, 1)
        if seq > 999:
            raise ValueError(f"MA_CSKCB sequence exhausted for province {prefix}")
        self.next[prefix] = seq + 1
        return f"{prefix}{seq:03d}"


def _facility(codes: _Codes, name: str, kind: Kind, beds: int, commune: Commune) -> Facility:
    spec = _KINDS[kind]
    code = codes.take(commune)
    return Facility(
        code, name, kind, spec.ownership, spec.level, beds, commune, spec.on_emr,
        f"org-{code}", f"loc-{code}",
    )  # fmt: skip


def _jitter(rng: random.Random, nominal: int, lo: int, hi: int) -> int:
    """Beds within ±10 % of nominal, rounded to 10 and kept within [lo, hi]."""
    return min(hi, max(lo, 10 * round(nominal * rng.uniform(0.9, 1.1) / 10)))


def _weighted(
    rng: random.Random, items: Sequence[Commune], weight: Callable[[Commune], float]
) -> Commune:
    return rng.choices(items, weights=[weight(c) for c in items])[0]


def _private_hospital_weight(c: Commune) -> float:
    return (
        c.population_weight
        * (3.0 if c.kind == "ward" else 1.0)
        * (4.0 if _short(c) in _INDUSTRIAL else 1.0)
    )


def _public(rng: random.Random, codes: _Codes, communes: Sequence[Commune]) -> Iterator[Facility]:
    for name, kind, legacy, hint, beds in _PUBLIC_HOSPITALS:
        where = _place(communes, hint, legacy)
        yield _facility(codes, name, kind, _jitter(rng, beds, 100, 1200), where)
    for town, legacy in _MEDICAL_CENTRES:
        beds = rng.randrange(80, 301, 10)
        where = _place(communes, town, legacy)
        yield _facility(codes, f"Trung tâm Y tế {town}", "medical-centre", beds, where)


def _private_hospitals(
    rng: random.Random, codes: _Codes, communes: Sequence[Commune]
) -> Iterator[Facility]:
    types, weights = zip(*_PRIVATE_HOSPITAL_TYPES.items(), strict=True)
    for brand in rng.sample(_BRANDS, 23):
        where = _weighted(rng, communes, _private_hospital_weight)
        kind_word = rng.choices(types, weights=weights)[0]
        beds = rng.randrange(20, 201, 10)
        yield _facility(codes, f"{kind_word} {brand}", "private-hospital", beds, where)


def _stations(codes: _Codes, communes: Sequence[Commune]) -> Iterator[Facility]:
    for c in sorted(communes, key=lambda c: c.code):
        name = f"Trạm Y tế {_UNIT_WORD[c.kind]} {_short(c)}"
        yield _facility(codes, name, "commune-station", 0, c)


def _clinics(
    rng: random.Random, codes: _Codes, communes: Sequence[Commune], n: int
) -> Iterator[Facility]:
    taken: set[str] = set()
    for _ in range(n):
        where = _weighted(rng, communes, lambda c: c.population_weight)
        base = f"Phòng khám Đa khoa {rng.choice(_BRANDS)} {_short(where)}"
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base} cơ sở {k}"
        taken.add(name)
        yield _facility(codes, name, "private-clinic", 0, where)


def build_facilities(
    seed: int, communes: Sequence[Commune], private_clinics: int = 20
) -> list[Facility]:
    """Every facility, codes allocated in a stable order; the same seed gives the same list.

    Public hospitals, medical centres, private hospitals, CDCs, stations, then clinics: the
    clinics come last so that `private_clinics` changes nothing before them.
    """
    if not communes:
        raise ValueError("build_facilities needs at least one commune")
    rng = random.Random(f"benhan.facilities|{seed}")  # noqa: S311 - reproducible test data
    codes = _Codes()
    out = [*_public(rng, codes, communes), *_private_hospitals(rng, codes, communes)]
    for name, legacy, hint in _CDCS:
        out.append(_facility(codes, name, "cdc", 0, _place(communes, hint, legacy)))
    out.extend(_stations(codes, communes))
    out.extend(_clinics(rng, codes, communes, private_clinics))
    return out


# ---------------------------------------------------------------- FHIR


def _address(facility: Facility) -> dict[str, Any]:
    return vn_address(facility.commune, "work")


def _kind_concept(facility: Facility) -> dict[str, Any]:
    label = _KINDS[facility.kind].label
    return {"coding": [{"system": FACILITY_KIND, "code": facility.kind, "display": label}]}


def _offset(code: str) -> tuple[float, float]:
    """A stable offset of up to ~1 km, so facilities in one commune don't share a map point."""
    digest = hashlib.sha256(code.encode()).digest()
    return ((digest[0] - 127.5) / 12750, (digest[1] - 127.5) / 12750)


def _organization(f: Facility) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": f.org_id,
        "extension": [
            {"url": BEDS_EXT, "valueInteger": f.beds},
            {"url": OWNERSHIP_EXT, "valueCode": f.ownership},
            {"url": LEVEL_EXT, "valueCode": f.level},
            {"url": ON_EMR_EXT, "valueBoolean": f.on_emr},
        ],
        "identifier": [{"use": "official", "system": systems.MA_CSKCB, "value": f.code}],
        "active": True,
        "type": [
            {"coding": [{"system": ORG_TYPE, "code": "prov", "display": "Healthcare Provider"}]},
            _kind_concept(f),
        ],
        "name": f.name,
        "address": [_address(f)],
    }


def _location(f: Facility) -> dict[str, Any]:
    role = _KINDS[f.kind].role
    types = [_kind_concept(f)]
    if role:
        types.insert(0, {"coding": [{"system": ROLE_CODE, "code": role[0], "display": role[1]}]})
    dlat, dlon = _offset(f.code)
    return {
        "resourceType": "Location",
        "id": f.location_id,
        "identifier": [{"use": "official", "system": systems.MA_CSKCB, "value": f.code}],
        "status": "active",
        "name": f.name,
        "mode": "instance",
        "type": types,
        "address": _address(f),
        "position": {
            "longitude": round(f.commune.lon + dlon, 6),
            "latitude": round(f.commune.lat + dlat, 6),
        },
        "managingOrganization": {"reference": f"Organization/{f.org_id}"},
    }


def to_fhir(facility: Facility) -> list[dict[str, Any]]:
    """[Organization, Location]; the Location's reference is resolved when both are written."""
    return [_organization(facility), _location(facility)]


# ---------------------------------------------------------------- lookups


def station_for(facilities: Sequence[Facility], commune_code: str) -> Facility:
    """The commune health station of one commune (first contact for its people)."""
    for f in facilities:
        if f.kind == "commune-station" and f.commune.code == commune_code:
            return f
    raise KeyError(f"no commune health station for commune {commune_code}")


def _distance2(a: Commune, b: Commune) -> float:
    return (a.lat - b.lat) ** 2 + (a.lon - b.lon) ** 2  # ordering only: a flat ~50 km area


def referral_targets(facilities: Sequence[Facility], commune: Commune) -> tuple[Facility, Facility]:
    """The medical centre for the commune's area and the provincial general hospital above it.

    The area's centre is the nearest one of the same former province (districts are gone, so
    distance stands in for the old district boundary). The hospital is the largest general
    hospital of the same former province — its provincial hospital.
    """
    centres = [f for f in facilities if f.kind == "medical-centre"]
    hospitals = [f for f in facilities if f.kind == "general-hospital"]
    if not centres or not hospitals:
        raise ValueError("referral_targets needs medical centres and general hospitals")
    legacy = commune.legacy_province
    centres = [f for f in centres if f.commune.legacy_province == legacy] or centres
    hospitals = [f for f in hospitals if f.commune.legacy_province == legacy] or hospitals
    centre = min(centres, key=lambda f: (_distance2(f.commune, commune), f.code))
    hospital = max(hospitals, key=lambda f: (f.beds, f.code))
    return centre, hospital
