"""FHIR REST routes at /fhir: each parses, makes one call to the router, and responds."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from benhan.api import responses
from benhan.api.deps import authenticate, check_format, fhir_request, handle, settings, store
from benhan.rest.bundle import process
from benhan.rest.capability import capability_statement
from benhan.rest.operations import OPERATIONS
from benhan.rest.router import Context
from benhan.store.unit import unit

router = APIRouter(prefix="/fhir", tags=["FHIR"])


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    check_format(request)
    body = capability_statement(settings(request).base_url)
    return responses.fhir_json(body, pretty=request.query_params.get("_pretty") == "true")


@router.post("")
async def transaction(request: Request) -> Response:
    req = await fhir_request(request, "")
    from starlette.concurrency import run_in_threadpool

    body = await run_in_threadpool(_process, request, req.body)
    return responses.fhir_json(body, pretty=request.query_params.get("_pretty") == "true")


def _process(request: Request, bundle: object) -> dict[str, object]:
    cfg = settings(request)
    with unit(store(request), authenticate(request), write=True) as repo:
        return process(Context(repo, cfg.base_url, dict(OPERATIONS)), bundle)


@router.get("")
async def search_all(request: Request) -> Response:
    return await handle(request, "")


async def interaction(path: str, request: Request) -> Response:
    """read, vread, update, patch, delete, create, search, history and operations."""
    return await handle(request, path)


# One route per method, so that each has its own OpenAPI operation id.
for _method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
    router.add_api_route(
        "/{path:path}",
        interaction,
        methods=[_method],
        name=f"fhir_{_method.lower()}",
        operation_id=f"fhir_{_method.lower()}",
    )
