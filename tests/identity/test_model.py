"""Training: u from random pairs, m by EM, the prior; term-frequency adjustment of names."""

from __future__ import annotations

import numpy as np
import pytest

from benhan.identity import Linkage, explain, link
from benhan.identity.compare import BIRTH, NAME
from benhan.identity.evaluate import read_truth, same_entity
from benhan.identity.fhir_csv import field_options, write_csv
from benhan.identity.normalise import Person, parse_birth_date, parse_name
from benhan.identity.table import parse_field, read_table
from benhan.synth.mess import MessRates
from benhan.synth.output import write_truth
from benhan.synth.province import Province, SynthConfig, generate

from .conftest import SynthCsv


@pytest.fixture(scope="module")
def linked(province_csv: SynthCsv) -> Linkage:
    pair = [  # a rare name and the commonest kind, each typed twice
        Person("rare-a", parse_name("Nông Diệu Khuê"), parse_birth_date("1960-01-01")),
        Person("rare-b", parse_name("Nong Dieu Khue"), parse_birth_date("1960-01-01")),
        Person("nam-a", parse_name("Nguyễn Văn Nam"), parse_birth_date("1960-01-01")),
        Person("nam-b", parse_name("Nguyen Van Nam"), parse_birth_date("1960-01-01")),
    ]
    return link([*province_csv.people, *pair])


def test_em_converges_to_plausible_m_and_prior(linked: Linkage, province_csv: SynthCsv) -> None:
    model = linked.model
    assert model.em_converged
    k_name, k_birth = model.comparisons.index(NAME), model.comparisons.index(BIRTH)
    exact, other = NAME.labels.index("exact"), NAME.labels.index("else")
    assert model.m[k_name][exact] > 0.5 > model.u[k_name][exact] * 100
    assert model.m[k_name][other] < 0.05 < model.u[k_name][other]
    assert model.m[k_birth][BIRTH.labels.index("exact")] > 0.8
    truth = read_truth(province_csv.truth, "patient_id", "true_person_id")
    people = [truth[p.record_id] for p in province_csv.people]
    true_pairs = sum(k * (k - 1) // 2 for k in np.unique(people, return_counts=True)[1])
    n = len(linked.cols)
    assert 0.5 < model.prior / (true_pairs / (n * (n - 1) / 2)) < 2  # λ found, not assumed


def test_rare_name_match_weighs_more_than_nguyen_van_nam(linked: Linkage) -> None:
    ids = {rid: i for i, rid in enumerate(linked.cols.ids)}

    def name_weight(a: str, b: str) -> float:
        lines = explain(linked.model, linked.cols, ids[a], ids[b])
        line = next(x for x in lines if x.comparison == "name")
        assert line.level == "exact folded" and line.tf_adjusted
        return line.weight

    assert name_weight("rare-a", "rare-b") > name_weight("nam-a", "nam-b") + 3  # ≥ 8× the odds


def test_model_saves_as_json(linked: Linkage) -> None:
    doc = linked.model.to_json()
    name = next(c for c in doc["comparisons"] if c["name"] == "name")
    assert [lv["label"] for lv in name["levels"]] == list(NAME.labels[1:])
    assert doc["em"]["converged"] is True


def test_a_saved_model_scores_as_the_trained_one() -> None:
    """The online index scores with the model relink saved: the JSON must round-trip exactly."""
    import orjson

    from benhan.identity.model import Model

    people = [
        Person(str(i), name=parse_name(n), birth=parse_birth_date(d, "%Y-%m-%d"))
        for i, (n, d) in enumerate(
            [("Nguyễn Thị Hương", "1987-03-12"), ("NGUYEN THI HUONG", "1987-03-12"),
             ("Trần Văn Nam", "1990-01-02"), ("Lê Thị Lan", "1975-05-06"),
             ("Trần Văn Nam", "1990-02-01"), ("Phạm Văn Đức", "1966-07-08")] * 3
        )
    ]  # fmt: skip
    linkage = link(people)
    saved = Model.from_json(orjson.loads(orjson.dumps(linkage.model.to_json())))
    for a, b in zip(linkage.model.weights(), saved.weights(), strict=True):
        assert np.allclose(a, b)
    assert saved.prior == linkage.model.prior
    assert [c.name for c in saved.comparisons] == [c.name for c in linkage.model.comparisons]


@pytest.fixture(scope="module")
def hard_desk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Linkage, dict[str, str]]:
    """A province registered at the hard desk: most pairs share no identifier, and households
    share phones, so the training pairs' non-matches are where EM can go wrong."""
    config = SynthConfig(seed=11, people=2000, years=1, private_clinics=3, random_outbreaks=0,
                         mess=MessRates.hard())  # fmt: skip
    out = tmp_path_factory.mktemp("hard")
    province = Province(config, [])
    write_csv((r for _, r in generate(config, province) if r["resourceType"] == "Patient"),
              out / "patients.csv")  # fmt: skip
    truth = read_truth(write_truth(province, out / "truth")[0], "patient_id", "true_person_id")
    specs = [parse_field(f) for f in field_options()]
    return link(read_table(out / "patients.csv", "patient_id", specs).people), truth


@pytest.mark.parametrize("comparison", [NAME, BIRTH], ids=lambda c: c.name)
def test_em_learns_m_as_the_true_pairs_have_them(
    hard_desk: tuple[Linkage, dict[str, str]], comparison: object
) -> None:
    """m of every level within 0.05 of its share among the true pairs. Trained on phone pairs
    (households), EM once put half the matches in "another birth year" (truly none)."""
    linked, truth = hard_desk
    k = linked.model.comparisons.index(comparison)  # type: ignore[arg-type]
    true_levels = linked.levels[same_entity(linked.cols.ids, truth, linked.ia, linked.ib), k]
    share = np.bincount(true_levels, minlength=len(linked.model.m[k]))[1:].astype(np.float64)
    assert np.abs(linked.model.m[k][1:] - share / share.sum()).max() < 0.05
