"""The documents clinicians sign, built unsigned from what the EMR recorded, stored, and listed.

A document (http://hl7.org/fhir/R4/documents.html) is a Bundle of type "document": a Composition
first, then every resource the Composition references (the Patient, the Encounter, the author,
the custodian Organization, each section's entries), then the Practitioners, Organizations and
Locations those name. Each entry's fullUrl is its resource's `urn:uuid:` URL (the id itself, which
benhan makes a UUID; a name-based UUID of "Type/id" for any other id), and references between
entries are written with it: the document resolves on its own, offline, wherever it travels and
whatever the sending server's address becomes. A reference to something left out (the order a
result answers) stays "Type/id", to be looked up at the source.

    kind            Composition.type (LOINC)             sections (titles in Vietnamese)
    visit-summary   34133-9 Summary of episode note     reason, vital signs, diagnoses, results,
                                                         allergies, medicines, procedures, advice
    prescription    57833-6 Prescription for medication diagnoses, active medicines, advice
    report          11502-2 Laboratory report or        one DiagnosticReport and its Observations
                    18748-4 Diagnostic imaging study
    discharge       18842-5 Discharge summary           an inpatient stay: reason, course,
                                                         diagnoses, results, procedures, discharge
                                                         medicines, allergies, instructions

Every resource is read through the repository, so the reader's access rules apply and each read
is in the audit trail. The Composition is "final", attested ("legal") by its author, with the time
left for the signer to fill. An amendment is a new Composition (a new id, the same
Composition.identifier) whose relatesTo says which one it replaces; that one stays as signed.

store_document keeps the Composition as a resource (its references in local "Type/id" form, so it
is found by encounter and patient) and the Bundle exactly as written, signature included, under
the Composition's id; a signed Bundle is never overwritten.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Literal, get_args

from benhan.emr.chart import by_ids, concept_text, medicine, point, reference_text, vital_point
from benhan.emr.model import display_name, facility_refs, search_all, stamp
from benhan.emr.visit import SECTIONS as NOTE_SECTIONS
from benhan.emr.visit import in_rank_order, note_texts
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.outcome import FhirError, Issue
from benhan.fhir.primitives import now, split_ref
from benhan.store.repository import Repo, Saved, new_id, references

Kind = Literal["visit-summary", "prescription", "report", "discharge"]
KINDS: tuple[str, ...] = get_args(Kind)
XHTML = "http://www.w3.org/1999/xhtml"
URI = "urn:ietf:rfc:3986"  # Identifier.system of a value that is itself a URI (urn:uuid:…)
EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
ENTRY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://benhan.vn/document-entry")
MAX_ROWS = 300  # resources of one kind read per visit; a visit has a handful
MAX_DOCUMENTS = 100  # documents listed per encounter
MAX_HOPS = 4  # Location → parent Location → Organization: the directory is shallow
VOID = frozenset({"entered-in-error", "cancelled"})
# v3 ActCode classes of a stay in hospital (a discharge summary closes one).
INPATIENT = frozenset({"IMP", "ACUTE", "NONAC", "SS"})
# v2-0074 diagnostic service sections that are imaging.
IMAGING_SECTIONS = frozenset({"RAD", "CT", "CUS", "NMR", "NMS", "RUS", "VUS", "OUS", "XRC"})
DIRECTORY = ("Practitioner", "PractitionerRole", "Organization", "Location", "Medication")
NOTE_TYPE = "11488-4"  # LOINC "Consult note": the visit's own note (emr/visit.py)
REFERRAL = "3457005"  # SNOMED "Patient referral" (ServiceRequest.category, emr/closing.py)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


# ---------------------------------------------------------------- codes and titles


@dataclass(frozen=True)
class Code:
    """A LOINC document or section code, with the Vietnamese title printed for it."""

    code: str
    display: str
    title: str

    def concept(self) -> dict[str, Any]:
        return {"coding": [{"system": sy.LOINC, "code": self.code, "display": self.display}]}


VISIT_SUMMARY = Code("34133-9", "Summary of episode note", "Tóm tắt lần khám bệnh")
PRESCRIPTION = Code("57833-6", "Prescription for medication", "Đơn thuốc")
LAB_REPORT = Code("11502-2", "Laboratory report", "Phiếu kết quả xét nghiệm")
IMAGING_REPORT = Code("18748-4", "Diagnostic imaging study", "Phiếu kết quả chẩn đoán hình ảnh")
DISCHARGE = Code("18842-5", "Discharge summary", "Tóm tắt hồ sơ ra viện")
KIND_OF: dict[str, Kind] = {
    VISIT_SUMMARY.code: "visit-summary",
    PRESCRIPTION.code: "prescription",
    LAB_REPORT.code: "report",
    IMAGING_REPORT.code: "report",
    DISCHARGE.code: "discharge",
}

REASON = Code("29299-5", "Reason for visit Narrative", "Lý do khám")
VITALS = Code("8716-3", "Vital signs", "Dấu hiệu sinh tồn")
DIAGNOSES = Code("29548-5", "Diagnosis Narrative", "Chẩn đoán")
RESULTS = Code(
    "30954-2", "Relevant diagnostic tests/laboratory data Narrative", "Kết quả cận lâm sàng"
)
IMAGING_RESULTS = Code(
    "18782-3", "Radiology Study observation (narrative)", "Kết quả chẩn đoán hình ảnh"
)
ALLERGIES = Code("48765-2", "Allergies and adverse reactions Document", "Dị ứng")
MEDICINES = Code("10160-0", "History of Medication use Narrative", "Thuốc đã kê")
PROCEDURES = Code("47519-4", "History of Procedures Document", "Thủ thuật, phẫu thuật")
ADVICE = Code("69730-0", "Instructions", "Hướng xử trí và lời dặn")
COURSE = Code("8648-8", "Hospital course Narrative", "Quá trình điều trị")
DISCHARGE_DIAGNOSES = Code("11535-2", "Hospital discharge Dx Narrative", "Chẩn đoán ra viện")
DISCHARGE_MEDICINES = Code(
    "10183-2", "Hospital discharge medications Narrative", "Thuốc điều trị khi ra viện"
)
DISCHARGE_ADVICE = Code(
    "8653-8", "Hospital Discharge instructions", "Hướng điều trị tiếp và lời dặn"
)
# Vital signs by LOINC, as Vietnamese records name them (the Observations carry English).
VITAL_NAMES = {
    "85354-9": "Huyết áp",
    "8867-4": "Mạch",
    "8310-5": "Nhiệt độ",
    "9279-1": "Nhịp thở",
    "59408-5": "SpO2",
    "29463-7": "Cân nặng",
    "8302-2": "Chiều cao",
    "39156-5": "BMI",
}


# ---------------------------------------------------------------- errors

# rule → (HTTP status, issue type, message: Vietnamese / English)
_RULES: dict[str, tuple[int, str, str]] = {
    "unknown-kind": (400, "invalid", "loại văn bản không hợp lệ / unknown document kind"),
    "missing-encounter": (400, "required", "cần chọn lần khám / an encounter is required"),
    "missing-report": (400, "required", "cần chọn phiếu kết quả / a report is required"),
    "unknown-encounter": (404, "not-found", "không tìm thấy lần khám / encounter not found"),
    "void-encounter": (
        422,
        "business-rule",
        "lần khám đã huỷ hoặc nhập nhầm / the encounter was cancelled or entered in error",
    ),
    "not-a-report": (
        400,
        "invalid",
        "không phải phiếu kết quả (DiagnosticReport) / not a DiagnosticReport",
    ),
    "unknown-report": (404, "not-found", "không tìm thấy phiếu kết quả / report not found"),
    "void-report": (
        422,
        "business-rule",
        "phiếu kết quả đã huỷ hoặc nhập nhầm / the report was cancelled or entered in error",
    ),
    "report-elsewhere": (
        400,
        "invalid",
        "phiếu kết quả không thuộc lần khám này / the report belongs to another encounter",
    ),
    "no-patient": (
        422,
        "business-rule",
        "phiếu kết quả không gắn với người bệnh / the report names no patient",
    ),
    "no-medicines": (
        422,
        "business-rule",
        "lần khám chưa kê đơn thuốc nào / the visit has no active prescription",
    ),
    "not-inpatient": (
        422,
        "business-rule",
        "không phải đợt điều trị nội trú / a discharge summary is for an inpatient stay",
    ),
    "unknown-author": (
        400,
        "invalid",
        "không tìm thấy người ký (Practitioner) / author is not a known Practitioner",
    ),
    "unknown-replaced": (
        404,
        "not-found",
        "không tìm thấy văn bản cần thay thế / the document to replace was not found",
    ),
    "replaces-other": (
        422,
        "business-rule",
        "văn bản thay thế phải cùng loại, cùng người bệnh, cùng lần khám / "
        "an amendment must be of the same kind, patient and encounter",
    ),
    "already-replaced": (
        409,
        "conflict",
        "văn bản này đã có bản sửa đã ký: hãy sửa bản mới nhất / "
        "a signed amendment already replaces this document: amend the latest one",
    ),
    "not-a-document": (
        400,
        "structure",
        "không phải văn bản FHIR (Bundle document) / not a FHIR document Bundle",
    ),
    "id-taken": (
        409,
        "conflict",
        "mã văn bản trùng với một Composition khác / the Composition id is taken by another",
    ),
    "signed": (
        409,
        "conflict",
        "văn bản đã ký thì không sửa được: hãy lập bản sửa đổi / "
        "a signed document is immutable: amend it with a new document",
    ),
}


class DocumentError(FhirError):
    """A document that cannot be built or stored: `rule` is a stable name that pages word and
    tests key on. A FhirError, so the API answers with its status and an OperationOutcome."""

    def __init__(self, rule: str, path: str | None = None) -> None:
        status, code, text = _RULES[rule]
        super().__init__(status, Issue(code, text, path))
        self.rule = rule


# ---------------------------------------------------------------- reading FHIR values


def _key(res: Resource) -> str:
    return f"{res['resourceType']}/{res['id']}"


def _ref(reference: str) -> dict[str, str]:
    return {"reference": reference}


def _reference(res: Resource, name: str) -> str:
    return str((res.get(name) or {}).get("reference", ""))


def _codes(concepts: Iterable[dict[str, Any]] | None) -> list[str]:
    return [str(c.get("code", "")) for cc in concepts or [] for c in cc.get("coding", [])]


def _category(res: Resource) -> list[str]:
    return _codes(res.get("category"))


def _verification(res: Resource) -> list[str]:
    return _codes([res.get("verificationStatus") or {}])


def _target(value: str, default_type: str, rule: str) -> tuple[str, str]:
    """("Type", "id") from "Type/id" or a bare id; DocumentError(rule) for anything else."""
    value = value.strip()
    parts = split_ref(value) if "/" in value else (default_type, value)
    if parts is None or not _ID.fullmatch(parts[1]) or value.startswith(("http", "urn")):
        raise DocumentError(rule)
    return parts


def _read(repo: Repo, rtype: str, rid: str, rule: str) -> Resource:
    """The resource as the user may see it; DocumentError(rule) when it is not there."""
    try:
        return repo.read(rtype, rid).resource
    except FhirError as exc:
        if exc.status in (404, 410):
            raise DocumentError(rule) from None
        raise


# ---------------------------------------------------------------- narrative


def _xhtml(text: str) -> str:
    return "<br/>".join(html.escape(line) for line in text.splitlines())


def narrative(lines: Iterable[str], empty: str = "Không có.") -> dict[str, str]:
    """XHTML generated from the lines: a paragraph for one, a list for several."""
    shown = [line for line in lines if line.strip()]
    if not shown:
        body = f"<p>{html.escape(empty)}</p>"
    elif len(shown) == 1:
        body = f"<p>{_xhtml(shown[0])}</p>"
    else:
        body = "<ul>" + "".join(f"<li>{_xhtml(line)}</li>" for line in shown) + "</ul>"
    return {"status": "generated", "div": f'<div xmlns="{XHTML}">{body}</div>'}


def _flagged(text: str, flag: str) -> str:
    return f"{text} ({flag})" if flag in ("H", "L", "A") else text


def _condition(c: Resource) -> str:
    codings: list[dict[str, Any]] = (c.get("code") or {}).get("coding", [])
    coding = next((x for x in codings if x.get("system") == sy.ICD10_VN), {})
    name = str(coding.get("display") or concept_text(c.get("code")))
    label = f"{coding['code']} – {name}" if coding.get("code") else name
    return f"{label} (sơ bộ)" if "provisional" in _verification(c) else label


def _observation(o: Resource, named: bool = True) -> str:
    """ "Name: value (flag) [reference range]"; the value alone when not `named`."""
    loinc = next(
        (x.get("code", "") for x in (o.get("code") or {}).get("coding", [])
         if x.get("system") == sy.LOINC),
        "",
    )  # fmt: skip
    vital = "vital-signs" in _category(o)
    name = VITAL_NAMES.get(loinc, "") if vital else ""
    name = name or concept_text(o.get("code")) or "?"
    p = vital_point(o) if vital else point(o)
    if not p.text:
        return name if named else ""
    line = _flagged(f"{name}: {p.text}" if named else p.text, p.flag)
    ranges = reference_text(o)
    return f"{line} [{ranges}]" if ranges else line


def _reported(report: Resource, results: Iterable[Resource] = ()) -> str:
    """One line for a report: its results (each named, unless it is what the report is named
    after) and its conclusion."""
    name = concept_text(report.get("code")) or "?"
    values = [_observation(o, concept_text(o.get("code")) != name) for o in results]
    shown = "; ".join(x for x in values if x)
    line = f"{name}: {shown}" if shown else name
    if report.get("conclusion"):
        line += f" — Kết luận: {report['conclusion']}"
    return line + (" (đã sửa)" if report.get("status") in ("corrected", "amended") else "")


def _medication(m: Resource) -> str:
    med = medicine(m)
    line = f"{med.name}: {med.text}" if med.text else med.name
    if med.quantity:
        line += f"; số lượng: {med.quantity}"
    return f"{line} ({med.note})" if med.note else line


def _procedure(p: Resource) -> str:
    when = str(p.get("performedDateTime") or (p.get("performedPeriod") or {}).get("start") or "")
    name = concept_text(p.get("code")) or "?"
    return f"{name} ({when[:10]})" if when else name


def _allergy(a: Resource) -> str:
    line = concept_text(a.get("code")) or "?"
    reactions = [concept_text(m) for r in a.get("reaction", []) for m in r.get("manifestation", [])]
    if any(reactions):
        line += ": " + ", ".join(x for x in reactions if x)
    return line + (" (mức độ nặng)" if a.get("criticality") == "high" else "")


def _request(sr: Resource) -> str:
    if REFERRAL not in _category(sr):
        return concept_text(sr.get("code")) or "?"
    to = next((str(p.get("display", "")) for p in sr.get("performer", [])), "")
    line = f"Chuyển tuyến đến {to}" if to else "Chuyển tuyến"
    notes = "\n".join(str(n.get("text", "")) for n in sr.get("note", []) if n.get("text"))
    return f"{line}:\n{notes}" if notes else line


_DESCRIBE: dict[str, Callable[[Resource], str]] = {
    "Condition": _condition,
    "Observation": _observation,
    "DiagnosticReport": _reported,
    "MedicationRequest": _medication,
    "Procedure": _procedure,
    "AllergyIntolerance": _allergy,
    "ServiceRequest": _request,
}


def describe(res: Resource) -> str:
    """One line of narrative for a section entry."""
    fn = _DESCRIBE.get(str(res.get("resourceType")))
    return fn(res) if fn else concept_text(res.get("code")) or _key(res)


# ---------------------------------------------------------------- what a document holds


@dataclass(frozen=True)
class Part:
    """One section: its narrative lines and the resources it lists. `empty` is the
    list-empty-reason when it has neither (nilknown: a list known to be empty; unavailable:
    nothing was written)."""

    code: Code
    lines: tuple[str, ...] = ()
    entries: tuple[Resource, ...] = ()
    empty: str = "nilknown"


def _listing(code: Code, entries: Iterable[Resource]) -> Part:
    items = tuple(entries)
    return Part(code, tuple(describe(e) for e in items), items)


@dataclass(frozen=True)
class Content:
    """What one document says: its type, who and which stay it is about, and its sections.
    `focus` is the resource the document is about, when it is not the whole stay."""

    type: Code
    patient: Resource
    encounter: Resource | None
    parts: tuple[Part, ...]
    focus: str | None = None


@dataclass
class _Visit:
    """One encounter's record, each part read (through the repository) when first needed."""

    repo: Repo
    encounter: Resource
    patient: Resource

    def _mine(self, rtype: str) -> list[Resource]:
        """The visit's resources of one type, less those cancelled or entered in error."""
        params = [("encounter", f"Encounter/{self.encounter['id']}"), ("_count", str(MAX_ROWS))]
        found = search_all(self.repo, rtype, params)
        return [r for r in found if r.get("status") not in VOID]

    @cached_property
    def conditions(self) -> list[Resource]:
        """Ranked on the Encounter first (rank 1 is the main one), then its other diagnoses."""
        found = [c for c in self._mine("Condition") if "entered-in-error" not in _verification(c)]
        ranked = in_rank_order(self.encounter, found)
        others = [c for c in found if c not in ranked and "encounter-diagnosis" in _category(c)]
        return ranked + others

    @cached_property
    def observations(self) -> list[Resource]:
        found = self._mine("Observation")
        return sorted(found, key=lambda o: str(o.get("effectiveDateTime", "")))

    @property
    def vitals(self) -> list[Resource]:
        return [o for o in self.observations if "vital-signs" in _category(o)]

    @cached_property
    def results(self) -> list[tuple[Resource | None, list[Resource]]]:
        """Each report with its results, then each result no report of the visit lists."""
        labs = {_key(o): o for o in self.observations if "vital-signs" not in _category(o)}
        out: list[tuple[Resource | None, list[Resource]]] = []
        for r in self._mine("DiagnosticReport"):
            listed = [x.get("reference", "") for x in r.get("result", [])]
            out.append((r, [labs.pop(x) for x in listed if x in labs]))
        return out + [(None, [o]) for o in labs.values()]

    @cached_property
    def medicines(self) -> list[Resource]:
        return self._mine("MedicationRequest")

    @property
    def active_medicines(self) -> list[Resource]:
        return [m for m in self.medicines if m.get("status") == "active"]

    @cached_property
    def procedures(self) -> list[Resource]:
        return self._mine("Procedure")

    @cached_property
    def referrals(self) -> list[Resource]:
        return [r for r in self._mine("ServiceRequest") if REFERRAL in _category(r)]

    @cached_property
    def allergies(self) -> list[Resource]:
        params = [
            ("patient", f"Patient/{self.patient['id']}"),
            ("clinical-status", "active"),
            ("_count", str(MAX_ROWS)),
        ]
        found = search_all(self.repo, "AllergyIntolerance", params)
        void = {"entered-in-error", "refuted"}
        return [a for a in found if not void & set(_verification(a))]

    @cached_property
    def note(self) -> dict[str, str]:
        """The visit note's texts by section name (reason, history, exam, plan, advice)."""
        params = [
            ("encounter", f"Encounter/{self.encounter['id']}"),
            ("type", f"{sy.LOINC}|{NOTE_TYPE}"),
            ("_sort", "-date"),
            ("_count", "1"),
        ]
        found = search_all(self.repo, "Composition", params)
        return note_texts(found[0]) if found else {}

    @property
    def reason(self) -> str:
        given = "; ".join(concept_text(r) for r in self.encounter.get("reasonCode", []))
        return self.note.get("reason") or given

    @property
    def disposition(self) -> str:
        hospitalization = self.encounter.get("hospitalization") or {}
        return concept_text(hospitalization.get("dischargeDisposition"))


