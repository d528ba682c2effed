"""Counts for dashboards: how many current resources of each type the repository holds."""

from __future__ import annotations

import sqlalchemy as sa

from benhan.store.schema import resource


def counts_by_type(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(
        sa.select(resource.c.rtype, sa.func.count())
        .where(resource.c.deleted.is_(False))
        .group_by(resource.c.rtype)
        .order_by(resource.c.rtype)
    ).all()
    return {rtype: int(n) for rtype, n in rows}
