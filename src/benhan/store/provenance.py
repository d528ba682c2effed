"""The Provenance of every write: who, on behalf of which facility, when, and what was done.

Repo.flush and Repo.delete add them to the writes they store, in the same transaction, so no
route can forget one (http://hl7.org/fhir/R4/provenance.html, shaped like US Core's: an author
agent with onBehalfOf the facility's Organization). Each names the exact versions written
(`Type/id/_history/N`). A write gets one Provenance per patient compartment it touches (so the
compartment and the access rules hold for it) and per activity (Provenance.activity is one code):
a transaction of one patient's new visit is one Provenance; its targets with no patient share
one. None is added for Provenances and AuditEvents (they are the record), nor for what a
Provenance in the same write already names: ingested data keeps its source's, and a signed
document keeps the one with its signature.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from benhan.access import Actor
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.primitives import split_ref
from benhan.fhir.searchparams import INDEXED_TYPES, ROW_MAKERS, Row
from benhan.store.audit import who_of
from benhan.store.schema import ix_token

if TYPE_CHECKING:
    from benhan.store.repository import Write

ACTIVITY = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
ACTIVITIES = {"CREATE": "create", "UPDATE": "revise", "DELETE": "delete"}  # code → display
UNRECORDED = frozenset({"Provenance", "AuditEvent"})  # they are the record themselves
RECORD = True  # False only where a bench measures their cost or a test wants exact result sets

_ORGANIZATION = (
    sa.select(ix_token.c.id)
    .where(
        ix_token.c.rtype == "Organization",
        ix_token.c.param == "identifier",
        ix_token.c.code == sa.bindparam("code"),
        ix_token.c.system == sy.MA_CSKCB,
    )
    .limit(2)
)
# Per database: facility code → the id of its Organization.
_ORGANIZATIONS: weakref.WeakKeyDictionary[sa.Engine, dict[str, str]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Target:
    """One stored version that a Provenance names."""

    ref: str  # "Type/id/_history/N"
    activity: str  # CREATE, UPDATE or DELETE
    patient_key: str | None  # the compartment of the version
    facility: str  # the facility that owns it
    at: str  # when it was written (its meta.lastUpdated)


def targets_of(writes: Iterable[Write], facility: str) -> list[Target]:
    """The versions of a flush that need a Provenance; `facility` owns writes naming none."""
    writes = list(writes)
    covered = {
        split_ref(str(t.get("reference", "")))
        for w in writes
        if w.resource["resourceType"] == "Provenance"
        for t in w.resource.get("target", [])
        if isinstance(t, dict)
    }
    out = []
    for w in writes:
        rtype, rid = w.resource["resourceType"], w.resource["id"]
        if rtype in UNRECORDED or (rtype, rid) in covered:
            continue
        out.append(
            Target(
                f"{rtype}/{rid}/_history/{w.version_id}",
                "CREATE" if w.created else "UPDATE",
                w.patient_key,
                w.facility or facility,
                w.resource["meta"]["lastUpdated"],
            )
        )
    return out


def provenance_writes(
    conn: sa.Connection, actor: Actor, targets: list[Target], *, per_patient: bool = True
) -> list[Write]:
    """Prepared Provenances of these versions, one per (patient, owner, activity), built trusted:
    tests validate the shape, so the validator is skipped on this hot path. per_patient=False:
    one per (owner, activity), in no compartment, for a batch that is the hub's own work (the
    MPI's Persons)."""
    from benhan.store.repository import new_id, prepare_write

    if not RECORD or not targets:
        return []
    groups: dict[tuple[str | None, str, str], list[Target]] = {}
    for t in targets:
        key = t.patient_key if per_patient else None
        groups.setdefault((key, t.facility, t.activity), []).append(t)
    organizations: dict[str, dict[str, Any]] = {}
    out = []
    for (patient_key, owner, activity), group in groups.items():
        if owner and owner not in organizations:
            organizations[owner] = facility_reference(conn, owner)
        res = provenance(
            [t.ref for t in group],
            max(t.at for t in group),
            activity,
            author(actor, organizations.get(owner)),
        )
        res["id"] = new_id()
        w = prepare_write(res, "POST", facility=owner, trusted=True, rows=index_rows)
        w.patient_key = patient_key  # its targets' compartment, whether or not one is a Patient
        out.append(w)
    return out


def provenance(
    targets: list[str],
    recorded: str,
    activity: str,
    agent: dict[str, Any],
    *,
    signature: dict[str, Any] | None = None,
) -> Resource:
    """A Provenance of these versioned references; `signature`: the one they were signed with."""
    out: Resource = {
        "resourceType": "Provenance",
        "target": [{"reference": ref} for ref in targets],
        "recorded": recorded,
        "activity": {
            "coding": [{"system": ACTIVITY, "code": activity, "display": ACTIVITIES[activity]}]
        },
        "agent": [agent],
    }
    if signature:
        out["signature"] = [signature]
    return out


def author(actor: Actor, on_behalf_of: dict[str, Any] | None) -> dict[str, Any]:
    """The actor as the author agent: its Practitioner (or Patient) when the account is linked
    to one, else the account or client as the audit trail names it (a Device for machines)."""
    who = who_of(actor)
    if "identifier" in who and actor.role.machine:
        who = {"type": "Device", **who}
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": PARTICIPANT, "code": "author", "display": "Author"}]},
        "who": who,
    }
    if on_behalf_of:
        agent["onBehalfOf"] = on_behalf_of
    return agent


def facility_reference(conn: sa.Connection, code: str) -> dict[str, Any]:
    """The facility as an Organization: by its MA_CSKCB, and by id when the registry has
    exactly one Organization with that code."""
    out: dict[str, Any] = {
        "type": "Organization",
        "identifier": {"system": sy.MA_CSKCB, "value": code},
    }
    rid = _organization_id(conn, code)
    return {"reference": f"Organization/{rid}", **out} if rid else out


def _organization_id(conn: sa.Connection, code: str) -> str | None:
    """Read as the store (the directory is everyone's). An id found is kept for the process:
    the lookup cost more than the rest of a Provenance, and a facility's Organization keeps its
    id (were it replaced, the identifier still names the facility). A facility not in the
    registry is looked for again at each write, so it is found once it is registered."""
    known = _ORGANIZATIONS.setdefault(conn.engine, {})
    rid = known.get(code)
    if rid is None:
        found = conn.scalars(_ORGANIZATION, {"code": code}).all()
        if len(found) != 1:
            return None
        rid = known[code] = str(found[0])
    return rid


def index_rows(p: Resource) -> dict[str, list[Row]]:
    """fhir.searchparams.extract(p) for the Provenances built here, read straight from their
    shape instead of by FHIRPath (the tests check that the rows are the same)."""
    rows: dict[str, list[Row]] = {t: [] for t in INDEXED_TYPES}

    def add(kind: str, code: str, value: Any, ftype: str) -> None:
        ROW_MAKERS[kind](value, ftype, code, rows[kind])

    for t in p["target"]:
        add("reference", "target", t, "Reference")
        if t["reference"].startswith("Patient/"):
            add("reference", "patient", t, "Reference")
    add("date", "recorded", p["recorded"], "instant")
    for a in p["agent"]:
        add("token", "agent-type", a["type"], "CodeableConcept")
        add("reference", "agent", a["who"], "Reference")
    if "source" in p["meta"]:
        add("uri", "_source", p["meta"]["source"], "uri")
    return rows


__all__ = [
    "ACTIVITY",
    "PARTICIPANT",
    "Target",
    "author",
    "facility_reference",
    "index_rows",
    "provenance",
    "provenance_writes",
    "targets_of",
]
