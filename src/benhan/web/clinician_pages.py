"""The clinician's worklist, the patient chart and the printed pages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from benhan.access import Role
from benhan.emr import model
from benhan.emr.chart import BP, PULSE, RESP, SPO2, TEMP, WEIGHT, Point, chart, linked, timeline
from benhan.emr.visit_record import visit_record
from benhan.emr.worklist import PAGE as WORKLIST_PAGE
from benhan.emr.worklist import worklist
from benhan.fhir.outcome import FhirError
from benhan.store.repository import Repo
from benhan.store.unit import unit
from benhan.web.forms import FHIR_ID, Message, guard, page, store_of
from benhan.web.i18n import N_
from benhan.web.rendering import PageRoute
from benhan.web.session import PageSession

router = APIRouter(route_class=PageRoute, include_in_schema=False)

CLINICIANS = frozenset({"doctor", "nurse"})
MAX_OFFSET = 10_000
VITAL_LABELS = {
    BP: N_("Huyết áp"),
    PULSE: N_("Mạch"),
    TEMP: N_("Nhiệt độ"),
    WEIGHT: N_("Cân nặng"),
    RESP: N_("Nhịp thở"),
    SPO2: N_("SpO2"),
}
SEX = {"male": N_("Nam"), "female": N_("Nữ"), "other": N_("Khác"), "unknown": N_("Không rõ")}
STATUS = {
    "planned": N_("Đã hẹn"),
    "arrived": N_("Đang chờ"),
    "triaged": N_("Đã phân loại"),
    "in-progress": N_("Đang khám"),
    "onleave": N_("Tạm vắng"),
    "finished": N_("Đã xong"),
    "cancelled": N_("Đã huỷ"),
    "entered-in-error": N_("Nhập nhầm"),
}
# http://terminology.hl7.org/CodeSystem/discharge-disposition
DISPOSITION = {
    "home": N_("Về nhà"),
    "other-hcf": N_("Chuyển cơ sở khám chữa bệnh khác"),
    "hosp": N_("Nhập viện"),
    "exp": N_("Tử vong"),
    "aadvice": N_("Tự ý bỏ về"),
    "oth": N_("Khác"),
}
BAD_CLINIC = Message(N_("Phòng khám không hợp lệ: hãy chọn trong danh sách."))
BAD_PAGE = Message(N_("Số trang không hợp lệ."))


def _clinician(r: Role) -> bool:
    return r.code in CLINICIANS


@dataclass(frozen=True)
class Spark:
    """A small server-drawn trend line: SVG polyline points and the abnormal dots."""

    line: str
    dots: tuple[tuple[float, float, str], ...]


def sparkline(points: tuple[Point, ...], width: int = 120, height: int = 28) -> Spark | None:
    values = [(i, p) for i, p in enumerate(points) if p.value is not None]
    if len(values) < 2:
        return None
    lo = min(p.value for _, p in values if p.value is not None)
    hi = max(p.value for _, p in values if p.value is not None)
    span, step = (hi - lo) or 1.0, (width - 8) / max(len(points) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return round(4 + i * step, 1), round(height - 4 - (v - lo) / span * (height - 8), 1)

    coords = [(xy(i, p.value), p.flag) for i, p in values if p.value is not None]
    line = " ".join(f"{x},{y}" for (x, y), _ in coords)
    return Spark(line, tuple((x, y, f) for (x, y), f in coords if f in ("H", "L", "A")))


def day(value: str) -> str:
    """A FHIR date (or the date of a dateTime) as Vietnamese write it: 12/03/1987."""
    parts = value[:10].split("-")
    return "/".join(reversed(parts)) if len(parts) == 3 else value[:10]


def _ctx(**extra: Any) -> dict[str, Any]:
    base = {
        "vital_labels": VITAL_LABELS,
        "sexes": SEX,
        "statuses": STATUS,
        "sparkline": sparkline,
        "day": day,
        "dispositions": DISPOSITION,
    }
    return {**base, **extra}


def _offset(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return 0
    return int(raw) if raw.isdigit() and int(raw) <= MAX_OFFSET else None


def _read(request: Request, s: PageSession, work: Callable[[Repo], Any]) -> Any:
    """Run `work` in a read unit; unknown or hidden ids → the 404 page, refusals → 403."""
    try:
        with unit(store_of(request), s.actor, write=False) as repo:
            return work(repo)
    except FhirError as exc:
        if exc.status in (404, 410):
            raise HTTPException(404) from None
        if exc.status == 403:
            raise HTTPException(403) from None
        raise


# ---- worklist ----------------------------------------------------------------------------


@router.get("/worklist", name="worklist")
def worklist_page(request: Request) -> Response:
    return _worklist(request, "worklist.html")


@router.get("/worklist/rows", name="worklist_rows")
def worklist_rows(request: Request) -> Response:
    """The table alone: the page's 30-second refresh and its paging."""
    return _worklist(request, "partials/worklist_table.html")


