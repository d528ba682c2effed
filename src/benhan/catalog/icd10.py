"""ICD-10 as published by the Ministry of Health (QĐ 4469/QĐ-BYT), shipped with the package."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from benhan.catalog._data import rows
from benhan.fhir.primitives import fold

CODE_RE = re.compile(r"[A-Z][0-9]{2}(\.[0-9A-Z]{1,2})?")  # specs/xml130.md §3.14


@dataclass(frozen=True, slots=True)
class Icd10Code:
    """One code of the list, in the dotted form used by XML 130 (`A00.0`)."""

    code: str
    name_vi: str
    name_en: str
    chapter: str  # Roman numeral I–XXII
    block: str  # innermost WHO block, e.g. "A00-A09"
    level: int  # 3, 4 or 5 characters without the dot
    dagger_asterisk: str  # "†", "*" or ""


@dataclass(frozen=True, slots=True)
class Icd10Range:
    """A chapter or block of the classification."""

    kind: str  # "chapter" or "block"
    range: str
    chapter: str
    parent: str
    name_en: str
    name_vi: str  # unofficial wording (catalogue README), may be empty


@cache
def icd10() -> dict[str, Icd10Code]:
    """Every code of QĐ 4469 by code (12,137 entries), in list order."""
    return {
        r["code"]: Icd10Code(
            r["code"],
            r["name_vi"],
            r["name_en"],
            r["chapter"],
            r["block"],
            int(r["level"]),
            r["dagger_asterisk"],
        )
        for _, r in rows("icd10_vn_qd4469.csv.gz")
    }


@cache
def icd10_ranges() -> tuple[Icd10Range, ...]:
    """The WHO chapters and blocks that contain at least one code of the list."""
    return tuple(
        Icd10Range(
            r["kind"], r["range"], r["chapter"], r["parent"], r["name_en"], r["name_vi_unofficial"]
        )
        for _, r in rows("icd10_chapters_blocks.csv.gz")
    )


def normalise(code: str) -> str:
    """Upper case, dagger/asterisk dropped, dot inserted: "a000" → "A00.0" (HIS exports vary)."""
    bare = code.strip().upper().rstrip("†*+").replace(".", "")
    return bare if len(bare) <= 3 else f"{bare[:3]}.{bare[3:]}"


def lookup(code: str) -> Icd10Code | None:
    """The entry of a code, accepting the undotted and lower-case forms HIS exports use."""
    return icd10().get(normalise(code))


def is_valid_code(code: str) -> bool:
    """True when code is in XML 130's dotted form and in the QĐ 4469 list (no normalising)."""
    return CODE_RE.fullmatch(code) is not None and code in icd10()


@cache
def _search_index() -> tuple[tuple[Icd10Code, frozenset[str]], ...]:
    # Folded once: "sot xuat huyet" must find "Sốt xuất huyết" without folding 12k names per query.
    return tuple(
        (entry, frozenset(re.findall(r"\w+", fold(f"{entry.name_vi} {entry.name_en}"))))
        for entry in icd10().values()
    )


def search(text: str, limit: int = 20) -> list[Icd10Code]:
    """Codes that start with text, or whose names hold every word of text as a word prefix
    (accent-insensitive, Vietnamese or English); broader codes first."""
    words = re.findall(r"\w+", fold(text))
    if not words:
        return []
    prefix = normalise(text) if CODE_RE.match(normalise(text)[:3]) else None
    hits = [
        entry
        for entry, tokens in _search_index()
        if (prefix and entry.code.startswith(prefix))
        or all(any(t.startswith(w) for t in tokens) for w in words)
    ]
    hits.sort(key=lambda e: (e.level, e.code))
    return hits[:limit]
