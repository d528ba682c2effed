"""Blocking: exact pairs within blocks, large blocks skipped and counted, recall on the province."""

from __future__ import annotations

from itertools import combinations

import numpy as np

from benhan.identity.blocking import candidate_pairs, pairs_in_blocks, thin_blocks
from benhan.identity.columns import to_columns
from benhan.identity.evaluate import read_truth, same_entity
from benhan.identity.normalise import Person, normalise_phone, parse_birth_date, parse_name

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


def test_thinning_keeps_whole_blocks_within_the_budget() -> None:
    keys = np.repeat(np.arange(40, dtype=np.int64), 10)  # 40 blocks of 10: 45 pairs each
    keys = np.r_[keys, [-1, -1]]
    thin = thin_blocks(keys, cap=1000, max_pairs=450, rng=np.random.default_rng(0))
    kept = np.unique(thin[thin >= 0])
    assert len(kept) == 10  # 10 × 45 = 450 pairs
    assert all((thin[keys == k] == k).all() for k in kept)  # a kept block keeps every record
    assert (thin[keys < 0] == -1).all()
    same = thin_blocks(keys, cap=1000, max_pairs=10_000, rng=np.random.default_rng(0))
    assert (same == keys).all()  # under the budget: nothing dropped


def test_a_typo_with_a_year_only_date_and_a_new_phone_is_still_paired() -> None:
    """No identifier, name or date rule shares a key here; commune + birth year + the name
    part without the typo does."""

    def person(rid: str, name: str, born: str, phone: str) -> Person:
        return Person(rid, parse_name(name), parse_birth_date(born), "female",
                      phone=normalise_phone(phone), commune="07621")  # fmt: skip

    people = [
        person("a", "Nguyễn Thị Hằng", "1995-12-16", "0911000001"),
        person("b", "Nguyễn Thị Hanh", "1995-01-01", "0922000001"),  # given name mistyped
        person("c", "Nguyễn Thị Thơm", "1984-03-04", "0911000002"),
        person("d", "Nhuyễn Thị Thơm", "1984-01-01", "0922000002"),  # family name mistyped
    ]
    ia, ib, report = candidate_pairs(to_columns(people))
    assert {(int(a), int(b)) for a, b in zip(ia, ib, strict=True)} == {(0, 1), (2, 3)}
    assert report.pairs_by_rule["family+birth year+commune"] == 1
    assert report.pairs_by_rule["given+birth year+commune"] == 1
