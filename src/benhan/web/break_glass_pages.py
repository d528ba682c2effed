"""Break-glass: a clinician opens a patient's record in an emergency, with a reason, for a while."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from benhan.access import Role
from benhan.auth.break_glass import (
    DEFAULT_MINUTES,
    MAX_MINUTES,
    MAX_REASON,
    MIN_MINUTES,
    MIN_REASON,
    REASONS,
    BreakGlassError,
    active_grants,
    open_break_glass,
)
from benhan.web.forms import (
    Field,
    Message,
    guard,
    guard_post,
    page,
    see_other,
    store_of,
)
from benhan.web.i18n import N_
from benhan.web.rendering import PageRoute
from benhan.web.session import (
    PageSession,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


# ---- break-glass (clinicians who may) ---------------------------------------------------

GLASS_ERRORS = {
    "bad-reason-code": Message(N_("Hãy chọn một lý do trong danh sách.")),
    "bad-reason": Message(
        N_("Hãy ghi rõ lý do, từ %(min)s đến %(max)s ký tự."),
        {"min": MIN_REASON, "max": MAX_REASON},
    ),
    "bad-minutes": Message(
        N_("Thời hạn từ %(min)s đến %(max)s phút."), {"min": MIN_MINUTES, "max": MAX_MINUTES}
    ),
    "unknown-patient": Message(N_("Không tìm thấy người bệnh với mã này.")),
    "forbidden": Message(N_("Vai trò của bạn không được mở hồ sơ khẩn cấp.")),
}


def _may_break_glass(r: Role) -> bool:
    return r.break_glass


@router.get("/break-glass", name="break_glass")
def break_glasspage(request: Request) -> Response:
    s = guard(request, _may_break_glass)
    if isinstance(s, Response):
        return s
    opened = Message(N_("Đã mở hồ sơ. Lượt truy cập này được ghi lại và sẽ được xem xét."))
    notice = opened if request.query_params.get("opened") else None
    return _glasspage(request, s, notice=notice)


def _glasspage(
    request: Request,
    s: PageSession,
    *,
    notice: Message | None = None,
    error: Message | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    with store_of(request).read() as conn:
        grants = active_grants(conn, s.account.id)
    ctx = {
        "grants": grants,
        "reasons": list(REASONS.values()),
        "notice": notice,
        "error": error,
        "form": form
        or {"patient": "", "reason_code": "", "reason": "", "minutes": str(DEFAULT_MINUTES)},
        "limits": {
            "min_reason": MIN_REASON,
            "max_reason": MAX_REASON,
            "min_minutes": MIN_MINUTES,
            "max_minutes": MAX_MINUTES,
        },
    }
    return page(request, "break_glass.html", ctx, status)


@router.post("/break-glass", name="break_glass_open")
def break_glass_open(
    request: Request,
    csrf: Field = "",
    patient: Field = "",
    reason_code: Field = "",
    reason: Field = "",
    minutes: Field = "",
) -> Response:
    s = guard_post(request, csrf, _may_break_glass)
    if isinstance(s, Response):
        return s
    form = {"patient": patient, "reason_code": reason_code, "reason": reason, "minutes": minutes}
    try:
        if not minutes.strip().isdigit():
            raise BreakGlassError("bad-minutes", "minutes")
        with store_of(request).begin() as conn:
            open_break_glass(conn, s.actor, patient, reason_code, reason, int(minutes))
    except BreakGlassError as exc:
        error = GLASS_ERRORS.get(exc.code, GLASS_ERRORS["forbidden"])
        return _glasspage(request, s, error=error, form=form, status=400)
    return see_other(request, "break_glass", "opened=1")