def _load_visit(repo: Repo, encounter: str | None) -> _Visit:
    if not encounter:
        raise DocumentError("missing-encounter")
    rtype, eid = _target(encounter, "Encounter", "unknown-encounter")
    if rtype != "Encounter":
        raise DocumentError("unknown-encounter")
    enc = _read(repo, "Encounter", eid, "unknown-encounter")
    if enc.get("status") in VOID:
        raise DocumentError("void-encounter")
    patient = _patient(repo, enc, "subject", "unknown-encounter")
    return _Visit(repo, enc, patient)


def _patient(repo: Repo, res: Resource, element: str, rule: str) -> Resource:
    parts = split_ref(_reference(res, element))
    if parts is None or parts[0] != "Patient":
        raise DocumentError(rule)
    return _read(repo, "Patient", parts[1], rule)


# ---------------------------------------------------------------- sections


def _reason(v: _Visit, code: Code) -> Part:
    return Part(code, (v.reason,) if v.reason else (), empty="unavailable")


def _diagnoses(v: _Visit, code: Code) -> Part:
    lines = tuple(
        f"{'Chẩn đoán chính' if i == 0 else 'Bệnh kèm theo'}: {_condition(c)}"
        for i, c in enumerate(v.conditions)
    )
    return Part(code, lines, tuple(v.conditions))


