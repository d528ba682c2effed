"""Queue boards: today's clinics with their waiting times, and each clinic's waiting-room screen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from benhan.access import Role
from benhan.emr import clinics as clinic_list
from benhan.emr import queue
from benhan.emr.clinics import Clinic
from benhan.emr.model import FacilityRefs, local_now
from benhan.emr.queue import Stats
from benhan.fhir.outcome import not_found
from benhan.store.repository import Repo
from benhan.web.desk_pages import check_id, desk_unit, may_see_queue, read_or_404
from benhan.web.forms import Field, guard, guard_post, page, see_other
from benhan.web.rendering import PageRoute
from benhan.web.session import PageSession

router = APIRouter(route_class=PageRoute, include_in_schema=False)

BAR_WIDTH = 420  # px of the longest bar in the chart
ROW_HEIGHT = 34


def may_call(r: Role) -> bool:
    """Staff whose role may update a visit: they call the next number."""
    return may_see_queue(r) and r.scopes.allows("Encounter", "u")


@dataclass(frozen=True)
class Bar:
    y: int
    name: str
    median: float
    p90: float
    median_px: int
    p90_px: int


def chart(rows: list[tuple[Clinic, Stats]]) -> tuple[list[Bar], int]:
    """Bars of arrival → called minutes (median inside its 90th percentile), and the height."""
    measured = [(c, s) for c, s in rows if s.to_called.count]
    top = max((s.to_called.p90 or 0 for _c, s in measured), default=0) or 1
    bars = [
        Bar(
            i * ROW_HEIGHT,
            c.name,
            round(s.to_called.median or 0, 1),
            round(s.to_called.p90 or 0, 1),
            round(BAR_WIDTH * (s.to_called.median or 0) / top),
            round(BAR_WIDTH * (s.to_called.p90 or 0) / top),
        )
        for i, (c, s) in enumerate(measured)
    ]
    return bars, len(bars) * ROW_HEIGHT


def _day(value: str) -> date:
    if not value:
        return local_now().date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(400) from None


@router.get("/queue", name="queue_overview")
def queue_overview(request: Request, day: str = "") -> Response:
    s = guard(request, may_see_queue)
    if isinstance(s, Response):
        return s
    when = _day(day[:10])
    with desk_unit(request, s, write=False) as (repo, refs):
        rooms = clinic_list.clinics(repo, refs)
        visits = queue.facility_day(repo, refs.organization, when)
    rows = [(c, queue.stats(visits.get(c.id, []))) for c in rooms]
    bars, height = chart(rows)
    ctx = {"day": when, "rows": rows, "bars": bars, "height": height, "bar_width": BAR_WIDTH}
    return page(request, "queue.html", ctx)


def _board(repo: Repo, refs: FacilityRefs, clinic_id: str) -> dict[str, Any]:
    room = clinic_list.clinic(repo, refs, check_id(clinic_id))
    if room is None:
        raise not_found("Location", clinic_id)
    visits = queue.clinic_day(repo, room.id, local_now().date())
    return {"clinic": room, "board": queue.board(visits)}


def _board_page(request: Request, s: PageSession, clinic_id: str, template: str) -> Response:
    with desk_unit(request, s, write=False) as (repo, refs):
        ctx = _board(repo, refs, clinic_id)
    return page(request, template, {**ctx, "may_call": may_call(s.actor.role)})


@router.get("/queue/{clinic_id}", name="queue_board")
def queue_board(request: Request, clinic_id: str) -> Response:
    s = guard(request, may_see_queue)
    if isinstance(s, Response):
        return s
    return _board_page(request, s, clinic_id, "queue_board.html")


@router.get("/queue/{clinic_id}/now", name="queue_board_now")
def queue_board_now(request: Request, clinic_id: str) -> Response:
    """The board's changing part, fetched every few seconds by the screen (htmx)."""
    s = guard(request, may_see_queue)
    if isinstance(s, Response):
        return s
    return _board_page(request, s, clinic_id, "partials/queue_now.html")


@router.post("/queue/{clinic_id}/call", name="queue_call")
def queue_call(request: Request, clinic_id: str, csrf: Field = "") -> Response:
    s = guard_post(request, csrf, may_call)
    if isinstance(s, Response):
        return s
    with desk_unit(request, s, write=True) as (repo, refs):
        room = clinic_list.clinic(repo, refs, check_id(clinic_id))
        if room is None:
            raise not_found("Location", clinic_id)
        queue.call_next(repo, room.id, local_now().date())
    return _after_call(request, s, room.id)


@router.post("/queue/visit/{encounter_id}/recall", name="queue_recall")
def queue_recall(request: Request, encounter_id: str, csrf: Field = "") -> Response:
    s = guard_post(request, csrf, may_call)
    if isinstance(s, Response):
        return s
    with desk_unit(request, s, write=True) as (repo, refs):
        visit = read_or_404(repo, "Encounter", encounter_id)
        clinic_id = queue.clinic_of(visit)
        room = clinic_list.clinic(repo, refs, clinic_id) if clinic_id else None
        if room is None:  # a visit of no clinic of this facility: nothing to call it to
            raise not_found("Location", clinic_id or "")
        queue.recall(repo, visit["id"])
    return _after_call(request, s, room.id)


def _after_call(request: Request, s: PageSession, clinic_id: str) -> Response:
    if request.headers.get("HX-Request") == "true":
        return _board_page(request, s, clinic_id, "partials/queue_now.html")
    return see_other(request, "queue_board", clinic_id=clinic_id)


__all__ = ["router"]
