"""The registration desk: find a person, create or update them, check the insurance card, issue
a queue number and print the ticket."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from benhan.access import Reach, Role
from benhan.emr import clinics as clinic_list
from benhan.emr import queue
from benhan.emr.citizen_card import CardError
from benhan.emr.clinics import Clinic
from benhan.emr.insurance import CardCheck, check_card
from benhan.emr.lookup import LIMIT, find, understand
from benhan.emr.model import (
    FacilityRefs,
    display_name,
    facility_refs,
    local_now,
    parse_stamp,
    queue_label,
    search_all,
)
from benhan.emr.registration import (
    AlreadyQueued,
    Person,
    PersonError,
    Problems,
    SavedPerson,
    address_text,
    coverages,
    identifier,
    person_from_card,
    phone_of,
    read_person,
    record_coverage,
    register_visit,
    save_person,
)
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.outcome import FhirError, not_found
from benhan.store.repository import Repo
from benhan.store.unit import unit
from benhan.web.forms import FHIR_ID, Field, Message, guard, guard_post, page, see_other, store_of
from benhan.web.i18n import N_
from benhan.web.rendering import PageRoute, language
from benhan.web.session import PageSession

router = APIRouter(route_class=PageRoute, include_in_schema=False)

DESK_ROLES = ("registrar", "nurse")  # a nurse at a small station also receives people
MAX_OFFSET = 2000  # pages of a name search end here: a search that broad should be narrowed
PERSON_FIELDS = ("name", "birth_date", "sex", "cccd", "cmnd", "phone", "address")
CARD_FIELDS = ("number", "valid_from", "valid_to")
LABELS = {
    "name": N_("Họ và tên"),
    "birth_date": N_("Ngày sinh"),
    "sex": N_("Giới tính"),
    "cccd": N_("Số định danh (CCCD)"),
    "cmnd": N_("Số CMND cũ"),
    "phone": N_("Điện thoại"),
    "address": N_("Địa chỉ thường trú"),
    "issued": N_("Ngày cấp"),
    "qr": N_("Mã QR"),
    "number": N_("Số thẻ BHYT"),
    "valid_from": N_("Giá trị từ ngày"),
    "valid_to": N_("Giá trị đến ngày"),
    "clinic": N_("Phòng khám"),
}
SEX_LABELS = {"male": N_("Nam"), "female": N_("Nữ"), "other": N_("Khác")}
NO_FACILITY = Message(N_("Cơ sở của bạn chưa có trong danh mục cơ sở: chưa tiếp đón được."))


def may_view(r: Role) -> bool:
    return r.code in DESK_ROLES and r.scopes.allows("Patient", "s")


def may_edit(r: Role) -> bool:
    """Create and update people and their cards (the registrar; a nurse only reads them)."""
    return may_view(r) and all(
        r.scopes.allows(t, a) for t in ("Patient", "Coverage") for a in ("c", "u")
    )


def may_register(r: Role) -> bool:
    return may_view(r) and r.scopes.allows("Encounter", "c")


def may_see_queue(r: Role) -> bool:
    return r.reach is Reach.FACILITY and r.scopes.allows("Encounter", "s")


def bilingual(text: str, lang: str) -> str:
    """The half of a "tiếng Việt / English" text that the page speaks."""
    vi, sep, en = text.partition(" / ")
    return en if sep and lang == "en" else vi


def problem_list(request: Request, problems: Problems) -> dict[str, str]:
    """field → what is wrong with it, in the page's language (the first problem per field)."""
    lang = language(request)
    out: dict[str, str] = {}
    for field, text in problems:
        out.setdefault(field, bilingual(text, lang))
    return out


@contextmanager
def desk_unit(
    request: Request, s: PageSession, *, write: bool
) -> Iterator[tuple[Repo, FacilityRefs]]:
    """A unit of work with the user's facility, or a page saying the facility is not set up.

    A refusal of the repository (403, 404, 410) leaves the unit as it recorded it in the audit
    trail, then becomes the 404 page: a page never says what exists beyond the user's reach.
    """
    pending: HTTPException | None = None
    try:
        with unit(store_of(request), s.actor, write=write) as repo:
            refs = facility_refs(repo)
            if refs is None:
                pending = HTTPException(409, "facility")
            else:
                yield repo, refs
    except FhirError as exc:
        if exc.status in (403, 404, 410):
            raise HTTPException(404) from None
        raise
    if pending is not None:
        raise pending


