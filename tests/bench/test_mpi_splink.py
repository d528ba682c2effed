"""bench/mpi_splink.py: the features Splink is given, and a real run on a small province."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
pytest.importorskip("splink", reason="Splink is in the bench extra: pip install -e '.[bench]'")
import mpi  # noqa: E402
import mpi_splink  # noqa: E402

from benhan.fhir.systems import BHYT, CMND, COMMUNE_CODE_EXT  # noqa: E402
from benhan.identity.fhir_csv import patient_row, patients_in, write_csv  # noqa: E402

PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [
        {"system": "https://benhan.vn/sid/ma-bn/24001", "value": "687625837"},
        {"system": CMND, "value": "121234567"},
        {"system": BHYT, "value": "HT3242401091495"},
    ],
    "name": [{"family": "Nguyễn", "given": ["Thị", "Hương"], "text": "Nguyễn Thị Hương"}],
    "gender": "female",
    "birthDate": "1987",
    "address": [{"extension": [{"url": COMMUNE_CODE_EXT, "valueCode": "07582"}]}],
}


def test_splink_features_fold_and_split_the_name() -> None:
    row = patient_row(PATIENT)
    f = mpi_splink.feature_row(row)
    assert (f["family"], f["middle"], f["given"], f["given_initial"]) == (
        "nguyen",
        "thi",
        "huong",
        "h",
    )
    assert (f["birthdate"], f["birth_year"]) == ("1987", "1987")
    assert f["bhyt10"] == "2401091495"  # the BHXH number inside the legacy code
    assert f["cccd"] is None and f["phone"] is None  # '' is null, never a shared blocking key


def test_splink_features_of_a_single_given_name() -> None:
    f = mpi_splink.feature_row({**patient_row(PATIENT), "given": "HUONG", "bhyt": "2401091495"})
    assert (f["middle"], f["given"], f["bhyt10"]) == (None, "huong", "2401091495")


def test_splink_links_a_small_province(tmp_path: Path) -> None:
    benhan = str(Path(sys.executable).parent / "benhan")
    cmd = [benhan, "synth", "--people", "1500", "--years", "1", "--out", str(tmp_path / "d")]
    subprocess.run(cmd, check=True, capture_output=True)
    records = tmp_path / "records.csv"
    write_csv(patients_in(tmp_path / "d" / "fhir"), records)
    truth = mpi.read_truth(tmp_path / "d" / "truth" / "people.csv")
    written = mpi_splink.link(records, tmp_path / "pairs.csv", 0.5, 1e6)
    keys, probs = mpi.read_pairs(tmp_path / "pairs.csv", truth)
    assert written == len(keys) > 0
    s = mpi.score(keys, probs, truth.pairs, mpi.REVIEW)
    assert s.precision > 0.95 and s.recall > 0.95, s
