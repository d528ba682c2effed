"""Synthetic epidemiology: seasonal disease baselines per commune and ISO week, and outbreaks."""

from __future__ import annotations

import calendar
import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

AgeGroup = Literal["0-4", "5-14", "15-59", "60+"]
Setting = Literal["station", "hospital"]
Commune = tuple[str, int]  # (administrative code, population)

AGE_GROUPS: tuple[AgeGroup, ...] = ("0-4", "5-14", "15-59", "60+")
# Vietnam's age structure at the 2019 census (GSO): 0–14 ≈ 24 %, 60+ ≈ 12 %; the 0–4 / 5–14 split
# is approximate. Used for every commune: the 2025 units carry no age tables.
AGE_SHARES: tuple[float, float, float, float] = (0.080, 0.163, 0.638, 0.119)
# Rates are the 2024 annual mean; the trend term counts weeks from here (ISO 2024-W01).
REFERENCE_MONDAY = date(2024, 1, 1)
WEEKS_PER_YEAR = 365.2425 / 7
Z99 = 2.3263478740408408  # standard-normal 99th percentile, for outbreak durations
GROUND_TRUTH_FORMAT = "benhan.synth.epidemic.ground-truth/1"


@dataclass(frozen=True)
class Harmonic:
    """One seasonal term A·cos(2πj(f − f_peak)) on the fraction f of the calendar year."""

    order: int
    amplitude: float
    peak_week: float  # ISO week of the term's (first) maximum

    def at(self, year_fraction: float) -> float:
        peak = (self.peak_week - 0.5) / WEEKS_PER_YEAR
        return self.amplitude * math.cos(2 * math.pi * self.order * (year_fraction - peak))

    def gammas(self) -> tuple[float, float]:
        """Noufaily's (γ_cos, γ_sin) for this term, t in weeks, period 52 (surveillance.md §7.3)."""
        # A·cos(ω(t − t_p)) = A·cos(ω t_p)·cos(ωt) + A·sin(ω t_p)·sin(ωt)
        angle = 2 * math.pi * self.order * (self.peak_week - 0.5) / 52
        return self.amplitude * math.cos(angle), self.amplitude * math.sin(angle)


@dataclass(frozen=True)
class Disease:
    """A notifiable disease as data: codes, incidence by age, season, dispersion, care, lab."""

    key: str
    name_vi: str
    name_en: str
    icd10: tuple[tuple[str, float], ...]  # clinical codes with their shares, the main code first
    weekly_per_100k: tuple[float, float, float, float]  # per AGE_GROUPS, 2024 annual mean
    seasonality: tuple[Harmonic, ...]
    trend_per_week: float  # β in log μ_t = θ + βt + Σγ… (Noufaily 2013)
    phi: float  # variance / mean of the baseline counts (Noufaily 2013: NB, variance φμ)
    station_share: float  # share of cases seen at the commune health station, not a hospital
    lab_confirm_p: float
    lab_code: str | None = None  # the code used when the case is lab-confirmed, if it differs
    also_coded: tuple[str, ...] = ()  # other codes a case finder should accept (spec §5.2/§5.3)

    @property
    def codes(self) -> tuple[str, ...]:
        extra = (self.lab_code,) if self.lab_code else ()
        return tuple(code for code, _ in self.icd10) + extra

    @cached_property
    def _season_norm(self) -> float:
        # Mean of exp(s) over the year, so that weekly_per_100k is the annual mean, not the trough.
        return sum(math.exp(self.season((d + 0.5) / 365)) for d in range(365)) / 365

    @cached_property
    def age_cum_weights(self) -> tuple[float, ...]:
        total, out = 0.0, []
        for share, rate in zip(AGE_SHARES, self.weekly_per_100k, strict=True):
            total += share * rate
            out.append(total)
        return tuple(out)

    def season(self, year_fraction: float) -> float:
        return sum(h.at(year_fraction) for h in self.seasonality)

    def rate_factor(self, monday: date) -> float:
        """exp(βt + s_t) / mean(exp s): multiplies the annual mean rate for the week of `monday`."""
        thursday = monday + timedelta(days=3)  # the day that names the ISO week
        year_days = 366 if calendar.isleap(thursday.year) else 365
        fraction = (thursday.timetuple().tm_yday - 0.5) / year_days
        t = (monday - REFERENCE_MONDAY).days / 7
        return math.exp(self.trend_per_week * t + self.season(fraction)) / self._season_norm

    def weekly_mean(self, population: int, monday: date) -> float:
        """μ_t for a commune: Σ_age population share × rate, times season and trend."""
        return population * self.age_cum_weights[-1] / 1e5 * self.rate_factor(monday)


