"""The ASGI application: FHIR at /fhir, pages at /, gzip, and errors as OperationOutcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from benhan import __version__
from benhan.api import bulk_routes, errors, fhir_routes, oauth_routes
from benhan.api.access_log import AccessLog
from benhan.config import Settings, tune_gc
from benhan.signing.ledger_signing import Checkpointer, Schedule
from benhan.store.database import Store, open_store
from benhan.web import (
    account_pages,
    break_glass_pages,
    clinician_pages,
    desk_pages,
    document_pages,
    kiosk_pages,
    login_pages,
    mpi_pages,
    pages,
    privacy_pages,
    queue_pages,
    results_pages,
    visit_pages,
)

log = logging.getLogger("benhan.api")


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    schedule = Schedule.from_env()  # here: a bad value stops the server before it starts

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not app.state.store.is_postgres:  # PostgreSQL's autovacuum keeps its own statistics
            app.state.store.analyze()
        stop = threading.Event()
        tasks = []
        if settings.match_every > 0:
            tasks.append(asyncio.create_task(_match_arrivals(app.state.store, settings, stop)))
        if schedule.on:
            checkpointer = Checkpointer(app.state.store, schedule)
            tasks.append(asyncio.create_task(_checkpoint_chains(checkpointer, stop)))
        yield
        stop.set()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        app.state.store.audit.flush()  # read events still queued are written before exit

    app = FastAPI(
        title="benhan",
        version=__version__,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store or open_store(settings.database_url)
    app.state.store.create_schema()
    errors.install(app)
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    app.add_middleware(AccessLog)
    app.include_router(oauth_routes.router)
    app.include_router(bulk_routes.router)  # first: the FHIR router ends in a catch-all
    app.include_router(fhir_routes.router)
    for pages_router in (
        login_pages,
        account_pages,
        break_glass_pages,
        privacy_pages,
        desk_pages,
        kiosk_pages,
        queue_pages,
        clinician_pages,
        visit_pages,
        results_pages,
        mpi_pages,
        document_pages,
    ):
        app.include_router(pages_router.router)
    pages.mount(app)
    tune_gc()
    return app


async def _match_arrivals(store: Store, settings: Settings, stop: threading.Event) -> None:
    """Match every Patient written at this node as it arrives (the index's inbox drain), in a
    worker thread so requests go on; a failed round is retried at the next one."""
    from benhan.identity.online import drain

    while not stop.is_set():
        try:
            await asyncio.to_thread(drain, store, settings.facility, stop=stop.is_set)
        except Exception as exc:
            log.error("mpi: matching round failed (%s)", type(exc).__name__)  # no patient data
        await asyncio.sleep(settings.match_every)


async def _checkpoint_chains(checkpointer: Checkpointer, stop: threading.Event) -> None:
    """Sign the ledger's chains that are due (signing/ledger_signing.py), in a worker thread so
    requests go on; a chain it cannot sign is logged there, a failed round here."""
    while not stop.is_set():
        await asyncio.sleep(checkpointer.schedule.poll_seconds)
        try:
            await asyncio.to_thread(checkpointer.step, stop.is_set)
        except Exception as exc:
            log.error("ledger: checkpoint round failed (%s)", type(exc).__name__)
