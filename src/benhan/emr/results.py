"""Lab and imaging results: the technicians' work list, entering a result, correcting one.

An active order (ServiceRequest, category lab or imaging, in the shape the visit page writes)
becomes, in one transaction:
- lab: an Observation (final, category laboratory: the value, its reference range and flag) and a
  DiagnosticReport (LAB) whose result is that Observation;
- imaging: an Observation (final, category imaging: the findings) and a DiagnosticReport (RAD) with
  the conclusion;
and the order is completed. A correction updates both to "corrected" and records why in the
Observation's note (an R4 DiagnosticReport has no note).

Flags (http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation): N inside the range,
its limits included; H above, L below; HH or LL (critical) when the value lies beyond the nearer
limit by more than twice the range's width (glucose 3.9–6.4 mmol/L: critical above 11.4); a
range with one limit never flags critical. A qualitative result that is not the expected answer
(the catalogue's ref_text, e.g. "âm tính") is A; a ref_text listing possible answers
("A/B/AB/O, Rh(D)") expects none, so no flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from benhan.catalog.fhir import service_coding, service_loinc
from benhan.catalog.services import Service, services
from benhan.catalog.units import UCUM_OF
from benhan.emr.model import (
    QUEUE_NUMBER,
    FacilityRefs,
    display_name,
    facility_refs,
    parse_stamp,
    queue_label,
    ref,
    search_all,
    search_page,
    stamp,
)
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.outcome import FhirError, Issue
from benhan.fhir.primitives import fold
from benhan.store.repository import Repo

Kind = Literal["lab", "imaging"]
Mode = Literal["numeric", "qualitative", "text", "imaging"]
CATEGORY: dict[Kind, str] = {"lab": "108252007", "imaging": "363679005"}  # SNOMED CT
PAGE_SIZE = 20
RECENT_SIZE = 10
MAX_TEXT = 4000  # findings, conclusion
MAX_COMMENT = 1000
MIN_REASON, MAX_REASON = 5, 500
POSITIVE, NEGATIVE = "dương tính", "âm tính"
FLAG_DISPLAY = {
    "N": "Normal",
    "H": "High",
    "L": "Low",
    "HH": "Critical high",
    "LL": "Critical low",
    "A": "Abnormal",
}
_NUMBER = re.compile(r"[+-]?\d{1,9}(?:[.,]\d{1,6})?")
_QUEUE = re.compile(r"\d{1,4}")
_SEARCH_SYNTAX = re.compile(r"[\\,|$]")  # FHIR search escapes and separators, never in a name
_DR_SECTION = {"lab": ("LAB", "Laboratory"), "imaging": ("RAD", "Radiology")}
_OBS_CATEGORY = {"lab": ("laboratory", "Laboratory"), "imaging": ("imaging", "Imaging")}


class ResultError(FhirError):
    """A result that cannot be saved: `code` says why, `field` names the form field at fault.
    A FhirError, so that the unit of work records the refusal as what it is (400/404)."""

    def __init__(self, code: str, field: str = "") -> None:
        status, kind = (404, "not-found") if code == "unknown-order" else (400, "invalid")
        text = f"Không lưu được kết quả / result not saved: {code}"
        super().__init__(status, Issue(kind, text, field or None))
        self.code = code
        self.field = field


@dataclass(frozen=True)
class Order:
    """One lab or imaging order, with its patient and visit as the user may see them."""

    resource: Resource
    patient: Resource
    encounter: Resource | None

    @property
    def id(self) -> str:
        return str(self.resource["id"])

    @property
    def status(self) -> str:
        return str(self.resource.get("status", ""))

    @property
    def kind(self) -> Kind:
        cats = self.resource.get("category", [])
        codes = {c.get("code") for cat in cats for c in cat.get("coding", [])}
        return "imaging" if CATEGORY["imaging"] in codes else "lab"

    @property
    def service(self) -> Service | None:
        codings = (self.resource.get("code") or {}).get("coding", [])
        code = next((c.get("code") for c in codings if c.get("system") == sy.SERVICES), None)
        return services().get(code or "")

    @property
    def name(self) -> str:
        concept = self.resource.get("code") or {}
        return str(concept.get("text") or (self.service.name if self.service else ""))

    @property
    def authored(self) -> datetime | None:
        return parse_stamp(self.resource.get("authoredOn"))

    @property
    def patient_name(self) -> str:
        return display_name(self.patient)

    @property
    def queue(self) -> str:
        return queue_label(self.encounter) if self.encounter else ""

    @property
    def mode(self) -> Mode:
        s = self.service
        if self.kind == "imaging":
            return "imaging"
        if s and (s.result_unit or s.ref_low is not None or s.ref_high is not None):
            return "numeric"
        return "qualitative" if s and s.ref_text else "text"


@dataclass(frozen=True)
class Listing:
    """One page of a list, and whether another follows."""

    items: list[Any]
    page: int
    has_next: bool


@dataclass(frozen=True)
class Result:
    """What was recorded for an order: its report and the Observations it reports."""

    report: Resource
    observations: list[Resource]
    patient: Resource | None = None

    @property
    def flag(self) -> str:
        return flag_of(self.observations[0]) if self.observations else ""

    @property
    def issued(self) -> datetime | None:
        return parse_stamp(self.report.get("issued"))

    @property
    def name(self) -> str:
        return str((self.report.get("code") or {}).get("text", ""))

    @property
    def patient_name(self) -> str:
        return display_name(self.patient) if self.patient else ""

    @property
    def order_id(self) -> str | None:
        """The order reported on (to open it), when it is one."""
        based = (self.report.get("basedOn") or [{}])[0].get("reference", "")
        kind, _, rid = based.partition("/")
        return rid if kind == "ServiceRequest" and rid else None


@dataclass(frozen=True)
class Entry:
    """What the technician typed; the fields of the other mode stay empty."""

    value: str = ""
    comment: str = ""
    findings: str = ""
    conclusion: str = ""
    reason: str = ""  # corrections only


@dataclass(frozen=True)
class Performer:
    """Who enters the result: the account's Practitioner when it has one, else its name."""

    practitioner: str | None
    name: str

    def reference(self) -> dict[str, str]:
        out = {"display": self.name}
        return {"reference": self.practitioner, **out} if self.practitioner else out


