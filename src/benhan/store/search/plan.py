"""The search engine's entry points: parse a query into a SearchRequest, run it, list support."""

from __future__ import annotations

import sqlalchemy as sa

from benhan.fhir.definitions import resource_types
from benhan.fhir.outcome import FhirError, Issue
from benhan.fhir.primitives import micros, now
from benhan.fhir.searchparams import params_for
from benhan.store.search.control import apply_control
from benhan.store.search.criteria import Ctx, Visibility
from benhan.store.search.includes import run_includes
from benhan.store.search.model import Include, SearchRequest, SearchResult, unsupported
from benhan.store.search.parse import UnknownParam, parse_criterion
from benhan.store.search.query import count_matches, fetch_page

# Parameters that are not index look-ups, with the type a CapabilityStatement gives them.
SPECIAL_PARAMS: tuple[tuple[str, str], ...] = (
    ("_id", "token"),
    ("_lastUpdated", "date"),
    ("_has", "special"),
    ("_include", "special"),
    ("_revinclude", "special"),
    ("_sort", "string"),
    ("_count", "number"),
    ("_offset", "number"),
    ("_total", "token"),
    ("_summary", "token"),
    ("_elements", "string"),
)


def parse_search(
    rtype: str | None, params: list[tuple[str, str]], *, strict: bool
) -> SearchRequest:
    """Parse and check a query (http://hl7.org/fhir/R4/search.html); no SQL yet.

    Unknown or unsupported parameters raise 400 when `strict`, else land in `ignored`;
    a malformed value or modifier is a 400 either way.
    """
    if rtype is not None and rtype not in resource_types():
        raise FhirError(
            400,
            Issue(
                "not-supported", f"Không có kiểu tài nguyên {rtype} / unknown resource type {rtype}"
            ),
        )
    req = SearchRequest(rtype)
    for name, raw in params:
        if apply_control(req, name, raw):
            continue
        try:
            criterion = parse_criterion(rtype, name, raw)
        except UnknownParam:
            if strict:
                raise unsupported(name, "không biết tham số này", "unknown parameter") from None
            req.ignored.append(name)
            continue
        if criterion is not None:
            req.criteria.append(criterion)
    if req.summary == "count":
        req.count, req.total = 0, "accurate"
    return req


def run_search(
    conn: sa.Connection, req: SearchRequest, visible: Visibility | None = None
) -> SearchResult:
    """One page of matches (count+1 fetched for has_next), the total, and the includes, all
    limited to the rows `visible` allows (the repository passes the caller's policy)."""
    ctx = Ctx(conn.dialect.name, micros(now()), visible)
    patients: set[str] = set()
    matches, has_next = fetch_page(conn, req, ctx, patients)
    total: int | None = None
    if req.total != "none":
        small = req.offset == 0 and req.count > 0 and not has_next
        total = len(matches) if small else count_matches(conn, req, ctx)
    included = run_includes(conn, req, matches, ctx, patients)
    return SearchResult(matches, included, total, has_next, patients)


def supported_params(rtype: str) -> list[tuple[str, str]]:
    """(code, type) of every parameter served for a type, for the CapabilityStatement."""
    indexed = params_for(rtype) if rtype in resource_types() else {}
    listed = [(code, p.type) for code, p in sorted(indexed.items())]
    return [*SPECIAL_PARAMS, *listed]


__all__ = [
    "Include",
    "SearchRequest",
    "SearchResult",
    "parse_search",
    "run_search",
    "supported_params",
]
