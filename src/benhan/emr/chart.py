"""The patient chart: the person, allergies, problems, medicines, result trends and visits.

It is read with a fixed handful of searches (never one query per row), so a chart with years of
history costs the same number of queries as a new patient's. Measured on the store: a search on
the patient alone is a few ms, while adding a common token (category=vital-signs,
status=completed) or `_total=accurate` costs 50–300 ms on a big province, and so does an
`_include` of Location or Organization; so the chart filters those tokens in Python, asks for
no total, and looks places up by `_id`. Each entry keeps the facility it was recorded at (its
meta.source); the facilities' names are read at the end, in one search for the whole chart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

from benhan.emr.model import display_name, search_all, search_page
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.store.repository import Repo

PAGE = 10  # encounters per timeline page
OBSERVATIONS = 400  # most recent results and vital signs read for the chart (~50 visits)
REPORTS = 30  # most recent reports read for the imaging list
RECENT = 10  # completed prescriptions shown
TREND = 8  # points kept per trend
# Vital signs shown as trends, in this order (LOINC, as synth.care_vitals and the visit page write).
BP, PULSE, TEMP, WEIGHT, RESP, SPO2 = "85354-9", "8867-4", "8310-5", "29463-7", "9279-1", "59408-5"
VITAL_CODES = (BP, PULSE, TEMP, WEIGHT, RESP, SPO2)
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
# http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation, folded to H / L / A / N.
_FLAGS = {"H": "H", "HH": "H", "HU": "H", "L": "L", "LL": "L", "LU": "L", "N": "N", "NEG": "N"}


# ---------------------------------------------------------------- what the pages show


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    birth: str
    age: int | None
    months: int | None  # for children under 72 months, as prescriptions must show
    sex: str  # FHIR gender code
    cccd: str
    bhyt: str
    bhyt_until: str
    address: str


@dataclass(frozen=True)
class Facilities:
    """Where a chart's entries were recorded: facility names by MA_CSKCB (read from the directory
    in one search) and the user's own facility, whose entries need no mark."""

    here: str
    names: Mapping[str, str] = field(default_factory=dict)

    def name(self, code: str, fallback: str = "") -> str:
        return self.names.get(code) or fallback or code

    def other(self, code: str) -> bool:
        """Recorded at another facility (a linked record): the page marks it with the name."""
        return bool(code) and code != self.here


@dataclass(frozen=True)
class Allergy:
    substance: str
    criticality: str  # low | high | unable-to-assess | ""
    reactions: tuple[str, ...]
    source: str = ""  # MA_CSKCB of the facility that recorded it ("" if unknown)


@dataclass(frozen=True)
class Problem:
    code: str
    name: str
    since: str  # the earliest recorded date read
    last: str
    times: int  # how many visits recorded it (of those read)
    sources: tuple[str, ...] = ()  # the facilities that recorded it, most recent first


@dataclass(frozen=True)
class Medicine:
    id: str
    name: str
    text: str  # the dosage as written
    dose: str
    unit: str
    per_day: int | None
    days: int | None
    quantity: str
    status: str
    authored: str  # date
    note: str
    source: str = ""


@dataclass(frozen=True)
class Point:
    when: str  # date
    value: float | None
    text: str  # value and unit as shown
    flag: str  # H | L | A | N | ""
    source: str = ""


@dataclass(frozen=True)
class Trend:
    """One measured thing over time: the last value first, `points` oldest first for a sparkline."""

    code: str
    name: str
    last: Point
    points: tuple[Point, ...]
    reference: str


@dataclass(frozen=True)
class Visit:
    id: str
    start: str  # dateTime
    facility: str  # its name
    clinic: str
    type: str
    diagnosis: str
    status: str
    source: str = ""


@dataclass(frozen=True)
class Timeline:
    visits: tuple[Visit, ...]
    offset: int
    next_offset: int | None
    facilities: Facilities = Facilities("")


@dataclass(frozen=True)
class Imaging:
    """An imaging report (RAD) as the chart lists it."""

    issued: str
    name: str
    conclusion: str
    corrected: bool
    source: str = ""