def _results(code: Code, groups: list[tuple[Resource | None, list[Resource]]]) -> Part:
    lines = tuple(_reported(r, obs) if r else _observation(obs[0]) for r, obs in groups)
    entries = tuple(x for r, obs in groups for x in ([r] if r else []) + obs)
    return Part(code, lines, entries)


def _advice(v: _Visit, code: Code) -> Part:
    lines = []
    if v.disposition:
        lines.append(f"Hướng xử trí: {v.disposition}")
    if v.note.get("advice"):
        lines.append(f"Lời dặn: {v.note['advice']}")
    lines += [_request(r) for r in v.referrals]
    return Part(code, tuple(lines), tuple(v.referrals), empty="unavailable")


def _instructions(v: _Visit, code: Code) -> Part:
    advice = v.note.get("advice", "")
    return Part(code, (f"Lời dặn: {advice}",) if advice else (), empty="unavailable")


def _course(v: _Visit, code: Code) -> Part:
    """The stay as the visit note tells it: history, examination, plan."""
    titles = {s.name: s.title for s in NOTE_SECTIONS}
    lines = tuple(
        f"{titles[name]}: {v.note[name]}"
        for name in ("history", "exam", "plan")
        if v.note.get(name)
    )
    return Part(code, lines, empty="unavailable")


