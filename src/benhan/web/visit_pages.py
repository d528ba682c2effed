"""Documenting a visit: one page, a small form per section, each posting on its own.

With htmx a form re-renders only its section (the 400 or 409 of a refused form too: base.html
tells htmx to swap them in); without JavaScript the same form posts normally and the page comes
back whole. Doctors write everything; nurses record vital signs and allergies; a closed visit is
read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from benhan.access import Role
from benhan.catalog.drugs import Drug
from benhan.catalog.icd10 import search as icd10_search
from benhan.catalog.services import Service, services
from benhan.emr import closing
from benhan.emr import prescribing as rx
from benhan.emr import visit as v
from benhan.emr.model import display_name, local_now, queue_label, queue_times, search_all
from benhan.emr.prescribing import Alert, squash
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.outcome import FhirError
from benhan.store.repository import Repo
from benhan.store.unit import unit
from benhan.web.forms import FHIR_ID, Field, Message, forbidden, guard, guard_post, page, store_of
from benhan.web.i18n import N_
from benhan.web.rendering import PageRoute
from benhan.web.session import PageSession

router = APIRouter(route_class=PageRoute, include_in_schema=False)

SECTIONS = ("notes", "vitals", "diagnoses", "orders", "prescriptions", "allergies", "close")
NURSE_SECTIONS = frozenset({"vitals", "allergies"})
SEARCHES = {"icd10": "dx_q", "service": "sv_q", "drug": "rx_q", "org": "org_q"}
RESULTS = 15  # picks shown per search: the user types more to narrow

RULES: dict[str, str] = {
    "closed": N_("Lượt khám đã kết thúc: không sửa được nữa."),
    "required": N_("Hãy nhập mục này."),
    "too-long": N_("Quá dài: tối đa %(max)s ký tự."),
    "not-a-number": N_("Hãy nhập một con số."),
    "out-of-range": N_("Giá trị không hợp lý: từ %(low)s đến %(high)s."),
    "bp-pair": N_("Huyết áp cần cả tâm thu và tâm trương."),
    "bp-order": N_("Huyết áp tâm trương phải thấp hơn tâm thu."),
    "empty": N_("Hãy nhập ít nhất một chỉ số sinh tồn."),
    "unknown-icd": N_("Mã ICD-10 %(code)s không có trong danh mục."),
    "already-diagnosed": N_("Chẩn đoán %(code)s đã có trong lượt khám."),
    "not-in-visit": N_("Chẩn đoán này không thuộc lượt khám."),
    "unknown-service": N_("Không có dịch vụ xét nghiệm hay chẩn đoán hình ảnh mã %(code)s."),
    "already-ordered": N_("%(name)s đã được chỉ định trong lượt khám."),
    "unknown-drug": N_("Thuốc này không có trong danh mục."),
    "dose-range": N_("Liều mỗi lần phải lớn hơn 0 và không quá %(max)s."),
    "per-day-range": N_("Số lần mỗi ngày là số nguyên từ 1 đến %(max)s."),
    "days-range": N_("Số ngày là số nguyên từ 1 đến %(max)s."),
    "quantity-range": N_("Số lượng phải lớn hơn 0 và không quá %(max)s."),
    "override-reason": N_("Hãy ghi lý do vẫn kê đơn (5–500 ký tự)."),
    "unknown-class": N_("Hãy chọn nhóm thuốc trong danh sách."),
    "unknown-choice": N_("Hãy chọn một mục trong danh sách."),
    "unknown-facility": N_("Không tìm thấy cơ sở nhận chuyển tuyến này."),
    "needs-diagnosis": N_("Hãy ghi chẩn đoán trước khi kết thúc lượt khám."),
}
SAVED = {
    "notes": N_("Đã lưu phần khám bệnh."),
    "vitals": N_("Đã lưu dấu hiệu sinh tồn."),
    "diagnoses": N_("Đã cập nhật chẩn đoán."),
    "orders": N_("Đã chỉ định."),
    "prescriptions": N_("Đã kê thuốc."),
    "allergies": N_("Đã ghi dị ứng."),
    "close": N_("Đã kết thúc lượt khám."),
}
NOT_FOUND = N_("Không tìm thấy lượt khám này.")
NOT_SAVED = N_("Không lưu được: dữ liệu không hợp lệ.")


def _may_view(r: Role) -> bool:
    return r.code in ("doctor", "nurse")


def _may_write(section: str) -> Callable[[Role], bool]:
    return lambda r: r.code == "doctor" or (r.code == "nurse" and section in NURSE_SECTIONS)


def _htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


@dataclass
class Outcome:
    """What a section shows after a submit: the form as typed and what is wrong, or a notice."""

    form: dict[str, str] = field(default_factory=dict)
    problems: dict[str, Message] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    notice: Message | None = None


# ---------------------------------------------------------------- the page


@router.get("/visit/{encounter_id}", name="visit")
def visit_page(request: Request, encounter_id: str) -> Response:
    s = guard(request, _may_view)
    if isinstance(s, Response):
        return s
    # A drug picked from the search fills the prescription form: htmx takes just that section.
    focus = "prescriptions" if request.query_params.get("drug") and _htmx(request) else None
    return _render(request, s, encounter_id, focus, Outcome(), start=True)


@router.get("/visit/{encounter_id}/search/{kind}", name="visit_search")
def visit_search(request: Request, encounter_id: str, kind: str) -> Response:
    s = guard(request, _may_write("prescriptions"))
    if isinstance(s, Response):
        return s
    if kind not in SEARCHES or not FHIR_ID.match(encounter_id):
        return _not_found(request)
    text = request.query_params.get(SEARCHES[kind], "")[:100]
    with unit(store_of(request), s.actor, write=False) as repo:
        found = _search(repo, kind, text)
    ctx = {
        "kind": kind,
        "items": found,
        "q": text,
        "eid": encounter_id,
        "drug_key": rx.drug_key,
    }
    return page(request, "partials/visit_results.html", ctx)


def _render(
    request: Request,
    s: PageSession,
    encounter_id: str,
    focus: str | None,
    outcome: Outcome,
    status: int = 200,
    *,
    start: bool = False,
) -> Response:
    if not FHIR_ID.match(encounter_id):
        return _not_found(request)
    try:
        with unit(store_of(request), s.actor, write=False) as repo:
            view = v.load(repo, encounter_id)
            searches = {
                k: _search(repo, k, request.query_params.get(p, "")) for k, p in SEARCHES.items()
            }
        if start and s.actor.role.code == "doctor" and view.encounter.get("status") == "arrived":
            with unit(store_of(request), s.actor, write=True) as repo:
                view = replace(
                    view, encounter=v.start(repo, view.encounter, s.actor.practitioner, local_now())
                )
    except FhirError as exc:
        return forbidden(request) if exc.status == 403 else _not_found(request)
    ctx = _context(request, s, view, focus, outcome, searches)
    ctx["oob"] = focus == "allergies" and _htmx(request)  # the header's allergy band too
    if focus and _htmx(request):
        return page(request, f"partials/visit_{focus}.html", ctx, status)
    return page(request, "visit.html", ctx, status)


def _not_found(request: Request) -> Response:
    return page(request, "error.html", {"message": NOT_FOUND, "values": {}}, 404)


def _search(repo: Repo, kind: str, text: str) -> list[Any]:
    text = text.strip()
    if not text:
        return []
    if kind == "icd10":
        return icd10_search(text, RESULTS)
    if kind == "service":
        return _match(
            text, [x for x in services().values() if x.kind in v.ORDER_KINDS], _service_words
        )
    if kind == "drug":
        return _match(text, list(rx.drugs_by_key().values()), _drug_words)
    return _facilities(repo, text)


def _service_words(x: Service) -> str:
    return f"{x.code} {x.name}"


def _drug_words(d: Drug) -> str:
    return f"{d.code} {d.name} {d.ingredient} {d.strength} {d.atc}"


def _match(text: str, items: list[Any], words: Callable[[Any], str]) -> list[Any]:
    """Items holding every typed word as a word prefix, accent-insensitive."""
    wanted = squash(text).split()
    out = []
    for item in items:
        have = squash(words(item)).split()
        if all(any(h.startswith(w) for h in have) for w in wanted):
            out.append(item)
            if len(out) == RESULTS:
                break
    return out


def _facilities(repo: Repo, text: str) -> list[Resource]:
    """Facilities of the registry by name, the user's own left out (one cannot refer to it)."""
    # Every typed word anywhere in the name: "tinh bac" finds "Bệnh viện Tỉnh Bắc Ninh".
    words = [("name:contains", w) for w in text.split()[:4]]
    params = [*words, ("identifier", f"{sy.MA_CSKCB}|"), ("_count", str(RESULTS + 1))]
    orgs = search_all(repo, "Organization", params)
    return [o for o in orgs if repo.facility not in _cskcb(o)][:RESULTS]


