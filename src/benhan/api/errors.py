"""The two exception handlers (STYLE.md §2.1): FhirError, and a last resort that reveals nothing."""

from __future__ import annotations

import logging
import traceback
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from benhan.api.responses import fhir_json
from benhan.fhir.outcome import FhirError, Issue, operation_outcome

log = logging.getLogger("benhan.api")


def install(app: FastAPI) -> None:
    app.add_exception_handler(FhirError, _fhir_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _fhir_error(request: Request, exc: FhirError) -> Response:
    page = _page_error(request)
    if page is not None and exc.status in (403, 404, 410):  # a page the user cannot reach
        return page(request, 404 if exc.status == 410 else exc.status)  # type: ignore[no-any-return]
    headers = None
    if exc.status == 401:
        # RFC 6750 §3: how to authenticate; invalid_token when a token was sent and refused.
        error = ', error="invalid_token"' if "authorization" in request.headers else ""
        headers = {"WWW-Authenticate": f'Bearer realm="benhan"{error}'}
    return fhir_json(exc.outcome(), exc.status, headers=headers)


def _page_error(request: Request) -> Any:
    """The readable error page for paths people open in a browser; None on the API."""
    page = getattr(request.app.state, "html_error", None)
    return None if request.url.path.startswith("/fhir") else page


async def _http_error(request: Request, exc: HTTPException) -> Response:
    page = _page_error(request)
    if page is not None:
        return page(request, exc.status_code)  # type: ignore[no-any-return]
    code = {404: "not-found", 405: "not-supported", 413: "too-costly"}.get(
        exc.status_code, "processing"
    )
    issue = Issue(code, f"{exc.status_code}: {exc.detail}")
    return fhir_json(operation_outcome([issue]), exc.status_code)


async def _request_error(request: Request, exc: RequestValidationError) -> Response:
    issues = [
        Issue("invalid", str(e.get("msg")), ".".join(str(p) for p in e.get("loc", ())))
        for e in exc.errors()
    ]
    return fhir_json(operation_outcome(issues), 400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    rid = getattr(request.state, "request_id", None) or uuid.uuid4().hex[:12]
    # The request id, method, route, the exception's type and where it was raised: never the body,
    # the query or the exception's message (any of them may quote patient data).
    where = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "unhandled error %s on %s %s: %s\n%s",
        rid,
        request.method,
        request.url.path,
        type(exc).__name__,
        where,
    )
    issue = Issue("exception", f"Lỗi máy chủ, mã {rid} / internal error, reference {rid}")
    # Starlette runs this handler outside the middleware stack, so the id header is set here.
    return fhir_json(operation_outcome([issue]), 500, headers={"X-Request-Id": rid})