def _visit_summary(v: _Visit) -> Content:
    parts = (
        _reason(v, REASON),
        _listing(VITALS, v.vitals),
        _diagnoses(v, DIAGNOSES),
        _results(RESULTS, v.results),
        _listing(ALLERGIES, v.allergies),
        _listing(MEDICINES, v.medicines),
        _listing(PROCEDURES, v.procedures),
        _advice(v, ADVICE),
    )
    return Content(VISIT_SUMMARY, v.patient, v.encounter, parts)


def _prescription(v: _Visit) -> Content:
    if not v.active_medicines:
        raise DocumentError("no-medicines")
    parts = (
        _diagnoses(v, DIAGNOSES),
        _listing(replace(MEDICINES, title="Thuốc điều trị"), v.active_medicines),
        _instructions(v, replace(ADVICE, title="Lời dặn")),
    )
    return Content(PRESCRIPTION, v.patient, v.encounter, parts)


def _discharge(v: _Visit) -> Content:
    if (v.encounter.get("class") or {}).get("code") not in INPATIENT:
        raise DocumentError("not-inpatient")
    parts = (
        _reason(v, replace(REASON, title="Lý do vào viện")),
        _course(v, COURSE),
        _diagnoses(v, DISCHARGE_DIAGNOSES),
        _results(RESULTS, v.results),
        _listing(PROCEDURES, v.procedures),
        _listing(DISCHARGE_MEDICINES, v.active_medicines),
        _listing(ALLERGIES, v.allergies),
        _advice(v, DISCHARGE_ADVICE),
    )
    return Content(DISCHARGE, v.patient, v.encounter, parts)