@dataclass(frozen=True)
class Chart:
    person: Person
    allergies: tuple[Allergy, ...]
    problems: tuple[Problem, ...]
    medicines: tuple[Medicine, ...]  # active
    recent_medicines: tuple[Medicine, ...]  # completed, most recent first
    results: tuple[Trend, ...]
    vitals: tuple[Trend, ...]
    imaging: tuple[Imaging, ...]
    timeline: Timeline
    facilities: Facilities


# ---------------------------------------------------------------- reading FHIR values


def by_ids(repo: Repo, rtype: str, refs: set[str]) -> dict[str, Resource]:
    """The resources `refs` ("Type/id") of one type, in one search, keyed by reference."""
    ids = sorted(r.split("/", 1)[1] for r in refs if r.startswith(f"{rtype}/"))
    if not ids:
        return {}
    found = search_all(repo, rtype, [("_id", ",".join(ids)), ("_count", str(len(ids)))])
    return {f"{rtype}/{r['id']}": r for r in found}


def concept_text(concept: dict[str, Any] | None) -> str:
    if not concept:
        return ""
    if concept.get("text"):
        return str(concept["text"])
    return next((str(c["display"]) for c in concept.get("coding", []) if c.get("display")), "")


def _coding(concept: dict[str, Any] | None, system: str) -> dict[str, Any]:
    return next((c for c in (concept or {}).get("coding", []) if c.get("system") == system), {})


def _code_of(concept: dict[str, Any] | None, system: str) -> str:
    return str(_coding(concept, system).get("code", ""))


def _day(value: str | None) -> str:
    return (value or "")[:10]


def _number(value: Any) -> str:
    """A measured value as people write it: no trailing zeros, no exponent."""
    text = format(Decimal(str(value)).normalize(), "f")
    return text


def _quantity(q: dict[str, Any] | None) -> str:
    if not q or q.get("value") is None:
        return ""
    return f"{_number(q['value'])} {q.get('unit') or q.get('code') or ''}".strip()


def reference_text(obs: Resource) -> str:
    ranges = obs.get("referenceRange") or []
    if not ranges:
        return ""
    r = ranges[0]
    if r.get("text"):
        return str(r["text"])
    low, high = (r.get("low") or {}).get("value"), (r.get("high") or {}).get("value")
    if low is not None and high is not None:
        return f"{_number(low)}–{_number(high)}"
    if high is not None:
        return f"≤ {_number(high)}"
    return f"≥ {_number(low)}" if low is not None else ""


def _flag(obs: Resource, value: float | None) -> str:
    """The interpretation the result carries, else what its reference range says."""
    for concept in obs.get("interpretation") or []:
        for c in concept.get("coding", []):
            if c.get("code"):
                return _FLAGS.get(c["code"], "A")
    ranges = obs.get("referenceRange") or []
    if value is None or not ranges:
        return ""
    low, high = (
        (ranges[0].get("low") or {}).get("value"),
        (ranges[0].get("high") or {}).get("value"),
    )
    if high is not None and value > high:
        return "H"
    return "L" if low is not None and value < low else "N"


def _value(obs: Resource) -> tuple[float | None, str]:
    if "valueQuantity" in obs:
        q = obs["valueQuantity"]
        v = q.get("value")
        return (float(v) if v is not None else None), _quantity(q)
    if "valueString" in obs:
        return None, str(obs["valueString"])
    if "valueCodeableConcept" in obs:
        return None, concept_text(obs["valueCodeableConcept"])
    return None, ""


def _when(obs: Resource) -> str:
    return str(
        obs.get("effectiveDateTime")
        or (obs.get("effectivePeriod") or {}).get("start")
        or obs.get("issued")
        or ""
    )


def source(res: Resource) -> str:
    """The MA_CSKCB of the facility that recorded `res`, "" when its meta.source names none."""
    return sy.source_facility(res) or ""


def point(obs: Resource) -> Point:
    value, text = _value(obs)
    return Point(_when(obs), value, text, _flag(obs, value), source(obs))


# ---------------------------------------------------------------- the person


