"""Resource-level filters: which resources have (or lack) matching index rows.

A positive filter is `resource.id IN (SELECT id FROM ix_… WHERE rtype = ? AND param = ? AND …)`,
served by the `<table>_lookup (rtype, param, value…)` indexes (a semi-join). A negation
(:not, :missing=true) is NOT EXISTS on the `<table>_owner (rtype, id)` index, which PostgreSQL
runs as an anti-join (NOT IN over a sub-select cannot be, and degrades badly when the sub-select
outgrows work_mem). Chains and _has nest one such filter inside another, over an alias of
`resource`, so nothing is loaded into Python and no query walks resources one by one.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from benhan.store.schema import INDEX_TABLES, ix_reference, resource
from benhan.store.search.criteria import Cond, Ctx, date_cond, rows_condition
from benhan.store.search.model import Criterion, DateValue, TokenValue


def ids_of(rtype: str, crit: Criterion, ctx: Ctx) -> sa.Select[Any]:
    """Ids of the live resources of one type that satisfy the criterion (for chains, _has):
    only those the caller may see, so a chain or _has never reveals a hidden resource."""
    res = resource.alias()
    return (
        sa.select(res.c.id)
        .where(res.c.rtype == rtype, res.c.deleted.is_(False), *ctx.only_visible(res, rtype))
        .where(criterion_filter(crit, rtype, ctx, res=res))
        .correlate(None)
    )


def criterion_filter(
    crit: Criterion,
    rtype: str | None,
    ctx: Ctx,
    types: tuple[str, ...] = (),
    res: sa.FromClause = resource,
) -> Cond:
    """The WHERE term on `res` (the resource table) for one criterion; rtype None: all types."""
    if crit.type == "id":
        return res.c.id.in_([v.code for v in crit.values if isinstance(v, TokenValue)])
    if crit.type == "lastUpdated":
        col = res.c.last_updated
        dates = [v for v in crit.values if isinstance(v, DateValue)]
        return sa.or_(*(date_cond(col, col, v, ctx) for v in dates))
    if crit.has is not None and rtype is not None:
        return res.c.id.in_(_has_rows(crit, rtype, ctx))
    if crit.chain and rtype is not None:
        return res.c.id.in_(_chain_rows(crit, rtype, ctx))
    ix, where = _index_rows(crit, rtype, ctx, types)
    if crit.negated:
        owner = sa.select(ix.c.id).where(ix.c.rtype == res.c.rtype, ix.c.id == res.c.id, *where)
        return ~sa.exists(owner.correlate(res))
    if rtype is not None:
        return res.c.id.in_(sa.select(ix.c.id).where(*where).correlate(None))
    keys = sa.tuple_(res.c.rtype, res.c.id)
    return keys.in_(sa.select(ix.c.rtype, ix.c.id).where(*where).correlate(None))


def _index_rows(
    crit: Criterion, rtype: str | None, ctx: Ctx, types: tuple[str, ...]
) -> tuple[sa.Table, list[Cond]]:
    """The index table of the criterion and the WHERE terms of its matching rows."""
    ix = INDEX_TABLES[crit.type]
    where: list[Cond] = [ix.c.param == crit.code]
    if rtype is not None:
        where.append(ix.c.rtype == rtype)
    elif types:
        where.append(ix.c.rtype.in_(types))
    if crit.modifier != "missing":
        where.append(rows_condition(ix, crit, ctx))
    return ix, where


def _chain_rows(crit: Criterion, rtype: str, ctx: Ctx) -> sa.Select[Any]:
    """`subject:Patient.name=…`: references (of this param) to a target satisfying the rest."""
    ref = ix_reference
    targets = [
        sa.and_(ref.c.target_type == t, ref.c.target_id.in_(ids_of(t, inner, ctx)))
        for t, inner in crit.chain
    ]
    where = [ref.c.rtype == rtype, ref.c.param == crit.code, sa.or_(*targets)]
    return sa.select(ref.c.id).where(*where).correlate(None)


def _has_rows(crit: Criterion, rtype: str, ctx: Ctx) -> sa.Select[Any]:
    """`_has:Observation:patient:code=…`: targets of references from matching Observations."""
    assert crit.has is not None
    ref, has = ix_reference, crit.has
    return (
        sa.select(ref.c.target_id)
        .where(
            ref.c.rtype == has.source_type,
            ref.c.param == has.ref_param,
            ref.c.target_type == rtype,
            ref.c.target_id.is_not(None),
            ref.c.id.in_(ids_of(has.source_type, has.inner, ctx)),
        )
        .correlate(None)
    )
