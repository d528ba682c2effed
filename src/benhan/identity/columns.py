"""Normalised records as numpy columns: every string value becomes an integer code (−1 = missing),
so that comparing millions of pairs is array arithmetic."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from benhan.identity.normalise import Person

Codes = npt.NDArray[np.int32]
Ints = npt.NDArray[np.int32]
Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]
ROLES_PRESENT = ("name", "birth", "sex", "cccd", "cmnd", "bhyt", "phone", "commune", "postcode",
                 "address", "identifier")  # fmt: skip


def encode(values: Sequence[str | None]) -> Codes:
    """Integer codes, equal exactly where the values are equal; −1 for a missing value."""
    return vocabulary(values)[0]


def vocabulary(values: Sequence[str | None]) -> tuple[Codes, list[str]]:
    """The codes, and the value of each code (in order of first appearance)."""
    words = [v for v in dict.fromkeys(values) if v]
    code: dict[str | None, int] = {v: i for i, v in enumerate(words)}
    code[None] = code[""] = -1
    # A dict lookup mapped in C, not a Python loop: columns of millions of records.
    return np.fromiter(map(code.__getitem__, values), np.int32, count=len(values)), words


def frequencies(codes: Codes) -> Floats:
    """Each record's value frequency among the records holding a value (0 where missing)."""
    present = codes >= 0
    counts = np.bincount(codes[present]) if present.any() else np.zeros(0, np.int64)
    out = np.zeros(len(codes), np.float64)
    out[present] = counts[codes[present]] / max(int(present.sum()), 1)
    return out


@dataclass(frozen=True, slots=True)
class Columns:
    """The columns the comparisons and blocking rules read; one row per record."""

    ids: list[str]
    name_acc: Codes  # accent-aware full name (tone placement ignored)
    name_fold: Codes
    name_words: list[str]  # the folded full name of each name_fold code
    name_sound: Codes  # consonant skeleton of each word: typos in vowels and tones vanish
    family: Codes
    family_words: list[str]  # the family name of each code
    middle: Codes  # the middle words joined; "·" (no middle) is a value of its own
    middle_words: list[str]
    given: Codes
    given_words: list[str]  # the folded given name of each code
    given_first: list[str]  # "huong nguyen thi", for Jaro-Winkler
    name_tf: Floats  # freq(family)·freq(middle)·freq(given): u of an exact match on this name
    given_count: Ints  # per given-name code: how many records bear it (decide.given_disagrees)
    birth: Ints  # date ordinal, −1 missing
    year: Ints
    month: Ints
    day: Ints
    year_only: Bools  # year precision, or 01/01 (possibly year-only)
    sex: Codes
    cccd: Codes
    cccd_values: list[str]  # the number of each code
    cmnd: Codes
    bhyt: Codes
    phone: Codes
    commune: Codes
    postcode: Codes
    address: Codes
    identifier: Codes
    present: frozenset[str]  # the roles at least one record has

    def __len__(self) -> int:
        return len(self.ids)


_VOWELS = str.maketrans("", "", "aeiouy")


def sound_key(folded: str) -> str:
    """Each word's first letter and its consonants: "nguyen thi huong" → "ngn th hng"."""
    return " ".join(w[0] + w[1:].translate(_VOWELS) for w in folded.split())


# A record's column values, in this order: what to_columns reads from a Person, and what the
# online index stores per record, so that a candidate becomes columns without being parsed,
# normalised or folded again.
ROW = ("name_acc", "name_fold", "name_sound", "family", "middle", "given", "given_first",
       "birth", "year", "month", "day", "year_only", "sex", "cccd", "cmnd", "bhyt", "phone",
       "commune", "postcode", "address", "identifier")  # fmt: skip
Row = Sequence[str | int | bool | None]
FAMILY, MIDDLE, GIVEN = ROW.index("family"), ROW.index("middle"), ROW.index("given")


def row_of(p: Person) -> tuple[str | int | bool | None, ...]:
    n, b = p.name, p.birth
    folded = n.folded
    # "·" stands for "no middle name", which is a value of its own, not a missing one.
    middle = " ".join(n.middle) or "·" if n.given else None
    day = b is not None and b.precision == "day"
    return (
        n.accented, folded, sound_key(folded), n.family, middle, n.given, n.given_first,
        b.value.toordinal() if b else -1, b.value.year if b else -1,
        b.value.month if b and day else -1, b.value.day if b and day else -1,
        bool(b and b.maybe_year_only),
        p.sex, p.cccd, p.cmnd, p.bhyt, p.phone, p.commune, p.postcode, p.address, p.identifier,
    )  # fmt: skip


def to_columns(people: Sequence[Person]) -> Columns:
    return columns_of([p.record_id for p in people], [row_of(p) for p in people])


def columns_of(ids: list[str], rows: Sequence[Row]) -> Columns:
    """Columns of records given as rows (ROW's order)."""
    values: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * len(ROW)
    v = dict(zip(ROW, values, strict=True))
    ints: Callable[[Sequence[Any]], Ints] = lambda xs: np.asarray(xs, np.int32)  # noqa: E731
    name_fold, name_words = vocabulary(v["name_fold"])
    family, family_words = vocabulary(v["family"])
    middle, middle_words = vocabulary(v["middle"])
    given, given_words = vocabulary(v["given"])
    cccd, cccd_values = vocabulary(v["cccd"])
    cols = Columns(
        ids=ids,
        name_acc=encode(v["name_acc"]),
        name_fold=name_fold,
        name_words=name_words,
        name_sound=encode(v["name_sound"]),
        family=family,
        family_words=family_words,
        middle=middle,
        middle_words=middle_words,
        given=given,
        given_words=given_words,
        given_first=list(v["given_first"]),
        name_tf=frequencies(family) * frequencies(middle) * frequencies(given),
        given_count=np.bincount(given[given >= 0], minlength=len(given_words)).astype(np.int32),
        birth=ints(v["birth"]),
        year=ints(v["year"]),
        month=ints(v["month"]),
        day=ints(v["day"]),
        year_only=np.asarray(v["year_only"], dtype=np.bool_),
        sex=encode(v["sex"]),
        cccd=cccd,
        cccd_values=cccd_values,
        cmnd=encode(v["cmnd"]),
        bhyt=encode(v["bhyt"]),
        phone=encode(v["phone"]),
        commune=encode(v["commune"]),
        postcode=encode(v["postcode"]),
        address=encode(v["address"]),
        identifier=encode(v["identifier"]),
        present=frozenset(),
    )
    return replace(cols, present=frozenset(r for r in ROLES_PRESENT if _has(cols, r)))


def _has(cols: Columns, role: str) -> bool:
    arr = {"name": cols.name_fold, "birth": cols.birth}.get(role)
    return bool(((getattr(cols, role) if arr is None else arr) >= 0).any())