def _cskcb(org: Resource) -> list[str]:
    return [i.get("value", "") for i in org.get("identifier", []) if i.get("system") == sy.MA_CSKCB]


# ---------------------------------------------------------------- what the page shows


def _context(
    request: Request,
    s: PageSession,
    view: v.VisitView,
    focus: str | None,
    outcome: Outcome,
    searches: dict[str, list[Any]],
) -> dict[str, Any]:
    role = s.actor.role.code
    may = set() if view.closed else set(SECTIONS) if role == "doctor" else set(NURSE_SECTIONS)
    forms = _forms(request, view)
    if focus and outcome.form:
        forms[focus] = {**forms[focus], **outcome.form}
    chosen = rx.drugs_by_key().get(forms["prescriptions"].get("drug", ""))
    return {
        "view": view,
        "eid": view.encounter["id"],
        "head": _head(view),
        "may": may,
        "focus": focus,
        "forms": forms,
        "problems": outcome.problems,
        "alerts": outcome.alerts,
        "blocking": any(a.blocking for a in outcome.alerts),
        "notice": outcome.notice,
        "searches": searches,
        "search_text": {k: request.query_params.get(p, "") for k, p in SEARCHES.items()},
        "chosen": chosen,
        "vitals": v.VITALS,
        "vital_rows": _vital_rows(view.vitals),
        "diagnoses": [_diagnosis_row(c, i) for i, c in enumerate(view.conditions, start=1)],
        "orders": [_order_row(o, view) for o in view.orders],
        "prescriptions": [_prescription_row(m) for m in view.prescriptions],
        "allergies": [_allergy_row(a) for a in view.allergies],
        "allergy_classes": v.ALLERGY_CLASSES,
        "dispositions": closing.DISPOSITIONS,
        "referral": view.referrals[0] if view.referrals else None,
        "disposition": _disposition(view.encounter),
        "drug_key": rx.drug_key,
    }


