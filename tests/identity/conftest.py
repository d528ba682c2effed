"""A small synthetic province as a CSV with its truth, shared by the identity tests."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from benhan.identity.fhir_csv import field_options, write_csv
from benhan.identity.normalise import Person
from benhan.identity.persons import relink
from benhan.identity.table import parse_field, read_table
from benhan.store.database import Store
from benhan.synth.output import to_store, write_truth
from benhan.synth.province import Province, SynthConfig, generate

CONFIG = SynthConfig(seed=11, people=2000, years=1, private_clinics=3, random_outbreaks=0)


@dataclass(frozen=True)
class SynthCsv:
    csv: Path
    truth: Path
    people: list[Person]


@pytest.fixture(scope="session")
def province_csv(tmp_path_factory: pytest.TempPathFactory) -> SynthCsv:
    out = tmp_path_factory.mktemp("province")
    province = Province(CONFIG, [])
    patients = (res for _, res in generate(CONFIG, province) if res["resourceType"] == "Patient")
    write_csv(patients, out / "patients.csv")
    truth = write_truth(province, out / "truth")[0]
    specs = [parse_field(f) for f in field_options()]
    people = read_table(out / "patients.csv", "patient_id", specs).people
    return SynthCsv(out / "patients.csv", truth, people)


HUB = "27000"
SMALL = SynthConfig(seed=5, people=600, years=1, private_clinics=1, random_outbreaks=0)


@cache
def _small_patients() -> tuple[tuple[str, dict[str, Any]], ...]:
    found = generate(SMALL, Province(SMALL, []))
    return tuple((code, res) for code, res in found if res["resourceType"] == "Patient")


def load_small_province(store: Store) -> Store:
    """A small province's Patients in the store, linked once by relink (which trains the model)."""
    to_store(store, ((code, copy.deepcopy(res)) for code, res in _small_patients()))
    relink(store, HUB)
    return store


@pytest.fixture
def province(store: Store) -> Store:
    return load_small_province(store)