def age_on(birth: str, today: date) -> tuple[int | None, int | None]:
    """Whole years, and months under 6 years, on `today` (a year-only birth date: from 1 Jan)."""
    m = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", birth or "")
    if not m:
        return None, None
    y, mo, d = int(m[1]), int(m[2] or 1), int(m[3] or 1)
    months = (today.year - y) * 12 + today.month - mo - (today.day < d)
    if months < 0:
        return None, None
    return months // 12, (months if months < 72 else None)


def _identifier(res: Resource, system: str) -> dict[str, Any]:
    return next((i for i in res.get("identifier", []) if i.get("system") == system), {})


def _address(patient: Resource) -> str:
    for a in patient.get("address") or []:
        if a.get("text"):
            return str(a["text"])
        parts = [*a.get("line", []), a.get("city"), a.get("district"), a.get("state")]
        return ", ".join(p for p in parts if p)
    return ""


def _card(repo: Repo, patient: Resource, today: date) -> tuple[str, str]:
    """The BHYT number and its end date: the Coverage valid today (else the latest), or the card
    the Patient carries when the role may not read Coverage."""
    cards: list[tuple[str, str, str]] = []  # (end, start, number)
    if repo.policy.allows("Coverage", "s"):
        found = search_all(
            repo, "Coverage", [("beneficiary", f"Patient/{patient['id']}"), ("_count", "20")]
        )
        for c in found:
            number = _identifier(c, sy.BHYT).get("value") or c.get("subscriberId") or ""
            period = c.get("period") or {}
            cards.append((period.get("end", ""), period.get("start", ""), number))
    ident = _identifier(patient, sy.BHYT)
    if not cards and ident:
        period = ident.get("period") or {}
        cards.append((period.get("end", ""), period.get("start", ""), ident.get("value", "")))
    if not cards:
        return "", ""
    now = today.isoformat()
    valid = [c for c in cards if c[1][:10] <= now <= (c[0][:10] or "9999")]
    end, _start, number = max(valid or cards)
    return number, _day(end)


def person(repo: Repo, patient: Resource, today: date) -> Person:
    age, months = age_on(patient.get("birthDate", ""), today)
    bhyt, until = _card(repo, patient, today)
    return Person(
        id=patient["id"],
        name=display_name(patient),
        birth=patient.get("birthDate", ""),
        age=age,
        months=months,
        sex=patient.get("gender", ""),
        cccd=_identifier(patient, sy.CCCD).get("value", ""),
        bhyt=bhyt,
        bhyt_until=until,
        address=_address(patient),
    )


# ---------------------------------------------------------------- the chart


def linked(repo: Repo, patient_id: str) -> str:
    """The patient and every Patient the provincial index links to them (Person.link), as one
    `patient` search value: the chart then holds the records of every facility the user may
    see, each marked by its facility (issue 6's longitudinal record)."""
    ids = [patient_id]
    for person in search_all(
        repo, "Person", [("patient", f"Patient/{patient_id}"), ("_count", "20")]
    ):
        for link in person.get("link", []):
            target = (link.get("target") or {}).get("reference", "")
            if target.startswith("Patient/") and target[8:] not in ids:
                ids.append(target[8:])
    return ",".join(f"Patient/{i}" for i in ids)


def chart(repo: Repo, patient_id: str, today: date, offset: int = 0) -> Chart:
    """The chart in one read and twelve searches; FhirError 404/410/403 when the patient is not
    there for this user to see."""
    patient = repo.read("Patient", patient_id).resource
    patients = linked(repo, patient_id)
    observations = search_all(
        repo,
        "Observation",
        [("patient", patients), ("_sort", "-date"), ("_count", str(OBSERVATIONS))],
    )
    labs = [o for o in observations if "laboratory" in _categories(o)]
    vitals = [o for o in observations if "vital-signs" in _categories(o)]
    active, recent = medicines(repo, patients)
    c = Chart(
        person=person(repo, patient, today),
        allergies=allergies(repo, patients),
        problems=problems(repo, patients),
        medicines=active,
        recent_medicines=recent,
        results=trends(labs),
        vitals=vital_trends(vitals),
        imaging=imaging(repo, patients),
        timeline=_timeline(repo, patients, offset),
        facilities=Facilities(repo.facility),
    )
    found = facilities(repo, _sources(c))
    return replace(c, timeline=_named(c.timeline, found), facilities=found)


