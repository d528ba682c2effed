"""Counts for dashboards: how many current resources of each type the repository holds."""

from __future__ import annotations

import sqlalchemy as sa

from benhan.store.schema import resource


def counts_by_type(conn: sa.Connection) -> dict[str, int]:
    """Every row by type, minus the deletions: both read indexes only (a filter on `deleted`
    over all rows read every resource's JSON: 355 ms instead of 26 ms for 400,000)."""
    everything = _by_type(conn, sa.true())
    deleted = _by_type(conn, sa.text("resource.deleted"))  # the partial index's own predicate
    counts = {rtype: n - deleted.get(rtype, 0) for rtype, n in everything.items()}
    return {rtype: n for rtype, n in sorted(counts.items()) if n}


def _by_type(conn: sa.Connection, where: sa.ColumnElement[bool] | sa.TextClause) -> dict[str, int]:
    rows = conn.execute(
        sa.select(resource.c.rtype, sa.func.count()).where(where).group_by(resource.c.rtype)
    )
    return {rtype: int(n) for rtype, n in rows}