def check_id(value: str, rtype: str = "Resource") -> str:
    """A well-formed id, or a not-found the repository's way (desk_unit and the page error
    handler turn it into the 404 page; the audit trail records a 404, not a failure)."""
    if not FHIR_ID.match(value):
        raise not_found(rtype, value[:64])
    return value


def read_or_404(repo: Repo, rtype: str, rid: str) -> Resource:
    return repo.read(rtype, check_id(rid, rtype)).resource


# ---- search ---------------------------------------------------------------------------------


# Searches are POSTed: a name, a CCCD or a QR text must never sit in a URL (access logs, history).


@router.get("/desk", name="desk")
def desk(request: Request) -> Response:
    s = guard(request, may_view)
    if isinstance(s, Response):
        return s
    return _desk(request, s, "", "desk.html")


@router.post("/desk", name="desk_find")
def desk_find(request: Request, csrf: Field = "", q: Field = "", offset: Field = "") -> Response:
    """The search without JavaScript: the whole page with its results."""
    s = guard_post(request, csrf, may_view)
    if isinstance(s, Response):
        return s
    return _desk(request, s, q, "desk.html", _offset(offset))


@router.post("/desk/search", name="desk_search")
def desk_search(request: Request, csrf: Field = "", q: Field = "", offset: Field = "") -> Response:
    """The results alone, for the search box as the user types and for its pages (htmx)."""
    s = guard_post(request, csrf, may_view)
    if isinstance(s, Response):
        return s
    return _desk(request, s, q, "partials/desk_results.html", _offset(offset))


def _offset(value: str) -> int:
    """A page's start; anything but a small whole number is the first page."""
    v = value.strip()
    return int(v) if v.isdigit() and int(v) <= MAX_OFFSET else 0


def _desk(request: Request, s: PageSession, q: str, template: str, offset: int = 0) -> Response:
    ctx = _results(request, s, q, offset) if q.strip() else {"q": q, "searched": False}
    extra = {"may_edit": may_edit(s.actor.role), "labels": LABELS}
    return page(request, template, {**ctx, **extra})


def _results(request: Request, s: PageSession, q: str, offset: int = 0) -> dict[str, Any]:
    today = local_now().date()
    try:
        query = understand(q[:2000], today=today)
    except CardError as err:
        problems = [(p.field, p.text) for p in err.problems]
        return {
            "q": q,
            "searched": True,
            "rows": [],
            "qr_problems": problem_list(request, problems),
        }
    with unit(store_of(request), s.actor, write=False) as repo:
        people, more = find(repo, query, offset)
        last = _last_visits(repo, [p["id"] for p in people])
    rows = [_row(p, last.get(p["id"])) for p in people]
    card = query.card
    return {
        "q": q,
        "searched": True,
        "kind": query.kind,
        "rows": rows,
        "card": card,
        "qr_problems": {},
        "prefill_cccd": q.strip() if query.kind == "cccd" else "",
        "offset": offset,
        "previous": max(offset - LIMIT, 0) if offset else None,
        "next": offset + LIMIT if more else None,
    }


def _last_visits(repo: Repo, patient_ids: list[str]) -> dict[str, str]:
    """Each person's latest visit start, in one search (not one per row)."""
    if not patient_ids:
        return {}
    subjects = ",".join(f"Patient/{pid}" for pid in patient_ids)
    found = search_all(
        repo, "Encounter", [("subject", subjects), ("_sort", "-date"), ("_count", "200")]
    )
    last: dict[str, str] = {}
    for e in found:
        pid = (e.get("subject") or {}).get("reference", "").removeprefix("Patient/")
        start = (e.get("period") or {}).get("start")
        if pid and start:
            last.setdefault(pid, start)
    return last


def _row(patient: Resource, last_visit: str | None) -> dict[str, Any]:
    return {
        "id": patient["id"],
        "name": display_name(patient),
        "birth": patient.get("birthDate", ""),
        "sex": patient.get("gender", ""),
        "cccd": identifier(patient, sy.CCCD),
        "last_visit": parse_stamp(last_visit),
    }


# ---- the person -------------------------------------------------------------------------------