def _sources(c: Chart) -> set[str]:
    """The facilities a chart's entries come from."""
    entries: list[Any] = [*c.allergies, *c.medicines, *c.recent_medicines, *c.imaging]
    entries += [*c.timeline.visits, *(t.last for t in (*c.results, *c.vitals))]
    return {e.source for e in entries} | {s for p in c.problems for s in p.sources}


def facilities(repo: Repo, codes: Iterable[str]) -> Facilities:
    """The names of these facilities (MA_CSKCB codes), in one directory search."""
    wanted = sorted({c for c in codes if c})
    if not wanted:
        return Facilities(repo.facility)
    value = ",".join(f"{sy.MA_CSKCB}|{c}" for c in wanted)
    found = search_all(
        repo, "Organization", [("identifier", value), ("_count", str(4 * len(wanted)))]
    )
    names: dict[str, str] = {}
    for org in found:
        code = _identifier(org, sy.MA_CSKCB).get("value", "")
        if code in wanted and org.get("name"):
            names.setdefault(code, str(org["name"]))
    return Facilities(repo.facility, names)


def _categories(res: Resource) -> list[str]:
    return [str(c.get("code")) for cat in res.get("category", []) for c in cat.get("coding", [])]


def imaging(repo: Repo, patients: str) -> tuple[Imaging, ...]:
    """The latest imaging reports with their conclusions (lab reports show as results)."""
    found = search_all(
        repo,
        "DiagnosticReport",
        [("patient", patients), ("_sort", "-date"), ("_count", str(REPORTS))],
    )
    return tuple(
        Imaging(
            str(r.get("issued") or r.get("effectiveDateTime") or "")[:10],
            concept_text(r.get("code")),
            str(r.get("conclusion", "")),
            r.get("status") == "corrected",
            source(r),
        )
        for r in found
        if "RAD" in _categories(r)
    )


def allergies(repo: Repo, patients: str) -> tuple[Allergy, ...]:
    found = search_all(repo, "AllergyIntolerance", [("patient", patients), ("_count", "50")])
    out = []
    for a in found:
        clinical = _code_of(
            a.get("clinicalStatus"),
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
        )
        verified = _code_of(
            a.get("verificationStatus"),
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
        )
        if clinical not in ("", "active") or verified in ("refuted", "entered-in-error"):
            continue
        reactions = tuple(
            concept_text(m)
            for r in a.get("reaction", [])
            for m in r.get("manifestation", [])
            if concept_text(m)
        )
        substance = concept_text(a.get("code")) or "?"
        out.append(Allergy(substance, a.get("criticality", ""), reactions, source(a)))
    return tuple(out)


def problems(repo: Repo, patients: str) -> tuple[Problem, ...]:
    """Active conditions, one line per code (a chronic disease is recorded again at each visit)."""
    found = search_all(
        repo,
        "Condition",
        [("patient", patients), ("_sort", "-recorded-date"), ("_count", "200")],
    )
    by_code: dict[str, list[Resource]] = {}
    for c in found:
        if _code_of(c.get("clinicalStatus"), sy.CONDITION_CLINICAL) != "active":
            continue
        code = _code_of(c.get("code"), sy.ICD10_VN) or concept_text(c.get("code"))
        by_code.setdefault(code, []).append(c)
    out = []
    for code, items in by_code.items():
        dates = sorted(_day(c.get("onsetDateTime") or c.get("recordedDate")) for c in items)
        coding = _coding(items[0].get("code"), sy.ICD10_VN)
        name = str(coding.get("display") or concept_text(items[0].get("code")))
        sources = tuple(dict.fromkeys(s for c in items if (s := source(c))))
        out.append(Problem(code if coding else "", name, dates[0], dates[-1], len(items), sources))
    return tuple(out)