_OF_VISIT: dict[str, Callable[[_Visit], Content]] = {
    "visit-summary": _visit_summary,
    "prescription": _prescription,
    "discharge": _discharge,
}


def _is_imaging(report: Resource) -> bool:
    return bool(IMAGING_SECTIONS & set(_category(report)))


def _report_content(repo: Repo, report: str | None, encounter: str | None) -> Content:
    """One DiagnosticReport with its Observations, on the patient and stay it names."""
    if not report:
        raise DocumentError("missing-report")
    rtype, rid = _target(report, "DiagnosticReport", "not-a-report")
    if rtype != "DiagnosticReport":
        raise DocumentError("not-a-report")
    dr = _read(repo, "DiagnosticReport", rid, "unknown-report")
    if dr.get("status") in VOID:
        raise DocumentError("void-report")
    stay = _reference(dr, "encounter")
    if encounter and stay != "Encounter/" + _target(encounter, "Encounter", "report-elsewhere")[1]:
        raise DocumentError("report-elsewhere")
    enc = _read(repo, "Encounter", stay.split("/", 1)[1], "unknown-encounter") if stay else None
    patient = _patient(repo, dr, "subject", "no-patient")
    listed = [str(x.get("reference", "")) for x in dr.get("result", [])]
    found = by_ids(repo, "Observation", set(listed))
    results = [found[x] for x in listed if x in found]
    lines = [_observation(o) for o in results]
    if dr.get("conclusion"):
        lines.append(f"Kết luận: {dr['conclusion']}")
    if dr.get("status") in ("corrected", "amended"):
        lines.append("Kết quả đã được sửa.")
    imaging = _is_imaging(dr)
    section = Part(
        IMAGING_RESULTS if imaging else replace(RESULTS, title="Kết quả xét nghiệm"),
        tuple(lines),
        (dr, *results),
    )
    doc_type = IMAGING_REPORT if imaging else LAB_REPORT
    return Content(doc_type, patient, enc, (section,), focus=_key(dr))


