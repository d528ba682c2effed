"""The AuditEvents benhan writes: valid R4 (they skip the validator when stored), indexed exactly
as the general extractor would index them (they skip it too), and written in batches for reads."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from benhan.access import ANONYMOUS, Actor
from benhan.fhir.searchparams import extract
from benhan.fhir.validation import validate
from benhan.store import audit
from benhan.store.audit import Access, audit_event, index_rows, security_event
from benhan.store.database import Store
from benhan.store.schema import resource
from tests.access.world import actor

EVENTS: dict[str, tuple[Actor, Access]] = {
    "read by a doctor": (
        actor("doctor", address="10.1.2.3", practitioner="Practitioner/p1", session="s1"),
        Access("read", ["Observation/o1"], {"p1"}),
    ),
    "search with many patients": (
        actor("nurse"),
        Access("search-type", ["Observation/o1"], {"p1", "p2", "p3"}, query="Observation?code"),
    ),
    "refused delete": (
        actor("registrar"),
        Access("delete", ["Patient/p9"], set(), outcome="4", detail="403 forbidden"),
    ),
    "patient reads own record": (
        actor("patient", "", patient="Patient/p1"),
        Access("read", ["Patient/p1"], {"p1"}),
    ),
    "failed login": (
        Actor("user", "someone", ANONYMOUS, "", ANONYMOUS.scopes, address="1.2.3.4"),
        security_event(audit.LOGIN, ok=False, detail="invalid"),
    ),
    "break-glass": (
        actor("doctor"),
        security_event(audit.BREAK_GLASS, patients=["p2"], purpose="BTG"),
    ),
    "whole bundle": (actor("system-integrator"), Access("transaction", ["Patient/a"], {"a"})),
    "province analyst export": (
        actor("doh-analyst", ""),
        Access("operation", [], set(), query="$export?level=system", detail="10 resources written"),
    ),
}


def _stored(event: dict[str, Any]) -> dict[str, Any]:
    return {
        **event,
        "id": "e1",
        "meta": {"versionId": "1", "lastUpdated": "2025-03-01T06:30:00+07:00"},
    }


def _sorted(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[bytes]]:
    return {
        k: sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in v) for k, v in rows.items()
    }


@pytest.mark.parametrize("case", sorted(EVENTS))
def test_each_kind_of_event_is_valid_r4(case: str) -> None:
    who, access = EVENTS[case]
    event = _stored(audit_event(who, access))
    validate(event, orjson.dumps(event))


@pytest.mark.parametrize("case", sorted(EVENTS))
def test_index_rows_equal_the_general_extractor(case: str) -> None:
    who, access = EVENTS[case]
    event = _stored(audit_event(who, access))
    assert _sorted(index_rows(event)) == _sorted(extract(event))


def test_reads_are_written_in_batches_and_flush_waits_for_them(store: Store) -> None:
    who, _ = EVENTS["read by a doctor"]
    for _ in range(250):
        store.audit.submit(who, [Access("read", ["Observation/o1"], {"p1"})])
    assert store.audit.flush(timeout=30)
    with store.read() as conn:
        n = conn.scalar(sa.select(sa.func.count()).where(resource.c.rtype == "AuditEvent"))
    assert n == 250


def test_a_closed_writer_has_written_everything(store: Store) -> None:
    who, _ = EVENTS["read by a doctor"]
    store.audit.submit(who, [Access("read", ["Patient/p1"], {"p1"})])
    store.audit.close()
    with store.read() as conn:
        n = conn.scalar(sa.select(sa.func.count()).where(resource.c.rtype == "AuditEvent"))
    assert n == 1
