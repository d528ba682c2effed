"""History of versions: instance, type and system level (http://hl7.org/fhir/R4/http.html#history).

The current version lives in `resource` and the superseded ones in `resource_version`; a history
is the union of both, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from benhan.store.schema import resource, resource_version
from benhan.store.search.criteria import Visibility


@dataclass(slots=True)
class Version:
    rtype: str
    id: str
    version_id: int
    last_updated: int  # microseconds UTC
    method: str
    deleted: bool
    content: bytes | None
    patient_key: str | None = None


def history(
    conn: sa.Connection,
    rtype: str | None,
    rid: str | None,
    *,
    since: int | None,
    count: int,
    offset: int,
    visible: Visibility | None = None,
) -> tuple[list[Version], int]:
    """Newest first; returns one page and the total number of versions matched, of the rows
    `visible` allows."""
    versions = sa.union_all(
        *(_select(t, rtype, rid, since, visible) for t in (resource, resource_version))
    )
    sub = versions.subquery()
    total = conn.scalar(sa.select(sa.func.count()).select_from(sub))
    rows = conn.execute(
        sa.select(sub)
        .order_by(sub.c.last_updated.desc(), sub.c.rtype, sub.c.id, sub.c.version_id.desc())
        .limit(count)
        .offset(offset)
    ).all()
    page = [
        Version(r[0], r[1], r[2], r[3], r[4], r[5], r[6].encode() if r[6] else None, r[7])
        for r in rows
    ]
    return page, int(total or 0)


def _select(
    table: sa.Table,
    rtype: str | None,
    rid: str | None,
    since: int | None,
    visible: Visibility | None,
) -> sa.Select[tuple[str, str, int, int, str, bool, str, str]]:
    c = table.c
    where = []
    if rtype:
        where.append(c.rtype == rtype)
    if rid:
        where.append(c.id == rid)
    if since is not None:
        where.append(c.last_updated >= since)
    rule = visible(table, rtype) if visible else None
    if rule is not None:
        where.append(rule)
    return sa.select(
        c.rtype,
        c.id,
        c.version_id,
        c.last_updated,
        c.method,
        c.deleted,
        sa.cast(c.content, sa.Text).label("content"),
        c.patient_key,
    ).where(*where)