def _form_of(patient: Resource | None) -> dict[str, str]:
    if patient is None:
        return dict.fromkeys(PERSON_FIELDS, "")
    return {
        "name": display_name(patient),
        "birth_date": patient.get("birthDate", ""),
        "sex": patient.get("gender", ""),
        "cccd": identifier(patient, sy.CCCD),
        "cmnd": identifier(patient, sy.CMND),
        "phone": phone_of(patient),
        "address": address_text(patient),
    }


def _card_form(person: Person) -> dict[str, str]:
    return {
        "name": person.name,
        "birth_date": person.birth_date.isoformat(),
        "sex": person.sex,
        "cccd": person.cccd or "",
        "cmnd": person.cmnd or "",
        "phone": "",
        "address": person.address or "",
    }


@dataclass
class PatientView:
    """What the patient page shows besides the form."""

    patient: Resource | None = None
    code: str = ""
    cards: list[dict[str, Any]] | None = None
    clinics: list[dict[str, Any]] | None = None
    active: list[dict[str, Any]] | None = None


def _patient_page(
    request: Request,
    s: PageSession,
    patient_id: str | None,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    card_form: dict[str, str] | None = None,
    card_errors: dict[str, str] | None = None,
    notice: Message | None = None,
    error: Message | None = None,
    status: int = 200,
) -> Response:
    view = PatientView()
    if patient_id is not None:
        with desk_unit(request, s, write=False) as (repo, refs):
            view = _view(repo, refs, patient_id)
    latest = (view.cards or [{}])[0]
    ctx = {
        "patient_id": patient_id,
        "view": view,
        "form": form or _form_of(view.patient),
        "errors": errors or {},
        "card_form": card_form
        or {
            "number": latest.get("number", ""),
            "valid_from": latest.get("valid_from", ""),
            "valid_to": latest.get("valid_to", ""),
        },
        "card_errors": card_errors or {},
        "labels": LABELS,
        "sexes": SEX_LABELS,
        "notice": notice,
        "error": error,
        "may_edit": may_edit(s.actor.role),
        "may_register": may_register(s.actor.role),
    }
    return page(request, "desk_patient.html", ctx, status)


def _view(repo: Repo, refs: FacilityRefs, patient_id: str) -> PatientView:
    patient = read_or_404(repo, "Patient", patient_id)
    today = local_now().date()
    rooms = clinic_list.clinics(repo, refs)
    waiting = queue.waiting_by_clinic(repo, refs.organization, today)
    active = [
        {"id": e["id"], "label": queue_label(e), "clinic": _clinic_name(rooms, queue.clinic_of(e))}
        for e in queue.under_way(repo, refs.organization, patient_id, today)
    ]
    return PatientView(
        patient=patient,
        code=identifier(patient, sy.ma_bn(refs.code)),
        cards=[_card_view(c, today) for c in coverages(repo, patient_id)],
        clinics=[{"clinic": c, "waiting": waiting.get(c.id, 0)} for c in rooms],
        active=active,
    )


def _clinic_name(rooms: list[Clinic], clinic_id: str | None) -> str:
    return next((c.name for c in rooms if c.id == clinic_id), "")


def _card_view(coverage: Resource, today: date) -> dict[str, Any]:
    period = coverage.get("period") or {}
    number = next(
        (i["value"] for i in coverage.get("identifier", []) if i.get("system") == sy.BHYT), ""
    )
    valid_from, valid_to = period.get("start", ""), period.get("end", "")
    end = _iso(valid_to)
    return {
        "number": number,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "check": check_card(number, _iso(valid_from), end, today=today),
        "days_left": (end - today).days if end else None,
    }


def _iso(value: str) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


@router.get("/desk/patient", name="desk_new")
def desk_new(request: Request) -> Response:
    s = guard(request, may_edit)
    if isinstance(s, Response):
        return s
    return _patient_page(request, s, None)


@router.post("/desk/patient/prefill", name="desk_prefill")
def desk_prefill(request: Request, csrf: Field = "", qr: Field = "", cccd: Field = "") -> Response:
    """The new-person form filled from a scanned QR text or a searched CCCD (a POST: neither
    enters a URL)."""
    s = guard_post(request, csrf, may_edit)
    if isinstance(s, Response):
        return s
    form = _form_of(None)
    if qr.strip():
        try:
            card = understand(qr[:2000], today=local_now().date()).card
        except CardError as err:
            errors = problem_list(request, [(p.field, p.text) for p in err.problems])
            return _patient_page(request, s, None, errors=errors, status=400)
        form = _card_form(person_from_card(card)) if card else form
    elif re.fullmatch(r"\d{12}", cccd.strip()):
        form["cccd"] = cccd.strip()
    return _patient_page(request, s, None, form=form)


