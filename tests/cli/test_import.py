"""`benhan import` and `benhan export` from the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from benhan.cli import app
from benhan.store.database import Store
from benhan.store.stats import counts_by_type
from tests.conftest import data_path

runner = CliRunner()


def data_counts(conn: sa.Connection) -> dict[str, int]:
    """Resources per type, without the audit trail (each import run adds one AuditEvent) and
    the Provenances the import records (store/provenance.py)."""
    return {t: n for t, n in counts_by_type(conn).items() if t not in ("AuditEvent", "Provenance")}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str, store: Store) -> Store:
    monkeypatch.setenv("BENHAN_DATABASE_URL", database_url)
    monkeypatch.setenv("BENHAN_FACILITY", "27001")
    return store


def ndjson_counts(folder: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for f in folder.glob("*.ndjson"):
        counts.update(
            orjson.loads(line)["resourceType"]
            for line in f.read_bytes().splitlines()
            if line.strip()
        )
    return counts


def test_import_bulk_ndjson_then_again(env: Store) -> None:
    folder = data_path("bulk-ndjson-10-patients")
    result = runner.invoke(app, ["import", str(folder)])
    assert result.exit_code == 0, result.output
    with env.read() as conn:
        counts = data_counts(conn)
        recorded = conn.exec_driver_sql(
            "SELECT count(*) FROM resource WHERE rtype = 'Provenance'"
        ).scalar()
    assert counts == dict(ndjson_counts(folder))
    assert recorded and recorded >= counts["Patient"]  # at least one per patient loaded
    # conditional references were resolved to stored ids
    with env.read() as conn:
        enc = conn.exec_driver_sql("SELECT content FROM resource WHERE rtype = 'Encounter'").first()
    assert enc is not None
    text = enc[0] if isinstance(enc[0], str) else orjson.dumps(enc[0]).decode()
    assert "?identifier=" not in text and "Practitioner/" in text
    assert "unresolved" not in result.output  # every reference in this export resolves
    assert "13 bản ghi đã đối chiếu / records matched" in " ".join(result.output.split())
    with env.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM mpi_inbox").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM mpi_record").scalar() == 13
    again = runner.invoke(app, ["import", str(folder)])
    assert again.exit_code == 0, again.output
    assert "7,160" in again.output  # all unchanged
    with env.read() as conn:
        assert data_counts(conn) == counts
        versions = conn.exec_driver_sql("SELECT max(version_id) FROM resource").scalar()
    assert versions == 1
    with env.read() as conn:
        assert counts_by_type(conn)["AuditEvent"] == 2, "each run leaves one AuditEvent"


def test_import_reports_bad_lines_and_loads_the_rest(env: Store, tmp_path: Path) -> None:
    src = data_path("bulk-ndjson-10-patients", "Patient.000.ndjson")
    lines = src.read_bytes().splitlines()
    good = len(lines)
    bad = [
        b'{"resourceType": "Patient", "id": "p-bad", "gender": "robot"}',
        b"{not json",
        b'{"resourceType": "Patient", "birthDate": "1990-01-01"}',
    ]
    f = tmp_path / "Patient.mixed.ndjson"
    f.write_bytes(b"\n".join([lines[0], *bad, *lines[1:]]) + b"\n")
    result = runner.invoke(app, ["import", str(f)])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert f"{f.name}:2: Patient.gender" in out.replace(str(f.parent) + "/", "")
    assert f"{f.name}:3:" in out.replace(str(f.parent) + "/", "")
    assert f"{f.name}:4: Patient.id" in out.replace(str(f.parent) + "/", "")
    with env.read() as conn:
        assert data_counts(conn) == {"Patient": good}


def test_import_synthea_bundles_idempotent(env: Store, tmp_path: Path) -> None:
    files = sorted(data_path("synthea-r4-bundles").glob("*.json"))[:2]
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    expected: Counter[str] = Counter()
    for f in files:
        expected.update(
            e["resource"]["resourceType"] for e in orjson.loads(f.read_bytes())["entry"]
        )
    for _ in range(2):
        result = runner.invoke(app, ["import", str(tmp_path)])
        assert result.exit_code == 0, result.output
        with env.read() as conn:
            assert data_counts(conn) == dict(expected)


def test_unresolved_references_are_kept_and_counted(env: Store, tmp_path: Path) -> None:
    f = tmp_path / "Observation.ndjson"
    obs = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "x"},
        "derivedFrom": [{"reference": "DiagnosticReport/not-exported"}],
    }
    f.write_bytes(orjson.dumps(obs) + b"\n")
    result = runner.invoke(app, ["import", str(f)])
    assert result.exit_code == 0, result.output
    assert "unresolved references to DiagnosticReport: 1" in " ".join(result.output.split())
    with env.read() as conn:
        assert data_counts(conn) == {"Observation": 1}


def test_import_missing_path_and_empty_folder(env: Store, tmp_path: Path) -> None:
    r = runner.invoke(app, ["import", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "nope" in r.output
    r = runner.invoke(app, ["import", str(tmp_path)])
    assert r.exit_code == 2


def test_export_round_trip(env: Store, tmp_path: Path) -> None:
    folder = data_path("bulk-ndjson-10-patients")
    assert (
        runner.invoke(
            app,
            ["import", str(folder / "Organization.000.ndjson"), str(folder / "Patient.000.ndjson")],
        ).exit_code
        == 0
    )
    out = tmp_path / "out"
    result = runner.invoke(app, ["export", str(out), "--type", "Patient"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["Patient.ndjson"]
    ids = {orjson.loads(line)["id"] for line in (out / "Patient.ndjson").read_bytes().splitlines()}
    src = {
        orjson.loads(line)["id"]
        for line in (folder / "Patient.000.ndjson").read_bytes().splitlines()
    }
    assert ids == src
    bad = runner.invoke(app, ["export", str(out), "--type", "Nope"])
    assert bad.exit_code == 2 and "Nope" in bad.output
    bad = runner.invoke(app, ["export", str(out), "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.output