def _h(order: int, amplitude: float, peak_week: float) -> Harmonic:
    return Harmonic(order, amplitude, peak_week)


# Codes: vietnam.md §5.2, each present in icd10_vn_qd4469.csv and unflagged in the TT 06/2026 annex
# (A09 and A97 as 3-character codes are "use a more specific code"). Dengue: the VN edition has no
# A91 but has A97.0–A97.9 (WHO 2019) and keeps A90, so cases are coded A97.x and A90 is accepted.
# Rates, peaks and φ are calibration assumptions for northern Vietnam (order of magnitude of
# national reports), to be replaced by Bắc Ninh CDC weekly figures; φ within Noufaily's 1–5.
# fmt: off
DISEASES: tuple[Disease, ...] = (
    Disease(
        key="dengue", name_vi="Sốt xuất huyết Dengue", name_en="Dengue",
        icd10=(("A97.0", 0.80), ("A97.1", 0.17), ("A97.2", 0.03)), also_coded=("A90", "A97"),
        weekly_per_100k=(0.6, 1.2, 1.8, 1.0),  # adults dominate in the north
        seasonality=(_h(1, 1.5, 41), _h(2, 0.3, 41)),  # Aug–Nov, peak mid-October
        trend_per_week=0.0004, phi=3.0, station_share=0.3, lab_confirm_p=0.6,  # NS1 rapid test
    ),
    Disease(
        key="hfmd", name_vi="Tay chân miệng", name_en="Hand, foot and mouth disease",
        icd10=(("B08.4", 1.0),),
        weekly_per_100k=(20.0, 2.0, 0.05, 0.01),  # under-fives
        seasonality=(_h(2, 0.6, 17),),  # Mar–May and Sep–Nov; dips at Tết and in summer
        trend_per_week=0.0, phi=2.0, station_share=0.5, lab_confirm_p=0.05,
    ),
    Disease(
        key="diarrhoea", name_vi="Tiêu chảy nhiễm khuẩn", name_en="Infectious diarrhoea",
        icd10=(("A09.0", 0.80), ("A08.0", 0.12), ("A03.9", 0.08)),
        also_coded=("A00", "A03", "A06", "A08", "A09"),
        weekly_per_100k=(80.0, 20.0, 12.0, 18.0),
        seasonality=(_h(1, 0.4, 27),),  # summer
        trend_per_week=-0.0004, phi=1.5, station_share=0.6, lab_confirm_p=0.05,
    ),
    Disease(
        key="ili", name_vi="Hội chứng cúm", name_en="Influenza-like illness",
        icd10=(("J11.1", 1.0),), lab_code="J10.1", also_coded=("J09", "J10", "J11"),
        weekly_per_100k=(90.0, 50.0, 20.0, 30.0),
        seasonality=(_h(1, 0.5, 5),),  # winter–spring, Dec–Mar
        trend_per_week=0.0002, phi=2.0, station_share=0.65, lab_confirm_p=0.05,
    ),
    Disease(
        key="conjunctivitis", name_vi="Viêm kết mạc", name_en="Conjunctivitis",
        icd10=(("H10.9", 0.5), ("B30.1", 0.3), ("B30.3", 0.2)), also_coded=("B30", "H10"),
        weekly_per_100k=(15.0, 20.0, 8.0, 6.0),
        seasonality=(_h(1, 0.7, 37),),  # Aug–Oct
        trend_per_week=0.0, phi=2.5, station_share=0.7, lab_confirm_p=0.01,
    ),
    Disease(
        key="leptospirosis", name_vi="Bệnh do Leptospira", name_en="Leptospirosis",
        icd10=(("A27.9", 1.0),), also_coded=("A27",),
        weekly_per_100k=(0.005, 0.02, 0.07, 0.05),  # adults in flooded rice fields
        seasonality=(_h(1, 0.8, 37),),  # rainy season, Jul–Oct
        trend_per_week=0.0, phi=1.2, station_share=0.1, lab_confirm_p=0.3,
    ),
    Disease(
        key="typhoid", name_vi="Thương hàn", name_en="Typhoid fever",
        icd10=(("A01.0", 1.0),), also_coded=("A01",),
        weekly_per_100k=(0.02, 0.05, 0.03, 0.02),
        seasonality=(_h(1, 0.3, 30),),
        trend_per_week=-0.0008, phi=1.1, station_share=0.15, lab_confirm_p=0.4,
    ),
    Disease(
        key="hepatitis_a", name_vi="Viêm gan A", name_en="Hepatitis A",
        icd10=(("B15.9", 1.0),), also_coded=("B15",),
        weekly_per_100k=(0.1, 0.3, 0.1, 0.03),
        seasonality=(_h(1, 0.2, 14),),
        trend_per_week=-0.0004, phi=1.3, station_share=0.2, lab_confirm_p=0.7,
    ),
    Disease(
        key="measles", name_vi="Sởi", name_en="Measles",
        icd10=(("B05.9", 1.0),), also_coded=("B05",),
        weekly_per_100k=(0.1, 0.03, 0.005, 0.0),  # rare between epidemics
        seasonality=(_h(1, 0.8, 12),),  # late winter–spring
        trend_per_week=0.0, phi=1.5, station_share=0.3, lab_confirm_p=0.8,  # IgM is required
    ),
)
# fmt: on
_BY_KEY = {d.key: d for d in DISEASES}


