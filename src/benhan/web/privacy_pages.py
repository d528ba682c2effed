"""The privacy officer's page: break-glass grants, and who looked at a patient of the facility."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request
from starlette.responses import Response

from benhan.access import Role
from benhan.auth.break_glass import (
    REASONS,
    grants_for_facility,
)
from benhan.fhir.primitives import now
from benhan.store.schema import resource
from benhan.store.search import parse_search
from benhan.store.unit import unit
from benhan.web.forms import (
    FHIR_ID,
    Message,
    guard,
    page,
    store_of,
)
from benhan.web.i18n import N_
from benhan.web.rendering import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)

GRANT_DAYS = 30  # how far back the privacy page lists break-glass grants
AUDIT_ROWS = 100


# ---- privacy officer --------------------------------------------------------------------

OUTCOMES = {
    "0": N_("Thành công"),
    "4": N_("Bị từ chối hoặc lỗi nhỏ"),
    "8": N_("Lỗi nghiêm trọng"),
    "12": N_("Lỗi rất nghiêm trọng"),
}
PURPOSES = {"TREAT": N_("Điều trị"), "BTG": N_("Mở khẩn cấp"), "HOPERAT": N_("Vận hành")}
ACTIONS = {
    "110122": N_("Đăng nhập"),
    "110123": N_("Đăng xuất"),
    "110137": N_("Đổi quyền tài khoản"),
    "110127": N_("Mở hồ sơ khẩn cấp"),
    "read": N_("Xem"),
    "vread": N_("Xem"),
    "search-type": N_("Tìm kiếm"),
    "search-system": N_("Tìm kiếm"),
    "history-instance": N_("Xem lịch sử"),
    "history-type": N_("Xem lịch sử"),
    "history-system": N_("Xem lịch sử"),
    "create": N_("Tạo"),
    "update": N_("Sửa"),
    "patch": N_("Sửa"),
    "delete": N_("Xoá"),
    "operation": N_("Thao tác"),
    "transaction": N_("Giao dịch"),
    "batch": N_("Giao dịch"),
}


@dataclass(frozen=True)
class AuditRow:
    """One AuditEvent, as the privacy page shows it."""

    recorded: datetime | None
    who: str
    role: str
    facility: str
    action: str  # a label key of ACTIONS, else the code itself
    outcome: str
    purpose: str
    address: str

    @property
    def break_glass(self) -> bool:
        return self.purpose == "BTG"


def audit_row(content: bytes) -> AuditRow:
    event: dict[str, Any] = orjson.loads(content)
    agent = (event.get("agent") or [{}])[0]
    role = (((agent.get("role") or [{}])[0]).get("coding") or [{}])[0].get("code", "")
    subtype = (event.get("subtype") or [{}])[0].get("code", "")
    purposes = event.get("purposeOfEvent") or [{}]
    purpose = ((purposes[0].get("coding") or [{}])[0]).get("code", "")
    try:
        recorded: datetime | None = datetime.fromisoformat(event["recorded"])
    except (KeyError, TypeError, ValueError):
        recorded = None
    return AuditRow(
        recorded=recorded,
        who=str(agent.get("altId") or ""),
        role=str(role),
        facility=str((event.get("source") or {}).get("site") or ""),
        action=ACTIONS.get(subtype, subtype),
        outcome=OUTCOMES.get(str(event.get("outcome", "")), str(event.get("outcome", ""))),
        purpose=str(purpose),
        address=str((agent.get("network") or {}).get("address") or ""),
    )


def _is_privacy_officer(r: Role) -> bool:
    return r.code == "privacy-officer"


@router.get("/privacy", name="privacy")
def privacypage(request: Request) -> Response:
    s = guard(request, _is_privacy_officer)
    if isinstance(s, Response):
        return s
    facility = s.account.facility
    pid = (request.query_params.get("patient") or "").strip().removeprefix("Patient/")
    events: list[AuditRow] | None = None
    more = False
    error: Message | None = None
    with store_of(request).read() as conn:
        grants = grants_for_facility(conn, facility, now() - timedelta(days=GRANT_DAYS))
        own = bool(pid) and _own_patient(conn, pid, facility)
    if pid and not own:
        # The same answer for another facility's patient and for none: nothing leaks.
        error = Message(N_("Người bệnh này không đăng ký tại cơ sở của bạn."))
    elif pid:
        store = store_of(request)
        store.audit.flush(timeout=5)  # the reads of the last moments are on the trail too
        # Through the repository as the officer: their rules apply, and the look is audited.
        with unit(store, s.actor, write=False) as repo:
            params = [("patient", pid), ("_sort", "-date"), ("_count", str(AUDIT_ROWS))]
            found = repo.search(parse_search("AuditEvent", params, strict=True), ["patient"])
            events = [audit_row(content) for _, _, content in found.matches]
            more = found.has_next
    ctx = {
        "grants": grants,
        "grant_days": GRANT_DAYS,
        "patient": pid,
        "events": events,
        "more": more,
        "limit": AUDIT_ROWS,
        "error": error,
        "purposes": PURPOSES,
        "reasons": REASONS,
    }
    return page(request, "privacy.html", ctx, 400 if error else 200)


def _own_patient(conn: sa.Connection, pid: str, facility: str) -> bool:
    if not FHIR_ID.fullmatch(pid):
        return False
    owner = conn.scalar(
        sa.select(resource.c.facility).where(resource.c.rtype == "Patient", resource.c.id == pid)
    )
    return owner == facility


__all__ = ["audit_row", "router"]
