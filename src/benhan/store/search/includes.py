"""_include and _revinclude (http://hl7.org/fhir/R4/search.html#include), with one :iterate level.

Includes run after the page is fetched, on the page's (rtype, id) keys only: a few indexed
lookups in ix_reference, then one fetch of the resources by key, in chunks.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from benhan.store.schema import ix_reference, resource
from benhan.store.search.criteria import Cond, Ctx
from benhan.store.search.model import Include, SearchRequest
from benhan.store.search.query import Row, as_bytes, content_column

Key = tuple[str, str]
CHUNK = 500  # keys per IN (…) list
MAX_INCLUDED = 1000  # included resources per page, so a _revinclude cannot return a whole table


def _by_type(keys: Iterable[Key]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rtype, rid in keys:
        out.setdefault(rtype, []).append(rid)
    return out


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


def _forward(conn: sa.Connection, inc: Include, rtype: str, ids: list[str]) -> set[Key]:
    """Targets of the references that resources (rtype, ids) make through inc.param."""
    ref = ix_reference
    where: list[Cond] = [ref.c.rtype == rtype, ref.c.target_id.is_not(None)]
    if inc.param != "*":
        where.append(ref.c.param == inc.param)
    if inc.target_type is not None:
        where.append(ref.c.target_type == inc.target_type)
    found: set[Key] = set()
    for chunk in _chunks(ids):
        query = sa.select(ref.c.target_type, ref.c.target_id).where(*where, ref.c.id.in_(chunk))
        found.update((t, i) for t, i in conn.execute(query) if t)
    return found


def _reverse(conn: sa.Connection, inc: Include, rtype: str, ids: list[str]) -> set[Key]:
    """Resources of inc.source_type whose inc.param references one of (rtype, ids)."""
    ref = ix_reference
    where: list[Cond] = [ref.c.target_type == rtype]
    if inc.source_type != "*":
        where.append(ref.c.rtype == inc.source_type)
    if inc.param != "*":
        where.append(ref.c.param == inc.param)
    found: set[Key] = set()
    for chunk in _chunks(ids):
        query = sa.select(ref.c.rtype, ref.c.id).where(*where, ref.c.target_id.in_(chunk))
        found.update((t, i) for t, i in conn.execute(query))
    return found


def _step(
    conn: sa.Connection, includes: list[Include], revincludes: list[Include], keys: set[Key]
) -> set[Key]:
    """One round: everything the includes reach from `keys`."""
    found: set[Key] = set()
    for rtype, ids in _by_type(keys).items():
        for inc in includes:
            if inc.source_type in ("*", rtype):
                found |= _forward(conn, inc, rtype, ids)
        for rev in revincludes:
            if rev.target_type in (None, rtype):
                found |= _reverse(conn, rev, rtype, ids)
    return found


def _fetch(conn: sa.Connection, keys: set[Key], ctx: Ctx, patients: set[str]) -> list[Row]:
    """The included resources the caller may see; their patients go into `patients`."""
    rows: list[Row] = []
    for rtype, ids in sorted(_by_type(keys).items()):
        for chunk in _chunks(sorted(ids)):
            query = (
                sa.select(resource.c.id, content_column(), resource.c.patient_key)
                .where(resource.c.rtype == rtype, resource.c.id.in_(chunk))
                .where(resource.c.deleted.is_(False), *ctx.only_visible(resource, rtype))
                .order_by(resource.c.id)
            )
            for rid, c, pkey in conn.execute(query):
                rows.append((rtype, rid, as_bytes(c)))
                if pkey:
                    patients.add(pkey)
    return rows


def run_includes(
    conn: sa.Connection, req: SearchRequest, matches: list[Row], ctx: Ctx, patients: set[str]
) -> list[Row]:
    """Round one from the matches (all includes); round two, :iterate ones from round one."""
    if not matches or not (req.includes or req.revincludes):
        return []
    seen: set[Key] = {(t, i) for t, i, _ in matches}
    first = _step(conn, req.includes, req.revincludes, seen) - seen
    iterating = [i for i in req.includes if i.iterate], [r for r in req.revincludes if r.iterate]
    second: set[Key] = set()
    if first and (iterating[0] or iterating[1]):
        second = _step(conn, iterating[0], iterating[1], first) - seen - first
    keys = [*sorted(first), *sorted(second)][:MAX_INCLUDED]
    return _fetch(conn, set(keys), ctx, patients)