def disease(key: str) -> Disease:
    try:
        return _BY_KEY[key]
    except KeyError:
        raise ValueError(f"unknown disease {key!r}; known: {', '.join(_BY_KEY)}") from None


def week_monday(day: date) -> date:
    """The Monday that starts the ISO week of `day` (epiweeks' ISO system)."""
    return day - timedelta(days=day.weekday())


def iso_week_label(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _stream(seed: int, *parts: str) -> random.Random:
    # One generator per purpose and series (str seeds hash with SHA-512, stable across runs), so the
    # baseline is identical with or without outbreaks: FPR is scored on it (surveillance.md §7.3).
    return random.Random("|".join(("benhan.epidemic", str(seed), *parts)))  # noqa: S311


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw: inversion for small means, Hörmann's PTRS (1993) as in numpy for λ ≥ 10."""
    if lam <= 0:
        return 0
    if lam >= 10:
        return _poisson_ptrs(rng, lam)
    u, k = rng.random(), 0
    p = cdf = math.exp(-lam)
    while u > cdf and p > 0:
        k += 1
        p *= lam / k
        cdf += p
    return k


def _poisson_ptrs(rng: random.Random, lam: float) -> int:
    # W. Hörmann, "The transformed rejection method for generating Poisson random variables",
    # Insurance: Mathematics and Economics 12 (1993); constants as in numpy's random_poisson_ptrs.
    slam, loglam = math.sqrt(lam), math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if math.log(v * invalpha / (a / (us * us) + b)) <= -lam + k * loglam - math.lgamma(k + 1):
            return k


def negbin(rng: random.Random, mean: float, phi: float) -> int:
    """Negative binomial with variance φ·mean, as a gamma–Poisson mixture (Noufaily 2013 §3)."""
    if mean <= 0:
        return 0
    if phi <= 1:
        return poisson(rng, mean)
    # size = μ/(φ−1): λ ~ Gamma(shape μ/(φ−1), scale φ−1) has mean μ and variance μ(φ−1).
    return poisson(rng, rng.gammavariate(mean / (phi - 1), phi - 1))


@dataclass(frozen=True)
class Outbreak:
    """Extra cases of one disease in one or more communes, spread from `start` over later weeks."""

    id: str
    disease: str
    communes: tuple[str, ...]
    start: date
    size: int  # planned extra cases, shared among the communes by population
    cause: str = "point-source"
    meanlog: float = 0.0  # week offset ⌊L⌋, L ~ lognormal(meanlog, sdlog): Noufaily 2013 §3
    sdlog: float = 0.5
    duration_weeks: int = 0  # 0: up to the 99th percentile of L; later cases land in the last week
    k: int | None = None  # size in baseline SDs, for Noufaily-style random outbreaks

    def __post_init__(self) -> None:
        disease(self.disease)
        object.__setattr__(self, "communes", tuple(self.communes))
        if not self.communes:
            raise ValueError(f"outbreak {self.id}: no commune")
        if self.size < 0 or self.sdlog < 0 or self.duration_weeks < 0:
            raise ValueError(f"outbreak {self.id}: size, sdlog and duration must be ≥ 0")
        if self.duration_weeks == 0:
            q99 = math.exp(self.meanlog + Z99 * self.sdlog)
            object.__setattr__(self, "duration_weeks", math.floor(q99) + 1)

    @property
    def start_week(self) -> str:
        return iso_week_label(self.start)


@dataclass(frozen=True)
class FloodRisk:
    """One disease that follows a flood: when it starts, how many cases, how they spread."""

    disease: str
    lag_days: tuple[int, int]  # start of the outbreak after the flood, uniform in this range
    attack_per_100k: float
    meanlog: float
    sdlog: float


# vietnam.md §5.3 (MoH post-flood warnings). Lags follow incubation: diarrhoea days, typhoid 6–30 d,
# leptospirosis 2–30 d, hepatitis A 15–50 d; dengue needs larvae (~1 week), extrinsic and intrinsic
# incubation (~2 weeks): 3–8 weeks. Attack rates are assumptions; spread widens for contagious ones.
FLOOD_RISKS: tuple[FloodRisk, ...] = (
    FloodRisk("diarrhoea", (3, 14), 150.0, 0.0, 0.5),
    FloodRisk("typhoid", (7, 14), 10.0, 0.3, 0.6),
    FloodRisk("conjunctivitis", (7, 21), 200.0, 0.5, 0.6),
    FloodRisk("leptospirosis", (7, 28), 8.0, 0.3, 0.6),
    FloodRisk("hepatitis_a", (21, 49), 10.0, 0.5, 0.6),
    FloodRisk("dengue", (21, 56), 60.0, 0.7, 0.5),
)
# Typhoon Yagi made landfall on 7 Sep 2024 and flooded Bắc Giang in the following week.
DEFAULT_FLOOD_DATE = date(2024, 9, 15)


def post_flood_scenario(
    communes: Sequence[Commune],
    flood_date: date = DEFAULT_FLOOD_DATE,
    rng: random.Random | int = 0,
) -> list[Outbreak]:
    """The outbreaks that follow a flood of `communes`, sizes scaled to their population."""
    if isinstance(rng, int):
        rng = _stream(rng, "flood", flood_date.isoformat())
    codes = tuple(code for code, _ in communes)
    population = sum(pop for _, pop in communes)
    outbreaks = []
    for risk in FLOOD_RISKS:
        lag = rng.randint(*risk.lag_days)
        size = max(1, poisson(rng, risk.attack_per_100k * population / 1e5))
        outbreaks.append(
            Outbreak(
                id=f"flood-{flood_date:%Y%m%d}-{risk.disease}",
                disease=risk.disease,
                communes=codes,
                start=flood_date + timedelta(days=lag),
                size=size,
                cause="flood",
                meanlog=risk.meanlog,
                sdlog=risk.sdlog,
            )
        )
    return outbreaks


@dataclass(frozen=True, slots=True)
class CaseEvent:
    """One case for the person/encounter generator to attach to a synthetic person."""

    date: date
    commune: str
    disease: str
    icd10: str
    age_group: AgeGroup
    setting: Setting
    lab_confirmed: bool
    outbreak_id: str | None


@dataclass(frozen=True, slots=True)
class WeekCount:
    commune: str
    week: str
    week_start: date
    disease: str
    expected: float  # the baseline mean μ_t (the oracle of sts_creation, surveillance.md §7.2)
    baseline: int
    outbreak: int


@dataclass
class Simulation:
    """Weekly counts per commune and disease, baseline and outbreak cases kept apart."""

    communes: tuple[Commune, ...]
    start: date  # a Monday
    weeks: int
    seed: int
    diseases: tuple[Disease, ...]
    outbreaks: tuple[Outbreak, ...]
    expected: dict[tuple[str, str], list[float]]
    baseline: dict[tuple[str, str], list[int]]
    # outbreak id → (commune, week index) → cases that landed inside the simulated weeks
    outbreak_cases: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)

    def week_start(self, t: int) -> date:
        return self.start + timedelta(weeks=t)

    def week_index(self, day: date) -> int:
        return (week_monday(day) - self.start).days // 7

    def outbreak_counts(self, commune: str, disease_key: str) -> list[int]:
        counts = [0] * self.weeks
        for ob in self.outbreaks:
            if ob.disease == disease_key:
                for (code, t), n in self.outbreak_cases[ob.id].items():
                    if code == commune:
                        counts[t] += n
        return counts

    def counts(self, commune: str, disease_key: str) -> list[int]:
        extra = self.outbreak_counts(commune, disease_key)
        return [b + o for b, o in zip(self.baseline[(commune, disease_key)], extra, strict=True)]

    def generated(self, outbreak_id: str) -> int:
        return sum(self.outbreak_cases[outbreak_id].values())

    def rows(self) -> Iterator[WeekCount]:
        for code, _ in self.communes:
            for d in self.diseases:
                extra = self.outbreak_counts(code, d.key)
                for t in range(self.weeks):
                    monday = self.week_start(t)
                    mu, base = self.expected[(code, d.key)][t], self.baseline[(code, d.key)][t]
                    yield WeekCount(code, iso_week_label(monday), monday, d.key, mu, base, extra[t])

    def events(self) -> Iterator[CaseEvent]:
        """Every case, in date order; deterministic under the seed."""
        rngs = {
            (c, d.key): _stream(self.seed, "events", c, d.key)
            for c, _ in self.communes
            for d in self.diseases
        }
        cells: dict[tuple[str, str, int], list[tuple[Outbreak, int]]] = {}
        for ob in self.outbreaks:
            for (code, t), n in sorted(self.outbreak_cases[ob.id].items()):
                cells.setdefault((code, ob.disease, t), []).append((ob, n))
        for t in range(self.weeks):
            week: list[CaseEvent] = []
            for code, _ in self.communes:
                for d in self.diseases:
                    rng = rngs[(code, d.key)]
                    n = self.baseline[(code, d.key)][t]
                    week.extend(_cell_events(rng, code, d, self.week_start(t), None, n))
                    for ob, n in cells.get((code, d.key, t), ()):
                        week.extend(_cell_events(rng, code, d, self.week_start(t), ob, n))
            week.sort(key=lambda e: e.date)  # stable: ties keep the generation order
            yield from week


