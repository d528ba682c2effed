"""History of versions: instance, type and system level (http://hl7.org/fhir/R4/http.html#history)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from benhan.store.schema import resource_version


@dataclass(slots=True)
class Version:
    rtype: str
    id: str
    version_id: int
    last_updated: int  # microseconds UTC
    method: str
    deleted: bool
    content: bytes | None


def history(
    conn: sa.Connection,
    rtype: str | None,
    rid: str | None,
    *,
    since: int | None,
    count: int,
    offset: int,
) -> tuple[list[Version], int]:
    """Newest first; returns one page and the total number of versions matched."""
    v = resource_version.c
    where = []
    if rtype:
        where.append(v.rtype == rtype)
    if rid:
        where.append(v.id == rid)
    if since is not None:
        where.append(v.last_updated >= since)
    total = conn.scalar(sa.select(sa.func.count()).select_from(resource_version).where(*where))
    rows = conn.execute(
        sa.select(
            v.rtype,
            v.id,
            v.version_id,
            v.last_updated,
            v.method,
            v.deleted,
            sa.cast(v.content, sa.Text),
        )
        .where(*where)
        .order_by(v.last_updated.desc(), v.rtype, v.id, v.version_id.desc())
        .limit(count)
        .offset(offset)
    ).all()
    page = [
        Version(r[0], r[1], r[2], r[3], r[4], r[5], r[6].encode() if r[6] else None) for r in rows
    ]
    return page, int(total or 0)
