"""Bulk Data $export over HTTP (https://hl7.org/fhir/uv/bulkdata/STU2/export.html).

Kick-off answers 202 with Content-Location of a status URL; the status URL answers 202 while the
job runs, then the manifest; the files are served from $export-file. Included before the FHIR
router, whose catch-all would otherwise take these paths.
"""

from __future__ import annotations

import re

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response

from benhan.api.deps import actor, settings, store
from benhan.api.responses import fhir_json
from benhan.bulk import export as bulk
from benhan.fhir.outcome import FhirError, Issue, info_outcome

router = APIRouter(prefix="/fhir", tags=["Bulk Data"])

NDJSON = "application/fhir+ndjson"
JSON_RANGES = frozenset({"application/fhir+json", "application/json", "application/*", "*/*"})


@router.get("/$export")
async def export_system(request: Request) -> Response:
    """System level: every resource of the server."""
    return await _kick_off(request, "system")


@router.get("/Patient/$export")
async def export_patients(request: Request) -> Response:
    """Patient level: every Patient compartment."""
    return await _kick_off(request, "patient")


@router.get("/Group/{gid}/$export")
async def export_group(gid: str, request: Request) -> Response:
    """Group level: the compartments of the Group's Patient members."""
    return await _kick_off(request, "group", gid)


@router.get("/$export-status/{job_id}")
async def export_status(job_id: str, request: Request) -> Response:
    who = await run_in_threadpool(actor, request)
    job = await run_in_threadpool(bulk.status, store(request), job_id, who)
    return _status_response(job, settings(request).base_url)


@router.delete("/$export-status/{job_id}")
async def export_delete(job_id: str, request: Request) -> Response:
    who = await run_in_threadpool(actor, request)
    await run_in_threadpool(bulk.delete_job, store(request), settings(request), job_id, who)
    return fhir_json(info_outcome(f"Đã xoá / deleted export job {job_id}"), 202)


@router.get("/$export-file/{rest:path}")
async def export_file(rest: str, request: Request) -> Response:
    """One NDJSON file; `rest` takes the whole tail so that no odd path falls through."""
    job_id, _, name = rest.partition("/")
    who = await run_in_threadpool(actor, request)
    path = await run_in_threadpool(
        bulk.job_file, store(request), settings(request), job_id, name, who
    )
    return FileResponse(path, media_type=NDJSON)


async def _kick_off(request: Request, level: bulk.Level, group: str | None = None) -> Response:
    who = await run_in_threadpool(actor, request)  # 401 before anything else
    _check_headers(request.headers)
    query = list(request.query_params.multi_items())
    params = bulk.parse_params(query, request_url=_public_url(request), group=group)
    job_id = await run_in_threadpool(
        bulk.kick_off, store(request), settings(request), level, params, who
    )
    location = f"{settings(request).base_url}/$export-status/{job_id}"
    body = info_outcome(f"Đã nhận yêu cầu xuất / export accepted: {location}")
    return fhir_json(body, 202, headers={"Content-Location": location})


def _check_headers(headers: Headers) -> None:
    """Kick-off request headers (STU2 "Headers"): Prefer: respond-async, a JSON Accept."""
    issues = []
    prefer = re.split(r"[,;]", headers.get("prefer", ""))
    if "respond-async" not in {p.split("=")[0].strip().lower() for p in prefer}:
        issues.append(
            Issue(
                "invalid",
                "Cần header Prefer: respond-async / $export is asynchronous: "
                "send the header Prefer: respond-async",
            )
        )
    accept = headers.get("accept")
    ranges = {r.split(";")[0].strip().lower() for r in (accept or "").split(",")}
    if accept and not ranges & JSON_RANGES:
        issues.append(
            Issue(
                "not-supported",
                f"Accept phải là application/fhir+json / Accept must "
                f"be application/fhir+json, got {accept[:100]!r}",
            )
        )
    if issues:
        raise FhirError(400, *issues)


def _public_url(request: Request) -> str:
    """The kick-off URL under the public base (behind a proxy, request.url is the inner one)."""
    path = request.url.path.removeprefix("/fhir")
    query = request.url.query
    return f"{settings(request).base_url}{path}" + (f"?{query}" if query else "")


def _status_response(job: bulk.Job, base_url: str) -> Response:
    if job.status == "completed":
        return Response(orjson.dumps(job.manifest(base_url)), media_type="application/json")
    if job.status == "failed":
        # A failed job is not a fault of this request: a 4xx (not 500) outcome, per STU2 "Error".
        raise FhirError(
            422, Issue("exception", f"Xuất dữ liệu thất bại / export failed: {job.error}")
        )
    return Response(status_code=202, headers={"X-Progress": job.status, "Retry-After": "2"})
