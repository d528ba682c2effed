"""Blocking: the candidate pairs worth comparing, as the union of several cheap rules, each a key
that true matches usually share. Pairs come from groups of equal keys, never from all n² pairs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from benhan.identity.columns import Codes, Columns, Ints

Keys = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class BlockingRule:
    """Records with equal keys (all parts present) are paired."""

    name: str
    parts: tuple[str, ...]  # Columns attributes, each an integer code column

    def keys(self, cols: Columns) -> Keys:
        """One int64 key per record (−1 where a part is missing), combined by re-encoding."""
        key = np.zeros(len(cols), np.int64)
        missing = np.zeros(len(cols), np.bool_)
        for part in self.parts:
            arr: Codes = getattr(cols, part)
            missing |= arr < 0
            # Re-encode (key, value) pairs densely, so keys never overflow however many parts.
            combined = key * (int(arr.max(initial=0)) + 2) + arr.astype(np.int64) + 1
            key = np.unique(combined, return_inverse=True)[1].astype(np.int64)
        key[missing] = -1
        return key


# Each rule catches what the others miss (benhan.synth.mess): identifiers catch any name or
# date error; name + birth date rules catch a missing or old identifier; name + year catches a
# swapped day/month or a year-only date; given name + date catches a typo in the family name.
# A typo in one name part together with a year-only or swapped date and a new phone escapes
# all of those (59 of 5,505 true pairs on --mess hard); the commune and birth year narrow the
# people enough to pair on the name part without the typo (42 of the 59 found, for 39% more
# candidate pairs there).
DEFAULT_RULES: tuple[BlockingRule, ...] = (
    BlockingRule("cccd", ("cccd",)),
    BlockingRule("cmnd", ("cmnd",)),
    BlockingRule("bhyt", ("bhyt",)),
    BlockingRule("phone", ("phone",)),
    BlockingRule("family+birth date", ("family", "birth")),
    BlockingRule("given+birth date", ("given", "birth")),
    BlockingRule("name+birth year", ("name_fold", "year")),
    BlockingRule("name sound+birth year", ("name_sound", "year")),
    BlockingRule("name+commune", ("name_fold", "commune")),
    BlockingRule("family+birth year+commune", ("family", "year", "commune")),
    BlockingRule("given+birth year+commune", ("given", "year", "commune")),
)


# EM trains on pairs blocked by each of these, in turn (model.train); a comparison on a blocked
# column is left out there, as agreement on it is forced. u is fixed from random pairs, so EM can
# only tell matches apart where a rule's non-matches look random on the comparisons left free.
# People sharing a name, or a birth date, do; people sharing a phone do not: they are a household,
# with one family name, one commune and related birth dates, and EM took them for the matches
# (on --mess hard it put λ at 0.91 among phone pairs, truly 0.38, and learned that 55 % of
# matches differ in birth year). The name rule blocks on the full name alone, not name + year,
# so that birth dates are left free for it to learn.
TRAINING_RULES: tuple[BlockingRule, ...] = (
    BlockingRule("name", ("name_fold",)),
    BlockingRule("birth date", ("birth",)),
)
# Which comparison reads each blocking column (other columns: the comparison of that name).
COMPARED_BY = {"name_fold": "name", "name_sound": "name", "family": "name", "given": "name",
               "birth": "birth_date", "year": "birth_date"}  # fmt: skip


def training_pairs(
    cols: Columns, rules: Sequence[BlockingRule], cap: int, max_pairs: int, seed: int = 0
) -> list[tuple[Ints, Ints, frozenset[str]]]:
    """Per training rule: the pairs of a random subset of its blocks (at most about max_pairs
    pairs), and the comparisons it blocked on."""
    rng = np.random.default_rng(seed)
    out = []
    for rule in rules:
        if any(_absent(cols, p) for p in rule.parts):
            continue
        keys = thin_blocks(rule.keys(cols), cap, max_pairs, rng)
        a, b, _, _ = pairs_in_blocks(keys, cap)
        out.append((a, b, frozenset(COMPARED_BY.get(p, p) for p in rule.parts)))
    return out


def thin_blocks(keys: Keys, cap: int, max_pairs: int, rng: np.random.Generator) -> Keys:
    """`keys` with whole blocks dropped at random (key −1) until their pairs number about
    max_pairs: a sample of blocks, so memory stays bounded however many records share a name,
    and each kept block keeps all its pairs (its matches and non-matches alike)."""
    present = keys >= 0
    sizes = np.bincount(keys[present]) if present.any() else np.zeros(0, np.int64)
    pairs = np.where(sizes <= cap, sizes * (sizes - 1) // 2, 0)
    if pairs.sum() <= max_pairs:
        return keys
    order = rng.permutation(len(sizes))
    kept = order[np.cumsum(pairs[order]) <= max_pairs]
    keep = np.zeros(len(sizes), np.bool_)
    keep[kept] = True
    out = keys.copy()
    out[present & ~keep[np.maximum(keys, 0)]] = -1
    return out


@dataclass(slots=True)
class BlockingReport:
    """What each rule produced, and the blocks skipped for being too large."""

    pairs_by_rule: dict[str, int] = field(default_factory=dict)
    skipped_blocks: dict[str, int] = field(default_factory=dict)
    skipped_records: dict[str, int] = field(default_factory=dict)
    pairs: int = 0


def pairs_in_blocks(keys: Keys, cap: int) -> tuple[Ints, Ints, int, int]:
    """All i<j pairs with keys[i] == keys[j] ≥ 0, in blocks of at most `cap` records; the pairs
    and the number of blocks (and their records) left out for being larger."""
    idx = np.flatnonzero(keys >= 0)
    order = idx[np.argsort(keys[idx], kind="stable")]
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    big = sizes > cap
    out_a: list[Ints] = []
    out_b: list[Ints] = []
    for size in np.unique(sizes[(sizes > 1) & ~big]):
        # Every block of this size at once: a (blocks × size) matrix of record indices.
        first = starts[sizes == size]
        members = order[first[:, None] + np.arange(size)]
        r, c = np.triu_indices(int(size), 1)
        a, b = members[:, r].ravel(), members[:, c].ravel()
        out_a.append(np.minimum(a, b).astype(np.int32))
        out_b.append(np.maximum(a, b).astype(np.int32))
    if not out_a:
        empty = np.zeros(0, np.int32)
        return empty, empty, int(big.sum()), int(sizes[big].sum())
    return np.concatenate(out_a), np.concatenate(out_b), int(big.sum()), int(sizes[big].sum())


def candidate_pairs(
    cols: Columns,
    rules: Sequence[BlockingRule] = DEFAULT_RULES,
    cap: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> tuple[Ints, Ints, BlockingReport]:
    """The union of every rule's pairs, each pair once (ia < ib), and a report."""
    report = BlockingReport()
    n = np.int64(len(cols))
    encoded: list[Keys] = []
    for rule in rules:
        if any(_absent(cols, p) for p in rule.parts):
            continue
        a, b, blocks, records = pairs_in_blocks(rule.keys(cols), cap)
        report.pairs_by_rule[rule.name] = len(a)
        if blocks:
            report.skipped_blocks[rule.name] = blocks
            report.skipped_records[rule.name] = records
        encoded.append(a.astype(np.int64) * n + b)
        if progress:
            progress(1)
    pairs = np.unique(np.concatenate(encoded)) if encoded else np.zeros(0, np.int64)
    report.pairs = len(pairs)
    return (pairs // n).astype(np.int32), (pairs % n).astype(np.int32), report


def _absent(cols: Columns, part: str) -> bool:
    arr: Codes = getattr(cols, part)
    return not bool((arr >= 0).any())