@dataclass(frozen=True)
class Reading:
    """A validated entry: the Observation's value elements and its flag (None: no flag)."""

    value: dict[str, Any] = field(default_factory=dict)
    flag: str | None = None


# ---- reading what was typed -------------------------------------------------------------


def parse_number(text: str, *, negative_allowed: bool = False) -> Decimal:
    """A decimal as typed on a Vietnamese keyboard ("5,6" or "5.6"); no thousands separators.
    Every lab catalogue unit (concentrations, counts, rates, times, INR, %) measures something
    that cannot be below zero, so a negative value is refused unless allowed."""
    raw = text.strip().replace(" ", "")
    if not raw:
        raise ResultError("missing-value", "value")
    if not _NUMBER.fullmatch(raw):
        raise ResultError("not-a-number", "value")
    number = Decimal(raw.replace(",", "."))
    if number < 0 and not negative_allowed:
        raise ResultError("negative", "value")
    return number


def flag(value: Decimal, low: Decimal | None, high: Decimal | None) -> str:
    """N, H, L, HH or LL for a value against its reference range (the rule in the docstring)."""
    width = high - low if low is not None and high is not None else None
    if high is not None and value > high:
        return "HH" if width is not None and value - high > 2 * width else "H"
    if low is not None and value < low:
        return "LL" if width is not None and low - value > 2 * width else "L"
    return "N"


def qualitative_flag(value: str, expected: str) -> str | None:
    if not expected or "/" in expected:  # a list of possible answers, not one expected
        return None
    return "N" if fold(value.strip()) == fold(expected.strip()) else "A"


def _answer(text: str) -> str:
    """The usual answers spelt one way ("am tinh" → "âm tính"); anything else as typed."""
    value = " ".join(text.split())
    known = {fold(a): a for a in (POSITIVE, NEGATIVE)}
    return known.get(fold(value), value)


def _required(text: str, name: str, limit: int) -> str:
    value = text.strip()
    if not value:
        raise ResultError("missing-" + name, name)
    if len(value) > limit:
        raise ResultError("too-long", name)
    return value


