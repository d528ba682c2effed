"""Deterministic synthetic residents of Bắc Ninh: names, ages, IDs, insurance, households."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate
from typing import Any, Literal

from benhan.fhir import systems
from benhan.fhir.systems import cccd_century_digit
from benhan.synth.places import Commune, vn_address

Sex = Literal["male", "female"]
REFERENCE_DATE = date(2025, 7, 1)  # "today" of the synthetic province; never the wall clock

# specs/vietnam.md §6.1 family-name estimates (Nguyễn 38–40 %, …; top 14 ≈ 90 %). The north
# writes Hoàng and Vũ, so Huỳnh and Võ get a small share; the rest is spread over names common
# in the Red River delta (Thân is typical of Bắc Giang).
FAMILY_NAMES: dict[str, float] = {
    "Nguyễn": 39.0, "Trần": 11.0, "Lê": 9.5, "Phạm": 7.0, "Hoàng": 4.6, "Huỳnh": 0.4,
    "Phan": 4.5, "Vũ": 3.6, "Võ": 0.3, "Đặng": 2.0, "Bùi": 2.0, "Đỗ": 1.4, "Hồ": 1.3,
    "Ngô": 1.3, "Dương": 1.0, "Lý": 0.5, "Đinh": 1.0, "Trương": 0.9, "Đào": 0.9, "Thân": 0.8,
    "Cao": 0.7, "Mai": 0.6, "Lương": 0.6, "Hà": 0.6, "Tạ": 0.5, "Chu": 0.5, "Nghiêm": 0.4,
    "Kiều": 0.4, "Phùng": 0.4, "Lưu": 0.4, "Đoàn": 0.5, "Vương": 0.3, "Tô": 0.3, "Nông": 0.2,
}  # fmt: skip
# Middle names are a tendency, never a rule (specs §6.1): Văn mostly male, Thị mostly female,
# Thị rarer among the young. Weights are ours, shaped on common usage.
MIDDLE_MALE: dict[str, float] = {
    "Văn": 40, "Đức": 10, "Minh": 9, "Quang": 7, "Hữu": 6, "Công": 5, "Thanh": 4, "Xuân": 3,
    "Ngọc": 2, "Tiến": 2, "Đình": 4, "Mạnh": 2, "Trung": 2, "Gia": 2, "Bảo": 2,
}  # fmt: skip
MIDDLE_FEMALE: dict[str, float] = {
    "Thị": 55, "Thu": 6, "Thanh": 6, "Ngọc": 6, "Minh": 3, "Phương": 3, "Hồng": 3, "Khánh": 3,
    "Bảo": 2, "Diệu": 2, "Kim": 3, "Mai": 2, "Hải": 2, "Văn": 0.3,
}  # fmt: skip
GIVEN_MALE = (
    "An", "Anh", "Bình", "Cường", "Chiến", "Công", "Dũng", "Duy", "Đạt", "Đức", "Giang", "Hải",
    "Hiếu", "Hoàng", "Hùng", "Huy", "Hưng", "Khang", "Khánh", "Khoa", "Kiên", "Lâm", "Long",
    "Mạnh", "Minh", "Nam", "Nghĩa", "Phong", "Phúc", "Quân", "Quang", "Quý", "Sơn", "Tài", "Thắng",
    "Thành", "Thịnh", "Toàn", "Trung", "Tuấn", "Tùng", "Việt", "Vinh", "Kỳ", "Sỹ", "Hòa", "Thụy",
)  # fmt: skip
GIVEN_FEMALE = (
    "Anh", "Chi", "Dung", "Duyên", "Giang", "Hà", "Hạnh", "Hằng", "Hiền", "Hoa", "Hòa", "Hồng",
    "Huệ", "Hương", "Huyền", "Lan", "Liên", "Linh", "Loan", "Mai", "Mỹ", "My", "Nga", "Ngân",
    "Ngọc", "Nhung", "Oanh", "Phương", "Quyên", "Quỳnh", "Tâm", "Thảo", "Thơm", "Thủy", "Thúy",
    "Trang", "Uyên", "Vân", "Vy", "Yến", "Xoan", "Nhàn", "Khuê",
)  # fmt: skip
# Age pyramid: shares (%) of the population by 5-year band, shaped on the GSO 2019 census
# (Vietnam Population and Housing Census 2019: 0–14 ≈ 24 %, 65+ ≈ 7.7 %), rounded.
AGE_BANDS: tuple[float, ...] = (
    8.0, 8.6, 7.5, 6.6, 7.0, 8.2, 8.4, 7.8, 7.2, 6.6, 5.9, 5.2, 4.3, 3.0, 1.9, 1.3, 1.2, 0.8,
)  # fmt: skip  # 0–4, 5–9, …, 80–84, 85–89
_AGE_CUM = list(accumulate(AGE_BANDS))
# Household sizes 1–7 (GSO 2019: mean 3.5 persons, 4 the mode); weights are ours.
HOUSEHOLD_SIZES: dict[int, float] = {1: 9, 2: 17, 3: 21, 4: 27, 5: 14, 6: 7, 7: 5}
# Mobile prefixes after the 2018 11→10-digit switch (Viettel, Vinaphone, MobiFone, Vietnamobile,
# Gmobile); Viettel weighted up for its market share.
MOBILE_PREFIXES = (
    ("032", "033", "034", "035", "036", "037", "038", "039", "086", "096", "097", "098") * 2
    + ("081", "082", "083", "084", "085", "088", "091", "094")
    + ("070", "076", "077", "078", "079", "089", "090", "093", "052", "056", "058", "092", "099")
)
VILLAGE_WORDS = (
    "Đông", "Đoài", "Nam", "Bắc", "Trung", "Thượng", "Hạ", "Tiền", "Hậu", "Mới", "Cả", "Chùa",
    "Đình", "Ngọ", "Vàng",
)  # fmt: skip
STREETS = (
    "Lê Lợi",
    "Trần Hưng Đạo",
    "Nguyễn Trãi",
    "Ngô Gia Tự",
    "Lý Thái Tổ",
    "Hoàng Văn Thụ",
    "Xương Giang",
    "Nguyễn Văn Cừ",
    "Kinh Dương Vương",
    "Hùng Vương",
    "Lê Thái Tổ",
    "Trần Phú",
    "Nguyễn Du",
    "Thánh Gióng",
    "Huyền Quang",
    "Lý Anh Tông",
    "Quang Trung",
)
# CCCD prefix (TT 07/2016): where the birth was registered. Most residents were born in their
# own old province; some in the other half of the merged province; migrants from neighbours.
MIGRANT_ORIGINS = ("001", "019", "020", "022", "026", "030", "033", "038", "040", "025", "034")


@dataclass(frozen=True, slots=True)
class Bhyt:
    """A health-insurance card (QĐ 1351/QĐ-BHXH layout; 10-digit BHXH number since 2017)."""

    group: str  # beneficiary group, e.g. "TE", "HT", "DN"
    benefit: int  # 1–5, consistent with the group (systems.BHYT_BENEFIT)
    province: str  # 2-digit issuing province
    bhxh_number: str  # 10 digits; the number printed on QĐ 1666 cards
    valid_from: date
    valid_to: date
    ma_dkbd: str | None  # facility of initial registration (MA_CSKCB), if the caller gave one

    @property
    def legacy_code(self) -> str:
        return f"{self.group}{self.benefit}{self.province}{self.bhxh_number}"


@dataclass(frozen=True, slots=True)
class Person:
    """One true person; the ground truth every registration of them is scored against."""

    person_id: str
    household_id: str
    role: Literal["head", "spouse", "child", "parent", "single"]
    family: str
    middle: tuple[str, ...]
    given: str
    sex: Sex
    birth_date: date
    cccd: str | None
    cmnd: str | None
    bhyt: Bhyt | None
    phone: str | None
    commune: Commune
    address_line: str
    birth_precision: Literal["day", "year"] = "day"  # "year": a year-only birth (FHIR "YYYY")
    bhyt_shown: Literal["legacy", "bhxh10"] = "legacy"  # which number the card record carries

    @property
    def full_name(self) -> str:
        return " ".join((self.family, *self.middle, self.given))

    def age(self, on: date = REFERENCE_DATE) -> int:
        before = (on.month, on.day) < (self.birth_date.month, self.birth_date.day)
        return on.year - self.birth_date.year - before


@dataclass
class _Draft:
    """A household member before identifiers are drawn."""

    role: Literal["head", "spouse", "child", "parent", "single"]
    sex: Sex
    age: int
    family: str = ""
    extras: dict[str, Any] = field(default_factory=dict)


def _pick(rng: random.Random, table: dict[str, float]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def _shift_years(d: date, years: int) -> date:
    """The same day `years` later (29 Feb → 28 Feb in common years)."""
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return date(d.year + years, 2, 28)


def _sex_at(rng: random.Random, age: int) -> Sex:
    """Sex by age: more boys (Bắc Ninh's sex ratio at birth is among Vietnam's highest, ~111),
    more women among the old (GSO 2019)."""
    p_male = 0.525 if age < 20 else 0.50 if age < 60 else 0.44 if age < 80 else 0.35
    return "male" if rng.random() < p_male else "female"


class PeopleGenerator:
    """Households of people, reproducible from a seed: one `random.Random`, no clock, no globals."""

    def __init__(
        self,
        seed: int,
        communes: Sequence[Commune],
        *,
        reference_date: date = REFERENCE_DATE,
        ma_dkbd: Callable[[Commune], str | None] | None = None,
    ) -> None:
        if not communes:
            raise ValueError("communes must not be empty")
        self.rng = random.Random(seed)  # noqa: S311 - test data wants reproducibility, not secrecy
        self.communes = list(communes)
        self._cum_weights = list(accumulate(c.population_weight for c in self.communes))
        self.today = reference_date
        self.ma_dkbd = ma_dkbd
        self._count = 0
        self._households = 0
        self._queue: list[Person] = []
        self._issued: set[str] = set()

    def person(self) -> Person:
        """The next person; people come household by household."""
        if not self._queue:
            self._queue = self.household()[::-1]
        return self._queue.pop()

    def people(self, n: int) -> list[Person]:
        return [self.person() for _ in range(n)]

    def household(self) -> list[Person]:
        """One household of 1–7 people sharing an address; children take the father's name."""
        rng = self.rng
        self._households += 1
        hid = f"H{self._households:07d}"
        size = int(_pick(rng, {str(k): v for k, v in HOUSEHOLD_SIZES.items()}))
        commune = self.communes[rng.choices(range(len(self.communes)), self._cum_weights)[0]]
        line = self._address_line(commune)
        drafts = self._members(size)
        self._name_families(drafts)
        head_phone = None
        out = []
        for d in drafts:
            person = self._person(d, hid, commune, line, head_phone)
            head_phone = head_phone or person.phone
            out.append(person)
        return out

    # ------------------------------------------------------------ household composition

    def _age(self, lo: int = 0, hi: int = 89) -> int:
        """An age from the pyramid, restricted to [lo, hi] by redrawing (plain if that fails)."""
        rng = self.rng
        for _ in range(50):
            band = rng.choices(range(len(AGE_BANDS)), cum_weights=_AGE_CUM)[0]
            age = band * 5 + rng.randrange(5)
            if lo <= age <= hi:
                return age
        return rng.randint(lo, max(lo, hi))

    def _members(self, size: int) -> list[_Draft]:
        rng = self.rng
        if size == 1:
            age = self._age(18)
            return [_Draft("single", _sex_at(rng, age), age)]
        head_age = self._age(22, 75)
        out = [_Draft("head", "male", head_age)]
        if rng.random() < 0.9:  # most households are a couple; the rest a lone parent
            out.append(_Draft("spouse", "female", max(18, head_age - rng.randint(0, 6))))
        else:
            out[0].sex = "female"
        mother = out[-1].age
        while len(out) < size:
            if len(out) >= 3 and head_age < 60 and rng.random() < 0.35:  # three generations
                age = self._age(head_age + 20, 89)
                out.append(_Draft("parent", _sex_at(rng, age), age))
                continue
            age = self._age(max(0, mother - 42), max(0, mother - 18))
            out.append(_Draft("child", _sex_at(rng, age), age))
        return out

    def _name_families(self, drafts: list[_Draft]) -> None:
        """Patrilineal family names: children and the head's father share the head's name."""
        head_family = _pick(self.rng, FAMILY_NAMES)
        for d in drafts:
            if d.role in ("head", "single", "child") or (d.role, d.sex) == ("parent", "male"):
                d.family = head_family
            else:
                d.family = _pick(self.rng, FAMILY_NAMES)

    # ------------------------------------------------------------ one person

    def _person(
        self, d: _Draft, hid: str, commune: Commune, line: str, head_phone: str | None
    ) -> Person:
        self._count += 1
        birth = self._birth_date(d.age)
        middle, given = self._names(d.sex, d.age)
        return Person(
            person_id=f"P{self._count:08d}",
            household_id=hid,
            role=d.role,
            family=d.family,
            middle=middle,
            given=given,
            sex=d.sex,
            birth_date=birth,
            cccd=self._cccd(birth.year, d.sex, commune),
            cmnd=self._cmnd(birth.year),
            bhyt=self._bhyt(d.age, birth, commune),
            phone=self._phone(d.age, head_phone),
            commune=commune,
            address_line=line,
            bhyt_shown="bhxh10" if self.rng.random() < 0.3 else "legacy",
        )

    def _birth_date(self, age: int) -> date:
        """A birth date giving exactly `age` on the reference date."""
        latest = _shift_years(self.today, -age)
        return latest - timedelta(days=self.rng.randrange(365))

    def _names(self, sex: Sex, age: int) -> tuple[tuple[str, ...], str]:
        rng = self.rng
        table = dict(MIDDLE_MALE if sex == "male" else MIDDLE_FEMALE)
        if age < 25:  # Văn and Thị have fallen out of fashion for children
            table["Văn" if sex == "male" else "Thị"] /= 3
        middle = [_pick(rng, table)]
        if rng.random() < 0.1:  # "Nguyễn Thị Thu Hà": a second middle name
            second = _pick(rng, MIDDLE_FEMALE if sex == "female" else MIDDLE_MALE)
            if second not in ("Thị", "Văn", middle[0]):
                middle.append(second)
        given = rng.choice(GIVEN_MALE if sex == "male" else GIVEN_FEMALE)
        return tuple(middle), given

    def _cccd(self, year: int, sex: Sex, commune: Commune) -> str:
        """Decree 137/2015 Art 13: province of birth registration, century+sex, year, 6 random."""
        rng = self.rng
        r = rng.random()
        own, other = ("024", "027") if commune.legacy_province == "24" else ("027", "024")
        prefix = own if r < 0.85 else other if r < 0.93 else rng.choice(MIGRANT_ORIGINS)
        stem = f"{prefix}{cccd_century_digit(year, sex)}{year % 100:02d}"
        while True:  # numbers are unique per person: redraw the random part on a clash
            value = f"{stem}{rng.randrange(10**6):06d}"
            if value not in self._issued:
                self._issued.add(value)
                return value

    def _cmnd(self, year: int) -> str | None:
        """A legacy 9-digit card for most adults of the CMND era (issued at 14, until 2016)."""
        if year > 2002 or self.rng.random() < 0.2:
            return None
        # "12" is the old Hà Bắc prefix both halves used (common knowledge, not in the spec).
        return f"12{self.rng.randrange(10**7):07d}"

    def _phone(self, age: int, head_phone: str | None) -> str | None:
        """Children give a parent's number; many of the old share one too."""
        rng = self.rng
        if age < 15 or (age >= 70 and rng.random() < 0.5):
            return head_phone
        return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**7):07d}"

    def _address_line(self, commune: Commune) -> str:
        rng = self.rng
        if commune.kind == "ward" and rng.random() < 0.6:
            return f"Số {rng.randint(1, 250)} đường {rng.choice(STREETS)}"
        if commune.kind == "ward":
            return f"Tổ dân phố {rng.randint(1, 30)}"
        if rng.random() < 0.5:
            return f"Thôn {rng.choice(VILLAGE_WORDS)}"
        return f"Thôn {rng.randint(1, 15)}"

    # ------------------------------------------------------------ insurance

    def _group(self, age: int) -> str:
        """Beneficiary group by age: children under 6 TE (free), pupils HS, pensioners HT …"""
        rng = self.rng
        r = rng.random()
        if age < 6:
            return "TE"
        if age < 18:
            return "HS" if r < 0.9 else "HN" if r < 0.95 else "GD"
        if age < 23 and r < 0.4:
            return "SV"
        if age >= 60:
            if age >= 80 and r < 0.4:
                return "BT"  # social-allowance pensioners aged 80+
            return "HT" if r < 0.45 else "CB" if r < 0.5 else "GD" if r < 0.9 else "HN"
        working = {"DN": 42, "GD": 30, "HC": 7, "HN": 4, "CN": 4, "NO": 3, "QN": 1, "CA": 1}
        return _pick(rng, {**working, "HG": 3, "TN": 2, "XK": 3})

    def _bhyt(self, age: int, birth: date, commune: Commune) -> Bhyt | None:
        rng = self.rng
        if rng.random() >= 0.93:  # ~93 % of Vietnamese were insured in 2024 (VSS)
            return None
        group = self._group(age)
        start = max(date(self.today.year, 1, 1), birth)
        end = date(self.today.year, 12, 31)
        if group == "TE":  # the child's card lasts until the day before the 6th birthday
            end = min(end, _shift_years(birth, 6) - timedelta(days=1))
        number = commune.legacy_province + f"{rng.randrange(10**8):08d}"
        ma_dkbd = self.ma_dkbd(commune) if self.ma_dkbd else None
        benefit = systems.BHYT_BENEFIT[group]
        return Bhyt(group, benefit, commune.legacy_province, number, start, end, ma_dkbd)


