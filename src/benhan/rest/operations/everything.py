"""Patient/$everything (http://hl7.org/fhir/R4/patient-operation-everything.html).

The patient, every resource in their compartment, and the resources those reference. The
compartment is the `patient_key` stored on each row, so the query stays on one shard.
"""

from __future__ import annotations

import sqlalchemy as sa

from benhan.fhir.definitions import resource_types
from benhan.fhir.outcome import FhirError, Issue, bad_request
from benhan.fhir.primitives import date_range
from benhan.rest import render
from benhan.rest.message import Request, Response
from benhan.rest.router import Context
from benhan.store.schema import ix_reference, resource
from benhan.store.search import SearchResult

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
    ctx.repo.read("Patient", pid)  # 404 / 410 first
    count, offset, since, types = _params(req.query)
    where = _where(pid, since, types)
    total = ctx.conn.scalar(sa.select(sa.func.count()).select_from(_union(pid, where)))
    rows = ctx.conn.execute(
        sa.select(_union(pid, where))
        .order_by(sa.text("ord"), sa.text("rtype"), sa.text("id"))
        .limit(count + 1)
        .offset(offset)
    ).all()
    sreq = _Page(count=count, offset=offset)
    page = [(r.rtype, r.id, r.content.encode()) for r in rows[:count]]
    result = SearchResult(page, [], int(total or 0), len(rows) > count)
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


def _where(pid: str, since: int | None, types: list[str]) -> list[sa.ColumnElement[bool]]:
    cond: list[sa.ColumnElement[bool]] = [resource.c.deleted.is_(False)]
    if since is not None:
        cond.append(resource.c.last_updated >= since)
    if types:
        cond.append(resource.c.rtype.in_(types))
    return cond


def _union(pid: str, where: list[sa.ColumnElement[bool]]) -> sa.Subquery:
    """The compartment (the patient first), then what it references outside of it."""
    cols = [resource.c.rtype, resource.c.id, sa.cast(resource.c.content, sa.Text).label("content")]
    own = sa.select(*cols, sa.case((resource.c.rtype == "Patient", 0), else_=1).label("ord")).where(
        resource.c.patient_key == pid, *where
    )
    refs = (
        sa.select(ix_reference.c.target_type, ix_reference.c.target_id)
        .where(
            ix_reference.c.patient_key == pid,
            ix_reference.c.target_type != "Patient",
            ix_reference.c.target_id.is_not(None),
        )
        .distinct()
        .subquery()
    )
    referenced = (
        sa.select(*cols, sa.literal(2).label("ord"))
        .join(
            refs, sa.and_(resource.c.rtype == refs.c.target_type, resource.c.id == refs.c.target_id)
        )
        .where(sa.or_(resource.c.patient_key.is_(None), resource.c.patient_key != pid), *where)
    )
    return sa.union_all(own, referenced).subquery()


class _Page:
    """The paging view of a request that render.searchset reads ($everything is not a search)."""

    def __init__(self, count: int, offset: int) -> None:
        self.count, self.offset = count, offset
        self.summary: str | None = None
        self.elements: list[str] = []
