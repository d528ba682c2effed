"""bench/mpi.py: the records CSV, the truth, the scoring both linkers share, and the Splink side."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import mpi  # noqa: E402


def test_true_pairs_are_every_pair_within_a_person() -> None:
    person = np.array(["A", "B", "A", "C", "A", "B"])
    keys = mpi.true_pairs(person, 6)
    assert sorted((int(k) // 6, int(k) % 6) for k in keys) == [(0, 2), (0, 4), (1, 5), (2, 4)]


def test_true_pairs_of_strangers_is_empty() -> None:
    assert len(mpi.true_pairs(np.array(["A", "B", "C"]), 3)) == 0


def write_truth(path: Path) -> mpi.Truth:
    path.write_text(
        "patient_id,facility_code,true_person_id,mutations\n"
        "a,27001,P1,\n"
        "b,27002,P1,no_diacritics;typo_adjacent\n"
        "c,27003,P2,\n"
        "d,27004,P2,changed_phone\n"
        "e,27005,P3,\n",
        encoding="utf-8",
    )
    return mpi.read_truth(path)


def test_truth_knows_each_pairs_mess(tmp_path: Path) -> None:
    truth = write_truth(tmp_path / "people.csv")
    assert len(truth.pairs) == 2
    assert list(truth.pairs_with("typo_adjacent")) == [
        mpi.pair_keys(np.array([0]), np.array([1]), 5)[0]
    ]
    assert list(truth.pairs_with("changed_phone")) == [2 * 5 + 3]


def test_read_pairs_keeps_each_pair_once_with_its_best_probability(tmp_path: Path) -> None:
    truth = write_truth(tmp_path / "people.csv")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "id_a,id_b,match_probability\n"
        "a,b,0.90\n"
        "b,a,0.995\n"  # the same pair the other way round
        "c,c,1.0\n"  # a record with itself
        "a,e,0.85\n",
        encoding="utf-8",
    )
    keys, probs = mpi.read_pairs(pairs, truth)
    assert dict(zip(keys.tolist(), probs.tolist(), strict=True)) == {1: 0.995, 4: 0.85}


def test_read_pairs_refuses_an_unknown_id(tmp_path: Path) -> None:
    truth = write_truth(tmp_path / "people.csv")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("id_a,id_b,match_probability\na,b,0.9\na,zz,0.9\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"pairs.csv:3: id 'zz'"):
        mpi.read_pairs(pairs, truth)


def test_score_at_the_link_and_review_thresholds(tmp_path: Path) -> None:
    truth = write_truth(tmp_path / "people.csv")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "id_a,id_b,match_probability\na,b,0.995\nc,d,0.85\na,e,0.999\nb,c,0.5\n",
        encoding="utf-8",
    )
    keys, probs = mpi.read_pairs(pairs, truth)
    link = mpi.score(keys, probs, truth.pairs, mpi.LINK)
    assert (link.predicted, link.precision, link.recall) == (2, 0.5, 0.5)
    reviewed = mpi.score(keys, probs, truth.pairs, mpi.REVIEW)
    assert (reviewed.predicted, reviewed.recall) == (3, 1.0)
    assert reviewed.precision == pytest.approx(2 / 3)
    assert reviewed.f1 == pytest.approx(0.8)


def test_score_of_no_hits_is_zero_f1() -> None:
    s = mpi.score(
        np.array([7], dtype=np.int64), np.array([1.0]), np.array([3], dtype=np.int64), 0.99
    )
    assert (s.precision, s.recall, s.f1) == (0.0, 0.0, 0.0)


def test_timed_reports_the_childs_own_peak_memory(tmp_path: Path) -> None:
    t = mpi.timed(
        [sys.executable, "-c", "b = bytearray(80 * 2**20); b[::4096] = b'x' * len(b[::4096])"],
        tmp_path / "log",
    )
    assert t.peak_mb >= 80
    assert t.seconds > 0


def test_timed_fails_on_a_failing_child(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="exited with 3"):
        mpi.timed([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "log")


def test_benhan_gets_the_csvs_columns_with_their_roles_and_the_floor(tmp_path: Path) -> None:
    cmd = mpi.benhan_cmd(tmp_path / "r.csv", tmp_path / "p.csv")
    assert cmd[1:6] == ["mpi", "dedupe", str(tmp_path / "r.csv"), "--id", "patient_id"]
    fields = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--field"]
    assert "birth_date=birthdate:%Y-%m-%d" in fields
    assert {"cccd=cccd", "cmnd=cmnd", "bhyt=bhyt", "phone=phone", "commune=commune"} <= set(fields)
    assert cmd[cmd.index("--output") + 1] == str(tmp_path / "p.csv")
    assert float(cmd[cmd.index("--floor") + 1]) == mpi.FLOOR  # as the reference writes


def test_build_rewrites_a_csv_of_older_columns_without_generating_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "mpi-7"
    (data / "fhir" / "27001").mkdir(parents=True)
    patient = '{"resourceType": "Patient", "id": "p1", "name": [{"family": "Lê"}]}\n'
    (data / "fhir" / "27001" / "Patient.ndjson").write_text(patient, encoding="utf-8")
    (data / "records.csv").write_text("id,family\np1,Lê\n", encoding="utf-8")
    monkeypatch.setattr(mpi, "VAR", tmp_path)
    monkeypatch.setattr(mpi, "BENHAN", "/nonexistent/benhan")  # generating would fail
    assert mpi.build(7, rebuild=False) == data
    assert mpi.header(data / "records.csv")[:3] == ["patient_id", "family", "given"]
    assert "p1,Lê," in (data / "records.csv").read_text(encoding="utf-8")