# ---------------------------------------------------------------- the Composition


def _author(repo: Repo, author: str) -> Resource:
    rtype, rid = _target(author, "Practitioner", "unknown-author")
    if rtype not in ("Practitioner", "PractitionerRole"):
        raise DocumentError("unknown-author")
    return _read(repo, rtype, rid, "unknown-author")


def _custodian(repo: Repo, encounter: Resource | None) -> Resource | None:
    """The user's facility (which keeps the document), else the one the stay was at."""
    refs = facility_refs(repo)
    wanted = refs.organization if refs else _reference(encounter or {}, "serviceProvider")
    return by_ids(repo, "Organization", {wanted}).get(wanted) if wanted else None


def _previous(repo: Repo, replaces: str, content: Content) -> Resource:
    """The Composition an amendment replaces: the same kind of document on the same patient,
    stay and report, not yet replaced by a signed amendment."""
    rtype, rid = _target(replaces, "Composition", "unknown-replaced")
    if rtype != "Composition":
        raise DocumentError("unknown-replaced")
    old = _read(repo, "Composition", rid, "unknown-replaced")
    same = (
        content.type.code in _codes([old.get("type") or {}])
        and _reference(old, "subject") == _key(content.patient)
        and _reference(old, "encounter") == (_key(content.encounter) if content.encounter else "")
        and (content.focus is None or content.focus in {r for _p, r in references(old, "")})
    )
    if not same:
        raise DocumentError("replaces-other")
    newer = search_all(
        repo, "Composition", [("related-ref", f"Composition/{rid}"), ("_count", "20")]
    )
    if any(_signed(b) for b in _bundles(repo, [c["id"] for c in newer]).values()):
        raise DocumentError("already-replaced")
    return old


def _header(content: Content, when: str, custodian: Resource | None) -> dict[str, str]:
    """The Composition's own narrative: what, whom, where, when."""
    p = content.patient
    lines = [
        content.type.title,
        f"Người bệnh: {display_name(p)}"
        + (f", sinh ngày {p['birthDate']}" if p.get("birthDate") else ""),
        f"Cơ sở: {custodian.get('name', '')}" if custodian else "",
        f"Ngày lập: {when[:10]}",
    ]
    return narrative(lines)


def _section(part: Part) -> Resource:
    out: Resource = {
        "title": part.code.title,
        "code": part.code.concept(),
        "text": narrative(part.lines, "Không có." if part.empty == "nilknown" else "Không ghi."),
    }
    if part.entries:
        out["entry"] = [_ref(_key(e)) for e in part.entries]
    elif not part.lines:
        display = {"nilknown": "Nil Known", "unavailable": "Unavailable"}[part.empty]
        out["emptyReason"] = {
            "coding": [{"system": EMPTY_REASON, "code": part.empty, "display": display}]
        }
    return out


def _composition(
    content: Content,
    author: Resource,
    custodian: Resource | None,
    previous: Resource | None,
    when: str,
) -> Resource:
    first = (previous or {}).get("identifier")
    identifier = first if isinstance(first, dict) else {"system": URI, "value": _urn()}
    out: Resource = {
        "resourceType": "Composition",
        "id": new_id(),
        "text": _header(content, when, custodian),
        "identifier": identifier,  # the same across amendments (R4: version-independent)
        "status": "final",
        "type": {**content.type.concept(), "text": content.type.title},
        "subject": _ref(_key(content.patient)),
    }
    if content.encounter is not None:
        out["encounter"] = _ref(_key(content.encounter))
    out |= {
        "date": when,
        "author": [_ref(_key(author))],
        "title": content.type.title,
        "attester": [{"mode": "legal", "party": _ref(_key(author))}],  # the signer adds `time`
    }
    if custodian is not None:
        out["custodian"] = _ref(_key(custodian))
    if previous is not None:
        out["relatesTo"] = [{"code": "replaces", "targetReference": _ref(_key(previous))}]
    out["section"] = [_section(p) for p in content.parts]
    return out


