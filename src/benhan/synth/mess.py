"""Registration mess: a person as a registrar at one facility typed them, with the truth kept."""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date

from benhan.synth.people import MOBILE_PREFIXES, Person
from benhan.synth.places import Commune, predecessors

MUTATIONS = (
    "no_diacritics", "all_caps", "typo_adjacent", "typo_dropped", "tone_variant", "y_i",
    "swap_day_month", "year_only_0101", "year_only_partial", "missing_cccd", "cmnd_instead",
    "bhyt_bhxh10", "missing_bhyt", "changed_phone", "moved_commune", "old_commune",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MessRates:
    """Chance of each error per registration. Defaults are our estimates for a busy desk; the
    spec (specs/vietnam.md §6.1) lists the kinds of variant but gives no rates."""

    no_diacritics: float = 0.12  # unaccented keyboards, BHYT portal exports
    all_caps: float = 0.08  # names copied from the card, which prints capitals
    typo_adjacent: float = 0.03  # one QWERTY neighbour struck
    typo_dropped: float = 0.02  # one letter left out
    tone_variant: float = 0.3  # old/new tone placement (hoà/hòa), where the name allows it
    y_i: float = 0.2  # Vy/Vi, Mỹ/Mĩ, Kỳ/Kì, where the name allows it
    swap_day_month: float = 0.02  # dd/mm read as mm/dd; only visible when day ≤ 12
    year_only: float = 0.03  # birth known only by year (old people, lost papers)
    year_only_partial: float = 0.3  # share of year-only kept as FHIR "YYYY", not 01/01
    missing_cccd: float = 0.10  # number not asked, or child without a card
    cmnd_instead: float = 0.05  # old 9-digit card shown, if the person has one
    bhyt_bhxh10: float = 0.25  # the 10-digit number typed instead of the 15-char code
    missing_bhyt: float = 0.0  # the card not shown (a paying visit, a card left at home)
    changed_phone: float = 0.08  # a new SIM since the last visit
    moved_commune: float = 0.03  # moved, or gave the relatives' address
    # The commune before the 1 July 2025 reform, with its district: copied from a CCCD card
    # printed before it, or a backlog typed from old papers (half of them with the old code).
    old_commune: float = 0.0

    @classmethod
    def hard(cls) -> MessRates:
        """A desk at its worst (a backlog typed in from paper, a station with no card reader):
        most records carry no shared identifier, so names, birth dates and places must carry
        the linkage. For testing linkers; the defaults remain the province's estimate."""
        return cls(
            no_diacritics=0.35, all_caps=0.15, typo_adjacent=0.08, typo_dropped=0.05,
            swap_day_month=0.05, year_only=0.08, missing_cccd=0.45, cmnd_instead=0.10,
            bhyt_bhxh10=0.5, missing_bhyt=0.4, changed_phone=0.3, moved_commune=0.1,
            old_commune=0.05,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class RegisteredPerson:
    """One facility's record of a person, with the ground truth it must be linked back to."""

    true_person_id: str
    facility: str  # MA_CSKCB of the registering facility
    record: Person  # what was typed; record.person_id is the truth, never shown to the MPI
    mutations: tuple[str, ...]  # names from MUTATIONS, in the order applied


# QWERTY neighbours (Vietnamese is typed on a US layout with Telex/VNI input methods).
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {
    ch: "".join(r[j] for j in (i - 1, i + 1) if 0 <= j < len(r))
    for r in _ROWS
    for i, ch in enumerate(r)
}
# Old ("hoà", "thuỷ") vs new ("hòa", "thủy") tone placement on oa/oe/uy (specs §6.1).
_TONES = "\u0300\u0301\u0303\u0309\u0323"
# "qu" is a consonant: its u carries no tone (Quý, never Qúy).
_TONE_OLD = re.compile(rf"(?<![qQ])([oOuU])([{_TONES}])([aAeEyY])")
_TONE_NEW = re.compile(rf"(?<![qQ])([oOuU])([aAeEyY])([{_TONES}])(?![a-zA-Z])")
# y/i are interchangeable only as a whole rhyme after a consonant (Mỹ/Mĩ, Kỳ/Kì, Vy/Vi), never
# where y follows u (Thúy, Huy): the regex matches a syllable of consonant + y only.
_Y_I = re.compile(r"^(?:b|c|d|đ|g|h|k|l|m|n|p|r|s|t|v|x|ch|kh|nh|ph|th|tr|qu)([yi])$", re.I)


def ascii_fold(text: str) -> str:
    """Diacritics stripped; Đ/đ are not decomposed by NFD, so they are mapped by hand (§6.1)."""
    nfd = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(ch for ch in nfd if not unicodedata.combining(ch))


def _swap_tone(word: str) -> str:
    """Move a tone mark between the old and new placement; unchanged when there is none."""
    nfd = unicodedata.normalize("NFD", word)
    moved = _TONE_OLD.sub(r"\1\3\2", nfd)
    if moved == nfd:
        moved = _TONE_NEW.sub(r"\1\3\2", nfd)
    return unicodedata.normalize("NFC", moved)


def _swap_y_i(word: str) -> str:
    nfd = unicodedata.normalize("NFD", word)
    base = "".join(ch for ch in nfd if not unicodedata.combining(ch))
    m = _Y_I.match(base)
    if not m:
        return word
    i = m.start(1)
    other = {"y": "i", "i": "y", "Y": "I", "I": "Y"}[base[i]]
    # The tone mark (combining, after the vowel in NFD) stays where it was.
    pos = [j for j, ch in enumerate(nfd) if not unicodedata.combining(ch)][i]
    return unicodedata.normalize("NFC", nfd[:pos] + other + nfd[pos + 1 :])


def _on_words(person: Person, fn: Callable[[str], str]) -> Person:
    return replace(
        person,
        family=fn(person.family),
        middle=tuple(fn(m) for m in person.middle),
        given=fn(person.given),
    )


def _changes(person: Person, fn: Callable[[str], str]) -> bool:
    """Whether a word-level variant applies to this name at all (it is then always applied)."""
    return any(fn(w) != w for w in (person.family, *person.middle, person.given))


def _typo(word: str, rng: random.Random, dropped: bool) -> str:
    spots = [i for i, ch in enumerate(word) if ch.lower() in _NEIGHBOURS]
    if not spots or (dropped and len(word) < 3):
        return word
    i = rng.choice(spots)
    if dropped:
        return word[:i] + word[i + 1 :]
    sub = rng.choice(_NEIGHBOURS[word[i].lower()])
    return word[:i] + (sub.upper() if word[i].isupper() else sub) + word[i + 1 :]


def _typo_name(person: Person, rng: random.Random, dropped: bool) -> Person:
    """One typo in one name part: the given name most often, as it is typed last and fastest."""
    if rng.random() < 0.6 or not person.middle:
        return replace(person, given=_typo(person.given, rng, dropped))
    if rng.random() < 0.5:
        return replace(person, family=_typo(person.family, rng, dropped))
    k = rng.randrange(len(person.middle))
    middle = list(person.middle)
    middle[k] = _typo(middle[k], rng, dropped)
    return replace(person, middle=tuple(middle))


def _names(p: Person, rng: random.Random, r: MessRates, done: list[str]) -> Person:
    if _changes(p, _swap_tone) and rng.random() < r.tone_variant:
        p = _on_words(p, _swap_tone)
        done.append("tone_variant")
    if _changes(p, _swap_y_i) and rng.random() < r.y_i:
        p = _on_words(p, _swap_y_i)
        done.append("y_i")
    for kind, rate in (("typo_adjacent", r.typo_adjacent), ("typo_dropped", r.typo_dropped)):
        if rng.random() < rate:
            p = _typo_name(p, rng, kind == "typo_dropped")
            done.append(kind)
    if rng.random() < r.no_diacritics:
        p = _on_words(p, ascii_fold)
        done.append("no_diacritics")
    if rng.random() < r.all_caps:
        p = _on_words(p, str.upper)
        done.append("all_caps")
    return p


def _birth(p: Person, rng: random.Random, r: MessRates, done: list[str]) -> Person:
    b = p.birth_date
    if rng.random() < r.year_only:
        if rng.random() < r.year_only_partial:
            done.append("year_only_partial")
            return replace(p, birth_date=date(b.year, 1, 1), birth_precision="year")
        done.append("year_only_0101")  # claims convention: unknown day and month → 01/01
        return replace(p, birth_date=date(b.year, 1, 1))
    if b.day <= 12 and b.day != b.month and rng.random() < r.swap_day_month:
        done.append("swap_day_month")
        return replace(p, birth_date=date(b.year, b.day, b.month))
    return p


def _ids(p: Person, rng: random.Random, r: MessRates, done: list[str]) -> Person:
    if p.cmnd and rng.random() < r.cmnd_instead:
        p = replace(p, cccd=None)
        done.append("cmnd_instead")
    elif p.cccd and rng.random() < r.missing_cccd:
        p = replace(p, cccd=None, cmnd=None)
        done.append("missing_cccd")
    else:
        p = replace(p, cmnd=None)  # with a CCCD at hand nobody types the old number
    if p.bhyt and p.bhyt_shown == "legacy" and rng.random() < r.bhyt_bhxh10:
        p = replace(p, bhyt_shown="bhxh10")
        done.append("bhyt_bhxh10")
    # Drawn only when the rate is set, so the default data stays what it was for a seed.
    if r.missing_bhyt and p.bhyt and rng.random() < r.missing_bhyt:
        p = replace(p, bhyt=None)
        done.append("missing_bhyt")
    return p


def _contact(
    p: Person, rng: random.Random, r: MessRates, communes: Sequence[Commune], done: list[str]
) -> Person:
    if p.phone and rng.random() < r.changed_phone:
        phone = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**7):07d}"
        p = replace(p, phone=phone)
        done.append("changed_phone")
    others = [c for c in communes if c.code != p.commune.code]
    if others and rng.random() < r.moved_commune:
        commune = rng.choice(others)
        line = f"Thôn {rng.randint(1, 15)}" if commune.kind == "commune" else p.address_line
        p = replace(p, commune=commune, address_line=line)
        done.append("moved_commune")
    # Drawn only when the rate is set, so the default data stays what it was for a seed.
    if r.old_commune and rng.random() < r.old_commune:
        old = rng.choice(predecessors(p.commune))
        p = replace(p, commune=old if rng.random() < 0.5 else replace(old, code=""))
        done.append("old_commune")
    return p


def register(
    person: Person,
    rng: random.Random,
    facility: str,
    *,
    rates: MessRates | None = None,
    communes: Sequence[Commune] = (),
) -> RegisteredPerson:
    """The record `facility` makes of `person`; `communes` are where a person may have moved."""
    r = rates or MessRates()
    done: list[str] = []
    p = _names(person, rng, r, done)
    p = _birth(p, rng, r, done)
    p = _ids(p, rng, r, done)
    p = _contact(p, rng, r, communes, done)
    return RegisteredPerson(person.person_id, facility, p, tuple(done))