def _cell_events(
    rng: random.Random, commune: str, d: Disease, monday: date, ob: Outbreak | None, n: int
) -> Iterator[CaseEvent]:
    # Outbreak cases in the start week fall on or after the start day, never before it.
    first = max(0, (ob.start - monday).days) if ob else 0
    codes = [code for code, _ in d.icd10]
    shares = [share for _, share in d.icd10]
    for _ in range(n):
        day = monday + timedelta(days=rng.randrange(first, 7))
        age = rng.choices(AGE_GROUPS, cum_weights=d.age_cum_weights)[0]
        setting: Setting = "station" if rng.random() < d.station_share else "hospital"
        lab = rng.random() < d.lab_confirm_p
        code = d.lab_code if lab and d.lab_code else rng.choices(codes, weights=shares)[0]
        yield CaseEvent(day, commune, d.key, code, age, setting, lab, ob.id if ob else None)


def simulate(
    communes: Sequence[Commune],
    start: date,
    weeks: int,
    seed: int,
    outbreaks: Sequence[Outbreak] | None = None,
    random_outbreaks: int = 0,
    *,
    diseases: Sequence[Disease] = DISEASES,
    k_range: tuple[int, int] = (1, 10),
    random_from_week: int = 0,
) -> Simulation:
    """Baseline counts for every commune × ISO week × disease, plus given and random outbreaks."""
    _check_communes(communes, weeks)
    monday = week_monday(start)
    sim = Simulation(tuple(communes), monday, weeks, seed, tuple(diseases), (), {}, {})
    for code, population in sim.communes:
        for d in sim.diseases:
            mus = [d.weekly_mean(population, sim.week_start(t)) for t in range(weeks)]
            rng = _stream(seed, "baseline", code, d.key)
            sim.expected[(code, d.key)] = mus
            sim.baseline[(code, d.key)] = [negbin(rng, mu, d.phi) for mu in mus]
    given = tuple(outbreaks or ())
    _check_outbreaks(sim, given)
    placer = _stream(seed, "random-outbreaks")
    extra = _random_outbreaks(sim, given, random_outbreaks, k_range, random_from_week, placer)
    sim.outbreaks = given + extra
    for ob in sim.outbreaks:
        sim.outbreak_cases[ob.id] = _allocate(sim, ob)
    return sim