def read_entry(order: Order, entry: Entry) -> Reading:
    """The value elements for the order's kind of result; ResultError naming the field."""
    if len(entry.comment.strip()) > MAX_COMMENT:
        raise ResultError("too-long", "comment")
    mode, s = order.mode, order.service
    if mode == "imaging":
        findings = _required(entry.findings, "findings", MAX_TEXT)
        _required(entry.conclusion, "conclusion", MAX_TEXT)
        return Reading({"valueString": findings})
    if mode == "numeric" and s is not None:
        return _numeric(s, parse_number(entry.value))
    value = _answer(_required(entry.value, "value", MAX_COMMENT))
    expected = s.ref_text if s else ""
    return Reading({"valueString": value}, qualitative_flag(value, expected))


def _numeric(s: Service, number: Decimal) -> Reading:
    quantity: dict[str, Any] = {"value": float(number)}
    if s.result_unit:
        quantity["unit"] = s.result_unit
        if s.result_unit in UCUM_OF:
            quantity |= {"system": sy.UCUM, "code": UCUM_OF[s.result_unit]}
    return Reading({"valueQuantity": quantity}, flag(number, s.ref_low, s.ref_high))


def _reason(text: str) -> str:
    value = " ".join(text.split())
    if not MIN_REASON <= len(value) <= MAX_REASON:
        raise ResultError("bad-reason", "reason")
    return value


# ---- FHIR shapes ------------------------------------------------------------------------


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def interpretation(code: str) -> list[dict[str, Any]]:
    return [_concept(sy.OBS_INTERPRETATION, code, FLAG_DISPLAY[code])]


def flag_of(observation: Resource) -> str:
    for concept in observation.get("interpretation", []):
        for coding in concept.get("coding", []):
            if coding.get("system") == sy.OBS_INTERPRETATION:
                return str(coding.get("code", ""))
    return ""


def _code(order: Order) -> dict[str, Any]:
    s = order.service
    if s is None:
        return dict(order.resource.get("code") or {"text": order.name})
    loinc = service_loinc(s) if order.kind == "lab" else None
    return {"coding": [service_coding(s), *([loinc] if loinc else [])], "text": s.name}


def reference_range(s: Service, unit: dict[str, Any]) -> list[dict[str, Any]]:
    """Observation.referenceRange from the catalogue: low/high in the value's unit, or text."""
    out: dict[str, Any] = {}
    if s.ref_low is not None:
        out["low"] = {**unit, "value": float(s.ref_low)}
    if s.ref_high is not None:
        out["high"] = {**unit, "value": float(s.ref_high)}
    if not out and s.ref_text:
        out["text"] = s.ref_text
    return [out] if out else []


def _apply(obs: Resource, order: Order, reading: Reading) -> Resource:
    """The Observation carrying the reading: value, range and flag replaced."""
    out = {k: v for k, v in obs.items() if k not in ("valueQuantity", "valueString")}
    out |= reading.value
    out.pop("interpretation", None)
    if reading.flag:
        out["interpretation"] = interpretation(reading.flag)
    s = order.service
    if s is not None and order.kind == "lab":
        unit = {k: v for k, v in reading.value.get("valueQuantity", {}).items() if k != "value"}
        ranges = reference_range(s, unit)
        if ranges:
            out["referenceRange"] = ranges
    return out


def _subject(order: Order) -> dict[str, Any]:
    out = {"subject": order.resource["subject"]}
    if order.resource.get("encounter"):
        out["encounter"] = order.resource["encounter"]
    return out


def observation(
    order: Order, reading: Reading, comment: str, who: Performer, when: datetime
) -> Resource:
    cat_code, cat_display = _OBS_CATEGORY[order.kind]
    obs: Resource = {
        "resourceType": "Observation",
        "basedOn": [ref(f"ServiceRequest/{order.id}")],
        "status": "final",
        "category": [_concept(sy.OBSERVATION_CATEGORY, cat_code, cat_display)],
        "code": _code(order),
        **_subject(order),
        "effectiveDateTime": stamp(when),
        "issued": stamp(when),
        "performer": [who.reference()],
    }
    if comment.strip():
        obs["note"] = [{"text": comment.strip(), "time": stamp(when)}]
    return _apply(obs, order, reading)


def report(
    order: Order, result_ids: list[str], conclusion: str, who: Performer, when: datetime
) -> Resource:
    code, display = _DR_SECTION[order.kind]
    out: Resource = {
        "resourceType": "DiagnosticReport",
        "basedOn": [ref(f"ServiceRequest/{order.id}")],
        "status": "final",
        "category": [_concept(sy.DIAG_SECTION, code, display)],
        "code": _code(order),
        **_subject(order),
        "effectiveDateTime": stamp(when),
        "issued": stamp(when),
        "performer": [who.reference()],
        "result": [ref(f"Observation/{i}") for i in result_ids],
    }
    if conclusion.strip():
        out["conclusion"] = conclusion.strip()
    return out