def medicine(m: Resource) -> Medicine:
    dosage = (m.get("dosageInstruction") or [{}])[0]
    dose_q: dict[str, Any] = next(
        (d.get("doseQuantity") for d in dosage.get("doseAndRate", []) if d.get("doseQuantity")), {}
    )
    repeat = (dosage.get("timing") or {}).get("repeat") or {}
    per_day = (
        repeat.get("frequency")
        if repeat.get("periodUnit") == "d" and repeat.get("period", 1) == 1
        else None
    )
    supply = (m.get("dispenseRequest") or {}).get("expectedSupplyDuration") or {}
    days = (repeat.get("boundsDuration") or {}).get("value") or supply.get("value")
    notes = [n.get("text", "") for n in m.get("note", [])]
    if dosage.get("patientInstruction"):
        notes.append(dosage["patientInstruction"])
    return Medicine(
        id=m.get("id", ""),
        name=concept_text(m.get("medicationCodeableConcept")) or "?",
        text=dosage.get("text", ""),
        dose=_number(dose_q["value"]) if dose_q.get("value") is not None else "",
        unit=str(dose_q.get("unit", "")),
        per_day=int(per_day) if per_day else None,
        days=int(days) if days else None,
        quantity=_quantity((m.get("dispenseRequest") or {}).get("quantity")),
        status=m.get("status", ""),
        authored=_day(m.get("authoredOn")),
        note="; ".join(n for n in notes if n),
        source=source(m),
    )


def medicines(repo: Repo, patients: str) -> tuple[tuple[Medicine, ...], tuple[Medicine, ...]]:
    """The active prescriptions (few, whatever their age) and the last completed ones."""
    subject = ("patient", patients)
    order = ("_sort", "-authoredon")
    active = search_all(
        repo, "MedicationRequest", [subject, ("status", "active"), order, ("_count", "50")]
    )
    latest = search_all(repo, "MedicationRequest", [subject, order, ("_count", str(3 * RECENT))])
    done = [m for m in latest if m.get("status") == "completed"][:RECENT]
    return tuple(medicine(m) for m in active), tuple(medicine(m) for m in done)


def _key(concept: dict[str, Any] | None) -> str:
    coding = (concept or {}).get("coding") or []
    return f"{coding[0].get('system')}|{coding[0].get('code')}" if coding else concept_text(concept)


def trends(observations: list[Resource]) -> tuple[Trend, ...]:
    """Results grouped by code, most recently measured first; `observations` newest first."""
    groups: dict[str, list[Resource]] = {}
    for obs in observations:
        groups.setdefault(_key(obs.get("code")), []).append(obs)
    out = []
    for key, items in groups.items():
        points = [point(o) for o in items[:TREND]]
        out.append(
            Trend(
                key,
                concept_text(items[0].get("code")),
                points[0],
                tuple(reversed(points)),
                reference_text(items[0]),
            )
        )
    return tuple(out)


def vital_point(obs: Resource) -> Point:
    """A vital sign with the flag an adult's usual limits give (when the result carries none)."""
    code = _code_of(obs.get("code"), sy.LOINC)
    if code == BP:
        parts = {
            _code_of(c.get("code"), sy.LOINC): (c.get("valueQuantity") or {}).get("value")
            for c in obs.get("component", [])
        }
        sys_v, dia_v = parts.get(SYSTOLIC), parts.get(DIASTOLIC)
        if sys_v is None or dia_v is None:
            return Point(_when(obs), None, "", "", source(obs))
        flag = "H" if sys_v >= 140 or dia_v >= 90 else "L" if sys_v < 90 else "N"
        text = f"{_number(sys_v)}/{_number(dia_v)} mmHg"
        return Point(_when(obs), float(sys_v), text, flag, source(obs))
    p = point(obs)
    if p.flag or p.value is None:
        return p
    limits = {PULSE: (50, 100), TEMP: (35.5, 37.5), RESP: (12, 24), SPO2: (94, 101)}.get(code)
    flag = (
        ""
        if limits is None
        else "H"
        if p.value > limits[1]
        else "L"
        if p.value < limits[0]
        else "N"
    )
    return Point(p.when, p.value, p.text.replace("Cel", "°C"), flag, p.source)


def vital_trends(observations: list[Resource]) -> tuple[Trend, ...]:
    groups: dict[str, list[Resource]] = {}
    for obs in observations:
        groups.setdefault(_code_of(obs.get("code"), sy.LOINC), []).append(obs)
    out = []
    for code in VITAL_CODES:
        if code in groups:
            points = [vital_point(o) for o in groups[code][:TREND]]
            out.append(
                Trend(
                    code,
                    concept_text(groups[code][0].get("code")),
                    points[0],
                    tuple(reversed(points)),
                    "",
                )
            )
    return tuple(out)