# ---------------------------------------------------------------- the Bundle


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _unique(resources: Iterable[Resource]) -> list[Resource]:
    seen: dict[str, Resource] = {}
    for r in resources:
        seen.setdefault(_key(r), r)
    return list(seen.values())


def _full_urls(entries: list[Resource]) -> dict[str, str]:
    """ "Type/id" → fullUrl: urn:uuid of the id when it is a UUID (unless another type took it),
    else a name-based UUID of "Type/id"."""
    out: dict[str, str] = {}
    for r in entries:
        key = _key(r)
        url = f"urn:uuid:{r['id']}" if _UUID.fullmatch(str(r["id"])) else ""
        if not url or url in out.values():
            url = f"urn:uuid:{uuid.uuid5(ENTRY_NAMESPACE, key)}"
        out[key] = url
    return out


def _rewrite(node: Any, urls: dict[str, str]) -> Any:
    """A copy of `node` with each Reference.reference found in `urls` replaced by its value."""
    if isinstance(node, dict):
        return {
            k: urls.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, urls)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(v, urls) for v in node]
    return node


def _with_directory(repo: Repo, resources: list[Resource]) -> list[Resource]:
    """The resources and the Practitioners, Organizations, Locations and Medications they name,
    and those these name in turn (a clinic's parent Location, its Organization)."""
    out = list(resources)
    have = {_key(r) for r in out}
    frontier = out
    for _ in range(MAX_HOPS):
        wanted = {
            f"{parts[0]}/{parts[1]}"
            for res in frontier
            for _path, value in references(res, "")
            if not value.startswith(("http:", "https:", "urn:", "#"))
            and (parts := split_ref(value))
            and parts[0] in DIRECTORY
        } - have
        if not wanted:
            break
        frontier = [r for rtype in DIRECTORY for r in by_ids(repo, rtype, wanted).values()]
        have |= wanted
        out += frontier
    return out


def _bundle(composition: Resource, resources: list[Resource], when: str) -> Resource:
    entries = _unique([composition, *resources])
    urls = _full_urls(entries)
    return {
        "resourceType": "Bundle",
        "id": composition["id"],  # the document Bundle of Composition/X is Bundle/X
        "identifier": {"system": URI, "value": _urn()},
        "type": "document",
        "timestamp": when,
        "entry": [{"fullUrl": urls[_key(r)], "resource": _rewrite(r, urls)} for r in entries],
    }


def build_document(
    repo: Repo,
    kind: Kind,
    *,
    encounter: str | None = None,
    report: str | None = None,
    author: str,
    replaces: str | None = None,
) -> Resource:
    """The unsigned document of one kind: for an encounter ("Encounter/id" or its id), or for
    a report ("DiagnosticReport/id" or its id); `author` is the Practitioner (or
    PractitionerRole) who will sign it; `replaces` the Composition an amendment replaces.
    DocumentError (a FhirError, 4xx) for bad input."""
    if kind not in KINDS:
        raise DocumentError("unknown-kind")
    writer = _author(repo, author)
    if kind == "report":
        content = _report_content(repo, report, encounter)
    else:
        content = _OF_VISIT[kind](_load_visit(repo, encounter))
    previous = _previous(repo, replaces, content) if replaces else None
    custodian = _custodian(repo, content.encounter)
    when = stamp(now())
    composition = _composition(content, writer, custodian, previous, when)
    named = [content.patient, content.encounter, writer, custodian]
    listed = [e for part in content.parts for e in part.entries]
    resources = [r for r in named if r is not None] + listed
    return _bundle(composition, _with_directory(repo, _unique(resources)), when)


# ---------------------------------------------------------------- storing and listing


def _signed(bundle: Resource | None) -> bool:
    return bool(bundle and bundle.get("signature"))


def _head(bundle: Any) -> Resource:
    """The Composition heading a well-formed document (bdl-9, bdl-10, bdl-11), else 400."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise DocumentError("not-a-document", "Bundle")
    if bundle.get("type") != "document":
        raise DocumentError("not-a-document", "Bundle.type")
    ident = bundle.get("identifier")
    if not isinstance(ident, dict) or not ident.get("system") or not ident.get("value"):
        raise DocumentError("not-a-document", "Bundle.identifier")
    if not bundle.get("timestamp"):
        raise DocumentError("not-a-document", "Bundle.timestamp")
    entries = bundle.get("entry")
    head = entries[0].get("resource") if isinstance(entries, list) and entries else None
    if not isinstance(head, dict) or head.get("resourceType") != "Composition":
        raise DocumentError("not-a-document", "Bundle.entry[0].resource")
    if not isinstance(head.get("id"), str) or bundle.get("id", head["id"]) != head["id"]:
        raise DocumentError("not-a-document", "Bundle.id")
    if not set(_codes([head.get("type") or {}])) & KIND_OF.keys():
        raise DocumentError("not-a-document", "Bundle.entry[0].resource.type")
    return head


def _local(composition: Resource, bundle: Resource) -> Resource:
    """The Composition with references to the document's entries as local "Type/id"."""
    back = {
        str(e.get("fullUrl")): _key(e["resource"])
        for e in bundle.get("entry", [])
        if isinstance(e, dict) and e.get("fullUrl") and isinstance(e.get("resource"), dict)
    }
    out: Resource = _rewrite(composition, back)
    return out


