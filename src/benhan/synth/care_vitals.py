"""Vital signs plausible for a person's age and illness: fever, pulse, breaths, pressure, weight."""

from __future__ import annotations

import random
from typing import Any

from benhan.synth import care_fhir as fx
from benhan.synth.care_tables import ADULT_AGE, Acute
from benhan.synth.people import Person

# Resting norms by age (paediatric tables as in WHO IMCI / PALS, adult textbook values).
_HR = ((1, 125), (5, 105), (15, 88), (200, 76))
_RR = ((1, 38), (5, 28), (15, 21), (200, 17))


def _by_age(table: tuple[tuple[int, int], ...], age: int) -> int:
    return next(value for limit, value in table if age < limit)


class Vitals:
    """One person's body: a build and a blood-pressure set point kept across visits."""

    def __init__(self, person: Person, rng: random.Random) -> None:
        self.rng = rng
        self.male = person.sex == "male"
        self.build = rng.uniform(0.85, 1.15)
        self.bp_offset = rng.gauss(0, 8)

    def weight(self, age: int) -> float:
        """Vietnamese growth: ~3 kg at birth, ~2 kg a year in childhood, adults ~52–62 kg."""
        if age < 1:
            kg = 6.5
        elif age < 10:
            kg = 2 * age + 8
        elif age < 18:
            kg = 28 + (age - 10) * (4.0 if self.male else 3.0)
        else:
            kg = 62 if self.male else 52
        return round(kg * self.build + self.rng.uniform(-0.5, 0.5), 1)

    def observe(
        self, c: fx.Ctx, age: int, spec: Acute, *, chronic: bool, hypertensive: bool
    ) -> list[dict[str, Any]]:
        rng = self.rng
        fever = rng.random() < spec.fever
        temp = round(rng.uniform(38.0, 40.0) if fever else rng.uniform(36.4, 37.3), 1)
        heart = round(_by_age(_HR, age) + rng.gauss(0, 7) + max(0.0, temp - 37) * 10)
        out = [
            fx.vital(c, "8310-5", "Body temperature", temp, "Cel"),
            fx.vital(c, "8867-4", "Heart rate", heart, "/min"),
        ]
        if age >= ADULT_AGE:
            systolic = 108 + 0.45 * (age - ADULT_AGE) + self.bp_offset + rng.gauss(0, 6)
            systolic += 18 if hypertensive else 0
            diastolic = 0.6 * systolic + 4 + rng.gauss(0, 4)
            out.append(fx.blood_pressure(c, round(systolic), round(diastolic)))
        if age < 5 or spec.respiratory:
            rate = _by_age(_RR, age) + rng.gauss(0, 2) + (4 if spec.respiratory else 0)
            out.append(fx.vital(c, "9279-1", "Respiratory rate", round(rate), "/min"))
        if age < 15 or chronic:
            out.append(fx.vital(c, "29463-7", "Body weight", self.weight(age), "kg"))
        return out
