"""A patient's compartment for Patient/$everything, as far as the caller may see it.

The compartment is the `patient_key` stored on each row, widened to every Patient the provincial
index links to the same person (Person.link): at the hub, one person's record from every
facility. The resources it references outside of it (practitioners, organizations…) come after.
"""

from __future__ import annotations

import sqlalchemy as sa

from benhan.store.policy import same_person
from benhan.store.schema import ix_reference, resource
from benhan.store.search import SearchResult
from benhan.store.search.criteria import Visibility


def everything(
    conn: sa.Connection,
    pid: str,
    *,
    since: int | None,
    types: list[str],
    count: int,
    offset: int,
    visible: Visibility | None,
) -> SearchResult:
    where: list[sa.ColumnElement[bool]] = [resource.c.deleted.is_(False)]
    if since is not None:
        where.append(resource.c.last_updated >= since)
    if types:
        where.append(resource.c.rtype.in_(types))
    rule = visible(resource, None) if visible else None
    if rule is not None:
        where.append(rule)
    keys = sorted(set(conn.scalars(same_person(sa.select(sa.literal(pid))))) | {pid})
    union = _union(pid, keys, where)
    total = conn.scalar(sa.select(sa.func.count()).select_from(union))
    rows = conn.execute(
        sa.select(union)
        .order_by(sa.text("ord"), sa.text("rtype"), sa.text("id"))
        .limit(count + 1)
        .offset(offset)
    ).all()
    page = [(r.rtype, r.id, r.content.encode()) for r in rows[:count]]
    return SearchResult(page, [], int(total or 0), len(rows) > count, set(keys))


def _union(pid: str, keys: list[str], where: list[sa.ColumnElement[bool]]) -> sa.Subquery:
    """The compartment (the patient asked for first, then the records linked to them), then
    what it references outside of it."""
    cols = [resource.c.rtype, resource.c.id, sa.cast(resource.c.content, sa.Text).label("content")]
    first = sa.and_(resource.c.rtype == "Patient", resource.c.id == pid)
    own = sa.select(*cols, sa.case((first, 0), else_=1).label("ord")).where(
        resource.c.patient_key.in_(keys), *where
    )
    refs = (
        sa.select(ix_reference.c.target_type, ix_reference.c.target_id)
        .where(
            ix_reference.c.patient_key.in_(keys),
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
        .where(
            sa.or_(resource.c.patient_key.is_(None), resource.c.patient_key.not_in(keys)), *where
        )
    )
    return sa.union_all(own, referenced).subquery()