# ---- reading the store ------------------------------------------------------------------


def _refs(references: list[dict[str, Any]]) -> list[str]:
    return [str(x["reference"]) for x in references if x.get("reference")]


def _categories(kind: Kind | None) -> str:
    kinds: list[Kind] = [kind] if kind else ["lab", "imaging"]
    return ",".join(f"{sy.SNOMED}|{CATEGORY[k]}" for k in kinds)


_ORDER_INCLUDES = [("_include", "ServiceRequest:subject"), ("_include", "ServiceRequest:encounter")]


def _orders(matches: list[Resource], included: dict[str, Resource]) -> list[Order]:
    out = []
    for sr in matches:
        patient = included.get(sr.get("subject", {}).get("reference", ""))
        encounter = included.get((sr.get("encounter") or {}).get("reference", ""))
        if patient is not None:  # a patient the user may not see: no order to work on
            out.append(Order(sr, patient, encounter))
    return out


def _who_filter(
    repo: Repo, refs: FacilityRefs, text: str, today: date
) -> list[tuple[str, str]] | None:
    """Search terms for the box: a queue number of today, else part of the patient's name.
    None when nothing can match (a number, and the facility has no clinics)."""
    value = " ".join(_SEARCH_SYNTAX.sub(" ", text).split())
    if not value:
        return []
    if not _QUEUE.fullmatch(value):
        return [("subject:Patient.name:contains", value)]
    clinics = search_all(repo, "Location", [("partof", refs.location), ("_count", "100")])
    if not clinics:
        return None
    day, n = today.isoformat(), int(value)
    tickets = ",".join(f"{QUEUE_NUMBER}|{day}/{c['id']}/{n}" for c in clinics)
    return [("encounter.identifier", tickets)]


def worklist(
    repo: Repo,
    *,
    kind: Kind | None,
    text: str,
    page: int,
    today: date,
    refs: FacilityRefs | None = None,
) -> Listing:
    """Active lab and imaging orders of the user's facility, oldest first."""
    refs = refs or facility_refs(repo)
    terms = _who_filter(repo, refs, text, today) if refs else None
    if refs is None or terms is None:
        return Listing([], page, False)
    params = [
        ("status", "active"),
        ("category", _categories(kind)),
        ("encounter.service-provider", refs.organization),
        *terms,
        ("_sort", "authored,_id"),
        ("_count", str(PAGE_SIZE)),
        ("_offset", str(page * PAGE_SIZE)),
        *_ORDER_INCLUDES,
    ]
    matches, included, more = search_page(repo, "ServiceRequest", params)
    return Listing(_orders(matches, included), page, more)


def recent(repo: Repo, *, page: int, refs: FacilityRefs | None = None) -> Listing:
    """Results issued at the user's facility, newest first (to open one and correct it)."""
    refs = refs or facility_refs(repo)
    if refs is None:
        return Listing([], page, False)
    params = [
        ("encounter.service-provider", refs.organization),
        ("category", f"{sy.DIAG_SECTION}|LAB,{sy.DIAG_SECTION}|RAD"),
        ("_sort", "-issued,_id"),
        ("_count", str(RECENT_SIZE)),
        ("_offset", str(page * RECENT_SIZE)),
        ("_include", "DiagnosticReport:subject"),
        ("_include", "DiagnosticReport:result"),
    ]
    matches, included, more = search_page(repo, "DiagnosticReport", params)
    items = [
        Result(
            r,
            [included[x] for x in _refs(r.get("result", [])) if x in included],
            included.get((r.get("subject") or {}).get("reference", "")),
        )
        for r in matches
    ]
    return Listing(items, page, more)


def find_order(repo: Repo, order_id: str) -> Order | None:
    """The order when it is a lab or imaging order of the user's facility, else None."""
    refs = facility_refs(repo)
    if refs is None:
        return None
    params = [
        ("_id", order_id),
        ("category", _categories(None)),
        ("encounter.service-provider", refs.organization),
        *_ORDER_INCLUDES,
    ]
    matches, included, _more = search_page(repo, "ServiceRequest", params)
    orders = _orders(matches, included)
    return orders[0] if orders else None