def _worklist(request: Request, template: str) -> Response:
    s = guard(request, _clinician)
    if isinstance(s, Response):
        return s
    q = request.query_params
    tab = "done" if q.get("tab") == "done" else "waiting"
    clinic = q.get("clinic", "")
    offset = _offset(q.get("offset"))
    error = (
        BAD_CLINIC if clinic and not FHIR_ID.match(clinic) else BAD_PAGE if offset is None else None
    )
    now = model.local_now()
    wl = _read(
        request,
        s,
        lambda repo: worklist(
            repo,
            now,
            done=tab == "done",
            clinic=None if error else clinic or None,
            offset=offset or 0,
        ),
    )
    ctx = _ctx(wl=wl, tab=tab, clinic=clinic, now=now, error=error, notice=None, size=WORKLIST_PAGE)
    return page(request, template, ctx, 400 if error else 200)


# ---- chart -------------------------------------------------------------------------------


@router.get("/chart/{patient_id}", name="chart")
def chart_page(request: Request, patient_id: str) -> Response:
    s = guard(request, _clinician)
    if isinstance(s, Response):
        return s
    offset = _offset(request.query_params.get("offset"))  # the timeline's page, without htmx
    if not FHIR_ID.match(patient_id) or offset is None:
        raise HTTPException(404)
    today = model.local_now().date()
    c = _read(request, s, lambda repo: chart(repo, patient_id, today, offset))
    return page(request, "chart.html", _ctx(c=c, tl=c.timeline, patient_id=patient_id))


@router.get("/chart/{patient_id}/visits", name="chart_visits")
def chart_visits(request: Request, patient_id: str) -> Response:
    """The next page of the encounters timeline ("xem thêm")."""
    s = guard(request, _clinician)
    if isinstance(s, Response):
        return s
    offset = _offset(request.query_params.get("offset"))
    if not FHIR_ID.match(patient_id) or offset is None:
        raise HTTPException(404)
    tl = _read(request, s, lambda repo: _timeline(repo, patient_id, offset))
    return page(request, "partials/chart_visits.html", _ctx(tl=tl, patient_id=patient_id))


def _timeline(repo: Repo, patient_id: str, offset: int) -> Any:
    repo.read("Patient", patient_id)  # 404 for an unknown or hidden patient, not an empty page
    return timeline(repo, linked(repo, patient_id), offset)


# ---- printed pages -----------------------------------------------------------------------


@router.get("/print/prescription/{encounter_id}", name="print_prescription")
def print_prescription(request: Request, encounter_id: str) -> Response:
    return _print(request, encounter_id, "print_prescription.html")


@router.get("/print/visit/{encounter_id}", name="print_visit")
def print_visit(request: Request, encounter_id: str) -> Response:
    return _print(request, encounter_id, "print_visit.html")


def _print(request: Request, encounter_id: str, template: str) -> Response:
    s = guard(request, _clinician)
    if isinstance(s, Response):
        return s
    if not FHIR_ID.match(encounter_id):
        raise HTTPException(404)
    today = model.local_now().date()
    v = _read(request, s, lambda repo: visit_record(repo, encounter_id, today))
    return page(request, template, _ctx(v=v, today=today))


__all__ = ["day", "router", "sparkline"]
