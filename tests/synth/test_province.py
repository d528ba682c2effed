"""The whole synthetic province: determinism, validity, references, ground truth, both outputs."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from benhan.access import Actor
from benhan.cli import app
from benhan.fhir.primitives import split_ref
from benhan.fhir.validation import check
from benhan.store.database import Store
from benhan.store.repository import Repo, references
from benhan.store.stats import counts_by_type
from benhan.synth.output import to_store, write_truth
from benhan.synth.province import Province, SynthConfig, generate

SMALL = SynthConfig(
    seed=7, people=300, years=1, private_clinics=3, random_outbreaks=2, incidence_scale=50.0
)


def run(config: SynthConfig) -> tuple[list[tuple[str, dict[str, Any]]], Province]:
    province = Province(config, [])
    return list(generate(config, province)), province


def test_same_seed_same_bytes_other_seed_other_data() -> None:
    a, _ = run(SMALL)
    b, _ = run(SMALL)
    assert orjson.dumps(a) == orjson.dumps(b)
    c, _ = run(SynthConfig(**{**SMALL.__dict__, "seed": 8}))
    assert orjson.dumps(a) != orjson.dumps(c)


def test_every_resource_is_valid_r4() -> None:
    resources, province = run(SMALL)
    bad = [(r["resourceType"], issues) for _c, r in resources if (issues := check(r))]
    assert bad == []
    kinds = Counter(r["resourceType"] for _c, r in resources)
    assert kinds["Organization"] == kinds["Location"] == len(province.facilities)
    assert kinds["Patient"] == len(province.registrations) >= SMALL.people * 0.5
    assert {"Encounter", "Condition", "Observation", "MedicationRequest"} <= set(kinds)


def test_references_point_backwards_only() -> None:
    """Everything a resource references was yielded before it (the fast path relies on it)."""
    seen: set[tuple[str, str]] = set()
    for _code, res in run(SMALL)[0]:
        for _path, ref in references(res, res["resourceType"]):
            parts = split_ref(ref)
            assert parts in seen, (res["resourceType"], ref)
        seen.add((res["resourceType"], res["id"]))


@pytest.mark.parametrize("workers", [0, 1])
def test_into_the_repository_with_truth(store: Store, tmp_path: Path, workers: int) -> None:
    province = Province(SMALL, [])
    total = to_store(store, generate(SMALL, province), workers=workers)
    with store.read() as conn:
        counts = counts_by_type(conn)
        patients = Repo(conn, Actor.job("", "test")).existing(
            ("Patient", r.patient_id) for r in province.registrations
        )
    assert sum(counts.values()) == total == sum(province.counts.values())
    assert counts == dict(province.counts)
    assert len(patients) == len(province.registrations)
    people_csv, outbreaks_json = write_truth(province, tmp_path / "truth")
    rows = list(csv.DictReader(people_csv.open(encoding="utf-8")))
    assert {r["patient_id"] for r in rows} == {r.patient_id for r in province.registrations}
    truth = orjson.loads(outbreaks_json.read_bytes())
    assert province.simulation is not None
    flood = [o for o in truth["outbreaks"] if o["cause"] == "flood"]
    assert flood and all(o["generated_cases"] <= o["planned_cases"] for o in truth["outbreaks"])


def test_cli_writes_files_that_import_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, store: Store
) -> None:
    monkeypatch.setenv("BENHAN_DATABASE_URL", database_url)
    out = tmp_path / "province"
    r = CliRunner().invoke(
        app,
        [
            "synth",
            "--people",
            "120",
            "--years",
            "1",
            "--seed",
            "3",
            "--clinics",
            "2",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert (out / "truth" / "people.csv").exists() and (out / "truth" / "outbreaks.json").exists()
    written = Counter()
    for f in (out / "fhir").rglob("*.ndjson"):
        written[f.stem] += len(f.read_bytes().splitlines())
    r = CliRunner().invoke(app, ["import", str(out / "fhir")])
    assert r.exit_code == 0, r.output
    with store.read() as conn:
        stored = counts_by_type(conn)
    assert stored.pop("AuditEvent") == 1  # the import run's own event
    stored.pop("Person", None)  # the import matched its Patients (benhan.identity.online)
    assert stored.pop("Provenance") >= written["Patient"]  # the import's, one or more per patient
    assert stored == dict(written)


def test_cli_refuses_bad_sizes_and_a_full_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, store: Store
) -> None:
    monkeypatch.setenv("BENHAN_DATABASE_URL", database_url)
    monkeypatch.setenv("BENHAN_VAR", str(tmp_path))
    r = CliRunner().invoke(app, ["synth", "--people", "0"])
    assert r.exit_code == 2 and "--people" in r.output
    args = ["synth", "--people", "50", "--years", "1", "--clinics", "1"]
    assert CliRunner().invoke(app, args).exit_code == 0
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--replace" in again.output
    assert CliRunner().invoke(app, [*args, "--replace"]).exit_code == 0
