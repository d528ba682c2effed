"""Comparisons as ordered levels (as in Splink): for a pair of records, the first level whose
condition holds is the comparison's value; level 0 is "null" (a value missing) and carries no
evidence. m and u of each level come from training, never from this code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rapidfuzz.distance import OSA, JaroWinkler
from rapidfuzz.process import cpdist

from benhan.identity.columns import Bools, Codes, Columns, Ints

Levels = npt.NDArray[np.int8]
Rule = Callable[[Columns, Ints, Ints], list[Bools]]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One field's comparison: `conditions` gives, for levels 1…, which pairs are in them;
    pairs in none are in the last level ("else")."""

    name: str
    labels: tuple[str, ...]  # labels[0] == "null", labels[-1] == "else"
    role: str  # the input role it needs (Columns.present)
    null: Callable[[Columns, Ints, Ints], Bools]
    conditions: Rule
    tf_levels: frozenset[int] = frozenset()  # exact levels whose u is the value's frequency

    def levels(self, cols: Columns, ia: Ints, ib: Ints) -> Levels:
        conds = [self.null(cols, ia, ib), *self.conditions(cols, ia, ib)]
        return np.select(conds, list(range(len(conds))), len(conds)).astype(np.int8)

    def level_of(self, cols: Columns, a: int, b: int) -> str:
        """The label of one pair's level (for explanations and tests)."""
        lv = self.levels(cols, np.asarray([a], np.int32), np.asarray([b], np.int32))
        return self.labels[int(lv[0])]


def _either_missing(col: str) -> Callable[[Columns, Ints, Ints], Bools]:
    def null(cols: Columns, ia: Ints, ib: Ints) -> Bools:
        arr: Codes = getattr(cols, col)
        out: Bools = (arr[ia] < 0) | (arr[ib] < 0)
        return out

    return null


def exact(col: str, name: str | None = None) -> Comparison:
    """null / equal / else: identifiers, sex, commune, phone."""

    def conditions(cols: Columns, ia: Ints, ib: Ints) -> list[Bools]:
        arr: Codes = getattr(cols, col)
        return [arr[ia] == arr[ib]]

    return Comparison(name or col, ("null", "equal", "else"), col, _either_missing(col), conditions)


def threads_for(n: int) -> int:
    """Both cores for a batch's millions of pairs; one thread for the few of an online match,
    where starting threads costs 400 times the work (2 ms against 5 µs for 6 pairs)."""
    return -1 if n >= 10_000 else 1


def similarity(left: Sequence[str], right: Sequence[str]) -> npt.NDArray[np.float64]:
    """Jaro-Winkler of aligned strings, computed in rapidfuzz's C++ on both cores."""
    if not left:
        return np.zeros(0, np.float64)
    return cpdist(
        left, right, scorer=JaroWinkler.normalized_similarity, workers=threads_for(len(left))
    ).astype(np.float64)


def _name_conditions(cols: Columns, ia: Ints, ib: Ints) -> list[Bools]:
    acc = cols.name_acc[ia] == cols.name_acc[ib]
    fold = cols.name_fold[ia] == cols.name_fold[ib]
    same_given = cols.given[ia] == cols.given[ib]
    same_fg = (cols.family[ia] == cols.family[ib]) & same_given
    jw = np.ones(len(ia), np.float64)
    typo = np.zeros(len(ia), np.bool_)
    todo = np.flatnonzero(~fold)  # string measures only where the folded names differ
    if len(todo):
        gf, folded = cols.given_first, cols.name_words
        jw[todo] = similarity([gf[i] for i in ia[todo]], [gf[i] for i in ib[todo]])
        left = [folded[c] for c in cols.name_fold[ia[todo]]]
        right = [folded[c] for c in cols.name_fold[ib[todo]]]
        typo[todo] = cpdist(left, right, scorer=OSA.distance, workers=threads_for(len(left))) <= 1
    # One keystroke apart in the whole name is far stronger evidence than a Jaro-Winkler band
    # (on --mess hard: 9 bits against the band's 6), and where it falls matters: in a family or
    # middle name it is a slip; in the given name it may be another person (Hùng/Dũng), so the
    # two get their own m and u.
    return [acc, fold, typo & same_given, typo, same_fg, jw >= 0.92, jw >= 0.80]


NAME = Comparison(
    "name",
    ("null", "exact", "exact folded", "one letter off, given name equal",
     "one letter off in the given name", "family+given, middle differs", "jaro-winkler ≥ 0.92",
     "jaro-winkler ≥ 0.80", "else"),
    "name",
    _either_missing("name_fold"),
    _name_conditions,
    tf_levels=frozenset({1, 2}),
)  # fmt: skip


def _birth_conditions(cols: Columns, ia: Ints, ib: Ints) -> list[Bools]:
    ya, yb = cols.year[ia], cols.year[ib]
    ma, mb, da, db = cols.month[ia], cols.month[ib], cols.day[ia], cols.day[ib]
    same_year = ya == yb
    full = (ma > 0) & (mb > 0)
    exact_ = (cols.birth[ia] == cols.birth[ib]) & full
    swapped = same_year & full & (ma == db) & (da == mb) & (ma != da)
    year_only = same_year & (cols.year_only[ia] | cols.year_only[ib])
    # Year-only before same month: 01/01 often stands for "born that year" (claims convention),
    # so its January says nothing; read as "same month" it lost 3 bits on a true pair.
    return [exact_, swapped, year_only, same_year & full & (ma == mb), same_year]


BIRTH = Comparison(
    "birth_date",
    ("null", "exact", "day/month swapped", "year-only, same year", "same year and month",
     "same year", "else"),
    "birth",
    _either_missing("birth"),
    _birth_conditions,
)  # fmt: skip

# In the order the comparison vector holds them; a comparison is used when its role is present.
ALL: tuple[Comparison, ...] = (
    NAME,
    BIRTH,
    exact("sex"),
    exact("cccd"),
    exact("cmnd"),
    exact("bhyt"),
    exact("phone"),
    exact("commune"),
    exact("postcode"),
    exact("address"),
    exact("identifier"),
)


def comparisons_for(cols: Columns) -> tuple[Comparison, ...]:
    return tuple(c for c in ALL if c.role in cols.present)


def compare(comps: Sequence[Comparison], cols: Columns, ia: Ints, ib: Ints) -> Levels:
    """Comparison vectors of pairs (ia[k], ib[k]): a row per pair, a column per comparison."""
    out = np.empty((len(ia), len(comps)), np.int8)
    for k, c in enumerate(comps):
        out[:, k] = c.levels(cols, ia, ib)
    return out