@router.get("/desk/patient/{patient_id}", name="desk_patient")
def desk_patient(request: Request, patient_id: str) -> Response:
    s = guard(request, may_view)
    if isinstance(s, Response):
        return s
    notices = {
        "saved": Message(N_("Đã lưu thông tin người bệnh.")),
        "insured": Message(N_("Đã ghi nhận thẻ BHYT.")),
    }
    notice = next((m for k, m in notices.items() if request.query_params.get(k)), None)
    return _patient_page(request, s, check_id(patient_id), notice=notice)


def _person_form(
    name: str, birth_date: str, sex: str, cccd: str, cmnd: str, phone: str, address: str
) -> dict[str, str]:
    values = (name, birth_date, sex, cccd, cmnd, phone, address)
    return {k: v[:500] for k, v in zip(PERSON_FIELDS, values, strict=True)}


@router.post("/desk/patient", name="desk_create")
def desk_create(
    request: Request,
    csrf: Field = "",
    name: Field = "",
    birth_date: Field = "",
    sex: Field = "",
    cccd: Field = "",
    cmnd: Field = "",
    phone: Field = "",
    address: Field = "",
) -> Response:
    s = guard_post(request, csrf, may_edit)
    if isinstance(s, Response):
        return s
    form = _person_form(name, birth_date, sex, cccd, cmnd, phone, address)
    return _save(request, s, None, form)


@router.post("/desk/patient/{patient_id}", name="desk_update")
def desk_update(
    request: Request,
    patient_id: str,
    csrf: Field = "",
    name: Field = "",
    birth_date: Field = "",
    sex: Field = "",
    cccd: Field = "",
    cmnd: Field = "",
    phone: Field = "",
    address: Field = "",
) -> Response:
    s = guard_post(request, csrf, may_edit)
    if isinstance(s, Response):
        return s
    form = _person_form(name, birth_date, sex, cccd, cmnd, phone, address)
    return _save(request, s, check_id(patient_id), form)


def _save(
    request: Request, s: PageSession, patient_id: str | None, form: dict[str, str]
) -> Response:
    try:
        person = read_person(form, today=local_now().date())
        saved = _save_person(request, s, person, patient_id)
    except PersonError as err:
        errors = problem_list(request, err.problems)
        return _patient_page(request, s, patient_id, form=form, errors=errors, status=400)
    return see_other(request, "desk_patient", "saved=1", patient_id=saved.id)


def _save_person(
    request: Request, s: PageSession, person: Person, patient_id: str | None
) -> SavedPerson:
    refused: PersonError | None = None
    with desk_unit(request, s, write=True) as (repo, refs):
        if patient_id is not None:
            read_or_404(repo, "Patient", patient_id)
        try:
            return save_person(repo, refs, person, patient_id)
        except PersonError as err:  # refused before anything was written
            refused = err
    raise refused


# ---- the insurance card -------------------------------------------------------------------------


def read_card(number: str, valid_from: str, valid_to: str) -> CardCheck:
    """The desk's card fields checked; a date that does not parse is a problem of its field."""
    today = local_now().date()
    dates: dict[str, date | None] = {}
    bad: Problems = []
    for field, value in (("valid_from", valid_from), ("valid_to", valid_to)):
        dates[field] = _iso(value.strip())
        if value.strip() and dates[field] is None:
            bad.append((field, "ngày không hợp lệ / not a valid date"))
    check = check_card(number[:40], dates["valid_from"], dates["valid_to"], today=today)
    if bad:
        kept = [p for p in check.problems if p[0] not in {f for f, _ in bad}]
        check = CardCheck(check.number, check.valid_from, check.valid_to, [*bad, *kept])
    return check


