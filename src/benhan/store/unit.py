"""A unit of work for one actor: a transaction, the repository, and the audit trail.

A write's AuditEvents commit with the write, or not at all; when the unit fails, what it did is
rolled back and the failure is recorded in a transaction of its own. Reads run on a read-only
connection and record their access right after it, before the caller gets the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from benhan.access import Actor
from benhan.fhir.outcome import FhirError
from benhan.store.audit import Trail
from benhan.store.database import Store
from benhan.store.repository import Repo


@contextmanager
def unit(store: Store, actor: Actor, *, write: bool) -> Iterator[Repo]:
    trail = Trail(actor)
    try:
        with store.begin() if write else store.read() as conn:
            yield Repo(conn, actor, trail)
            if write:
                trail.flush(conn)
    except FhirError as exc:
        trail.failed(exc.status, exc.issues[0].code if exc.issues else "exception")
        _record(store, trail)
        raise
    except Exception:
        trail.failed(500, "exception")
        _record(store, trail)
        raise
    if not write:
        _record(store, trail)


def _record(store: Store, trail: Trail) -> None:
    if trail.accesses:
        with store.begin() as conn:
            trail.flush(conn)