def _check_communes(communes: Sequence[Commune], weeks: int) -> None:
    codes = [code for code, _ in communes]
    if weeks < 1 or not communes:
        raise ValueError("simulate needs at least one commune and one week")
    if len(set(codes)) != len(codes):
        raise ValueError("commune codes must be unique")
    if any(pop < 0 for _, pop in communes):
        raise ValueError("commune populations must be ≥ 0")


def _check_outbreaks(sim: Simulation, outbreaks: Sequence[Outbreak]) -> None:
    known = {code for code, _ in sim.communes}
    keys = {d.key for d in sim.diseases}
    ids = [ob.id for ob in outbreaks]
    if len(set(ids)) != len(ids) or any(i.startswith("random-") for i in ids):
        raise ValueError("outbreak ids must be unique and must not start with 'random-'")
    for ob in outbreaks:
        if ob.disease not in keys:
            raise ValueError(f"outbreak {ob.id}: disease {ob.disease} is not simulated")
        if unknown := sorted(set(ob.communes) - known):
            raise ValueError(f"outbreak {ob.id}: unknown communes {', '.join(unknown)}")
        if not 0 <= sim.week_index(ob.start) < sim.weeks:
            raise ValueError(f"outbreak {ob.id}: start {ob.start} is outside the simulated weeks")