def _may_write(repo: Repo, bid: str) -> None:
    """A document is stored anew, or over its unsigned draft; never over a signed one, nor
    over a Composition that no document holds (the visit's own note, say)."""
    bundle = repo.current_version("Bundle", bid)
    if bundle is not None and not bundle[1]:
        if _signed(repo.read("Bundle", bid).resource):
            raise DocumentError("signed")
        return
    composition = repo.current_version("Composition", bid)
    if composition is not None and not composition[1]:
        raise DocumentError("id-taken", "Composition.id")


def store_document(
    repo: Repo, bundle: Resource, provenance: Callable[[list[str]], Resource] | None = None
) -> Saved:
    """Store the Composition and the Bundle as written (its signature included), in the
    caller's transaction; a signed Bundle already stored is never overwritten (409); the
    stored Bundle.

    `provenance(targets)`: the document's Provenance, given the versions stored
    ("Composition/id/_history/N", then the Bundle's); it is stored in the same flush, so it
    is the document's only one (the repository adds none for what a Provenance names)."""
    head = _head(bundle)
    bid = str(head["id"])
    repo.lock(f"benhan-document:{bid}")  # two signers of one draft: the second sees the first
    _may_write(repo, bid)
    writes = [
        repo.prepare_update("Composition", bid, _local(head, bundle), None, "PUT", None),
        repo.prepare_update("Bundle", bid, {**bundle, "id": bid}, None, "PUT", None),
    ]
    if provenance is not None:
        targets = [f"{w.resource['resourceType']}/{bid}/_history/{w.version_id}" for w in writes]
        made = {**provenance(targets), "id": new_id()}
        known = {("Composition", bid), ("Bundle", bid)}
        repo.check_references([(made, "Provenance")], known)
        signed = repo.prepare(made, "POST", known=known)
        signed.patient_key = writes[0].patient_key  # the Composition's patient: its compartment
        writes.append(signed)
    return repo.flush(writes)[1]


def _bundles(repo: Repo, ids: Iterable[str]) -> dict[str, Resource]:
    """The stored document Bundles of these Compositions, by id."""
    found = by_ids(repo, "Bundle", {f"Bundle/{i}" for i in ids})
    return {key.split("/", 1)[1]: b for key, b in found.items()}


@dataclass(frozen=True)
class Document:
    """One document of an encounter, as a list of them shows it."""

    id: str  # the Composition's id, also its Bundle's
    kind: Kind
    title: str
    date: str
    author: str  # "Practitioner/…"
    signed: bool
    signed_at: str  # Bundle.signature.when, "" when unsigned
    replaces: str | None  # the Composition id this one replaces
    replaced_by: tuple[str, ...] = ()  # the Compositions that replace this one


def _document(c: Resource, bundle: Resource | None) -> Document:
    code = next((x for x in _codes([c.get("type") or {}]) if x in KIND_OF), "")
    old = next(
        (
            _reference(r, "targetReference")
            for r in c.get("relatesTo", [])
            if r.get("code") == "replaces"
        ),
        "",
    )
    signature = (bundle or {}).get("signature") or {}
    return Document(
        id=str(c["id"]),
        kind=KIND_OF[code],
        title=str(c.get("title", "")),
        date=str(c.get("date", "")),
        author=next((str(a.get("reference", "")) for a in c.get("author", [])), ""),
        signed=_signed(bundle),
        signed_at=str(signature.get("when", "")),
        replaces=old.split("/", 1)[1] if old.startswith("Composition/") else None,
    )


def documents_of(repo: Repo, encounter: str) -> list[Document]:
    """The documents of an encounter, newest first: kind, date, signed or not, and which
    replaces which. DocumentError 404 when the encounter is not there for this user."""
    rtype, eid = _target(encounter, "Encounter", "unknown-encounter")
    if rtype != "Encounter":
        raise DocumentError("unknown-encounter")
    _read(repo, "Encounter", eid, "unknown-encounter")
    kinds = ",".join(f"{sy.LOINC}|{code}" for code in KIND_OF)
    params = [("encounter", f"Encounter/{eid}"), ("type", kinds), ("_count", str(MAX_DOCUMENTS))]
    found = search_all(repo, "Composition", params)
    bundles = _bundles(repo, [c["id"] for c in found])
    docs = [_document(c, bundles.get(c["id"])) for c in found]
    newer: dict[str, list[str]] = {}
    for d in docs:
        if d.replaces:
            newer.setdefault(d.replaces, []).append(d.id)
    listed = [replace(d, replaced_by=tuple(newer.get(d.id, ()))) for d in docs]
    return sorted(listed, key=lambda d: (d.date, d.id), reverse=True)


__all__ = [
    "KINDS",
    "Document",
    "DocumentError",
    "Kind",
    "build_document",
    "describe",
    "documents_of",
    "narrative",
    "store_document",
]
