"""The FHIR REST router with no HTTP in it: one Request in, one Response out.

The HTTP routes and every Bundle entry go through `dispatch`, so a pushed transaction gets exactly
the validation and checks of a single call (STYLE.md §2.1). Interactions follow
http://hl7.org/fhir/R4/http.html.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonpatch
import sqlalchemy as sa

from benhan.fhir.definitions import resource_types
from benhan.fhir.outcome import FhirError, Issue, bad_request, info_outcome, not_found, precondition
from benhan.fhir.primitives import date_range
from benhan.rest import render
from benhan.rest.message import Request, Response
from benhan.store.repository import Repo, Saved, parse_etag
from benhan.store.search import SearchRequest, parse_search, run_search

HTTP_ONLY = frozenset({"_format", "_pretty"})


@dataclass
class Context:
    """What a dispatch needs besides the request: the unit of work and where we are served."""

    repo: Repo
    base: str
    operations: dict[str, Callable[[Context, Request, list[str]], Response]]

    @property
    def conn(self) -> sa.Connection:
        return self.repo.conn


def dispatch(ctx: Context, req: Request) -> Response:
    parts = [p for p in req.path.strip("/").split("/") if p]
    if parts and parts[-1].startswith("$"):
        return _operation(ctx, req, parts)
    if parts and parts[0] not in resource_types() and parts[0] not in ("_history", "_search"):
        raise FhirError(
            404,
            Issue(
                "not-supported",
                f"Loại tài nguyên không hỗ trợ / unknown resource type {parts[0]!r}",
                "url",
            ),
        )
    handler = _ROUTES.get((req.method, _shape(parts)))
    if handler is None:
        raise FhirError(
            405,
            Issue("not-supported", f"{req.method} /{req.path} không được hỗ trợ / not supported"),
        )
    return handler(ctx, req, parts)


def _shape(parts: list[str]) -> str:
    """ "Patient/1/_history/2" → "T/I/_history/V"; the route table is keyed by these shapes."""
    shape = []
    for i, p in enumerate(parts):
        if p in ("_history", "_search"):
            shape.append(p)
        else:
            shape.append("T" if i == 0 else ("V" if i == 3 else "I"))
    return "/".join(shape)


def _operation(ctx: Context, req: Request, parts: list[str]) -> Response:
    op = ctx.operations.get(parts[-1])
    if op is None:
        raise FhirError(
            404, Issue("not-supported", f"Thao tác không hỗ trợ / unknown operation {parts[-1]}")
        )
    if parts[:-1] and parts[0] not in resource_types():
        raise bad_request(f"Loại tài nguyên không hợp lệ / unknown resource type {parts[0]!r}")
    return op(ctx, req, parts[:-1])


# ---- reads ---------------------------------------------------------------------------------


def read(ctx: Context, req: Request, parts: list[str]) -> Response:
    s = ctx.repo.read(parts[0], parts[1])
    return _conditional_read(req, s) or _resource(s, 200)


def vread(ctx: Context, req: Request, parts: list[str]) -> Response:
    return _resource(ctx.repo.vread(parts[0], parts[1], parts[3]), 200)


def _conditional_read(req: Request, s: Saved) -> Response | None:
    """If-None-Match / If-Modified-Since → 304 (http://hl7.org/fhir/R4/http.html#cread)."""
    inm = req.header("if-none-match")
    if inm and inm.strip().removeprefix("W/").strip('"') == str(s.version_id):
        return Response(304, etag=render.etag(s.version_id))
    ims = req.header("if-modified-since")
    if ims and (since := _http_or_fhir_date(ims)) is not None:
        mine = date_range(s.last_updated)
        if mine and mine[0] <= since:
            return Response(304, etag=render.etag(s.version_id))
    return None


def _http_or_fhir_date(value: str) -> int | None:
    from email.utils import parsedate_to_datetime

    from benhan.fhir.primitives import micros

    r = date_range(value)
    if r:
        return r[1]
    try:
        return micros(parsedate_to_datetime(value)) + 999_999
    except (TypeError, ValueError):
        return None


def search(ctx: Context, req: Request, parts: list[str]) -> Response:
    rtype = parts[0] if parts and parts[0] != "_search" else None
    query = [(k, v) for k, v in req.query if k not in HTTP_ONLY]
    strict = req.prefer.get("handling") == "strict"
    sreq = parse_search(rtype, query, strict=strict)
    result = ctx.repo.search(sreq, [k for k, _v in query])
    issues = None
    if sreq.ignored:
        issues = info_outcome(
            "Bỏ qua tham số không hỗ trợ / ignored unsupported parameters: "
            + ", ".join(sreq.ignored)
        )
    path = rtype or ""
    return Response(200, render.searchset(ctx.base, path, query, result, sreq, issues))


def history_of(ctx: Context, req: Request, parts: list[str]) -> Response:
    rtype = parts[0] if parts and parts[0] != "_history" else None
    rid = parts[1] if len(parts) > 2 else None
    count, offset, since = _history_params(req.query)
    versions, total = ctx.repo.history(rtype, rid, since=since, count=count, offset=offset)
    body = render.history_bundle(
        ctx.base, "/".join(parts), req.query, versions, total, offset, count
    )
    return Response(200, body)


def _history_params(query: list[tuple[str, str]]) -> tuple[int, int, int | None]:
    count, offset, since = 50, 0, None
    for k, v in query:
        if k in ("_count", "_offset"):
            if not v.isdigit():
                raise bad_request(
                    f"{k} phải là số nguyên không âm / {k} must be a non-negative "
                    f"integer, got {v!r}",
                    k,
                )
            count, offset = (min(int(v), 1000), offset) if k == "_count" else (count, int(v))
        elif k == "_since":
            r = date_range(v)
            if r is None:
                raise bad_request(
                    f"_since không phải ngày giờ hợp lệ / _since is not a valid instant: {v!r}",
                    "_since",
                )
            since = r[0]
        elif k not in HTTP_ONLY and k != "_at":
            raise bad_request(f"Tham số lịch sử không hỗ trợ / unsupported history parameter {k}")
    return count, offset, since


# ---- writes --------------------------------------------------------------------------------


def create(ctx: Context, req: Request, parts: list[str]) -> Response:
    body = _body(req, parts[0])
    cond = req.header("if-none-exist")
    if cond:
        found = match(ctx, parts[0], cond)
        if len(found) == 1:
            return _resource(ctx.repo.read(parts[0], found[0]), 200, req)
    return _resource(ctx.repo.create(body), 201, req)


def update(ctx: Context, req: Request, parts: list[str]) -> Response:
    body = _body(req, parts[0])
    s = ctx.repo.update(parts[0], parts[1], body, if_match=req.header("if-match"))
    return _resource(s, 201 if s.created else 200, req)


def conditional_update(ctx: Context, req: Request, parts: list[str]) -> Response:
    """http://hl7.org/fhir/R4/http.html#cond-update: 0 → create, 1 → update, more → 412."""
    if not req.query:
        raise bad_request("PUT cần id hoặc điều kiện tìm kiếm / PUT needs an id or search criteria")
    body = _body(req, parts[0])
    found = match(ctx, parts[0], req.query)
    if not found:
        rid = body.get("id")
        s = ctx.repo.update(parts[0], rid, body) if rid else ctx.repo.create(body)
        return _resource(s, 201, req)
    s = ctx.repo.update(
        parts[0], found[0], {**body, "id": found[0]}, if_match=req.header("if-match")
    )
    return _resource(s, 200, req)


def patch(ctx: Context, req: Request, parts: list[str]) -> Response:
    """JSON Patch (RFC 6902) on the current version; the result is validated like any update."""
    rid = parts[1] if len(parts) > 1 else _single(ctx, parts[0], req.query)
    current = ctx.repo.read(parts[0], rid)
    if not isinstance(req.body, list):
        raise bad_request(
            "PATCH cần một JSON Patch (mảng thao tác) / PATCH needs a JSON Patch array"
        )
    try:
        patched = jsonpatch.apply_patch(current.resource, req.body)
    except (
        jsonpatch.JsonPatchException,
        jsonpatch.JsonPointerException,
        TypeError,
        KeyError,
        IndexError,
        ValueError,
    ) as exc:
        raise bad_request(f"JSON Patch không áp dụng được / patch failed: {exc}") from None
    if not isinstance(patched, dict) or patched.get("id") != rid:
        raise bad_request("Patch không được đổi id / a patch may not change the id", "id")
    if patched.get("resourceType") != parts[0]:
        raise bad_request("Patch không được đổi resourceType / a patch may not change the type")
    w = ctx.repo.prepare_update(parts[0], rid, patched, req.header("if-match"), "PATCH", None)
    return _resource(ctx.repo.flush([w])[0], 200, req)


def delete(ctx: Context, req: Request, parts: list[str]) -> Response:
    if len(parts) == 1:
        if not req.query:
            raise bad_request("DELETE cần id hoặc điều kiện / DELETE needs an id or criteria")
        found = match(ctx, parts[0], req.query)
        if not found:
            return Response(204)
        parts = [parts[0], found[0]]
    if_match = req.header("if-match")
    current = ctx.repo.current_version(parts[0], parts[1]) if if_match else None
    if if_match and current and current[0] != parse_etag(if_match):
        raise precondition("Phiên bản đã thay đổi / version conflict (If-Match)")
    version = ctx.repo.delete(parts[0], parts[1])
    return Response(204, etag=render.etag(version) if version else None)


def match(ctx: Context, rtype: str, criteria: str | list[tuple[str, str]]) -> list[str]:
    """Ids matching conditional criteria (count 2 is enough to see ambiguity): >1 is a 412."""
    query = _parse_query(criteria) if isinstance(criteria, str) else list(criteria)
    query = [(k, v) for k, v in query if k not in HTTP_ONLY]
    if not query:
        raise bad_request("Điều kiện rỗng / empty conditional criteria")
    ctx.repo.lock(f"{rtype}?{sorted(query)}")
    sreq: SearchRequest = parse_search(rtype, [*query, ("_count", "2")], strict=True)
    sreq.total = "none"
    ids = [rid for _t, rid, _c in run_search(ctx.conn, sreq, ctx.repo.policy.visible).matches]
    if len(ids) > 1:
        raise precondition(
            "Điều kiện khớp nhiều tài nguyên / conditional criteria matched more than one resource"
        )
    return ids


def is_conditional(ref: str) -> bool:
    """`Patient?identifier=…`: a reference by search (http://hl7.org/fhir/R4/http.html#trules)."""
    return "?" in ref and not ref.startswith(("http:", "https:"))


def resolve_conditional(ctx: Context, ref: str) -> str:
    """The "Type/id" a conditional reference stands for: exactly one match, else 400/404/412."""
    rtype = ref.split("?", 1)[0]
    if rtype not in resource_types():
        raise bad_request(f"Tham chiếu điều kiện không hợp lệ / bad conditional reference {ref!r}")
    found = match(ctx, rtype, ref)
    if not found:
        raise FhirError(
            404,
            Issue(
                "not-found",
                f"Tham chiếu điều kiện không khớp / conditional reference matched nothing: {ref}",
            ),
        )
    return f"{rtype}/{found[0]}"


def _single(ctx: Context, rtype: str, query: list[tuple[str, str]]) -> str:
    found = match(ctx, rtype, query)
    if not found:
        raise not_found(rtype, "?" + "&".join(f"{k}={v}" for k, v in query))
    return found[0]


def _parse_query(criteria: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(criteria.split("?", 1)[-1], keep_blank_values=True)


def _body(req: Request, rtype: str) -> dict[str, Any]:
    body = req.body
    if not isinstance(body, dict):
        raise bad_request(
            "Nội dung phải là một tài nguyên FHIR (đối tượng JSON) / body must be a "
            "FHIR resource (a JSON object)"
        )
    if body.get("resourceType") != rtype:
        raise bad_request(
            f"resourceType {body.get('resourceType')!r} không khớp URL ({rtype}) / "
            f"resourceType does not match the URL",
            "resourceType",
        )
    return body


def _resource(s: Saved, status: int, req: Request | None = None) -> Response:
    loc = f"{s.rtype}/{s.id}/_history/{s.version_id}"
    prefer = req.prefer.get("return", "representation") if req else "representation"
    body: Any = s.content
    if prefer == "minimal":
        body = None
    elif prefer == "OperationOutcome":
        body = info_outcome(f"Đã lưu / stored {loc}")
    return Response(
        status,
        body,
        location=loc if status == 201 or req else None,
        etag=render.etag(s.version_id),
        last_modified=s.last_updated,
    )


_ROUTES: dict[tuple[str, str], Callable[[Context, Request, list[str]], Response]] = {
    ("GET", "T/I"): read,
    ("GET", "T/I/_history/V"): vread,
    ("GET", "T/I/_history"): history_of,
    ("GET", "T/_history"): history_of,
    ("GET", "_history"): history_of,
    ("GET", "T"): search,
    ("POST", "T/_search"): search,
    ("GET", ""): search,
    ("GET", "_search"): search,
    ("POST", "_search"): search,
    ("POST", "T"): create,
    ("PUT", "T/I"): update,
    ("PUT", "T"): conditional_update,
    ("PATCH", "T/I"): patch,
    ("PATCH", "T"): patch,
    ("DELETE", "T/I"): delete,
    ("DELETE", "T"): delete,
}