def _forms(request: Request, view: v.VisitView) -> dict[str, dict[str, str]]:
    """Each section's form as the page first shows it."""
    forms: dict[str, dict[str, str]] = {name: {} for name in SECTIONS}
    forms["notes"] = {k: t for k, t in v.note_texts(view.note).items() if k in v.NOTE_FIELDS}
    key = request.query_params.get("drug", "")
    drug = rx.drugs_by_key().get(key)
    if drug is not None:
        forms["prescriptions"] = {
            "drug": key,
            "dose": str(drug.dose or ""),
            "per_day": str(drug.per_day or ""),
            "days": str(drug.days or ""),
        }
    forms["close"] = {"disposition": "home"}
    return forms


def _age(birth: str | None, today: date) -> int | None:
    if not birth or len(birth) < 4:
        return None
    born = date.fromisoformat(birth) if len(birth) == 10 else date(int(birth[:4]), 1, 1)
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _head(view: v.VisitView) -> dict[str, Any]:
    times = queue_times(view.encounter)
    clinic = next((t.get("text", "") for t in view.encounter.get("type", [])), "")
    return {
        "name": display_name(view.patient),
        "patient_id": view.patient["id"],
        "age": _age(view.patient.get("birthDate"), local_now().date()),
        "gender": view.patient.get("gender", "unknown"),
        "queue": queue_label(view.encounter),
        "clinic": clinic,
        "times": times,
        "status": view.encounter.get("status", ""),
    }


VITAL_LABELS = {
    "85354-9": N_("Huyết áp"),
    "8867-4": N_("Mạch"),
    "8310-5": N_("Nhiệt độ"),
    "9279-1": N_("Nhịp thở"),
    "59408-5": N_("SpO₂"),
    "29463-7": N_("Cân nặng"),
    "8302-2": N_("Chiều cao"),
    "39156-5": N_("BMI"),
}
UNITS = {"mm[Hg]": "mmHg", "Cel": "°C", "/min": N_("lần/phút"), "kg/m2": "kg/m²"}


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _vital_rows(vitals: list[Resource]) -> list[dict[str, str]]:
    rows = []
    for o in vitals:
        code = next((c["code"] for c in o["code"].get("coding", [])), "")
        if "component" in o:
            parts = [_num(c["valueQuantity"]["value"]) for c in o["component"]]
            value, unit = "/".join(parts), "mm[Hg]"
        else:
            q = o.get("valueQuantity") or {}
            value, unit = _num(q.get("value", "")), q.get("code") or q.get("unit", "")
        label = VITAL_LABELS.get(code, o["code"].get("text", code))
        rows.append(
            {
                "label": label,
                "value": value,
                "unit": UNITS.get(unit, unit),
                "when": o.get("effectiveDateTime", ""),
            }
        )
    return rows


