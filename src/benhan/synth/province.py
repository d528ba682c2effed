"""A whole synthetic province: places, facilities, people, their care and its epidemics.

`generate(config)` yields the province as FHIR resources, facility by facility and person by
person, together with the ground truth (who each registered patient really is, and every
injected outbreak) that linking and outbreak detection are scored against. Everything follows
from `config.seed`: the same configuration gives byte-identical output.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from benhan.synth import epidemic
from benhan.synth.care import CareGenerator, Registration
from benhan.synth.epidemic import AGE_GROUPS, CaseEvent, Simulation
from benhan.synth.facilities import Facility, build_facilities, station_for, to_fhir
from benhan.synth.mess import MessRates
from benhan.synth.people import REFERENCE_DATE, PeopleGenerator, Person
from benhan.synth.places import Commune, communes

Resource = dict[str, Any]


@dataclass(frozen=True)
class SynthConfig:
    seed: int = 2025
    people: int = 20_000
    years: int = 2
    end: date = REFERENCE_DATE  # the synthetic "today"; history runs `years` back from it
    private_clinics: int = 20
    random_outbreaks: int = 6
    flood: date | None = epidemic.DEFAULT_FLOOD_DATE  # None: no post-flood scenario
    flooded_communes: int = 4
    # Baseline incidence is per real population; a demo province of 20,000 people would see
    # almost no notifiable cases at true rates, so its epidemics may be scaled up (1 = real).
    incidence_scale: float = 1.0
    mess: MessRates = field(default_factory=MessRates)  # registration errors (MessRates.hard())

    @property
    def start(self) -> date:
        return self.end - timedelta(days=round(365.25 * self.years))


@dataclass
class Province:
    """What generation produced besides the resources: the ground truth and the counts."""

    config: SynthConfig
    facilities: list[Facility]
    registrations: list[Registration] = field(default_factory=list)
    simulation: Simulation | None = None
    counts: Counter[str] = field(default_factory=Counter)


def generate(
    config: SynthConfig,
    province: Province | None = None,
) -> Iterator[tuple[str, Resource]]:
    """(facility code, resource) pairs: facilities first, then each person's care in order.

    Pass a Province to receive the ground truth as generation goes (it is complete when the
    iterator is exhausted).
    """
    places = communes()
    facilities = build_facilities(config.seed, places, config.private_clinics)
    province = province or Province(config, facilities)
    province.facilities = facilities
    for f in facilities:
        for res in to_fhir(f):
            province.counts[res["resourceType"]] += 1
            yield f.code, res
    people = _people(config, places, facilities)
    sim = _epidemics(config, places, people)
    province.simulation = sim
    cases = _assign_cases(config.seed, sim, people)
    care = CareGenerator(config.seed, facilities, config.start, config.end, mess_rates=config.mess)
    for person in people:
        done = care.person_care(person, cases.get(person.person_id, ()))
        province.registrations.extend(done.registrations)
        for code, res in done.resources:
            province.counts[res["resourceType"]] += 1
            yield code, res


def _people(
    config: SynthConfig, places: Sequence[Commune], facilities: Sequence[Facility]
) -> list[Person]:
    """Whole households until the wanted number of people; cards register at the station."""
    stations = {c.code: station_for(facilities, c.code).code for c in places}
    gen = PeopleGenerator(
        config.seed,
        places,
        reference_date=config.end,
        ma_dkbd=lambda c: stations[c.code],
    )
    people: list[Person] = []
    while len(people) < config.people:
        people.extend(gen.household())
    return people[: config.people]


def _epidemics(
    config: SynthConfig, places: Sequence[Commune], people: Sequence[Person]
) -> Simulation:
    per_commune = Counter(p.commune.code for p in people)
    population = [
        (c.code, max(1, round(per_commune[c.code] * config.incidence_scale))) for c in places
    ]
    weeks = (config.end - config.start).days // 7
    outbreaks = []
    if config.flood and config.start <= config.flood < config.end:
        flooded = _flooded(config.seed, population, config.flooded_communes)
        outbreaks = epidemic.post_flood_scenario(flooded, config.flood, config.seed)
    return epidemic.simulate(
        population, config.start, weeks, config.seed, outbreaks, config.random_outbreaks
    )


def _flooded(seed: int, population: list[tuple[str, int]], n: int) -> list[tuple[str, int]]:
    """Deterministically chosen flooded communes (a real run would name the low-lying ones)."""
    rng = random.Random(f"{seed}:flood")  # noqa: S311 - reproducible test data, not secrets
    return sorted(rng.sample(population, min(n, len(population))))


def _assign_cases(
    seed: int, sim: Simulation, people: Sequence[Person]
) -> dict[str, list[CaseEvent]]:
    """Give each simulated case to a resident of its commune in its age group."""
    pools: dict[tuple[str, str], list[Person]] = {}
    for p in people:
        pools.setdefault((p.commune.code, _age_group(p, sim.start)), []).append(p)
    by_commune: dict[str, list[Person]] = {}
    for p in people:
        by_commune.setdefault(p.commune.code, []).append(p)
    rng = random.Random(f"{seed}:cases")  # noqa: S311 - reproducible test data
    out: dict[str, list[CaseEvent]] = {}
    for event in sim.events():
        pool = pools.get((event.commune, event.age_group)) or by_commune.get(event.commune)
        if pool:
            out.setdefault(rng.choice(pool).person_id, []).append(event)
    return out


def _age_group(person: Person, on: date) -> str:
    age = person.age(on)
    bounds = (5, 15, 60)
    return AGE_GROUPS[sum(age >= b for b in bounds)]
