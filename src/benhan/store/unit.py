"""A unit of work for one actor: a transaction, the repository, and the audit trail.

A write's AuditEvents commit with the write, or not at all; when the unit fails, what it did is
rolled back and the failure is recorded. Reads run on a read-only connection; their events, and
those of refusals, are queued for the batch writer before the caller gets anything
(audit_writer.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from benhan.access import Actor
from benhan.fhir.outcome import FhirError
from benhan.store.audit import Trail
from benhan.store.database import Store
from benhan.store.repository import Repo

# Who the unit works for, or how to find out on its connection (a bearer token checked in the
# same transaction as the work, one round trip fewer).
Who = Actor | Callable[[sa.Connection], Actor]


@contextmanager
def unit(store: Store, who: Who, *, write: bool) -> Iterator[Repo]:
    trail: Trail | None = None
    try:
        with store.begin() if write else store.read() as conn:
            actor = who(conn) if callable(who) else who
            trail = Trail(actor)
            yield Repo(conn, actor, trail)
            if write:
                trail.flush(conn)
    except FhirError as exc:
        if trail is not None:  # else the caller was never known (401): nothing to attribute
            trail.failed(exc.status, exc.issues[0].code if exc.issues else "exception")
            _queue(store, trail)
        raise
    except Exception:
        if trail is not None:
            trail.failed(500, "exception")
            _queue(store, trail)
        raise
    if not write and trail is not None:
        _queue(store, trail)


def _queue(store: Store, trail: Trail) -> None:
    """Reads and refusals changed nothing: their events go to the batch writer."""
    store.audit.submit(trail.actor, trail.to_write())
    trail.accesses.clear()
