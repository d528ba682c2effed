"""Normalisation of Vietnamese person records for linkage: names, birth dates, identifiers."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Literal

from benhan.fhir.primitives import fold
from benhan.identity.communes import to_2025

Precision = Literal["day", "year"]
Sex = Literal["male", "female", "other"]

# The five tone marks (NFD combining): huyền, sắc, ngã, hỏi, nặng. Vowel-quality marks
# (circumflex, breve, horn) are not tones and stay where they are.
_TONES = frozenset("\u0300\u0301\u0303\u0309\u0323")
# y/i are written either way as a whole rhyme after a consonant (Mỹ/Mĩ, Kỳ/Kì, Vy/Vi), never
# after u (Thúy, Huy): specs/vietnam.md §6.1.
_Y_RHYME = re.compile(r"^(b|c|d|g|h|k|l|m|n|p|r|s|t|v|x|ch|kh|nh|ph|th|tr|qu)y$")
_SPACES = re.compile(r"[\s,.\-_/]+")
_DIGITS = re.compile(r"\D+")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BHYT_LEGACY = re.compile(r"[A-Z]{2}[1-5]\d{2}(\d{10})")
GENDERED_MIDDLE: dict[str, Sex] = {"van": "male", "thi": "female"}  # a hint only (§6.1)


@lru_cache(maxsize=1 << 16)  # a province's names repeat: a few thousand distinct words
def tone_key(word: str) -> str:
    """The word with its tone mark moved to the end: old and new tone placement (hoà/hòa,
    thuỷ/thủy) give one key, while the accents themselves still count."""
    nfd = unicodedata.normalize("NFD", word.casefold().replace("Ð", "đ").replace("ð", "đ"))
    tones = "".join(c for c in nfd if c in _TONES)
    return "".join(c for c in nfd if c not in _TONES) + tones


@lru_cache(maxsize=1 << 16)
def fold_word(word: str) -> str:
    """Accent-folded, lower case, with the y/i rhyme written i (Vy → vi, Kỳ → ki)."""
    folded = fold(word.replace("Ð", "Đ").replace("ð", "đ"))
    return _Y_RHYME.sub(r"\1i", folded)


@dataclass(frozen=True, slots=True)
class Name:
    """A name split family first (specs §6.1): family, middle words, given; folded and not."""

    family: str = ""  # folded
    middle: tuple[str, ...] = ()  # folded
    given: str = ""  # folded
    accented: str = ""  # every word's tone key, space-joined: the accent-aware full name
    gender_hint: Sex | None = None  # from a Văn/Thị middle name; never used to set sex

    @property
    def folded(self) -> str:
        return " ".join(w for w in (self.family, *self.middle, self.given) if w)

    @property
    def given_first(self) -> str:
        """Given name first, so that Jaro-Winkler's prefix bonus rewards the part that tells
        people apart, not a shared "nguyen van"."""
        return " ".join(w for w in (self.given, self.family, *self.middle) if w)


def parse_name(
    full: str | None = None, family: str | None = None, given: str | None = None
) -> Name:
    """A name from a full "Nguyễn Thị Hương", or from family "Nguyễn" + given "Thị Hương"
    (FHIR and most HIS put the middle names in front of the given name)."""
    words = _SPACES.split(
        " ".join(x for x in (family, given) if x) if family or given else full or ""
    )
    words = [unicodedata.normalize("NFC", w) for w in words if w]
    if not words:
        return Name()
    folded = [fold_word(w) for w in words]
    accented = " ".join(tone_key(w) for w in words)
    if len(words) == 1:  # one word: a given name alone (minority names, children not yet named)
        return Name(given=folded[0], accented=accented)
    middle = tuple(folded[1:-1])
    hint = next((GENDERED_MIDDLE[m] for m in middle if m in GENDERED_MIDDLE), None)
    return Name(folded[0], middle, folded[-1], accented, hint)


@dataclass(frozen=True, slots=True)
class BirthDate:
    """A birth date, or only its year (precision "year"): FHIR "1950" or a claims 01/01."""

    value: date
    precision: Precision = "day"

    @property
    def maybe_year_only(self) -> bool:
        """Year-only births are often stored as 01/01 of the year (claims convention, §6.1)."""
        return self.precision == "year" or (self.value.month, self.value.day) == (1, 1)


def parse_birth_date(text: str, fmt: str = "%Y-%m-%d") -> BirthDate:
    """A birth date in `fmt`; a bare 4-digit year is always accepted as year precision.
    Raises ValueError naming the expected format."""
    text = text.strip()
    if len(text) == 4 and text.isdigit():
        return BirthDate(date(int(text), 1, 1), "year")
    try:
        if fmt == "%Y-%m-%d" and _ISO_DATE.fullmatch(text):  # FHIR's form, without strptime
            return BirthDate(date(int(text[:4]), int(text[5:7]), int(text[8:10])))
        return BirthDate(datetime.strptime(text, fmt).date())
    except ValueError:
        raise ValueError(f"không phải ngày theo {fmt} / not a date in {fmt}: {text!r}") from None


def digits(text: str | None) -> str | None:
    out = _DIGITS.sub("", text or "")
    return out or None


def normalise_phone(text: str | None) -> str | None:
    """A Vietnamese phone as 0 + national number: +84 912…, 84912…, 0912… are one number."""
    d = digits(text)
    if d is None:
        return None
    if d.startswith("84") and len(d) in (11, 12):
        d = "0" + d[2:]
    elif not d.startswith("0") and len(d) == 9:
        d = "0" + d
    return d if 9 <= len(d) <= 11 else None


def normalise_cccd(text: str | None) -> str | None:
    """12 digits or nothing; CMND (9 digits) is a different number and is never mapped to it."""
    d = digits(text)
    return d if d is not None and len(d) == 12 else None


def normalise_cmnd(text: str | None) -> str | None:
    d = digits(text)
    return d if d is not None and len(d) in (9, 12) else None


def normalise_bhyt(text: str | None) -> str | None:
    """The 10-digit BHXH number: the legacy 15-char card code ends with it (QĐ 1351/QĐ-BHXH),
    and QĐ 1666 cards print only it (specs §3.2), so both forms compare on these 10 digits."""
    raw = re.sub(r"\s+", "", (text or "").upper())
    m = _BHYT_LEGACY.fullmatch(raw)
    if m:
        return m.group(1)
    return raw if len(raw) == 10 and raw.isdigit() else None


_SEX: dict[str, Sex] = {
    "male": "male", "m": "male", "nam": "male", "1": "male",
    "female": "female", "f": "female", "nu": "female", "2": "female",
    "other": "other", "3": "other",
}  # fmt: skip  # 1/2/3 is the XML 130 coding (specs §6.1)


def normalise_sex(text: str | None) -> Sex | None:
    return _SEX.get(fold(text or "").strip())


def normalise_text(text: str | None) -> str | None:
    """A free-text value (address, commune name) folded with its spacing squeezed."""
    out = " ".join(_SPACES.split(fold_word(text or ""))).strip()
    return out or None


def normalise_commune(text: str | None) -> str | None:
    """A commune as its 2025 code wherever the text names one (a code, old or new; an old name
    with its district; a new name), so that records from either side of the 1 July 2025
    reform compare equal; else the folded text, compared as it is."""
    if not text or not text.strip():
        return None
    return to_2025(text) or normalise_text(text)


@dataclass(slots=True)
class Person:
    """One record, normalised: the only input the linker compares."""

    record_id: str
    name: Name = field(default_factory=Name)
    birth: BirthDate | None = None
    sex: Sex | None = None
    cccd: str | None = None
    cmnd: str | None = None
    bhyt: str | None = None
    phone: str | None = None
    commune: str | None = None
    postcode: str | None = None
    address: str | None = None
    identifier: str | None = None
