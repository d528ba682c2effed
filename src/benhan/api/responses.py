"""FHIR JSON responses: media type, _pretty, ETag / Location / Last-Modified headers."""

from __future__ import annotations

from email.utils import format_datetime
from typing import Any

import orjson
from starlette.responses import Response

from benhan.fhir.primitives import date_range, from_micros
from benhan.rest.message import Response as FhirResponse

FHIR_JSON = "application/fhir+json; charset=utf-8"


def fhir_json(
    body: Any, status: int = 200, *, pretty: bool = False, headers: dict[str, str] | None = None
) -> Response:
    if body is None:
        return Response(status_code=status, headers=headers)
    if isinstance(body, bytes) and not pretty:
        content = body
    else:
        opts = orjson.OPT_INDENT_2 if pretty else 0
        value = orjson.Fragment(body) if isinstance(body, bytes) else body
        content = orjson.dumps(orjson.loads(orjson.dumps(value)) if pretty else value, option=opts)
    return Response(content, status_code=status, media_type=FHIR_JSON, headers=headers)


def render(r: FhirResponse, base: str, *, pretty: bool) -> Response:
    headers = dict(r.headers)
    if r.location:
        headers["Location"] = f"{base}/{r.location}"
    if r.etag:
        headers["ETag"] = r.etag
    if r.last_modified:
        rng = date_range(r.last_modified)
        if rng:
            headers["Last-Modified"] = format_datetime(from_micros(rng[0]), usegmt=False)
    return fhir_json(r.body, r.status, pretty=pretty, headers=headers)