def _random_outbreaks(
    sim: Simulation,
    given: Sequence[Outbreak],
    n: int,
    k_range: tuple[int, int],
    from_week: int,
    rng: random.Random,
) -> tuple[Outbreak, ...]:
    """Noufaily outbreaks (surveillance.md §7.3): size ~ Poisson(k·√(φ μ_start)), k uniform."""
    busy: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for ob in given:
        for c in ob.communes:
            busy.setdefault((c, ob.disease), []).append(_window(sim, ob))
    codes = [code for code, pop in sim.communes if pop > 0]
    if n > 0 and not codes:
        raise ValueError("no populated commune to place random outbreaks in")
    placed: list[Outbreak] = []
    for i in range(n):
        for _attempt in range(1000):
            code, d = rng.choice(codes), rng.choice(sim.diseases)
            probe = Outbreak(f"random-{i + 1:03d}", d.key, (code,), sim.start, 0)
            last = sim.weeks - probe.duration_weeks
            if last < from_week:
                raise ValueError(f"no room for a random outbreak after week {from_week}")
            t0 = rng.randrange(from_week, last + 1)
            window = (t0, t0 + probe.duration_weeks)
            if all(_disjoint(window, w) for w in busy.get((code, d.key), [])):
                break
        else:
            raise ValueError(f"cannot place {n} non-overlapping random outbreaks")
        busy.setdefault((code, d.key), []).append(window)
        k = rng.randint(*k_range)
        sd = math.sqrt(d.phi * sim.expected[(code, d.key)][t0])
        # At least one case, so that every outbreak in the ground truth is observable.
        size = max(1, poisson(rng, k * sd))
        placed.append(Outbreak(probe.id, d.key, (code,), sim.week_start(t0), size, k=k))
    return tuple(placed)


