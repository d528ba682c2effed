"""Synthetic care: each person's visits across the province's facilities, as FHIR resources."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import cache
from typing import Any

from benhan.catalog.services import services
from benhan.synth import care_fhir as fx
from benhan.synth.care_tables import (
    ACUTE,
    ACUTE_RATE,
    ADULT_AGE,
    CAPILLARY_GLUCOSE,
    CASES,
    CHRONIC,
    CHRONIC_AT_STATION,
    CHRONIC_ATTENDANCE,
    CONFIRM_NAME,
    CONFIRM_TEST,
    DISPOSITION_REFERRED,
    EXAM_EMERGENCY,
    EXAM_PAEDIATRIC,
    EXAM_STATION,
    Acute,
    Chronic,
    LabOrder,
    Level,
    band,
)
from benhan.synth.care_vitals import Vitals
from benhan.synth.epidemic import CaseEvent
from benhan.synth.facilities import Facility, referral_targets, station_for
from benhan.synth.mess import MessRates, register
from benhan.synth.people import Person, to_fhir_patient
from benhan.synth.places import communes

Resource = dict[str, Any]
_NEXT: dict[Level, Level] = {"station": "centre", "centre": "hospital", "hospital": "hospital"}
_ACUTE_WEIGHTS = [tuple(a.weights[b] for a in ACUTE) for b in range(5)]


@dataclass(frozen=True, slots=True)
class Registration:
    """One Patient resource: a person as registered at one facility (ground truth for the MPI)."""

    patient_id: str
    facility_code: str
    true_person_id: str
    mutations: tuple[str, ...]


@dataclass(slots=True)
class PersonCare:
    """A person's resources as (facility that recorded it, resource), in dependency order."""

    resources: list[tuple[str, Resource]]
    registrations: list[Registration]


@dataclass(slots=True)
class _Person:
    """Generation state of one person: their rng, registrations and standing prescriptions."""

    person: Person
    rng: random.Random
    vitals: Vitals
    out: list[tuple[str, Resource]] = field(default_factory=list)
    regs: list[Registration] = field(default_factory=list)
    patients: dict[str, Resource] = field(default_factory=dict)  # facility code → Patient
    died: date | None = None
    hypertensive: bool = False

    seq: int = 0

    def new_id(self) -> str:
        """The person's ordinal first, then a counter: one person's resources sit next to each
        other in every (rtype, id) index, so a bulk load appends to the B-trees instead of
        scattering random UUIDs over them (measured 2-3x slower on SQLite)."""
        self.seq += 1
        ordinal = int(self.person.person_id[1:]) if self.person.person_id[1:].isdigit() else 0
        return f"{ordinal:08x}-{self.seq:04x}{fx.new_id(self.rng)[13:]}"


@dataclass(frozen=True, slots=True)
class _Visit:
    """One encounter to write: where, when, what class, and why."""

    facility: Facility
    day: date
    cls: str  # AMB, EMER, IMP
    spec: Acute
    icd: str
    days: int = 0  # length of stay (IMP)
    origin: Facility | None = None  # the referring facility
    disposition: str | None = None
    confirmed: bool = True  # verificationStatus: a case not lab-confirmed stays provisional
    confirm: str | None = None  # disease key of a lab-confirmed case: its test is positive


