"""Decisions on top of the model: deterministic identifier rules, the guards against merging
relatives, and the three outcomes (link, review, keep apart) by probability thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from rapidfuzz.distance import OSA
from rapidfuzz.process import cpdist

from benhan.fhir.systems import check_cccd
from benhan.identity.columns import Bools, Columns, Floats, Ints
from benhan.identity.compare import ALL, BIRTH, Levels, similarity, threads_for

Outcome = Literal["link", "review", "apart"]
# Why a probability was overridden; "model" when it was not.
Reason = Literal["model", "same-id", "conflict", "different-person"]
REASONS: tuple[Reason, ...] = ("model", "same-id", "conflict", "different-person")
_BIRTH_COMPATIBLE = [BIRTH.labels.index(x) for x in
                     ("null", "exact", "day/month swapped", "year-only, same year")]  # fmt: skip
_BIRTH_ELSE = BIRTH.labels.index("else")
RARE_GIVEN = 2  # a given name this few records bear may be another's misspelling
RARE_SHARE = 0.1  # … or one borne by at most a tenth as many as the name one letter away


@dataclass(frozen=True, slots=True)
class Thresholds:
    link: float = 0.99
    review: float = 0.80
    # A pair the guards call two people keeps at most this probability: below review.
    different_cap: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.different_cap < self.review <= self.link <= 1:
            raise ValueError("cần 0 < different_cap < review ≤ link ≤ 1 / thresholds out of order")

    def outcome(self, p: float) -> Outcome:
        return "link" if p >= self.link else "review" if p >= self.review else "apart"


def valid_cccd(cols: Columns) -> Bools:
    """Per record: a CCCD that passes the layout checks of Decree 137/2015 (specs §3.1)."""
    ok = np.asarray([not check_cccd(v) for v in cols.cccd_values] + [False], np.bool_)
    out: Bools = ok[cols.cccd]  # code −1 (missing) reads the trailing False
    return out


def given_disagrees(cols: Columns, ia: Ints, ib: Ints) -> Bools:
    """Given names both known, and neither a slip of the other: twins and siblings share
    family, birth date, phone and address, but not their given name.

    A slip is one edit apart (or Jaro-Winkler ≥ 0.80) where one of the two names is rare:
    borne by at most RARE_GIVEN records, or by at most RARE_SHARE as many as the other. A
    misspelling is seldom itself a name many people bear, and each slip of a name is one of
    many (every letter, every neighbouring key), so each is far rarer than the name: "Hà" 218
    records, its slip "Jà" 7 on `benhan synth --mess hard`, where 35 of the 50 true pairs this
    guard split had such slips borne by 3–15 records (a fixed count does not grow with the
    population; a share does). Two common names one letter apart (Hùng/Dũng, Vân/Ân, Kiên/Liên)
    are two people unless an identifier says otherwise: twins are often named so, and merging
    two people is worse than leaving apart one person's slip into another real name (14 of
    5,505 true pairs there)."""
    ga, gb = cols.given[ia], cols.given[ib]
    out = np.zeros(len(ia), np.bool_)
    todo = np.flatnonzero((ga >= 0) & (gb >= 0) & (ga != gb))
    if len(todo):
        words = cols.given_words
        left, right = [words[int(g)] for g in ga[todo]], [words[int(g)] for g in gb[todo]]
        close = similarity(left, right) >= 0.80
        one_edit = cpdist(left, right, scorer=OSA.distance, workers=threads_for(len(left))) <= 1
        ca, cb = cols.given_count[ga[todo]], cols.given_count[gb[todo]]
        fewer, more = np.minimum(ca, cb), np.maximum(ca, cb)
        rare = (fewer <= RARE_GIVEN) | (fewer <= RARE_SHARE * more)
        out[todo] = ~((one_edit | close) & rare)
    return out


def rule_reasons(
    cols: Columns, ia: Ints, ib: Ints, comps_names: tuple[str, ...], levels: Levels
) -> npt.NDArray[np.int8]:
    """Per pair, the index in REASONS of the deterministic rule that decides it ("model": none).

    - same valid CCCD (or the same BHXH number), birth date and sex compatible: linked with
      certainty (specs §3.4: the personal ID is the linking key);
    - same identifier but a different sex, or both a different birth year and given name:
      a conflict (a typing error or a shared card), never linked;
    - no shared identifier, and a different given name or birth year: two people (a twin, a
      parent of the same name), whatever phone, address and commune say — those are shared by
      a household, so the model would count them as independent evidence when they are not.
    """
    col = {name: k for k, name in enumerate(comps_names)}

    def level_is(name: str, label: str) -> Bools:
        if name not in col:
            return np.zeros(len(ia), np.bool_)
        comp = next(c for c in ALL if c.name == name)
        out: Bools = levels[:, col[name]] == comp.labels.index(label)
        return out

    valid = valid_cccd(cols) if "cccd" in col else np.zeros(len(cols), np.bool_)
    same_id = (level_is("cccd", "equal") & valid[ia]) | level_is("bhyt", "equal")
    any_id = same_id | level_is("cccd", "equal") | level_is("cmnd", "equal")
    birth = levels[:, col["birth_date"]] if "birth_date" in col else np.zeros(len(ia), np.int8)
    other_year = birth == _BIRTH_ELSE
    other_given = given_disagrees(cols, ia, ib)
    other_sex = level_is("sex", "else")
    compatible = np.isin(birth, _BIRTH_COMPATIBLE) & ~other_sex
    conflict = any_id & (other_sex | (other_year & other_given))
    reason = np.zeros(len(ia), np.int8)
    reason[~any_id & (other_given | other_year)] = REASONS.index("different-person")
    reason[same_id & compatible & ~conflict] = REASONS.index("same-id")
    reason[conflict] = REASONS.index("conflict")
    return reason


def apply_rules(prob: Floats, reason: npt.NDArray[np.int8], th: Thresholds) -> Floats:
    """The final probability: 1 for a certain link, 0 for a conflict, at most
    `th.different_cap` for two different people, the model's otherwise."""
    out = prob.copy()
    different = reason == REASONS.index("different-person")
    out[different] = np.minimum(out[different], th.different_cap)
    out[reason == REASONS.index("same-id")] = 1.0
    out[reason == REASONS.index("conflict")] = 0.0
    return out