def result_of(repo: Repo, order: Order) -> Result | None:
    """The latest report on the order, with the Observations that answer this order: a report
    may cover several orders (as imported ones do), each answered by its own Observation."""
    params = [
        ("based-on", f"ServiceRequest/{order.id}"),
        ("_sort", "-issued"),
        ("_count", "1"),
        ("_include", "DiagnosticReport:result"),
    ]
    matches, included, _more = search_page(repo, "DiagnosticReport", params)
    if not matches:
        return None
    dr = matches[0]
    obs = [included[x] for x in _refs(dr.get("result", [])) if x in included]
    return Result(dr, [o for o in obs if _answers(o, order)], order.patient)


def _answers(obs: Resource, order: Order) -> bool:
    """Based on the order, or (without basedOn) coded with the order's service."""
    based = [b.get("reference") for b in obs.get("basedOn", [])]
    if based:
        return f"ServiceRequest/{order.id}" in based
    codes = {c.get("code") for c in (obs.get("code") or {}).get("coding", [])}
    return order.service is not None and order.service.code in codes


# ---- writing ----------------------------------------------------------------------------


def _order_to_work_on(repo: Repo, order_id: str) -> Order:
    order = find_order(repo, order_id)
    if order is None:
        raise ResultError("unknown-order")
    return order


def _version(res: Resource) -> str:
    return f'W/"{res["meta"]["versionId"]}"'


def _update(repo: Repo, res: Resource) -> None:
    """Write back what was read in this unit; a change by someone else meanwhile refuses."""
    try:
        repo.update(res["resourceType"], res["id"], res, if_match=_version(res))
    except FhirError as exc:
        if exc.status == 412:  # If-Match: someone else changed it since this unit read it
            raise ResultError("changed") from exc
        raise


def record(repo: Repo, order_id: str, entry: Entry, who: Performer, when: datetime) -> Result:
    """Enter the result of an active order: Observation, DiagnosticReport, order completed."""
    order = _order_to_work_on(repo, order_id)
    if order.status == "completed":
        raise ResultError("already-done")
    if order.status != "active":
        raise ResultError("not-active")
    reading = read_entry(order, entry)
    comment = entry.comment if order.kind == "lab" else ""
    obs = repo.create(observation(order, reading, comment, who, when)).resource
    conclusion = entry.conclusion if order.kind == "imaging" else ""
    dr = repo.create(report(order, [obs["id"]], conclusion, who, when)).resource
    _update(repo, {**order.resource, "status": "completed"})
    return Result(dr, [obs], order.patient)


def correct(repo: Repo, order_id: str, entry: Entry, who: Performer, when: datetime) -> Result:
    """A new value for a completed order: its Observation and report become "corrected"."""
    order = _order_to_work_on(repo, order_id)
    found = result_of(repo, order) if order.status == "completed" else None
    if found is None or not found.observations:
        raise ResultError("nothing-to-correct")
    reading = read_entry(order, entry)
    reason = _reason(entry.reason)
    note = {"text": f"Sửa kết quả: {reason}", "time": stamp(when), "authorString": who.name}
    obs = _apply(found.observations[0], order, reading) | {
        "status": "corrected",
        "issued": stamp(when),
        "note": [*found.observations[0].get("note", []), note],
    }
    dr = {**found.report, "status": "corrected", "issued": stamp(when)}
    if order.kind == "imaging":
        dr["conclusion"] = entry.conclusion.strip()
    _update(repo, obs)
    _update(repo, dr)
    return Result(dr, [obs, *found.observations[1:]], order.patient)


def age(patient: Resource, today: date) -> int | None:
    """Age in full years from birthDate (a year alone counts from 1 January)."""
    birth = patient.get("birthDate") or ""
    try:
        year, month, day = (int(p) for p in [*birth.split("-"), "1", "1"][:3])
        born = date(year, month, day)
    except ValueError:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


__all__ = [
    "CATEGORY",
    "Entry",
    "Listing",
    "Order",
    "Performer",
    "Result",
    "ResultError",
    "age",
    "correct",
    "find_order",
    "flag",
    "flag_of",
    "parse_number",
    "qualitative_flag",
    "read_entry",
    "recent",
    "record",
    "result_of",
    "worklist",
]
