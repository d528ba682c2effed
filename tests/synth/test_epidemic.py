"""Synthetic epidemiology: determinism, seasons, dispersion, outbreaks, the ground-truth file."""

from __future__ import annotations

import csv
import itertools
import json
import random
import statistics
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest

from benhan.synth.epidemic import (
    AGE_GROUPS,
    DISEASES,
    Outbreak,
    Simulation,
    disease,
    ground_truth,
    iso_week_label,
    negbin,
    poisson,
    post_flood_scenario,
    simulate,
    week_monday,
    write_ground_truth,
)

CATALOGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "catalogs"
COMMUNES = [(f"{25000 + i}", 20_000 + 1_000 * i) for i in range(12)]
START = date(2024, 1, 1)


def _months(sim: Simulation, key: str, months: set[int]) -> float:
    """Mean weekly count summed over communes, for weeks whose Thursday falls in `months`."""
    weeks = [t for t in range(sim.weeks) if (sim.week_start(t) + timedelta(days=3)).month in months]
    totals = [sum(sim.baseline[(c, key)][t] for c, _ in sim.communes) for t in weeks]
    return statistics.fmean(totals)


def _outbreak_events(sim: Simulation) -> Counter[str | None]:
    return Counter(e.outbreak_id for e in sim.events() if e.outbreak_id is not None)


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_identical_ground_truth_bytes_counts_and_events(tmp_path: Path) -> None:
    flood = post_flood_scenario(COMMUNES[:3], date(2024, 9, 15), rng=7)
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    sims = [simulate(COMMUNES, START, 60, 42, flood, random_outbreaks=8) for _ in paths]
    for sim, path in zip(sims, paths, strict=True):
        write_ground_truth(sim, path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert sims[0].baseline == sims[1].baseline
    assert list(sims[0].rows()) == list(sims[1].rows())
    assert list(sims[0].events()) == list(sims[1].events())


def test_different_seed_gives_different_output(tmp_path: Path) -> None:
    a = simulate(COMMUNES, START, 60, 1, random_outbreaks=8)
    b = simulate(COMMUNES, START, 60, 2, random_outbreaks=8)
    write_ground_truth(a, tmp_path / "a.json")
    write_ground_truth(b, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() != (tmp_path / "b.json").read_bytes()
    assert a.baseline != b.baseline


def test_baseline_does_not_depend_on_injected_outbreaks() -> None:
    # FPR is scored on the series before outbreaks are added (surveillance.md §7.3).
    plain = simulate(COMMUNES, START, 52, 5)
    flood = post_flood_scenario(COMMUNES[:2], date(2024, 9, 15), rng=1)
    busy = simulate(COMMUNES, START, 52, 5, flood, random_outbreaks=10)
    assert plain.baseline == busy.baseline
    assert len(busy.outbreaks) == len(flood) + 10


# --- seasonality and dispersion ------------------------------------------------------------------


@pytest.fixture(scope="module")
def five_years() -> Simulation:
    communes = [(f"{26000 + i}", 40_000) for i in range(20)]
    return simulate(communes, date(2020, 1, 6), 5 * 52, 2024, random_outbreaks=0)


def test_dengue_peaks_in_autumn(five_years: Simulation) -> None:
    autumn = _months(five_years, "dengue", {9, 10})
    late_winter = _months(five_years, "dengue", {2, 3})
    assert autumn > 3 * late_winter


def test_ili_is_higher_in_winter_than_in_summer(five_years: Simulation) -> None:
    assert _months(five_years, "ili", {12, 1, 2}) > 1.3 * _months(five_years, "ili", {6, 7, 8})


def test_hfmd_peaks_in_spring(five_years: Simulation) -> None:
    spring = _months(five_years, "hfmd", {3, 4, 5})
    assert spring > 1.3 * _months(five_years, "hfmd", {7})
    assert spring > 1.3 * _months(five_years, "hfmd", {1})


def test_diarrhoea_summer_and_leptospirosis_rainy_season(five_years: Simulation) -> None:
    assert _months(five_years, "diarrhoea", {6, 7, 8}) > _months(five_years, "diarrhoea", {12, 1})
    assert _months(five_years, "leptospirosis", {8, 9, 10}) > 2 * _months(
        five_years, "leptospirosis", {2, 3, 4}
    )


def test_no_outbreaks_means_no_outbreak_cases(five_years: Simulation) -> None:
    assert five_years.outbreaks == ()
    assert all(
        e.outbreak_id is None for e, _ in zip(five_years.events(), range(2000), strict=False)
    )


@pytest.mark.parametrize("key", ["ili", "dengue", "conjunctivitis", "diarrhoea"])
def test_baseline_is_overdispersed_with_variance_phi_mu(key: str) -> None:
    # Many identical communes: each week's counts are iid NB(mean μ_t, variance φ μ_t).
    communes = [(f"{27000 + i}", 100_000) for i in range(300)]
    sim = simulate(communes, START, 12, 9, diseases=[disease(key)])
    ratios = []
    for t in range(sim.weeks):
        counts = [sim.baseline[(c, key)][t] for c, _ in communes]
        ratios.append(statistics.variance(counts) / statistics.fmean(counts))
    ratio = statistics.fmean(ratios)
    assert ratio > 1
    assert ratio == pytest.approx(disease(key).phi, rel=0.15)


def test_baseline_mean_matches_expected(five_years: Simulation) -> None:
    for d in ("ili", "dengue", "hfmd"):
        observed = sum(sum(five_years.baseline[(c, d)]) for c, _ in five_years.communes)
        expected = sum(sum(five_years.expected[(c, d)]) for c, _ in five_years.communes)
        assert observed == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("lam", [0.3, 4.0, 12.0, 80.0])
def test_poisson_sampler_mean_and_variance(lam: float) -> None:
    rng = random.Random(3)
    draws = [poisson(rng, lam) for _ in range(20_000)]
    assert statistics.fmean(draws) == pytest.approx(lam, rel=0.03)
    assert statistics.variance(draws) == pytest.approx(lam, rel=0.06)


def test_negbin_variance_is_phi_times_mean() -> None:
    rng = random.Random(4)
    draws = [negbin(rng, 6.0, 2.5) for _ in range(20_000)]
    assert statistics.fmean(draws) == pytest.approx(6.0, rel=0.03)
    assert statistics.variance(draws) == pytest.approx(15.0, rel=0.08)


# --- outbreaks -----------------------------------------------------------------------------------


def test_outbreak_cases_only_in_its_communes_and_window() -> None:
    target = [COMMUNES[3][0], COMMUNES[7][0]]
    ob = Outbreak("pool-party", "conjunctivitis", tuple(target), date(2024, 3, 13), 400)
    sim = simulate(COMMUNES, START, 30, 11, [ob])
    t0 = sim.week_index(ob.start)
    for code, _ in COMMUNES:
        extra = sim.outbreak_counts(code, "conjunctivitis")
        if code not in target:
            assert sum(extra) == 0
        assert all(n == 0 for t, n in enumerate(extra) if not t0 <= t < t0 + ob.duration_weeks)
    assert all(sum(sim.outbreak_counts(c, "conjunctivitis")) > 0 for c in target)
    events = [e for e in sim.events() if e.outbreak_id == ob.id]
    assert len(events) == sim.generated(ob.id) == 400
    assert {e.commune for e in events} == set(target)
    assert all(e.date >= ob.start and e.disease == "conjunctivitis" for e in events)


def test_outbreak_shape_puts_about_half_the_cases_in_the_start_week() -> None:
    # Noufaily 2013: week offset ⌊L⌋, L ~ lognormal(0, 0.5): P(0) ≈ 0.50, P(1) ≈ 0.42.
    ob = Outbreak("shape", "ili", (COMMUNES[0][0],), START + timedelta(weeks=2), 4000)
    sim = simulate(COMMUNES, START, 10, 3, [ob])
    extra = sim.outbreak_counts(COMMUNES[0][0], "ili")
    assert extra[2] / 4000 == pytest.approx(0.50, abs=0.03)
    assert extra[3] / 4000 == pytest.approx(0.42, abs=0.03)
    assert ob.duration_weeks == 4


def test_cases_after_the_last_week_are_planned_but_not_generated() -> None:
    ob = Outbreak("late", "diarrhoea", (COMMUNES[0][0],), START + timedelta(weeks=9), 500)
    sim = simulate(COMMUNES, START, 10, 3, [ob])
    assert 0 < sim.generated(ob.id) < 500
    assert _outbreak_events(sim)[ob.id] == sim.generated(ob.id)


def test_random_outbreaks_are_noufaily_sized_and_never_overlap() -> None:
    sim = simulate(COMMUNES[:3], START, 104, 8, random_outbreaks=40, random_from_week=20)
    windows: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for ob in sim.outbreaks:
        assert ob.cause == "point-source" and ob.k is not None and 1 <= ob.k <= 10
        assert ob.size >= 1 and len(ob.communes) == 1
        t0 = sim.week_index(ob.start)
        assert t0 >= 20 and t0 + ob.duration_weeks <= sim.weeks
        windows.setdefault((ob.communes[0], ob.disease), []).append((t0, t0 + ob.duration_weeks))
    for spans in windows.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_random_outbreaks_avoid_given_outbreaks() -> None:
    code = COMMUNES[0][0]
    given = [
        Outbreak("early", "ili", (code,), START, 10, duration_weeks=20),
        Outbreak("late", "ili", (code,), START + timedelta(weeks=24), 10, duration_weeks=20),
    ]
    for seed in range(20):
        sim = simulate(COMMUNES[:1], START, 44, seed, given, 1, diseases=[disease("ili")])
        assert sim.week_index(sim.outbreaks[-1].start) == 20


def test_impossible_random_outbreaks_are_refused() -> None:
    with pytest.raises(ValueError, match="non-overlapping"):
        simulate(COMMUNES[:1], START, 8, 1, random_outbreaks=5, diseases=[disease("ili")])
    with pytest.raises(ValueError, match="no room"):
        simulate(COMMUNES[:1], START, 3, 1, random_outbreaks=1)


# --- post-flood scenario -------------------------------------------------------------------------


def test_post_flood_timing_follows_incubation() -> None:
    flood = date(2024, 9, 15)
    for seed in range(50):
        by = {ob.disease: ob for ob in post_flood_scenario(COMMUNES[:2], flood, rng=seed)}
        lag = {k: (ob.start - flood).days for k, ob in by.items()}
        assert lag["diarrhoea"] < lag["dengue"]
        assert 3 <= lag["diarrhoea"] <= 14 and 7 <= lag["typhoid"] <= 14
        assert 7 <= lag["conjunctivitis"] <= 21 and 7 <= lag["leptospirosis"] <= 28
        assert 21 <= lag["dengue"] <= 56
        assert all(ob.cause == "flood" and ob.communes == ("25000", "25001") for ob in by.values())


def test_post_flood_sizes_scale_with_population() -> None:
    small = [("1", 10_000)]
    large = [("1", 200_000)]
    size = {
        name: statistics.fmean(
            next(ob.size for ob in post_flood_scenario(c, rng=s) if ob.disease == "diarrhoea")
            for s in range(30)
        )
        for name, c in (("small", small), ("large", large))
    }
    assert size["large"] > 10 * size["small"]


def test_post_flood_default_is_mid_september_and_seeded() -> None:
    a = post_flood_scenario(COMMUNES[:2])
    assert a == post_flood_scenario(COMMUNES[:2])
    assert all(ob.start.month in (9, 10, 11) for ob in a)
    assert a[0].id == "flood-20240915-diarrhoea"


# --- ground truth --------------------------------------------------------------------------------


def test_ground_truth_round_trips_and_counts_generated_cases(tmp_path: Path) -> None:
    flood = post_flood_scenario(COMMUNES[:4], date(2024, 9, 15), rng=3)
    sim = simulate(COMMUNES, START, 80, 17, flood, random_outbreaks=12)
    path = tmp_path / "truth.json"
    write_ground_truth(sim, path)
    truth = json.loads(path.read_text(encoding="utf-8"))
    assert truth == ground_truth(sim)
    events = _outbreak_events(sim)
    assert len(truth["outbreaks"]) == len(flood) + 12
    for rec in truth["outbreaks"]:
        assert rec["generated_cases"] == events[rec["id"]] == sim.generated(rec["id"])
        assert rec["generated_cases"] == sum(c["cases"] for c in rec["cases"])
        assert rec["generated_cases"] <= rec["planned_cases"]
        assert rec["start_week"] == iso_week_label(date.fromisoformat(rec["start_date"]))
        assert {c["commune"] for c in rec["cases"]} <= set(rec["communes"])
        assert all(rec["start_week"] <= c["week"] <= rec["end_week"] for c in rec["cases"])
    starts = [(r["start_date"], r["id"]) for r in truth["outbreaks"]]
    assert starts == sorted(starts)


# --- events, weeks, codes, bad input -------------------------------------------------------------


def test_events_are_dated_within_their_week_and_complete() -> None:
    sim = simulate(COMMUNES[:4], START, 8, 2, random_outbreaks=2)
    events = list(sim.events())
    assert [e.date for e in events] == sorted(e.date for e in events)
    total = sum(sum(sim.counts(c, d.key)) for c, _ in sim.communes for d in sim.diseases)
    assert len(events) == total
    assert {e.age_group for e in events} <= set(AGE_GROUPS)
    assert {e.setting for e in events} == {"station", "hospital"}
    assert all(e.icd10 in disease(e.disease).codes for e in events)


def test_hfmd_cases_are_mostly_young_children() -> None:
    sim = simulate([("1", 500_000)], START, 20, 2, diseases=[disease("hfmd")])
    ages = Counter(e.age_group for e in sim.events())
    assert ages["0-4"] > 0.7 * sum(ages.values())


@pytest.mark.parametrize(
    ("day", "label", "monday"),
    [
        (date(2024, 12, 30), "2025-W01", date(2024, 12, 30)),
        (date(2021, 1, 3), "2020-W53", date(2020, 12, 28)),
        (date(2024, 9, 15), "2024-W37", date(2024, 9, 9)),
    ],
)
def test_iso_weeks_start_on_monday(day: date, label: str, monday: date) -> None:
    assert iso_week_label(day) == label
    assert week_monday(day) == monday
    assert simulate([("1", 1000)], day, 1, 0).start == monday


def test_disease_codes_are_in_the_vietnamese_icd10_edition() -> None:
    table = CATALOGS / "icd10_vn_qd4469.csv"
    if not table.exists():
        pytest.skip(f"shared catalogue not found at {table}")
    with table.open(encoding="utf-8") as f:
        known = {row["code"] for row in csv.DictReader(f)}
    with (CATALOGS / "icd10_vn_tt06_2026_flags.csv").open(encoding="utf-8") as f:
        flagged = {
            r["code"]
            for r in csv.DictReader(f)
            if r["not_allowed_as_primary"] == "1" or r["use_more_specific_code"] == "1"
        }
    for d in DISEASES:
        assert set(d.codes) <= known, d.key
        assert not set(d.codes) & flagged, d.key
    assert "A91" not in known  # why dengue is coded A97.x


def test_seasonal_harmonic_maps_to_noufaily_gammas() -> None:
    h = disease("ili").seasonality[0]
    g_cos, g_sin = h.gammas()
    assert (g_cos**2 + g_sin**2) ** 0.5 == pytest.approx(h.amplitude)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"communes": []}, "at least one commune"),
        ({"weeks": 0}, "at least one commune"),
        ({"communes": [("1", 10), ("1", 20)]}, "unique"),
        ({"communes": [("1", -1)]}, "≥ 0"),
        ({"outbreaks": [Outbreak("x", "ili", ("nowhere",), START, 3)]}, "unknown communes"),
        ({"outbreaks": [Outbreak("x", "ili", ("1",), date(2023, 1, 2), 3)]}, "outside"),
        ({"outbreaks": [Outbreak("random-001", "ili", ("1",), START, 3)]}, "ids"),
        ({"outbreaks": [Outbreak("x", "ili", ("1",), START, 3)] * 2}, "ids"),
    ],
)
def test_bad_input_is_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"communes": [("1", 1000)], "start": START, "weeks": 4, "seed": 0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        simulate(**args)  # type: ignore[arg-type]


def test_bad_outbreak_and_disease_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown disease"):
        Outbreak("x", "plague", ("1",), START, 1)
    with pytest.raises(ValueError, match="no commune"):
        Outbreak("x", "ili", (), START, 1)
    with pytest.raises(ValueError, match="≥ 0"):
        Outbreak("x", "ili", ("1",), START, -1)
    with pytest.raises(ValueError, match="not simulated"):
        simulate(
            [("1", 10)],
            START,
            4,
            0,
            [Outbreak("x", "ili", ("1",), START, 1)],
            diseases=[disease("hfmd")],
        )
