"""Blocking: exact pairs within blocks, large blocks skipped and counted, recall on the province."""

from __future__ import annotations

from itertools import combinations

import numpy as np

from benhan.identity.blocking import candidate_pairs, pairs_in_blocks
from benhan.identity.columns import to_columns
from benhan.identity.evaluate import read_truth, same_entity

from .conftest import SynthCsv


def test_pairs_in_blocks_equals_brute_force() -> None:
    keys = np.asarray([3, 1, 3, -1, 1, 3, 7, -1, 2, 2, 2, 2], np.int64)
    a, b, skipped, _ = pairs_in_blocks(keys, cap=10)
    want = {(i, j) for i, j in combinations(range(len(keys)), 2) if keys[i] == keys[j] >= 0}
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == want and len(a) == len(want)
    assert skipped == 0


def test_a_block_over_the_cap_is_skipped_and_counted() -> None:
    keys = np.asarray([5] * 50 + [6, 6], np.int64)  # 50 × "Nguyễn 1980", and one small block
    a, b, blocks, records = pairs_in_blocks(keys, cap=10)
    assert (blocks, records) == (1, 50)
    assert list(zip(a.tolist(), b.tolist(), strict=True)) == [(50, 51)]


def test_blocking_recall_on_the_synthetic_province(province_csv: SynthCsv) -> None:
    cols = to_columns(province_csv.people)
    ia, ib, report = candidate_pairs(cols)
    truth = read_truth(province_csv.truth, "patient_id", "true_person_id")
    ent = [truth[i] for i in cols.ids]
    true_pairs = sum(k * (k - 1) // 2 for k in np.unique(ent, return_counts=True)[1])
    found = int(same_entity(cols.ids, truth, ia, ib).sum())
    assert true_pairs > 100
    assert found / true_pairs >= 0.995
    n = len(cols)
    assert report.pairs < n * 5  # far from n²/2
    assert bool((ia < ib).all()) and len(set(zip(ia.tolist(), ib.tolist(), strict=True))) == len(ia)
