"""`benhan mpi dedupe` end to end, and its refusals of bad input."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from benhan.cli import app
from benhan.identity.fhir_csv import field_options

from .conftest import SynthCsv

runner = CliRunner()


def _fields() -> list[str]:
    return [x for f in field_options() for x in ("--field", f)]


def test_dedupe_writes_pairs_and_prints_precision_recall(
    province_csv: SynthCsv, tmp_path: Path
) -> None:
    out = tmp_path / "pairs.csv"
    args = ["mpi", "dedupe", str(province_csv.csv), "--id", "patient_id", *_fields(),
            "--output", str(out), "--truth", str(province_csv.truth)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows and list(rows[0]) == ["id_a", "id_b", "match_probability"]
    probs = [float(r["match_probability"]) for r in rows]
    assert probs == sorted(probs, reverse=True) and min(probs) >= 0.01
    assert "precision" in result.output and "review queue" in result.output
    link_row = next(line for line in result.output.splitlines() if "│" in line and "link " in line)
    precision, recall = (float(x) for x in link_row.split("│")[4:6])
    assert precision >= 0.99 and recall >= 0.95


def test_unknown_column_and_bad_dates_name_file_line_field(tmp_path: Path) -> None:
    src = tmp_path / "his.csv"
    src.write_text("MA_BN,HO_TEN,NGAY_SINH\n1,Nguyễn Văn An,12/03/1987\n2,Lê Thị Hoa,1987-13-45\n",
                   encoding="utf-8")  # fmt: skip
    out = tmp_path / "pairs.csv"
    base = ["mpi", "dedupe", str(src), "--id", "MA_BN", "--field", "HO_TEN=fullname",
            "--output", str(out)]  # fmt: skip
    bad_date = runner.invoke(app, [*base, "--field", "NGAY_SINH=birthdate:%d/%m/%Y"])
    assert bad_date.exit_code == 2
    assert f"{src}:3:NGAY_SINH" in bad_date.output.replace("\n", "")
    no_column = runner.invoke(app, [*base, "--field", "DIA_CHI=address"])
    assert no_column.exit_code == 2 and f"{src}:1:DIA_CHI" in no_column.output.replace("\n", "")
    bad_role = runner.invoke(app, [*base, "--field", "NGAY_SINH=dob"])
    assert bad_role.exit_code == 2
    assert not out.exists()  # nothing written
