"""Patient/$everything (http://hl7.org/fhir/R4/patient-operation-everything.html).

The patient, every resource in their compartment, and the resources those reference, as far as
the caller may see them (Repo.everything, store/compartment.py).
"""

from __future__ import annotations

from benhan.fhir.definitions import resource_types
from benhan.fhir.outcome import FhirError, Issue, bad_request
from benhan.fhir.primitives import date_range
from benhan.rest import render
from benhan.rest.message import Request, Response
from benhan.rest.router import Context

DEFAULT_COUNT, MAX_COUNT = 100, 1000


def everything(ctx: Context, req: Request, target: list[str]) -> Response:
    if target[:1] != ["Patient"] or len(target) != 2 or req.method not in ("GET", "POST"):
        raise FhirError(
            404,
            Issue(
                "not-supported",
                "$everything chỉ hỗ trợ Patient/[id] / "
                "$everything is supported on Patient/[id] only",
            ),
        )
    pid = target[1]
    count, offset, since, types = _params(req.query)
    result = ctx.repo.everything(pid, since=since, types=types, count=count, offset=offset)
    sreq = _Page(count=count, offset=offset)
    body = render.searchset(ctx.base, f"Patient/{pid}/$everything", req.query, result, sreq, None)
    return Response(200, body)


def _params(query: list[tuple[str, str]]) -> tuple[int, int, int | None, list[str]]:
    count, offset, since, types = DEFAULT_COUNT, 0, None, []
    for k, v in query:
        if k in ("_count", "_offset"):
            if not v.isdigit():
                raise bad_request(f"{k} phải là số nguyên / {k} must be an integer: {v!r}", k)
            count, offset = (min(int(v), MAX_COUNT), offset) if k == "_count" else (count, int(v))
        elif k == "_since":
            r = date_range(v)
            if r is None:
                raise bad_request(f"_since không hợp lệ / bad _since {v!r}", "_since")
            since = r[0]
        elif k == "_type":
            types += [t.strip() for t in v.split(",") if t.strip()]
            bad = [t for t in types if t not in resource_types()]
            if bad:
                raise bad_request(f"_type không hợp lệ / unknown _type {bad}", "_type")
    return count, offset, since, types


class _Page:
    """The paging view of a request that render.searchset reads ($everything is not a search)."""

    def __init__(self, count: int, offset: int) -> None:
        self.count, self.offset = count, offset
        self.summary: str | None = None
        self.elements: list[str] = []
