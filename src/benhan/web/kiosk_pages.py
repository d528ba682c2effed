"""The self-service kiosk: scan the citizen card, confirm, pick a clinic, take the ticket.

A touch screen signed in with a kiosk account (role `kiosk`: it may find a person by the card in
hand, save what the card says and issue a number, and has no desk to list anyone). Each step
re-reads what the person scanned (carried in a hidden field), so the server keeps no state
between steps. A bare 12-digit number shows only the name and birth year of that number's own
holder, and nobody else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from benhan.access import Role
from benhan.emr import clinics as clinic_list
from benhan.emr import queue
from benhan.emr.citizen_card import CardError, CitizenCard, parse
from benhan.emr.model import display_name, local_now, queue_label
from benhan.emr.registration import (
    AlreadyQueued,
    by_cccd,
    person_from_card,
    register_visit,
    save_person,
)
from benhan.fhir import systems as sy
from benhan.web.desk_pages import desk_unit
from benhan.web.forms import FHIR_ID, Field, Message, guard, guard_post, page, see_other
from benhan.web.i18n import N_
from benhan.web.rendering import PageRoute
from benhan.web.session import PageSession

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MAX_CODE = 1000
# What to fix, said plainly: "Mã QR không đọc được: ngày sinh không hợp lệ".
UNREADABLE = N_("Mã QR không đọc được: %(what)s")
WHAT = {
    "qr": N_("thiếu thông tin, hãy quét lại"),
    "cccd": N_("số định danh không hợp lệ"),
    "cmnd": N_("số CMND cũ không hợp lệ"),
    "name": N_("họ tên không hợp lệ"),
    "birth_date": N_("ngày sinh không hợp lệ"),
    "sex": N_("giới tính không hợp lệ"),
    "address": N_("thiếu địa chỉ"),
    "issued": N_("ngày cấp không hợp lệ"),
}
NOT_A_CODE = Message(N_("Hãy quét mã QR trên thẻ căn cước, hoặc nhập đủ 12 số định danh."))
BAD_NUMBER = Message(N_("Số định danh không đúng: hãy kiểm tra lại 12 số trên thẻ."))
UNKNOWN = Message(
    N_("Chưa có hồ sơ với số này. Hãy quét mã QR trên thẻ căn cước, hoặc đến quầy tiếp đón.")
)
NO_CLINIC = Message(N_("Hãy chọn một phòng khám."))
ALREADY = Message(N_("Bạn đã có số %(number)s tại %(clinic)s hôm nay. Xin vui lòng chờ gọi số."))


def may_use_kiosk(r: Role) -> bool:
    return r.code == "kiosk"


@dataclass(frozen=True)
class Who:
    """The person at the kiosk: from their card, or a known holder of a typed number."""

    code: str  # what was scanned or typed, carried to the next step
    card: CitizenCard | None = None
    patient_id: str | None = None
    name: str = ""
    birth_year: str = ""


class KioskError(Exception):
    def __init__(self, message: Message, status: int) -> None:
        super().__init__(message.text)
        self.message, self.status = message, status


def identify(request: Request, s: PageSession, code: str) -> Who:
    """Who the scanned or typed code stands for; KioskError in plain words otherwise."""
    text = code.strip()[:MAX_CODE]
    if "|" in text:
        try:
            card = parse(text, today=local_now().date())
        except CardError as err:
            fields = dict.fromkeys(p.field for p in err.problems)  # in order, once each
            what = ", ".join(WHAT.get(f, WHAT["qr"]) for f in fields)
            raise KioskError(Message(UNREADABLE, {"what": what}), 400) from None
        return Who(text, card, None, card.name, str(card.birth_date.year))
    number = re.sub(r"\s", "", text)
    if not re.fullmatch(r"\d{12}", number):
        raise KioskError(NOT_A_CODE, 400)
    if sy.check_cccd(number):
        raise KioskError(BAD_NUMBER, 400)
    with desk_unit(request, s, write=False) as (repo, _refs):
        patient = by_cccd(repo, number)
    if patient is None:
        raise KioskError(UNKNOWN, 404)
    return Who(number, None, patient["id"], display_name(patient), patient.get("birthDate", "")[:4])


def _kiosk(request: Request, step: str, status: int = 200, **ctx: Any) -> Response:
    base: dict[str, Any] = {"step": step, "person": None, "error": None, "clinics": []}
    return page(request, "kiosk.html", {**base, **ctx}, status)


@router.get("/kiosk", name="kiosk")
def kiosk(request: Request) -> Response:
    s = guard(request, may_use_kiosk)
    if isinstance(s, Response):
        return s
    return _kiosk(request, "scan")


@router.post("/kiosk", name="kiosk_read")
def kiosk_read(request: Request, csrf: Field = "", code: Field = "") -> Response:
    s = guard_post(request, csrf, may_use_kiosk)
    if isinstance(s, Response):
        return s
    try:
        who = identify(request, s, code)
    except KioskError as err:
        return _kiosk(request, "scan", err.status, error=err.message)
    return _kiosk(request, "confirm", person=who)


@router.post("/kiosk/clinic", name="kiosk_clinics")
def kiosk_clinics(request: Request, csrf: Field = "", code: Field = "") -> Response:
    s = guard_post(request, csrf, may_use_kiosk)
    if isinstance(s, Response):
        return s
    try:
        who = identify(request, s, code)
    except KioskError as err:
        return _kiosk(request, "scan", err.status, error=err.message)
    return _clinic_step(request, s, who)


def _clinic_step(
    request: Request, s: PageSession, who: Who, error: Message | None = None, status: int = 200
) -> Response:
    with desk_unit(request, s, write=False) as (repo, refs):
        rooms = clinic_list.clinics(repo, refs)
        waiting = queue.waiting_by_clinic(repo, refs.organization, local_now().date())
    rows = [{"clinic": c, "waiting": waiting.get(c.id, 0)} for c in rooms]
    return _kiosk(request, "clinic", status, person=who, clinics=rows, error=error)


@router.post("/kiosk/ticket", name="kiosk_issue")
def kiosk_issue(
    request: Request, csrf: Field = "", code: Field = "", clinic: Field = ""
) -> Response:
    s = guard_post(request, csrf, may_use_kiosk)
    if isinstance(s, Response):
        return s
    try:
        who = identify(request, s, code)
    except KioskError as err:
        return _kiosk(request, "scan", err.status, error=err.message)
    if not FHIR_ID.match(clinic):
        return _clinic_step(request, s, who, NO_CLINIC, 400)
    outcome = _issue(request, s, who, clinic)
    if isinstance(outcome, str):
        return see_other(request, "ticket", "kiosk=1", encounter_id=outcome)
    if outcome is NO_CLINIC:
        return _clinic_step(request, s, who, NO_CLINIC, 400)
    return _kiosk(request, "done", 409, error=outcome)


def _issue(request: Request, s: PageSession, who: Who, clinic_id: str) -> str | Message:
    """The visit for the person at the kiosk: its id, or why there is none (nothing written)."""
    with desk_unit(request, s, write=True) as (repo, refs):
        room = clinic_list.clinic(repo, refs, clinic_id)
        if room is None:
            return NO_CLINIC
        if who.card is not None:
            patient_id = save_person(repo, refs, person_from_card(who.card)).id
        else:
            assert who.patient_id is not None
            patient_id = who.patient_id
        try:
            return str(register_visit(repo, refs, patient_id, room)["id"])
        except AlreadyQueued as already:
            number = queue_label(already.encounter)
            return Message(ALREADY.text, {"number": number, "clinic": room.name})


__all__ = ["router"]
