"""The main SELECT of a search: filters, _sort order with a stable tie-break, paging, total."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from benhan.store.schema import INDEX_TABLES, resource
from benhan.store.search.criteria import Cond, Ctx
from benhan.store.search.match import criterion_filter
from benhan.store.search.model import SearchRequest
from benhan.store.search.parse import indexed_params

Row = tuple[str, str, bytes]


def content_column() -> sa.ColumnElement[Any]:
    """The JSON as text: PostgreSQL stores JSONB, SQLite text."""
    return sa.cast(resource.c.content, sa.Text)


def conditions(req: SearchRequest, ctx: Ctx) -> list[Cond]:
    where: list[Cond] = [resource.c.deleted.is_(False)]
    if req.rtype is not None:
        where.append(resource.c.rtype == req.rtype)
    elif req.types:
        where.append(resource.c.rtype.in_(req.types))
    types = tuple(req.types)
    where.extend(criterion_filter(c, req.rtype, ctx, types) for c in req.criteria)
    where.extend(ctx.only_visible(resource, req.rtype))
    return where


def sort_key(rtype: str | None, code: str, desc: bool) -> sa.ColumnElement[Any]:
    """One _sort key: the MIN (ascending) or MAX (descending) of the parameter's index values."""
    if code == "_id":
        return resource.c.id
    if code == "_lastUpdated":
        return resource.c.last_updated
    ptype = indexed_params(rtype)[code].type
    ix = INDEX_TABLES[ptype]
    columns = {"string": "norm", "token": "code", "date": "hi" if desc else "lo"}
    col = ix.c[columns.get(ptype, "value")]
    agg = sa.func.max(col) if desc else sa.func.min(col)
    return (
        sa.select(agg)
        .where(ix.c.rtype == resource.c.rtype, ix.c.id == resource.c.id, ix.c.param == code)
        .scalar_subquery()
    )


def order_by(req: SearchRequest) -> list[sa.ColumnElement[Any]]:
    """Requested keys, resources without a value last; then (rtype, id) so paging is stable."""
    out: list[sa.ColumnElement[Any]] = []
    for code, desc in req.sort:
        key = sort_key(req.rtype, code, desc)
        out.append(sa.nulls_last(key.desc() if desc else key.asc()))
    out.extend([resource.c.rtype.asc(), resource.c.id.asc()])
    return out


def fetch_page(
    conn: sa.Connection, req: SearchRequest, ctx: Ctx, patients: set[str]
) -> tuple[list[Row], bool]:
    """At most `count` matches from `offset`, and whether there are more (count+1 fetched);
    the patients whose records they are go into `patients` (for the audit trail)."""
    if req.count == 0:
        return [], False
    query = (
        sa.select(resource.c.rtype, resource.c.id, content_column(), resource.c.patient_key)
        .where(*conditions(req, ctx))
        .order_by(*order_by(req))
        .limit(req.count + 1)
        .offset(req.offset)
    )
    fetched = conn.execute(query).all()
    rows = [(r[0], r[1], as_bytes(r[2])) for r in fetched[: req.count]]
    patients.update(r[3] for r in fetched[: req.count] if r[3])
    return rows, len(fetched) > req.count


def count_matches(conn: sa.Connection, req: SearchRequest, ctx: Ctx) -> int:
    query = sa.select(sa.func.count()).select_from(resource).where(*conditions(req, ctx))
    return int(conn.execute(query).scalar_one())


def as_bytes(content: str | bytes | None) -> bytes:
    if content is None:
        return b"null"
    return content.encode() if isinstance(content, str) else content