# ---------------------------------------------------------------- FHIR


def _identifier(system: str, value: str, code: str, **extra: Any) -> dict[str, Any]:
    """An identifier with its v2-0203 type (NI national, SB social beneficiary, MR record)."""
    coding = {"system": systems.V2_0203, "code": code}
    return {"type": {"coding": [coding]}, "system": system, "value": value, **extra}


def _identifiers(person: Person, facility_code: str, mrn: str) -> list[dict[str, Any]]:
    out = [_identifier(systems.ma_bn(facility_code), mrn, "MR")]
    if person.cccd:
        out.append(_identifier(systems.CCCD, person.cccd, "NI"))
    if person.cmnd:
        out.append(_identifier(systems.CMND, person.cmnd, "NI"))
    if person.bhyt:
        card = person.bhyt
        value = card.legacy_code if person.bhyt_shown == "legacy" else card.bhxh_number
        period = {"start": card.valid_from.isoformat(), "end": card.valid_to.isoformat()}
        out.append(_identifier(systems.BHYT, value, "SB", period=period))
    return out


def _address(person: Person) -> dict[str, Any]:
    return vn_address(person.commune, "home", person.address_line)


def to_fhir_patient(person: Person, facility_code: str, mrn: str) -> dict[str, Any]:
    """An R4 Patient as facility `facility_code` holds it under patient code `mrn`."""
    birth = person.birth_date
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": _identifiers(person, facility_code, mrn),
        "name": [
            {
                "use": "official",
                "text": person.full_name,
                "family": person.family,
                "given": [*person.middle, person.given],
            }
        ],
        "gender": person.sex,
        "birthDate": str(birth.year) if person.birth_precision == "year" else birth.isoformat(),
        "address": [_address(person)],
        "managingOrganization": {
            "identifier": {"system": systems.MA_CSKCB, "value": facility_code}
        },
    }
    if person.phone:
        patient["telecom"] = [{"system": "phone", "value": person.phone, "use": "mobile"}]
    return patient