def _diagnosis_row(c: Resource, rank: int) -> dict[str, Any]:
    coding: dict[str, str] = next(iter(c["code"].get("coding", [])), {})
    verification = next((x["code"] for x in c.get("verificationStatus", {}).get("coding", [])), "")
    return {
        "id": c["id"],
        "code": coding.get("code", ""),
        "name": coding.get("display", ""),
        "main": rank == 1,
        "provisional": verification == "provisional",
    }


def _order_row(o: Resource, view: v.VisitView) -> dict[str, Any]:
    me = f"ServiceRequest/{o['id']}"
    reports = [r for r in view.reports if me in [b.get("reference") for b in r.get("basedOn", [])]]
    in_reports = {x["reference"] for r in reports for x in r.get("result", [])}
    results = [
        closing.result_label(obs)
        for obs in view.labs
        if f"Observation/{obs['id']}" in in_reports
        or me in [b.get("reference") for b in obs.get("basedOn", [])]
    ]
    category = next((c["code"] for cc in o.get("category", []) for c in cc.get("coding", [])), "")
    return {
        "name": o.get("code", {}).get("text", ""),
        "kind": "imaging" if category == "363679005" else "lab",
        "status": o.get("status", ""),
        "results": [r for r in results if r],
        "conclusion": next((r.get("conclusion", "") for r in reports if r.get("conclusion")), ""),
        "reported": bool(reports),
    }


def _prescription_row(m: Resource) -> dict[str, Any]:
    quantity = (m.get("dispenseRequest") or {}).get("quantity") or {}
    return {
        "name": (m.get("medicationCodeableConcept") or {}).get("text", ""),
        "dosage": next((d.get("text", "") for d in m.get("dosageInstruction", [])), ""),
        "quantity": f"{_num(quantity.get('value', ''))} {quantity.get('unit', '')}".strip(),
        "overridden": bool(m.get("detectedIssue")),
        "status": m.get("status", ""),
    }


def _allergy_row(a: Resource) -> dict[str, str]:
    reaction = next(
        (x.get("text", "") for r in a.get("reaction", []) for x in r.get("manifestation", [])), ""
    )
    return {
        "substance": (a.get("code") or {}).get("text", ""),
        "criticality": a.get("criticality", ""),
        "reaction": reaction,
    }


def _disposition(encounter: Resource) -> str:
    d = (encounter.get("hospitalization") or {}).get("dischargeDisposition") or {}
    return next((c.get("code", "") for c in d.get("coding", [])), "")


# ---------------------------------------------------------------- the forms

Act = Callable[[Repo, v.Visit], Outcome | None]


def _submit(
    request: Request, encounter_id: str, csrf: str, section: str, form: dict[str, str], act: Act
) -> Response:
    """Check, write in one unit of work, answer with the section (htmx) or the page."""
    s = guard_post(request, csrf, _may_write(section))
    if isinstance(s, Response):
        return s
    if not FHIR_ID.match(encounter_id):
        return _not_found(request)
    author = v.author_of(s.actor.practitioner, s.account.display_name)
    try:
        with unit(store_of(request), s.actor, write=True) as repo:
            done = act(repo, v.open_visit(repo, encounter_id, author, local_now())) or Outcome()
    except v.VisitError as exc:
        problems = {p.field: Message(RULES[p.rule], p.values) for p in exc.problems}
        return _render(request, s, encounter_id, section, Outcome(form, problems), exc.status)
    except rx.Blocked as exc:
        return _render(request, s, encounter_id, section, Outcome(form, alerts=exc.alerts), 409)
    except FhirError as exc:
        if exc.status in (404, 410):
            return _not_found(request)
        if exc.status == 403:
            return forbidden(request)
        bad = {"form": Message(NOT_SAVED)}
        return _render(request, s, encounter_id, section, Outcome(form, bad), 400)
    if not _htmx(request):
        path = request.url_for("visit", encounter_id=encounter_id).path
        return RedirectResponse(f"{path}#visit-{section}", status_code=303)
    done.notice = done.notice or Message(SAVED[section])
    return _render(request, s, encounter_id, section, done)


@router.post("/visit/{encounter_id}/notes", name="visit_notes")
def post_notes(
    request: Request,
    encounter_id: str,
    csrf: Field = "",
    reason: Field = "",
    history: Field = "",
    exam: Field = "",
    plan: Field = "",
) -> Response:
    form = {"reason": reason, "history": history, "exam": exam, "plan": plan}
    return _submit(
        request,
        encounter_id,
        csrf,
        "notes",
        form,
        lambda repo, visit: _none(v.save_notes(repo, visit, v.parse_notes(form))),
    )


