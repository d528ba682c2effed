"""The audit trail: one AuditEvent per access, written with the data it concerns.

Every read, search, write, export, login, failed login, permission change and break-glass leaves
an AuditEvent (http://hl7.org/fhir/R4/auditevent.html, shaped like IHE BALP): who (account,
role, facility, address), what (the resources and the patients touched), when, why (purpose of
use) and the outcome. It holds references and parameter names, never clinical content or search
values. A write's events are stored in the write's own transaction; a read's, or a refused
request's, right after it in a transaction of their own (unit.py).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from benhan.access import Actor
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.primitives import instant, now
from benhan.fhir.searchparams import INDEXED_TYPES, ROW_MAKERS, Row

# http://hl7.org/fhir/R4/valueset-audit-event-action.html
ACTIONS = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "search-type": "E",
    "search-system": "E",
    "history-instance": "R",
    "history-type": "R",
    "history-system": "R",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "operation": "E",
    "transaction": "E",
    "batch": "E",
}
OUTCOME_OK, OUTCOME_MINOR, OUTCOME_SERIOUS = "0", "4", "8"
# DICOM event types and subtypes (http://dicom.nema.org/resources/ontology/DCM).
LOGIN = ("110114", "User Authentication", "110122", "Login")
LOGOUT = ("110114", "User Authentication", "110123", "Logout")
ROLES_CHANGED = ("110136", "Security Roles Changed", "110137", "User Security Attributes Changed")
BREAK_GLASS = ("110113", "Security Alert", "110127", "Emergency Override Started")
KEYS_CHANGED = ("110113", "Security Alert", "110137", "User Security Attributes Changed")


@dataclass
class Access:
    """One interaction as the audit trail records it."""

    subtype: str  # restful-interaction code, or a DICOM code for security events
    entities: list[str] = field(default_factory=list)  # "Type/id" touched
    patients: set[str] = field(default_factory=set)  # Patient ids whose data was touched
    query: str | None = None  # "Observation?code&date": parameter names, no values
    outcome: str = OUTCOME_OK
    detail: str | None = None  # why it failed (status and issue code), no content
    event: tuple[str, str, str, str] | None = None  # DICOM (type, display, subtype, display)
    purpose: str | None = None  # overrides the actor's purpose (BTG for break-glass)
    at: datetime = field(default_factory=now)  # when it happened, not when it was written


class Trail:
    """The accesses of one unit of work, turned into AuditEvents when it ends."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.accesses: list[Access] = []
        self.bundle: str | None = None  # "transaction" or "batch": one event for the Bundle

    def record(
        self,
        subtype: str,
        entities: Iterable[str] = (),
        patients: Iterable[str | None] = (),
        query: str | None = None,
    ) -> Access:
        access = Access(subtype, list(entities), {p for p in patients if p}, query)
        self.accesses.append(access)
        return access

    def failed(self, status: int, code: str, since: int = 0, subtype: str = "operation") -> None:
        """What was done since access number `since` was refused or undone: recorded as such
        (an access already marked keeps its more precise reason)."""
        outcome = OUTCOME_SERIOUS if status >= 500 else OUTCOME_MINOR
        if len(self.accesses) <= since:
            self.accesses.append(Access(subtype))
        for a in self.accesses[since:]:
            if a.outcome == OUTCOME_OK:
                a.outcome, a.detail = outcome, f"{status} {code}"

    def events(self) -> list[Resource]:
        return [audit_event(self.actor, a) for a in self.to_write()]

    def to_write(self) -> list[Access]:
        """The accesses that become AuditEvents: a Bundle's as one, a local job's not at all."""
        if self.actor.unrestricted and all(a.event is None for a in self.accesses):
            return []  # local jobs record their own summary event (bulk/importer.py)
        accesses = self.accesses
        if self.bundle and accesses:
            whole = Access(self.bundle, outcome=max(a.outcome for a in accesses))
            whole.detail = next((a.detail for a in accesses if a.detail), None)
            for a in accesses:
                whole.entities += a.entities
                whole.patients |= a.patients
            accesses = [whole]
        return accesses

    def flush(self, conn: sa.Connection) -> None:
        write_events(conn, self.events(), self.actor.facility)
        self.accesses.clear()


def audit_event(actor: Actor, a: Access) -> Resource:
    if a.event:
        etype = _coding(sy.DICOM_DCM, a.event[0], a.event[1])
        subtype = _coding(sy.DICOM_DCM, a.event[2], a.event[3])
        action = "E"
    else:
        etype = _coding(sy.AUDIT_EVENT_TYPE, "rest", "RESTful Operation")
        subtype = _coding(sy.RESTFUL_INTERACTION, a.subtype)
        action = ACTIONS.get(a.subtype, "E")
    event: Resource = {
        "resourceType": "AuditEvent",
        "type": etype,
        "subtype": [subtype],
        "action": action,
        "recorded": instant(a.at),
        "outcome": a.outcome,
        "purposeOfEvent": [{"coding": [_coding(sy.V3_ACT_REASON, a.purpose or actor.purpose)]}],
        "agent": [_agent(actor)],
        "source": {
            "site": actor.facility or "province",
            "observer": {"identifier": {"system": sy.MA_CSKCB, "value": actor.facility}}
            if actor.facility
            else {"display": "benhan hub"},
            "type": [_coding(sy.SECURITY_SOURCE_TYPE, "4", "Application Server")],
        },
    }
    if a.detail:
        event["outcomeDesc"] = a.detail
    entities = [_entity(f"Patient/{p}", "1", "1") for p in sorted(a.patients)]
    entities += [_entity(e, "2", "4") for e in dict.fromkeys(a.entities) if e not in _pats(a)]
    if a.query:
        entities.append(
            {
                "type": _coding(sy.AUDIT_ENTITY_TYPE, "2", "System Object"),
                "role": _coding(sy.OBJECT_ROLE, "24", "Query"),
                "query": base64.b64encode(a.query.encode()).decode(),
            }
        )
    if entities:
        event["entity"] = entities
    return event


