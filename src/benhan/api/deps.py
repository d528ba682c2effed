"""Request plumbing: the body (size-limited, parsed), the FHIR Request, and running a dispatch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import Request as HttpRequest
from starlette.responses import Response

from benhan.access import Actor
from benhan.api import responses
from benhan.api.security import bearer_actor
from benhan.config import Settings
from benhan.fhir.outcome import FhirError, Issue, bad_request, too_large
from benhan.rest.message import Request
from benhan.rest.message import Response as FhirResponse
from benhan.rest.operations import OPERATIONS
from benhan.rest.router import Context, dispatch
from benhan.store.database import Store
from benhan.store.unit import unit

JSON_TYPES = ("application/fhir+json", "application/json", "application/json-patch+json")
FORM = "application/x-www-form-urlencoded"
READ_METHODS = frozenset({"GET", "HEAD"})


def settings(http: HttpRequest) -> Settings:
    value: Settings = http.app.state.settings
    return value


def store(http: HttpRequest) -> Store:
    value: Store = http.app.state.store
    return value


async def body_of(http: HttpRequest) -> tuple[Any, list[tuple[str, str]]]:
    """The parsed JSON body, or form pairs for POST _search; 413 past the size limit."""
    limit = settings(http).max_body_bytes
    declared = http.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    raw = bytearray()
    async for chunk in http.stream():
        raw += chunk
        if len(raw) > limit:
            raise too_large(limit)
    if not raw:
        return None, []
    ctype = http.headers.get("content-type", "application/fhir+json").split(";")[0].strip()
    if ctype == FORM:
        from urllib.parse import parse_qsl

        return None, parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    if ctype not in JSON_TYPES:
        raise FhirError(
            415,
            Issue("not-supported", f"Chỉ hỗ trợ JSON / only FHIR JSON is supported, got {ctype!r}"),
        )
    try:
        return orjson.loads(raw), []
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"JSON không hợp lệ / malformed JSON: {exc}", code="structure") from None


async def fhir_request(http: HttpRequest, path: str) -> Request:
    check_format(http)
    body, form = await body_of(http)
    query = [(k, v) for k, v in http.query_params.multi_items()]
    headers = {k.lower(): v for k, v in http.headers.items()}
    return Request(http.method, path, query + form, body, headers)


def check_format(http: HttpRequest) -> None:
    fmt = http.query_params.get("_format") or ""
    if fmt and "json" not in fmt:
        raise FhirError(
            406, Issue("not-supported", f"Chỉ hỗ trợ JSON / only JSON is offered, _format={fmt!r}")
        )


def authenticate(http: HttpRequest) -> Callable[[sa.Connection], Actor]:
    """Who is asking, checked on the unit's own connection: the bearer token's account or
    client (401 without a valid one)."""
    cfg = settings(http)
    address = http.client.host if http.client else None
    header = http.headers.get("authorization")

    def resolve(conn: sa.Connection) -> Actor:
        return bearer_actor(conn, header, address=address, audience=cfg.base_url)

    return resolve


def actor(http: HttpRequest) -> Actor:
    """The caller, for work outside a unit (bulk export jobs)."""
    with store(http).read() as conn:
        return authenticate(http)(conn)


def run(http: HttpRequest, req: Request) -> FhirResponse:
    """One dispatch as the caller, in one unit of work: checked, audited, one transaction
    (reads use a read-only connection)."""
    s, cfg = store(http), settings(http)
    with unit(s, authenticate(http), write=req.method not in READ_METHODS) as repo:
        return dispatch(Context(repo, cfg.base_url, dict(OPERATIONS)), req)


async def handle(http: HttpRequest, path: str) -> Response:
    from starlette.concurrency import run_in_threadpool

    req = await fhir_request(http, path)
    result = await run_in_threadpool(run, http, req)
    pretty = http.query_params.get("_pretty") == "true"
    return responses.render(result, settings(http).base_url, pretty=pretty)