@router.post("/desk/insurance/check", name="desk_card_check")
def desk_card_check(
    request: Request,
    csrf: Field = "",
    number: Field = "",
    valid_from: Field = "",
    valid_to: Field = "",
) -> Response:
    """The card's check as the registrar types (htmx): nothing is written."""
    s = guard_post(request, csrf, may_view)
    if isinstance(s, Response):
        return s
    check = read_card(number, valid_from, valid_to)
    ctx = {"check": check, "card_errors": problem_list(request, check.problems), "labels": LABELS}
    return page(request, "partials/desk_card_check.html", ctx)


@router.post("/desk/patient/{patient_id}/insurance", name="desk_insurance")
def desk_insurance(
    request: Request,
    patient_id: str,
    csrf: Field = "",
    number: Field = "",
    valid_from: Field = "",
    valid_to: Field = "",
) -> Response:
    s = guard_post(request, csrf, may_edit)
    if isinstance(s, Response):
        return s
    pid = check_id(patient_id)
    check = read_card(number, valid_from, valid_to)
    card_form = {"number": number[:40], "valid_from": valid_from[:10], "valid_to": valid_to[:10]}
    if not check.usable:
        errors = problem_list(request, check.problems)
        error = Message(N_("Thẻ BHYT chưa dùng được: hãy sửa các ô được đánh dấu."))
        return _patient_page(
            request, s, pid, card_form=card_form, card_errors=errors, error=error, status=400
        )
    with desk_unit(request, s, write=True) as (repo, _refs):
        read_or_404(repo, "Patient", pid)
        record_coverage(repo, pid, check)
    return see_other(request, "desk_patient", "insured=1", patient_id=pid)


# ---- the visit --------------------------------------------------------------------------------


@router.post("/desk/patient/{patient_id}/visit", name="desk_register")
def desk_register(
    request: Request, patient_id: str, csrf: Field = "", clinic: Field = ""
) -> Response:
    s = guard_post(request, csrf, may_register)
    if isinstance(s, Response):
        return s
    pid = check_id(patient_id)
    outcome = issue_number(request, s, pid, clinic)
    if isinstance(outcome, str):
        return see_other(request, "ticket", encounter_id=outcome)
    status = 409 if outcome.text == ALREADY.text else 400
    return _patient_page(request, s, pid, error=outcome, status=status)


ALREADY = Message(N_("Người này đã có số %(number)s tại %(clinic)s hôm nay, chưa khám xong."))
NO_CLINIC = Message(N_("Hãy chọn một phòng khám trong danh sách."))


def issue_number(
    request: Request, s: PageSession, patient_id: str, clinic_id: str
) -> str | Message:
    """Today's visit for a person at a clinic: the Encounter id, or what stopped it."""
    if not FHIR_ID.match(clinic_id):
        return NO_CLINIC
    with desk_unit(request, s, write=True) as (repo, refs):
        read_or_404(repo, "Patient", patient_id)
        room = clinic_list.clinic(repo, refs, clinic_id)
        if room is None:
            return NO_CLINIC
        try:
            return str(register_visit(repo, refs, patient_id, room)["id"])
        except AlreadyQueued as already:
            label = queue_label(already.encounter)
            return Message(ALREADY.text, {"number": label, "clinic": room.name})


# ---- the ticket -------------------------------------------------------------------------------


@router.get("/desk/ticket/{encounter_id}", name="ticket")
def ticket(request: Request, encounter_id: str, kiosk: str = "") -> Response:
    # The kiosk prints the tickets it issues: a ticket carries a number and a room, no name.
    s = guard(request, lambda r: may_view(r) or r.code == "kiosk")
    if isinstance(s, Response):
        return s
    with desk_unit(request, s, write=False) as (repo, refs):
        visit = read_or_404(repo, "Encounter", encounter_id)
        clinic_id = queue.clinic_of(visit)
        room = clinic_list.clinic(repo, refs, clinic_id) if clinic_id else None
        arrived = parse_stamp((visit.get("period") or {}).get("start"))
        if room is None or arrived is None or not queue_label(visit):  # not a ticket of ours
            raise not_found("Encounter", encounter_id)
        ahead = queue.people_ahead(queue.clinic_day(repo, room.id, arrived.date()), visit)
    ctx = {
        "facility": refs.name,
        "clinic": room,
        "label": queue_label(visit),
        "arrived": arrived,
        "ahead": ahead,
        "status": visit.get("status"),
        "kiosk": bool(kiosk),
    }
    return page(request, "ticket.html", ctx)


__all__ = ["router"]
