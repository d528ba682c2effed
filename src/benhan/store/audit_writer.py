"""Writing the AuditEvents of reads in batches, off the request's path.

A read changes nothing, so its events have no transaction to join; writing each in a
transaction of its own would cost more than the read (a WAL commit touching a dozen index pages).
Instead the events go to a queue that one thread per process writes, hundreds per transaction.
The request returns once its events are queued; `flush()` waits until everything queued so far
is stored (tests, shutdown). The price: if the process dies, read events of the last moments
(normally well under a second) can be lost. Write events never take this path: they commit with
the write they record (unit.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from benhan.fhir.definitions import Resource

if TYPE_CHECKING:
    from benhan.access import Actor
    from benhan.store.audit import Access
    from benhan.store.database import Store

log = logging.getLogger("benhan.audit")
BATCH = 500  # events per transaction at most
LINGER_S = 0.05  # how long the first event of a batch waits for company: fewer, bigger commits
RETRY_S = (0.1, 0.5, 2.0, 5.0)  # back-off while the database refuses


class AuditWriter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: deque[tuple[Actor, Access]] = deque()
        self._cond = threading.Condition()
        self._queued = 0  # events ever queued
        self._written = 0  # events ever stored
        self._thread: threading.Thread | None = None
        self._closing = False
        self._idle = False  # the writer waits for a first event: only then is it woken
        self._urgent = threading.Event()  # a flush() or close() cuts the lingering short

    def submit(self, actor: Actor, accesses: list[Access]) -> None:
        """Queue these accesses; their AuditEvents are built and stored by the writer."""
        if not accesses:
            return
        with self._cond:
            self._queue.extend((actor, a) for a in accesses)
            self._queued += len(accesses)
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()
            if self._idle:  # waking a thread costs a context switch: only when it sleeps
                self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every event queued before this call is stored; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._queued
            while self._written < target:
                self._urgent.set()
                self._cond.notify_all()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closing = True
            self._urgent.set()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._idle = True
                while not self._queue and not self._closing:
                    self._cond.wait()
                self._idle = False
                if not self._queue:
                    return
            # Let the batch fill, without a wake-up per event, unless someone waits for it.
            self._urgent.wait(LINGER_S)
            with self._cond:
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                if not self._queue:
                    self._urgent.clear()  # a flush() still waiting sets it again
            self._store(batch)
            with self._cond:
                self._written += len(batch)
                self._cond.notify_all()

    def _store(self, batch: list[tuple[Actor, Access]]) -> None:
        from benhan.store.audit import audit_event, write_events

        by_facility: dict[str, list[Resource]] = {}
        for actor, access in batch:
            by_facility.setdefault(actor.facility, []).append(audit_event(actor, access))
        for attempt, pause in enumerate((*RETRY_S, None)):
            try:
                with self.store.begin() as conn:
                    for facility, events in by_facility.items():
                        write_events(conn, events, facility)
                return
            except Exception as exc:  # the database is busy or gone: try again, then give up
                if pause is None:
                    # Only counts and the exception type: an event holds patient references.
                    log.error("audit: %d events not stored: %s", len(batch), type(exc).__name__)
                    return
                log.warning("audit: retry %d after %s", attempt + 1, type(exc).__name__)
                time.sleep(pause)