def _window(sim: Simulation, ob: Outbreak) -> tuple[int, int]:
    t0 = sim.week_index(ob.start)
    return t0, t0 + ob.duration_weeks


def _disjoint(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[1] <= b[0] or b[1] <= a[0]


def _allocate(sim: Simulation, ob: Outbreak) -> dict[tuple[str, int], int]:
    """Each case: a commune by population, a week offset ⌊L⌋ (Noufaily 2013; sim.pointSource)."""
    rng = _stream(sim.seed, "outbreak", ob.id)
    population = dict(sim.communes)
    weights = [population[c] for c in ob.communes]
    if sum(weights) == 0:
        weights = [1] * len(weights)
    t0 = sim.week_index(ob.start)
    cells: dict[tuple[str, int], int] = {}
    for _ in range(ob.size):
        code = rng.choices(ob.communes, weights=weights)[0]
        offset = min(math.floor(rng.lognormvariate(ob.meanlog, ob.sdlog)), ob.duration_weeks - 1)
        if t0 + offset < sim.weeks:  # cases after the last simulated week are not generated
            cells[(code, t0 + offset)] = cells.get((code, t0 + offset), 0) + 1
    return dict(sorted(cells.items()))


def ground_truth(sim: Simulation) -> dict[str, Any]:
    """Every outbreak: where, when, how big (planned and generated) and why; stable order."""
    last = sim.week_start(sim.weeks - 1)
    return {
        "format": GROUND_TRUTH_FORMAT,
        "seed": sim.seed,
        "first_week": iso_week_label(sim.start),
        "last_week": iso_week_label(last),
        "weeks": sim.weeks,
        "communes": len(sim.communes),
        "outbreaks": [
            _outbreak_record(sim, ob) for ob in sorted(sim.outbreaks, key=lambda o: (o.start, o.id))
        ],
    }


def _outbreak_record(sim: Simulation, ob: Outbreak) -> dict[str, Any]:
    d = disease(ob.disease)
    t0 = sim.week_index(ob.start)
    return {
        "id": ob.id,
        "disease": d.key,
        "name_vi": d.name_vi,
        "name_en": d.name_en,
        "icd10": list(d.codes),
        "communes": list(ob.communes),
        "cause": ob.cause,
        "k": ob.k,
        "start_date": ob.start.isoformat(),
        "start_week": ob.start_week,
        "end_week": iso_week_label(sim.week_start(t0 + ob.duration_weeks - 1)),
        "duration_weeks": ob.duration_weeks,
        "shape": {"distribution": "lognormal-weeks", "meanlog": ob.meanlog, "sdlog": ob.sdlog},
        "planned_cases": ob.size,
        "generated_cases": sim.generated(ob.id),
        "cases": [
            {"commune": code, "week": iso_week_label(sim.week_start(t)), "cases": n}
            for (code, t), n in sim.outbreak_cases[ob.id].items()
        ],
    }


def write_ground_truth(sim: Simulation, path: Path) -> None:
    """Write the ground truth as UTF-8 JSON with sorted keys: the same seed gives the same bytes."""
    text = json.dumps(ground_truth(sim), ensure_ascii=False, indent=2, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