class CareGenerator:
    """Reproducible care: one `random.Random` per person from (seed, person id), no clock."""

    def __init__(
        self,
        seed: int,
        facilities: Sequence[Facility],
        start: date,
        end: date,
        *,
        mess_rates: MessRates | None = None,
    ) -> None:
        if end < start:
            raise ValueError("end must not be before start")
        self.seed, self.facilities, self.start, self.end = seed, list(facilities), start, end
        self.mess_rates = mess_rates
        self._routes: dict[str, tuple[Facility, Facility, Facility]] = {}
        self._communes = communes()

    def person_care(self, person: Person, cases: Sequence[CaseEvent]) -> PersonCare:
        rng = random.Random(f"{self.seed}:{person.person_id}")  # noqa: S311 - reproducible data
        st = _Person(person, rng, Vitals(person, rng))
        plan = self._plan(st, cases)
        plan.sort(key=lambda item: (item[0], item[1]))
        for day, _, kind, payload in plan:
            if st.died is not None:
                break  # nothing happens to a person after their death
            if kind == "chronic":
                self._chronic_visit(st, day, payload)
            elif kind == "case":
                self._case(st, payload)
            else:
                self._episode(st, day, payload, None)
        return PersonCare(st.out, st.regs)

    # ------------------------------------------------------------ planning

    def _plan(self, st: _Person, cases: Sequence[CaseEvent]) -> list[tuple[date, int, str, Any]]:
        """(day, order, kind, payload) of every episode, chronic visit and case event."""
        p, rng = st.person, st.rng
        first = max(self.start, p.birth_date)
        span = (self.end - first).days + 1
        if span <= 0:
            return [(c.date, i, "case", c) for i, c in enumerate(cases)]
        mid_age = p.age(first + timedelta(days=span // 2))
        b = band(mid_age)
        plan: list[tuple[date, int, str, Any]] = []
        for i in range(_poisson(rng, ACUTE_RATE[b] * span / 365.25)):
            spec = rng.choices(ACUTE, weights=_ACUTE_WEIGHTS[b])[0]
            plan.append((first + timedelta(days=rng.randrange(span)), 1000 + i, "acute", spec))
        chronic = [c for c in CHRONIC if rng.random() < _prevalence(c, b, p.sex == "male")]
        st.hypertensive = any(c.icd == "I10" for c in chronic)
        if chronic:
            plan.extend(self._follow_ups(st, first, span, chronic))
        plan.extend((c.date, i, "case", c) for i, c in enumerate(cases))
        return plan

    def _follow_ups(
        self, st: _Person, first: date, span: int, chronic: list[Chronic]
    ) -> list[tuple[date, int, str, Any]]:
        rng = st.rng
        level: Level = "station" if rng.random() < CHRONIC_AT_STATION else "centre"
        # A standing regimen: the same drugs every month is what a repeat prescription is.
        regimen = []
        for c in chronic:
            options = fx.drug_options((c.icd,), True)
            regimen.append((c, tuple(rng.sample(options, min(c.drugs, len(options))))))
        out: list[tuple[date, int, str, Any]] = []
        day, month = first + timedelta(days=rng.randrange(28)), 0
        while (day - first).days < span:
            if rng.random() < CHRONIC_ATTENDANCE:
                out.append((day, 500 + month, "chronic", (level, month, regimen)))
            day += timedelta(days=rng.randint(27, 33))
            month += 1
        return out

    # ------------------------------------------------------------ routing

    def _route(self, p: Person, level: Level, commune_code: str | None = None) -> Facility:
        code = commune_code or p.commune.code
        route = self._routes.get(code)
        if route is None:
            commune = next((c for c in self._communes if c.code == code), p.commune)
            centre, hospital = referral_targets(self.facilities, commune)
            route = (station_for(self.facilities, code), centre, hospital)
            self._routes[code] = route
        return route[("station", "centre", "hospital").index(level)]

    # ------------------------------------------------------------ episodes

    def _episode(self, st: _Person, day: date, spec: Acute, case: CaseEvent | None) -> None:
        """First contact, then referral up the levels and admission, as the spec's rates say."""
        rng, p = st.rng, st.person
        commune = case.commune if case else None
        icd = case.icd10 if case else spec.icd
        confirmed = case.lab_confirmed if case else True
        confirm = case.disease if case and case.lab_confirmed else None
        if case:
            level: Level = "station" if case.setting == "station" else "hospital"
        elif rng.random() < spec.emergency:
            level = "hospital"
        else:
            level = rng.choices(("station", "centre", "hospital"), weights=spec.entry)[0]
        emergency = level == "hospital" and rng.random() < max(spec.emergency, 0.1)
        origin: Facility | None = None
        while True:
            fac = self._route(p, level, commune)
            cls = "EMER" if emergency else "AMB"
            self._write(st, _Visit(fac, day, cls, spec, icd, 0, origin, None, confirmed, confirm))
            confirm = None  # the test is done once, at first contact
            if level != "station" and rng.random() < spec.admit:
                self._admit(st, _Visit(fac, day, "IMP", spec, icd, origin=origin))
                return
            refer = spec.refer + (spec.admit * 0.8 if level == "station" else 0)
            if level == "hospital" or rng.random() >= refer:
                return
            origin, level, emergency = fac, _NEXT[level], False
            day += timedelta(days=rng.choice((0, 0, 1)))

    def _admit(self, st: _Person, visit: _Visit) -> None:
        """An inpatient stay; a centre may transfer the patient to the provincial hospital."""
        rng = st.rng
        days = rng.randint(*visit.spec.los)
        r = rng.random()
        level_up = visit.facility.kind == "medical-centre" and r < DISPOSITION_REFERRED
        died = not level_up and r > 1 - visit.spec.died * (2 if st.person.age() >= 60 else 1)
        disposition = "other-hcf" if level_up else "exp" if died else "home"
        stay = replace(visit, days=days, disposition=disposition, confirm=None)
        self._write(st, stay)
        end = visit.day + timedelta(days=days)
        if died:
            st.died = end
            st.patients[visit.facility.code]["deceasedDateTime"] = fx.stamp(end, 4 * 60)
        elif level_up:
            hospital = self._route(st.person, "hospital")
            up = _Visit(hospital, end, "IMP", visit.spec, visit.icd, origin=visit.facility)
            self._admit(st, up)

    def _case(self, st: _Person, case: CaseEvent) -> None:
        # Cases arrive where the event says and stay there: referrals would move the count.
        self._episode(st, case.date, _case_spec(case.disease, case.icd10), case)

    def _chronic_visit(self, st: _Person, day: date, payload: Any) -> None:
        level, month, regimen = payload
        fac = self._route(st.person, level)
        main = regimen[0][0]
        c = self._encounter(st, _Visit(fac, day, "AMB", _chronic_spec(main), main.icd))
        for chronic, _ in regimen:
            st.out.append((fac.code, fx.condition(c, chronic.icd, True, True)))
        self._vitals(st, c, fac.code, day, _chronic_spec(main), chronic=True)
        for chronic, drugs in regimen:
            if month % chronic.lab_every == 0:
                labs = chronic.labs if level != "station" else _station_labs(chronic.labs)
                self._labs(st, c, fac.code, labs, day)
            for drug in drugs:
                st.out.append((fac.code, fx.medication_request(c, drug)))

    # ------------------------------------------------------------ one encounter

    def _write(self, st: _Person, visit: _Visit) -> None:
        """An encounter with its diagnosis, vitals, labs, prescriptions and procedures."""
        rng, spec, code = st.rng, visit.spec, visit.facility.code
        c = self._encounter(st, visit)
        st.out.append((code, fx.condition(c, visit.icd, False, visit.confirmed)))
        self._vitals(st, c, code, visit.day, spec, chronic=False)
        at_station = visit.facility.kind == "commune-station"
        labs = spec.labs if not at_station and rng.random() < spec.lab_p else ()
        confirm = (visit.confirm, True) if visit.confirm else None
        self._labs(st, c, code, labs, visit.day, confirm)
        oral = visit.cls != "IMP"
        options = fx.drug_options(spec.rx or (spec.icd,), oral)
        for drug in rng.sample(options, min(len(options), rng.randint(1, 3))):
            st.out.append((code, fx.medication_request(c, drug)))
        if spec.procedures and not at_station and rng.random() < spec.proc_p:
            st.out.append((code, fx.procedure(c, rng.choice(spec.procedures))))

    def _encounter(self, st: _Person, v: _Visit) -> fx.Ctx:
        """The Encounter (after the facility's Patient); the context its resources refer to."""
        rng, fac = st.rng, v.facility
        patient = self._patient(st, fac)
        minutes = rng.randrange(24 * 60) if v.cls == "EMER" else rng.randrange(420, 990)
        when = fx.stamp(v.day, minutes)
        end_day = v.day + timedelta(days=v.days)
        end_minutes = rng.randrange(480, 660) if v.cls == "IMP" else min(minutes + 45, 1439)
        eid = st.new_id()
        c = fx.Ctx(st.new_id, f"Patient/{patient}", f"Encounter/{eid}", when)
        exam = services()[self._exam(st.person, v)]
        res = fx.encounter(
            eid, v.cls, exam, c, fx.stamp(end_day, end_minutes), fac.org_id, fac.location_id, v.icd
        )
        source = "hosp-trans" if v.origin else "emd" if v.cls == "IMP" else None
        if v.origin or v.cls == "IMP":
            res["hospitalization"] = fx.hospitalization(
                v.origin.org_id if v.origin else None, source, v.disposition
            )
        st.out.append((fac.code, res))
        return c

    def _exam(self, p: Person, v: _Visit) -> str:
        if v.facility.kind == "commune-station":
            return EXAM_STATION
        if v.cls == "EMER":
            return EXAM_EMERGENCY
        if p.age(v.day) < ADULT_AGE and v.spec.exam == ACUTE[0].exam:
            return EXAM_PAEDIATRIC
        return v.spec.exam

    def _patient(self, st: _Person, fac: Facility) -> str:
        """The facility's Patient for this person, registered (with its mess) on first visit."""
        patient = st.patients.get(fac.code)
        if patient is not None:
            return str(patient["id"])
        reg = register(st.person, st.rng, fac.code, rates=self.mess_rates, communes=self._communes)
        pid = st.new_id()
        patient = {**to_fhir_patient(reg.record, fac.code, self._mrn(st.person, fac)), "id": pid}
        st.patients[fac.code] = patient
        st.out.append((fac.code, patient))
        st.regs.append(Registration(pid, fac.code, st.person.person_id, reg.mutations))
        card = reg.record.bhyt
        if card is not None:
            cov = fx.coverage(st.new_id(), f"Patient/{pid}", card, reg.record.bhyt_shown)
            st.out.append((fac.code, cov))
        return pid

    def _mrn(self, p: Person, fac: Facility) -> str:
        """MA_BN: a keyed bijection of the person number per facility, so codes are unique in a
        facility and unrelated across facilities (an MPI must not link on them)."""
        digest = hashlib.blake2b(f"{self.seed}:{fac.code}".encode(), digest_size=8).digest()
        key = int.from_bytes(digest, "big")
        a = (key % 10**9) | 1
        if a % 5 == 0:
            a += 2  # coprime to 10: multiplication by a permutes 0..10^9-1
        digits = "".join(ch for ch in p.person_id if ch.isdigit())
        n = int(digits) if digits else int.from_bytes(p.person_id.encode()[:8], "big")
        return f"{(a * n + key // 10**9) % 10**9:09d}"

    # ------------------------------------------------------------ parts of a visit

    def _vitals(
        self, st: _Person, c: fx.Ctx, code: str, day: date, spec: Acute, *, chronic: bool
    ) -> None:
        age = st.person.age(day)
        res = st.vitals.observe(c, age, spec, chronic=chronic, hypertensive=st.hypertensive)
        st.out.extend((code, r) for r in res)

    def _labs(
        self,
        st: _Person,
        c: fx.Ctx,
        code: str,
        labs: LabOrder,
        day: date,
        confirm: tuple[str, bool] | None = None,
    ) -> None:
        """ServiceRequests, then results, then the DiagnosticReport that gathers them."""
        catalogue = fx.lab_by_loinc()
        chosen = [(catalogue[loinc], d) for loinc, d in labs if loinc in catalogue]
        if not chosen and confirm is None:
            return
        orders, results = [], []
        for service, direction in chosen:
            orders.append(fx.lab_order(c, service, service.name))
            results.append(fx.lab_result(c, service, fx.lab_value(service, direction, st.rng)))
        if confirm is not None:
            key, positive = confirm
            test = CONFIRM_TEST.get(key)
            test_service = services()[test] if test else None
            name = test_service.name if test_service else CONFIRM_NAME.get(key, key)
            orders.append(fx.lab_order(c, test_service, name))
            results.append(fx.qualitative_result(c, test_service, name, positive))
        issued = fx.stamp(day, 1020)
        report = fx.lab_report(c, orders, results, issued)
        st.out.extend((code, r) for r in (*orders, *results, report))


@cache
def _case_spec(disease: str, icd: str) -> Acute:
    base = CASES.get(disease) or Acute(icd, (1, 1, 1, 1, 1), fever=0.8)
    return replace(base, refer=0.0, emergency=0.0)


@cache
def _chronic_spec(chronic: Chronic) -> Acute:
    return Acute(chronic.icd, (1, 1, 1, 1, 1), respiratory=chronic.icd.startswith("J"))


def _station_labs(labs: LabOrder) -> LabOrder:
    """Stations have a glucometer and little else."""
    return ((CAPILLARY_GLUCOSE, "high"),) if any(loinc == "14749-6" for loinc, _ in labs) else ()


def _prevalence(c: Chronic, b: int, male: bool) -> float:
    return c.prevalence[b] * (c.male_x if male else 1 / c.male_x)


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method: lam is small here (a few visits per person)."""
    limit, k, prod = pow(2.718281828459045, -lam), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k
