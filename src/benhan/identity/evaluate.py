"""Pairwise precision, recall and F1 of a linkage against a ground truth (id → entity)."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benhan.identity.columns import Bools, Floats, Ints
from benhan.identity.table import TableError


@dataclass(frozen=True, slots=True)
class Score:
    predicted: int
    true_positive: int
    true_pairs: int

    @property
    def precision(self) -> float:
        return self.true_positive / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positive / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True, slots=True)
class Evaluation:
    true_pairs: int  # pairs of input records that are one entity
    candidate_true: int  # of those, how many blocking found
    link: Score  # probability ≥ link threshold
    link_or_review: Score  # probability ≥ review threshold
    review_queue: int

    @property
    def blocking_recall(self) -> float:
        return self.candidate_true / self.true_pairs if self.true_pairs else 1.0


def read_truth(path: Path, id_column: str, entity_column: str) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in (id_column, entity_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise TableError([f"{path}:1:{c}: không có cột này / no such column" for c in missing])
        return {row[id_column]: row[entity_column] for row in reader}


def same_entity(ids: list[str], truth: dict[str, str], ia: Ints, ib: Ints) -> Bools:
    """Per pair: both records belong to one entity (records absent from the truth never do)."""
    codes: dict[str, int] = {}
    ent = np.fromiter(  # an unknown record gets a negative code of its own
        (
            codes.setdefault(truth[i], len(codes)) if i in truth else -1 - k
            for k, i in enumerate(ids)
        ),
        dtype=np.int64,
        count=len(ids),
    )
    out: Bools = ent[ia] == ent[ib]
    return out


def evaluate(
    ids: list[str], truth: dict[str, str], ia: Ints, ib: Ints, prob: Floats, link: float,
    review: float,
) -> Evaluation:  # fmt: skip
    sizes = Counter(truth[i] for i in ids if i in truth)
    true_pairs = sum(k * (k - 1) // 2 for k in sizes.values())
    hit = same_entity(ids, truth, ia, ib)
    linked, flagged = prob >= link, prob >= review
    return Evaluation(
        true_pairs=true_pairs,
        candidate_true=int(hit.sum()),
        link=Score(int(linked.sum()), int((hit & linked).sum()), true_pairs),
        link_or_review=Score(int(flagged.sum()), int((hit & flagged).sum()), true_pairs),
        review_queue=int((flagged & ~linked).sum()),
    )