def _main_diagnosis(enc: Resource, conditions: dict[str, list[Resource]]) -> str:
    """Rank 1 of Encounter.diagnosis, else the visit's first diagnosis, else its reason."""
    mine = {f"Condition/{c['id']}": c for c in conditions.get(f"Encounter/{enc['id']}", [])}
    for d in sorted(enc.get("diagnosis", []), key=lambda d: d.get("rank", 99)):
        cond = mine.get((d.get("condition") or {}).get("reference", ""))
        if cond:
            return _diagnosis_text(cond.get("code"))
    if mine:
        return _diagnosis_text(next(iter(mine.values())).get("code"))
    for reason in enc.get("reasonCode", []):
        return _diagnosis_text(reason)
    return ""


def _conditions_of(repo: Repo, encounters: list[Resource]) -> dict[str, list[Resource]]:
    """The diagnoses of a page of encounters, in one search, by "Encounter/id"."""
    if not encounters:
        return {}
    refs = ",".join(f"Encounter/{e['id']}" for e in encounters)
    # No _sort: sorting by an index the filter did not pick costs 150 ms; sorted here instead.
    found = search_all(repo, "Condition", [("encounter", refs), ("_count", "200")])
    out: dict[str, list[Resource]] = {}
    for c in sorted(found, key=lambda c: str(c.get("recordedDate", ""))):
        out.setdefault((c.get("encounter") or {}).get("reference", ""), []).append(c)
    return out


def _diagnosis_text(concept: dict[str, Any] | None) -> str:
    code = _code_of(concept, sy.ICD10_VN)
    name = str(_coding(concept, sy.ICD10_VN).get("display") or concept_text(concept))
    return f"{code} – {name}" if code and name else code or name


def name_of(included: dict[str, Resource], reference: dict[str, Any] | None) -> str:
    target = included.get((reference or {}).get("reference", ""))
    return str((target or {}).get("name") or (reference or {}).get("display") or "")


def places(repo: Repo, encounters: list[Resource]) -> dict[str, Resource]:
    """The clinics of a page of encounters, and the facilities of those that do not say where
    they were recorded (facilities() names the others): searches by `_id`."""
    refs = {
        (e.get("serviceProvider") or {}).get("reference", "") for e in encounters if not source(e)
    }
    refs |= {
        (loc.get("location") or {}).get("reference", "")
        for e in encounters
        for loc in e.get("location", [])
    }
    return by_ids(repo, "Location", refs) | by_ids(repo, "Organization", refs)


def timeline(repo: Repo, patients: str, offset: int) -> Timeline:
    """One page of the patient's encounters, newest first across facilities, with their places,
    diagnoses and the facilities' names."""
    page = _timeline(repo, patients, offset)
    return _named(page, facilities(repo, (v.source for v in page.visits)))


def _named(page: Timeline, names: Facilities) -> Timeline:
    visits = tuple(replace(v, facility=names.name(v.source, v.facility)) for v in page.visits)
    return replace(page, visits=visits, facilities=names)


def _timeline(repo: Repo, patients: str, offset: int) -> Timeline:
    """timeline() before the facilities' names are read."""
    found, _, more = search_page(
        repo,
        "Encounter",
        [
            ("patient", patients),
            ("_sort", "-date"),
            ("_count", str(PAGE)),
            ("_offset", str(offset)),
        ],
    )
    included = places(repo, found)
    conditions = _conditions_of(repo, found)
    visits = tuple(
        Visit(
            id=e["id"],
            start=(e.get("period") or {}).get("start", ""),
            facility=name_of(included, e.get("serviceProvider")),
            clinic=name_of(included, (e.get("location") or [{}])[0].get("location")),
            type=concept_text((e.get("type") or [{}])[0]),
            diagnosis=_main_diagnosis(e, conditions),
            status=e.get("status", ""),
            source=source(e),
        )
        for e in found
    )
    return Timeline(visits, offset, offset + PAGE if more else None)
