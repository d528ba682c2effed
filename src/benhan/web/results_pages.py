"""Lab and imaging results entry: the technicians' work list, one order's result, corrections."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.responses import Response

from benhan.access import Role
from benhan.emr import results as rs
from benhan.emr.model import facility_refs, local_now
from benhan.signing import who_signs
from benhan.store.repository import Repo
from benhan.store.unit import unit
from benhan.web.forms import FHIR_ID, Field, Message, guard, guard_post, page, see_other, store_of
from benhan.web.i18n import N_
from benhan.web.rendering import PageRoute
from benhan.web.session import PageSession

router = APIRouter(route_class=PageRoute, include_in_schema=False)

ERRORS = {
    "missing-value": Message(N_("Hãy nhập kết quả.")),
    "not-a-number": Message(N_("Kết quả phải là một số, ví dụ 5,6 hoặc 5.6.")),
    "negative": Message(N_("Kết quả này không thể là số âm.")),
    "missing-findings": Message(N_("Hãy nhập mô tả hình ảnh.")),
    "missing-conclusion": Message(N_("Hãy nhập kết luận.")),
    "too-long:value": Message(
        N_("Kết quả quá dài (tối đa %(max)s ký tự)."), {"max": rs.MAX_COMMENT}
    ),
    "too-long:comment": Message(
        N_("Ghi chú quá dài (tối đa %(max)s ký tự)."), {"max": rs.MAX_COMMENT}
    ),
    "too-long:findings": Message(
        N_("Mô tả hình ảnh quá dài (tối đa %(max)s ký tự)."), {"max": rs.MAX_TEXT}
    ),
    "too-long:conclusion": Message(
        N_("Kết luận quá dài (tối đa %(max)s ký tự)."), {"max": rs.MAX_TEXT}
    ),
    "bad-reason": Message(
        N_("Hãy ghi lý do sửa kết quả, từ %(min)s đến %(max)s ký tự."),
        {"min": rs.MIN_REASON, "max": rs.MAX_REASON},
    ),
    "already-done": Message(
        N_("Chỉ định này đã có kết quả. Muốn thay đổi, hãy dùng phần Sửa kết quả.")
    ),
    "not-active": Message(
        N_("Chỉ định này không còn hiệu lực (đã huỷ hoặc tạm dừng): không nhập kết quả được.")
    ),
    "nothing-to-correct": Message(N_("Chỉ định này chưa có kết quả để sửa.")),
    "changed": Message(
        N_("Chỉ định vừa được người khác cập nhật. Hãy tải lại trang và kiểm tra lại.")
    ),
}
NOTICES = {
    "saved": Message(N_("Đã lưu kết quả.")),
    "corrected": Message(N_("Đã sửa kết quả. Lý do được ghi kèm kết quả.")),
}
FORM_FIELDS = ("value", "comment", "findings", "conclusion", "reason")


def _may_view(r: Role) -> bool:
    return r.code in ("lab-technician", "doctor")


def _may_enter(r: Role) -> bool:
    return r.code == "lab-technician"


def _number(raw: str) -> int:
    """A page number from the query string: anything odd is the first page."""
    return min(int(raw), 10_000) if raw.isdigit() else 0


# ---- the work list ----------------------------------------------------------------------


@router.get("/results", name="results")
def results_page(
    request: Request,
    q: str = "",
    kind: str = "",
    page_no: Annotated[str, Query(alias="page")] = "0",
    done: str = "0",
) -> Response:
    s = guard(request, _may_view)
    if isinstance(s, Response):
        return s
    wanted: rs.Kind | None = "lab" if kind == "lab" else "imaging" if kind == "imaging" else None
    n, m = _number(page_no), _number(done)
    with unit(store_of(request), s.actor, write=False) as repo:
        refs = facility_refs(repo)  # once for both lists
        today = local_now().date()
        work = rs.worklist(repo, kind=wanted, text=q[:100], page=n, today=today, refs=refs)
        recent = None if _rows_only(request) else rs.recent(repo, page=m, refs=refs)
    ctx = {"work": work, "recent": recent, "q": q, "kind": wanted or "", "done": m}
    if recent is None:
        return page(request, "partials/results_worklist.html", ctx)
    return page(request, "results.html", ctx)


def _rows_only(request: Request) -> bool:
    """htmx asks for the work list alone as the user types or pages."""
    h = request.headers
    return h.get("HX-Request") == "true" and h.get("HX-Target") == "results-worklist"


# ---- one order --------------------------------------------------------------------------


def _order_or_404(repo: Repo, order_id: str) -> rs.Order:
    order = rs.find_order(repo, order_id) if FHIR_ID.match(order_id) else None
    if order is None:
        raise HTTPException(404)
    return order


@router.get("/results/{order_id}", name="result_entry")
def result_entry(request: Request, order_id: str) -> Response:
    s = guard(request, _may_view)
    if isinstance(s, Response):
        return s
    notice = next((NOTICES[k] for k in NOTICES if request.query_params.get(k)), None)
    return _entry_page(request, s, order_id, notice=notice)


def _entry_page(
    request: Request,
    s: PageSession,
    order_id: str,
    *,
    notice: Message | None = None,
    error: rs.ResultError | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    with unit(store_of(request), s.actor, write=False) as repo:
        order = _order_or_404(repo, order_id)
        result = rs.result_of(repo, order) if order.status == "completed" else None
    typed = dict.fromkeys(FORM_FIELDS, "") | (form or {})
    if form is None and result is not None:  # the correction form starts from what is recorded
        typed |= _recorded(order, result)
    ctx = {
        "order": order,
        "result": result,
        "service": order.service,
        "mode": order.mode,
        "age": rs.age(order.patient, local_now().date()),
        "may_enter": _may_enter(s.actor.role),
        # The result form is signed from the visit's documents (web/document_pages.py).
        "may_sign": bool(s.actor.practitioner) and who_signs.may_sign(s.actor.role, "report"),
        "notice": notice,
        "error": _message(error) if error else None,
        "bad_field": error.field if error else "",
        "form": typed,
        "limits": {"comment": rs.MAX_COMMENT, "text": rs.MAX_TEXT, "reason": rs.MAX_REASON},
    }
    return page(request, "results_entry.html", ctx, status)


def _recorded(order: rs.Order, result: rs.Result) -> dict[str, str]:
    obs = result.observations[0] if result.observations else {}
    value = obs.get("valueString") or _plain((obs.get("valueQuantity") or {}).get("value"))
    if order.mode != "imaging":
        return {"value": str(value or "")}
    return {"findings": str(value or ""), "conclusion": str(result.report.get("conclusion", ""))}


def _plain(value: float | None) -> str:
    """A number as the technician would type it: 7.0 → "7", 5.6 → "5,6" (never 1e-05)."""
    if value is None:
        return ""
    return format(Decimal(str(value)).normalize(), "f").replace(".", ",")


def _message(error: rs.ResultError) -> Message:
    return ERRORS.get(f"{error.code}:{error.field}") or ERRORS[error.code]


def _save(
    request: Request, order_id: str, csrf: str, form: dict[str, str], correcting: bool
) -> Response:
    s = guard_post(request, csrf, _may_enter)
    if isinstance(s, Response):
        return s
    if not FHIR_ID.match(order_id):
        raise HTTPException(404)
    who = rs.Performer(s.actor.practitioner, s.account.display_name)
    write = rs.correct if correcting else rs.record
    try:
        with unit(store_of(request), s.actor, write=True) as repo:
            write(repo, order_id, rs.Entry(**form), who, local_now())
    except rs.ResultError as exc:
        if exc.code == "unknown-order":
            raise HTTPException(404) from None
        return _entry_page(request, s, order_id, error=exc, form=form, status=400)
    done = "corrected=1" if correcting else "saved=1"
    return see_other(request, "result_entry", done, order_id=order_id)


@router.post("/results/{order_id}", name="result_save")
def result_save(
    request: Request,
    order_id: str,
    csrf: Field = "",
    value: Field = "",
    comment: Field = "",
    findings: Field = "",
    conclusion: Field = "",
) -> Response:
    form = {"value": value, "comment": comment, "findings": findings, "conclusion": conclusion}
    return _save(request, order_id, csrf, form, correcting=False)


@router.post("/results/{order_id}/correct", name="result_correct")
def result_correct(
    request: Request,
    order_id: str,
    csrf: Field = "",
    value: Field = "",
    findings: Field = "",
    conclusion: Field = "",
    reason: Field = "",
) -> Response:
    form = {"value": value, "findings": findings, "conclusion": conclusion, "reason": reason}
    return _save(request, order_id, csrf, form, correcting=True)