def _pats(a: Access) -> set[str]:
    return {f"Patient/{p}" for p in a.patients}


def who_of(actor: Actor) -> dict[str, Any]:
    """The actor as a Reference: its Practitioner (or Patient) when the account is linked to
    one, else the account or client by its identifier."""
    if actor.practitioner:
        return {"reference": actor.practitioner}
    if actor.patient:
        return {"reference": actor.patient}
    system = sy.CLIENT if actor.kind == "client" else sy.ACCOUNT
    return {"identifier": {"system": system, "value": actor.account or actor.name}}


def _agent(actor: Actor) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "role": [{"coding": [_coding(sy.ROLE, actor.role.code, actor.role.en)]}],
        "who": who_of(actor),
        "altId": actor.name,
        "requestor": True,
    }
    if actor.address:
        agent["network"] = {"address": actor.address[:64], "type": "2"}
    if actor.session:
        agent["policy"] = [f"urn:benhan:session:{actor.session}"]
    return agent


def _entity(ref: str, etype: str, role: str) -> dict[str, Any]:
    return {
        "what": {"reference": ref},
        "type": _coding(sy.AUDIT_ENTITY_TYPE, etype),
        "role": _coding(sy.OBJECT_ROLE, role),
    }


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def write_events(conn: sa.Connection, events: list[Resource], facility: str) -> None:
    """Store AuditEvents as resources (searchable by privacy officers) without auditing them."""
    if not events:
        return
    from benhan.store.repository import new_id, prepare_write, store_writes

    writes = []
    for e in events:
        e["id"] = new_id()
        # No meta.source: AuditEvent.source already names the facility, and a meta.source
        # would cost every event one more index row (_source) on the busiest write path.
        writes.append(
            prepare_write(
                e, "POST", facility=facility, trusted=True, rows=index_rows, stamp_source=False
            )
        )
    store_writes(conn, writes, facility)


def index_rows(e: Resource) -> dict[str, list[Row]]:
    """fhir.searchparams.extract(e) for the events built here, read straight from the shape
    they are built in instead of walking each parameter's FHIRPath (a tenth of the cost; the
    tests check that the rows are the same)."""
    rows: dict[str, list[Row]] = {t: [] for t in INDEXED_TYPES}

    def add(kind: str, code: str, value: Any, ftype: str) -> None:
        ROW_MAKERS[kind](value, ftype, code, rows[kind])

    add("token", "type", e["type"], "Coding")
    for c in e.get("subtype", []):
        add("token", "subtype", c, "Coding")
    add("token", "action", e["action"], "code")
    add("date", "date", e["recorded"], "instant")
    add("token", "outcome", e["outcome"], "code")
    for a in e["agent"]:
        for r in a.get("role", []):
            add("token", "agent-role", r, "CodeableConcept")
        add("reference", "agent", a["who"], "Reference")
        if str(a["who"].get("reference", "")).startswith("Patient/"):
            add("reference", "patient", a["who"], "Reference")
        add("token", "altid", a["altId"], "string")
        if "network" in a:
            add("string", "address", a["network"]["address"], "string")
        for uri in a.get("policy", []):
            add("uri", "policy", uri, "uri")
    add("token", "site", e["source"]["site"], "string")
    add("reference", "source", e["source"]["observer"], "Reference")
    for ent in e.get("entity", []):
        if "what" in ent:
            add("reference", "entity", ent["what"], "Reference")
            if str(ent["what"].get("reference", "")).startswith("Patient/"):
                add("reference", "patient", ent["what"], "Reference")
        add("token", "entity-type", ent["type"], "Coding")
        add("token", "entity-role", ent["role"], "Coding")
    return rows


def security_event(
    kind: tuple[str, str, str, str],
    *,
    ok: bool = True,
    entities: Iterable[str] = (),
    patients: Iterable[str] = (),
    detail: str | None = None,
    purpose: str | None = None,
) -> Access:
    """A login, logout, permission change, key rotation or break-glass, ready for a Trail."""
    return Access(
        kind[2],
        list(entities),
        set(patients),
        outcome=OUTCOME_OK if ok else OUTCOME_MINOR,
        detail=detail,
        event=kind,
        purpose=purpose,
    )


def record_security(conn: sa.Connection, actor: Actor, access: Access) -> None:
    """Write one security event now, in the caller's transaction."""
    write_events(conn, [audit_event(actor, access)], actor.facility)