@router.post("/visit/{encounter_id}/vitals", name="visit_vitals")
async def post_vitals(request: Request, encounter_id: str) -> Response:
    data = await request.form()  # the fields come from v.VITALS, not from a signature
    form = {x.name: str(data.get(x.name, "")) for x in v.VITALS}
    # The database work in the thread pool, as for the plain `def` routes: never on the loop.
    return await run_in_threadpool(
        _submit,
        request,
        encounter_id,
        str(data.get("csrf", "")),
        "vitals",
        form,
        lambda repo, visit: _none(v.record_vitals(repo, visit, v.parse_vitals(form))),
    )


@router.post("/visit/{encounter_id}/diagnoses", name="visit_diagnosis")
def post_diagnosis(
    request: Request,
    encounter_id: str,
    csrf: Field = "",
    code: Field = "",
    main: Field = "",
    provisional: Field = "",
) -> Response:
    form = {"code": code, "main": main, "provisional": provisional}

    def act(repo: Repo, visit: v.Visit) -> None:
        found = v.parse_icd(code)
        v.add_diagnosis(repo, visit, found, main=bool(main), provisional=bool(provisional))

    return _submit(request, encounter_id, csrf, "diagnoses", form, act)


@router.post("/visit/{encounter_id}/diagnoses/{condition_id}/remove", name="visit_diagnosis_remove")
def post_diagnosis_remove(
    request: Request, encounter_id: str, condition_id: str, csrf: Field = ""
) -> Response:
    def act(repo: Repo, visit: v.Visit) -> None:
        if not FHIR_ID.match(condition_id):
            raise v.VisitError(v.Problem("condition", "not-in-visit"))
        v.remove_diagnosis(repo, visit, condition_id)

    return _submit(request, encounter_id, csrf, "diagnoses", {}, act)


@router.post("/visit/{encounter_id}/orders", name="visit_order")
def post_order(
    request: Request, encounter_id: str, csrf: Field = "", service: Field = ""
) -> Response:
    return _submit(
        request,
        encounter_id,
        csrf,
        "orders",
        {"service": service},
        lambda repo, visit: _none(v.place_order(repo, visit, v.parse_service(service))),
    )


@router.post("/visit/{encounter_id}/prescriptions", name="visit_prescribe")
def post_prescription(
    request: Request,
    encounter_id: str,
    csrf: Field = "",
    drug: Field = "",
    dose: Field = "",
    per_day: Field = "",
    days: Field = "",
    quantity: Field = "",
    override: Field = "",
    override_reason: Field = "",
) -> Response:
    form = {
        "drug": drug,
        "dose": dose,
        "per_day": per_day,
        "days": days,
        "quantity": quantity,
        "override": override,
        "override_reason": override_reason,
    }

    def act(repo: Repo, visit: v.Visit) -> Outcome:
        chosen = rx.parse_drug(drug)
        dosage = rx.parse_dosage(form)
        done = rx.prescribe(
            repo, visit, chosen, dosage, override=bool(override), reason=override_reason
        )
        return Outcome(alerts=done.notes)

    return _submit(request, encounter_id, csrf, "prescriptions", form, act)


@router.post("/visit/{encounter_id}/allergies", name="visit_allergy")
def post_allergy(
    request: Request,
    encounter_id: str,
    csrf: Field = "",
    substance: Field = "",
    atc: Field = "",
    criticality: Field = "",
    reaction: Field = "",
) -> Response:
    form = {"substance": substance, "atc": atc, "criticality": criticality, "reaction": reaction}
    return _submit(
        request,
        encounter_id,
        csrf,
        "allergies",
        form,
        lambda repo, visit: _none(v.record_allergy(repo, visit, v.parse_allergy(form))),
    )


@router.post("/visit/{encounter_id}/close", name="visit_close")
def post_close(
    request: Request,
    encounter_id: str,
    csrf: Field = "",
    disposition: Field = "",
    advice: Field = "",
    referral_to: Field = "",
    summary: Field = "",
) -> Response:
    form = {
        "disposition": disposition,
        "advice": advice,
        "referral_to": referral_to,
        "summary": summary,
    }
    return _submit(
        request,
        encounter_id,
        csrf,
        "close",
        form,
        lambda repo, visit: _none(closing.close_visit(repo, visit, closing.parse_closing(form))),
    )


def _none(_: object) -> None:
    """The writers return ids; the section re-reads what it shows."""
    return None
