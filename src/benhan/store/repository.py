"""The repository: create, read, vread, update, patch, delete, search, history, $everything.

A Repo works for one actor (access/): every call checks the actor's scopes, sees only the rows
the actor's policy allows (store/policy.py), and records the access in the unit's audit trail
(store/audit.py), so no route can forget either. Every write validates the resource
(fhir.validation), checks that local references point at resources that exist, stores the new
version and its search-index rows in the caller's transaction, so a failure anywhere leaves the
previous state. Semantics follow http://hl7.org/fhir/R4/http.html.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import orjson
import sqlalchemy as sa

from benhan.access import Actor
from benhan.fhir.definitions import Resource, patient_compartment, resource_types
from benhan.fhir.outcome import FhirError, Issue, gone, not_found, precondition, unprocessable
from benhan.fhir.primitives import from_micros, instant, micros, now, split_ref
from benhan.fhir.searchparams import extract
from benhan.fhir.systems import facility_source, source_facility
from benhan.fhir.validation import validate
from benhan.store import compartment, ledger, provenance
from benhan.store.audit import Trail
from benhan.store.bulk_insert import bulk_insert
from benhan.store.history import Version, history
from benhan.store.policy import Policy
from benhan.store.schema import (
    INDEX_TABLES,
    INDEX_VALUES,
    RESOURCE_COLUMNS,
    index_columns,
    mpi_inbox,
    resource,
    resource_version,
)
from benhan.store.search import SearchRequest, SearchResult, run_search

CHUNK = 500  # rows per IN (...) lookup
LOCAL_NOT = ("http:", "https:", "urn:", "#")  # references that name no stored resource
F = TypeVar("F", bound=Callable[..., Any])
_READS: dict[tuple[object, ...], sa.Select[Any]] = {}  # Repo._read_statement
_EXISTING: dict[tuple[object, ...], sa.Select[Any]] = {}  # Repo._existing_statement
# The stored state of one resource, whoever asks (Repo._current checks the owner).
_CURRENT = sa.select(resource.c.version_id, resource.c.deleted, resource.c.facility).where(
    resource.c.rtype == sa.bindparam("rtype"), resource.c.id == sa.bindparam("rid")
)


@dataclass(slots=True)
class Saved:
    """One stored version, as the HTTP layer needs it."""

    rtype: str
    id: str
    version_id: int
    last_updated: str  # instant, +07:00
    content: bytes  # the JSON exactly as stored
    created: bool = False
    deleted: bool = False

    @property
    def resource(self) -> Resource:
        data: Resource = orjson.loads(self.content)
        return data


@dataclass(slots=True)
class Write:
    """A prepared write, so that many can be flushed with one executemany per table."""

    resource: Resource
    method: str  # POST, PUT, PATCH
    version_id: int
    created: bool
    content: bytes  # the resource serialised, as stored
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    patient_key: str | None = None
    facility: str = ""  # the owner; the repository's own facility when empty


def _audited(subtype: str) -> Callable[[F], F]:
    """A refusal or failure of the call is recorded as the outcome of what it accessed (or, if
    it failed before naming anything, of a `subtype` access), even if the caller carries on."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(self: Repo, *args: Any, **kwargs: Any) -> Any:
            mark = len(self.trail.accesses)
            try:
                return fn(self, *args, **kwargs)
            except FhirError as exc:
                code = exc.issues[0].code if exc.issues else "error"
                self.trail.failed(exc.status, code, since=mark, subtype=subtype)
                raise

        return call  # type: ignore[return-value]

    return wrap


class Repo:
    """All reads and writes of one unit of work, on behalf of one actor."""

    def __init__(self, conn: sa.Connection, actor: Actor, trail: Trail | None = None) -> None:
        self.conn = conn
        self.actor = actor
        self.facility = actor.facility
        self.policy = Policy(actor, conn.dialect)
        self.trail = trail if trail is not None else Trail(actor)

    def only_visible(
        self, t: sa.FromClause, rtype: str | None = None
    ) -> list[sa.ColumnElement[bool]]:
        rule = self.policy.visible(t, rtype)
        return [] if rule is None else [rule]

    # ---- reads -------------------------------------------------------------------------

    @_audited("read")
    def read(self, rtype: str, rid: str) -> Saved:
        """http://hl7.org/fhir/R4/http.html#read: 404 if never existed or not the caller's to
        see, 410 if deleted."""
        access = self.trail.record("read", [f"{rtype}/{rid}"], [rid] if rtype == "Patient" else [])
        self.policy.require(rtype, "r")
        row = self.conn.execute(self._read_statement(rtype), {"rid": rid}).first()
        if row is None:
            raise not_found(rtype, rid)
        if row.patient_key:
            access.patients.add(row.patient_key)
        if row.deleted:
            raise gone(rtype, rid)
        return self._out(_saved(rtype, rid, row.version_id, row.last_updated, row[3]))

    def _read_statement(self, rtype: str) -> sa.Select[Any]:
        """The read by id for this actor and type, built once: SQLAlchemy keys its statement
        cache by walking the whole statement, which costs more than the read itself."""
        key = (self.policy.key, rtype, self.conn.dialect.name)  # the rule is dialect SQL text
        stmt = _READS.get(key)
        if stmt is None:
            stmt = sa.select(
                resource.c.version_id,
                resource.c.last_updated,
                resource.c.deleted,
                sa.cast(resource.c.content, sa.Text),
                resource.c.patient_key,
            ).where(
                resource.c.rtype == rtype,
                resource.c.id == sa.bindparam("rid"),
                *self.only_visible(resource, rtype),
            )
            if len(_READS) >= 4096:
                _READS.clear()
            _READS[key] = stmt
        return stmt

    @_audited("vread")
    def vread(self, rtype: str, rid: str, vid: str) -> Saved:
        """http://hl7.org/fhir/R4/http.html#vread: a deleted version reads as 410."""
        access = self.trail.record("vread", [f"{rtype}/{rid}"], [rid] if rtype == "Patient" else [])
        self.policy.require(rtype, "r")
        if not vid.isdigit():
            raise not_found(f"{rtype}/{rid}/_history", vid)
        row = None
        for table in (resource, resource_version):  # the current version, else an older one
            row = self.conn.execute(
                sa.select(
                    table.c.last_updated,
                    table.c.deleted,
                    sa.cast(table.c.content, sa.Text),
                    table.c.patient_key,
                ).where(
                    table.c.rtype == rtype,
                    table.c.id == rid,
                    table.c.version_id == int(vid),
                    *self.only_visible(table, rtype),
                )
            ).first()
            if row is not None:
                break
        if row is None:
            raise not_found(f"{rtype}/{rid}/_history", vid)
        if row.patient_key:
            access.patients.add(row.patient_key)
        if row.deleted:
            raise gone(rtype, f"{rid}/_history/{vid}")
        return self._out(_saved(rtype, rid, int(vid), row.last_updated, row[2]))

    @_audited("search-type")
    def search(self, sreq: SearchRequest, names: list[str]) -> SearchResult:
        """http://hl7.org/fhir/R4/search.html over the rows the caller may see; `names` are the
        parameter names, for the audit trail (never the values)."""
        subtype = "search-type" if sreq.rtype else "search-system"
        query = f"{sreq.rtype or ''}?{'&'.join(sorted(set(names)))}"
        access = self.trail.record(subtype, query=query)
        if sreq.rtype is not None:
            self.policy.require(sreq.rtype, "s")
        result = run_search(self.conn, sreq, self.policy.visible)
        access.patients.update(result.patients)
        if self.policy.deidentify:
            result.matches = [(t, i, self.policy.redact(c)) for t, i, c in result.matches]
            result.included = [(t, i, self.policy.redact(c)) for t, i, c in result.included]
        return result

    @_audited("history-system")
    def history(
        self, rtype: str | None, rid: str | None, *, since: int | None, count: int, offset: int
    ) -> tuple[list[Version], int]:
        """http://hl7.org/fhir/R4/http.html#history, of what the caller may see."""
        subtype = "history-instance" if rid else "history-type" if rtype else "history-system"
        access = self.trail.record(subtype, [f"{rtype}/{rid}"] if rid else [])
        if rtype is not None:
            self.policy.require(rtype, "r")
        if rtype and rid and self._visible_version(rtype, rid) is None:
            raise not_found(rtype, rid)
        versions, total = history(
            self.conn, rtype, rid, since=since, count=count, offset=offset,
            visible=self.policy.visible,
        )  # fmt: skip
        access.patients.update(v.patient_key for v in versions if v.patient_key)
        if self.policy.deidentify:
            for v in versions:
                v.content = self.policy.redact(v.content) if v.content else None
        return versions, total

    @_audited("operation")
    def everything(
        self, pid: str, *, since: int | None, types: list[str], count: int, offset: int
    ) -> SearchResult:
        """Patient/$everything: the patient's compartment and what it references, as far as the
        caller may see it."""
        access = self.trail.record(
            "operation", [f"Patient/{pid}"], [pid], query="Patient/$everything"
        )
        self.policy.require("Patient", "r")
        row = self._visible_version("Patient", pid)
        if row is None:
            raise not_found("Patient", pid)
        if row[1]:
            raise gone("Patient", pid)
        result = compartment.everything(
            self.conn, pid, since=since, types=types, count=count, offset=offset,
            visible=self.policy.visible,
        )  # fmt: skip
        # A linked record returned (its Patient on this page) is a patient this access touched.
        access.patients.update(i for t, i, _c in result.matches if t == "Patient")
        if self.policy.deidentify:
            result.matches = [(t, i, self.policy.redact(c)) for t, i, c in result.matches]
        return result

    def _visible_version(self, rtype: str, rid: str) -> tuple[int, bool] | None:
        row = self.conn.execute(
            sa.select(resource.c.version_id, resource.c.deleted).where(
                resource.c.rtype == rtype, resource.c.id == rid, *self.only_visible(resource, rtype)
            )
        ).first()
        return (row.version_id, row.deleted) if row else None

    def _out(self, s: Saved) -> Saved:
        if self.policy.deidentify:
            s.content = self.policy.redact(s.content)
        return s

    def current_version(self, rtype: str, rid: str) -> tuple[int, bool] | None:
        """The current version of a resource the caller may change, None if there is none.

        A resource of another facility the caller may see is read-only (403); one it may not
        see answers as if it did not exist, but its id is taken (404).
        """
        current = self._current(rtype, rid)
        return current[:2] if current else None

    def _current(self, rtype: str, rid: str) -> tuple[int, bool, str] | None:
        """current_version, and the facility that owns the resource."""
        row = self.conn.execute(_CURRENT, {"rtype": rtype, "rid": rid}).first()
        if row is None:
            return None
        if not self.policy.may_write_owner(row.facility):
            if self._visible_version(rtype, rid) is None:
                raise not_found(rtype, rid)
            raise FhirError(
                403,
                Issue(
                    "forbidden",
                    f"{rtype}/{rid} thuộc cơ sở khác, chỉ được xem / "
                    "belongs to another facility: read-only",
                ),
            )
        return row.version_id, row.deleted, row.facility

    def _refuse_signed(self, rtype: str, rid: str) -> None:
        """A signed document is immutable: its Bundle, and the Composition stored with it under
        the same id, are never changed or deleted; an amendment is a new document (signing/)."""
        if rtype not in ("Bundle", "Composition"):
            return
        q = sa.select(sa.cast(resource.c.content, sa.Text)).where(
            resource.c.rtype == "Bundle", resource.c.id == rid, resource.c.deleted.is_(False)
        )
        text = self.conn.execute(q).scalar()
        if text and '"signature"' in text and orjson.loads(text).get("signature"):
            raise FhirError(
                409,
                Issue(
                    "conflict",
                    "tài liệu đã ký không sửa, không xóa được; hãy lập bản thay thế / "
                    "a signed document cannot be changed or deleted: write one that replaces it",
                ),
            )

    def existing(self, refs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (type, id) pairs exist, are not deleted, and the caller may see.

        One query per CHUNK pairs, whatever their types: the rows of any of the types with any
        of the ids, kept where the pair was asked for (ids are UUIDs: few extra rows if any)."""
        wanted = set(refs)
        found: set[tuple[str, str]] = set()
        pairs = sorted(wanted)
        for i in range(0, len(pairs), CHUNK):
            types = _padded(sorted({t for t, _ in pairs[i : i + CHUNK]}))
            ids = _padded([r for _, r in pairs[i : i + CHUNK]])
            rows = self.conn.execute(self._existing_statement(), {"types": types, "ids": ids})
            found.update(pair for rtype, rid in rows if (pair := (rtype, rid)) in wanted)
        return found

    def _existing_statement(self) -> sa.Select[Any]:
        """existing()'s lookup for this actor, built once (see _read_statement): a statement
        per document's set of types cost more to build and compile than to run."""
        key = (self.policy.key, self.conn.dialect.name)
        stmt = _EXISTING.get(key)
        if stmt is None:
            stmt = cast(
                "sa.Select[Any]",  # its columns are of the Key type, which mypy reads as Never
                sa.select(resource.c.rtype, resource.c.id).where(
                    resource.c.rtype.in_(sa.bindparam("types", expanding=True)),
                    resource.c.id.in_(sa.bindparam("ids", expanding=True)),
                    resource.c.deleted.is_(False),
                    *self.only_visible(resource),
                ),
            )
            if len(_EXISTING) >= 4096:
                _EXISTING.clear()
            _EXISTING[key] = stmt
        return stmt

    # ---- writes ------------------------------------------------------------------------

    @_audited("create")
    def create(self, res: Resource, *, known: set[tuple[str, str]] | None = None) -> Saved:
        """http://hl7.org/fhir/R4/http.html#create: the server assigns the id."""
        res = dict(res)
        res["id"] = new_id()
        return self.flush([self.prepare(res, "POST", known=known)])[0]

    @_audited("update")
    def update(
        self,
        rtype: str,
        rid: str,
        res: Resource,
        *,
        if_match: str | None = None,
        known: set[tuple[str, str]] | None = None,
    ) -> Saved:
        """http://hl7.org/fhir/R4/http.html#update: update, or create with the client's id."""
        _check_body_id(res, rtype, rid)
        return self.flush([self.prepare_update(rtype, rid, res, if_match, "PUT", known)])[0]

    @_audited("update")
    def prepare_update(
        self,
        rtype: str,
        rid: str,
        res: Resource,
        if_match: str | None,
        method: str,
        known: set[tuple[str, str]] | None,
    ) -> Write:
        if not (self.policy.allows(rtype, "u") or self.policy.allows(rtype, "c")):
            self.policy.require(rtype, "u")  # scope first: a 403 here says nothing about data
        current = self._current(rtype, rid)
        if current is not None and not current[1]:
            self._refuse_signed(rtype, rid)
        if if_match is not None:
            expected = parse_etag(if_match)
            if current is None or current[1] or current[0] != expected:
                have = "none" if current is None or current[1] else f'W/"{current[0]}"'
                raise precondition(
                    f"Phiên bản đã thay đổi (hiện tại {have}, gửi {if_match}) / "
                    f"version conflict: current is {have}, If-Match was {if_match}"
                )
        res = dict(res)
        res["id"] = rid
        return self.prepare(
            res,
            method,
            version=(current[0] + 1) if current else 1,
            created=current is None or current[1],
            known=known,
            owner=current[2] if current else None,
        )

    @_audited("delete")
    def delete(self, rtype: str, rid: str) -> int | None:
        """http://hl7.org/fhir/R4/http.html#delete: idempotent; returns the deletion version."""
        access = self.trail.record("delete", [f"{rtype}/{rid}"])
        self.policy.require(rtype, "d")
        current = self._current(rtype, rid)
        if current is None or current[1]:
            return None
        self._refuse_signed(rtype, rid)
        patient_key = self.conn.scalar(
            sa.select(resource.c.patient_key).where(resource.c.rtype == rtype, resource.c.id == rid)
        )
        if patient_key:
            access.patients.add(patient_key)
        version, stamp = current[0] + 1, micros(now())
        storage = _Storage(self.conn, self.facility)
        storage.archive([(rtype, rid)])
        self.conn.execute(
            resource.update()
            .where(resource.c.rtype == rtype, resource.c.id == rid)
            .values(
                version_id=version,
                last_updated=stamp,
                method="DELETE",
                deleted=True,
                content=None,
                patient_key=None,
            )
        )
        storage.drop_index_rows([(rtype, rid)])
        if rtype == "Patient":
            storage.to_match([(rid, version)])
        # The deletion is a version of its owner's history (RESOURCE_COLUMNS order).
        ledger.append(
            self.conn, [(rtype, rid, version, stamp, "DELETE", True, None, current[2], None)]
        )
        self._record_deletion(rtype, rid, version, stamp, patient_key, current[2])
        return version

    def _record_deletion(
        self, rtype: str, rid: str, version: int, stamp: int, patient_key: str | None, owner: str
    ) -> None:
        """The deletion's Provenance, in the same transaction (none for the record's own)."""
        if rtype in provenance.UNRECORDED:
            return
        ref = f"{rtype}/{rid}/_history/{version}"
        at = instant(from_micros(stamp))
        target = provenance.Target(ref, "DELETE", patient_key, owner, at)
        store_writes(
            self.conn, provenance.provenance_writes(self.conn, self.actor, [target]), self.facility
        )

    @_audited("create")
    def prepare(
        self,
        res: Resource,
        method: str,
        *,
        version: int = 1,
        created: bool = True,
        known: set[tuple[str, str]] | None = None,
        owner: str | None = None,
    ) -> Write:
        """Check the actor's scope, validate and index one resource; nothing is written until
        flush(), always as the actor's facility.

        known=None checks references now; a set (possibly empty) of (type, id) pairs that the same
        transaction writes means the caller checks all references at once (check_references).
        `owner`: the facility a stored resource belongs to, when it is updated (the actor's own,
        except for local jobs, which may update any facility's rows).
        """
        rtype = res.get("resourceType") if isinstance(res, dict) else None
        if isinstance(rtype, str) and rtype in resource_types():
            self.policy.require(rtype, "c" if created else "u")
        facility = self.facility if owner is None else owner
        claimed = source_facility(res) if isinstance(res, dict) else None
        if claimed not in (None, facility) and not self.actor.unrestricted:
            # A facility speaks for itself: only a trusted relay (sync) keeps another's origin.
            res = {**res, "meta": {k: v for k, v in res["meta"].items() if k != "source"}}
        w = prepare_write(res, method, version=version, created=created, facility=facility)
        if known is None:
            self.check_references([(w.resource, w.resource["resourceType"])], set())
        return w

    def flush(self, writes: list[Write]) -> list[Saved]:
        """Store prepared writes with one bulk insert per table, in the caller's transaction,
        with their Provenances (store/provenance.py); the Saved of `writes` alone."""
        if not writes:
            return []
        for w in writes:
            if not self.actor.unrestricted:
                w.facility = self.facility  # nobody writes in another facility's name
            rtype, rid = w.resource["resourceType"], w.resource["id"]
            subtype = {"POST": "create", "PATCH": "patch"}.get(w.method, "update")
            self.trail.record(subtype, [f"{rtype}/{rid}"], [w.patient_key])
        # Their Provenances, stored with them: written for the actor, so no scope is needed.
        targets = provenance.targets_of(writes, self.facility)
        extra = provenance.provenance_writes(self.conn, self.actor, targets)
        return store_writes(self.conn, writes + extra, self.facility)[: len(writes)]

    # ---- references --------------------------------------------------------------------

    def lock(self, key: str) -> None:
        """Serialise conditional writes on the same criteria (SQLite's BEGIN IMMEDIATE already
        serialises all writers)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(key))))

    def missing_targets(
        self, refs: Iterable[str], known: set[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """Local references among `refs` whose target is neither stored nor in `known`."""
        wanted = {
            parts
            for ref in refs
            if not ref.startswith(("http:", "https:", "urn:", "#"))
            and (parts := split_ref(ref))
            and parts not in known
        }
        return wanted - self.existing(wanted) if wanted else set()

    def check_references(
        self, items: list[tuple[Resource, str]], known: set[tuple[str, str]]
    ) -> None:
        """Local references must point at stored (or same-transaction) resources: else 422.

        items are (resource, path prefix for messages); one lookup for all of them.
        """
        wanted = {
            parts
            for res, _prefix in items
            for ref in reference_values(res)
            if not ref.startswith(LOCAL_NOT) and (parts := split_ref(ref)) and parts not in known
        }
        missing = wanted - self.existing(wanted) if wanted else set()
        if not missing:
            return
        where: dict[tuple[str, str], str] = {}  # each missing target's first path
        for res, prefix in items:
            for path, ref in references(res, prefix):
                if not ref.startswith(LOCAL_NOT) and (parts := split_ref(ref)) in missing:
                    where.setdefault(parts, path)
        raise unprocessable(
            [
                Issue(
                    "not-found",
                    f"Tham chiếu không tồn tại / reference target not found: {t}/{i}",
                    where[(t, i)],
                )
                for t, i in sorted(missing)
            ]
        )


def store_writes(conn: sa.Connection, writes: list[Write], facility: str) -> list[Saved]:
    """Store prepared writes with one bulk insert per table, in the caller's transaction;
    `facility` owns writes that name none. No checks: Repo.flush checks, the audit trail and
    bulk loaders write what is already checked."""
    return _Storage(conn, facility).store(writes)


class _Storage:
    def __init__(self, conn: sa.Connection, facility: str) -> None:
        self.conn = conn
        self.facility = facility

    def store(self, writes: list[Write]) -> list[Saved]:
        if not writes:
            return []
        saved = [self._version_row(w) for w in writes]
        rows = [self._row(s, w) for s, w in zip(saved, writes, strict=True)]
        fresh = [r for r, w in zip(rows, writes, strict=True) if w.version_id == 1]
        stale = [r for r, w in zip(rows, writes, strict=True) if w.version_id > 1]
        bulk_insert(self.conn, resource, RESOURCE_COLUMNS, fresh)
        self.archive([(r[0], r[1]) for r in stale])
        self._update_current(stale)
        self.drop_index_rows([(r[0], r[1]) for r in stale])
        self._insert_index_rows(writes)
        self.to_match([(s.id, s.version_id) for s in saved if s.rtype == "Patient"])
        ledger.append(self.conn, rows, [w.resource for w in writes])  # chained at commit
        return saved

    def to_match(self, patients: list[tuple[str, int]]) -> None:
        """Queue written Patients (id, version) for the master patient index, in the same
        transaction: whatever path wrote them, none is left unmatched (identity/index.py)."""
        bulk_insert(self.conn, mpi_inbox, ("patient_id", "version_id"), patients)

    def _version_row(self, w: Write) -> Saved:
        rtype, rid = w.resource["resourceType"], w.resource["id"]
        return Saved(
            rtype,
            rid,
            w.version_id,
            w.resource["meta"]["lastUpdated"],
            w.content,
            created=w.created,
        )

    def _row(self, s: Saved, w: Write) -> tuple[Any, ...]:
        """A `resource` row in RESOURCE_COLUMNS order."""
        return (
            s.rtype,
            s.id,
            s.version_id,
            micros_of(s.last_updated),
            w.method,
            False,
            s.content.decode(),
            w.facility or self.facility,
            w.patient_key,
        )

    def _update_current(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        content: sa.ColumnElement[Any] = sa.bindparam("content", type_=sa.Text)
        if self._is_pg:
            content = sa.cast(content, resource.c.content.type)
        self.conn.execute(
            resource.update()
            .where(
                resource.c.rtype == sa.bindparam("b_rtype"), resource.c.id == sa.bindparam("b_id")
            )
            .values(
                version_id=sa.bindparam("version_id"),
                content=content,
                deleted=False,
                last_updated=sa.bindparam("last_updated"),
                method=sa.bindparam("method"),
                patient_key=sa.bindparam("patient_key"),
            ),
            [dict(zip(("b_rtype", "b_id", *RESOURCE_COLUMNS[2:]), r, strict=True)) for r in rows],
        )

    def archive(self, keys: list[tuple[str, str]]) -> None:
        """Copy the current rows of these resources into resource_version, in the database."""
        if not keys:
            return
        cols = [resource.c[name] for name in RESOURCE_COLUMNS]
        for rtype, ids in by_type(keys).items():
            for i in range(0, len(ids), CHUNK):
                current = sa.select(*cols).where(
                    resource.c.rtype == rtype, resource.c.id.in_(ids[i : i + CHUNK])
                )
                self.conn.execute(
                    resource_version.insert().from_select(list(RESOURCE_COLUMNS), current)
                )

    def drop_index_rows(self, keys: list[tuple[str, str]]) -> None:
        if not keys:
            return
        params = [{"k_rtype": t, "k_id": i} for t, i in keys]
        for table in INDEX_TABLES.values():
            self.conn.execute(
                table.delete().where(
                    table.c.rtype == sa.bindparam("k_rtype"), table.c.id == sa.bindparam("k_id")
                ),
                params,
            )

    def _insert_index_rows(self, writes: list[Write]) -> None:
        for kind, table in INDEX_TABLES.items():
            values = INDEX_VALUES[kind]
            batch = [
                (
                    w.resource["resourceType"],
                    w.resource["id"],
                    row["param"],
                    *[row[c] for c in values],
                    w.facility or self.facility,
                    w.patient_key,
                )
                for w in writes
                for row in w.rows.get(kind, ())
            ]
            bulk_insert(self.conn, table, index_columns(kind), batch)

    @property
    def _is_pg(self) -> bool:
        return self.conn.dialect.name == "postgresql"


def prepare_write(
    res: Resource,
    method: str,
    *,
    version: int = 1,
    created: bool = True,
    facility: str = "",
    trusted: bool = False,
    rows: Callable[[Resource], dict[str, list[dict[str, Any]]]] = extract,
    stamp_source: bool = True,
) -> Write:
    """Validate, stamp and index one resource without touching the database, so that bulk
    loaders can run it in worker processes. `facility` owns it and, unless the sender named
    another origin, becomes its meta.source (stamp_source=False: not this resource's business).
    `trusted`: built by benhan itself to a shape the tests validate (the audit trail's events),
    so the validator is skipped; `rows` makes the index rows (audit.index_rows for those events,
    the general extractor for everything else)."""
    meta = res.get("meta") if isinstance(res, dict) else None
    if not isinstance(res, dict) or not isinstance(meta, dict | None):
        validate(res)  # reports what is wrong before we touch it
    res = {"resourceType": res.get("resourceType"), "id": res.get("id"), **res}
    res["meta"] = {**(meta or {}), "versionId": str(version), "lastUpdated": instant(now())}
    if facility and stamp_source and "source" not in res["meta"]:
        res["meta"]["source"] = facility_source(facility)  # what came from elsewhere keeps its own
    try:
        content = orjson.dumps(res)
    except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes (254 levels)
        raise FhirError(
            400, Issue("structure", f"Tài nguyên lồng quá sâu / resource nested too deeply: {exc}")
        ) from None
    if not trusted:
        validate(res, content)  # the exact bytes that will be stored
    index = rows(res)
    return Write(res, method, version, created, content, index, _patient_key(res, index), facility)


def _padded(ids: list[str]) -> list[str]:
    """ids repeated up to a power of two in length, so that an IN list has few distinct SQL
    texts: SQLite prepares each text once per connection (preparing the visibility rule costs
    some fifty times more than running it)."""
    size = 1 << (len(ids) - 1).bit_length()
    return ids + [ids[-1]] * (size - len(ids))


def by_type(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rtype, rid in keys:
        out.setdefault(rtype, []).append(rid)
    return out


def references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, reference string) for every Reference.reference in a resource."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                yield f"{path}.reference", v
            elif isinstance(v, dict | list) and k != "contained":
                yield from references(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from references(v, f"{path}[{i}]")


def reference_values(node: Any, out: list[str] | None = None) -> list[str]:
    """Every Reference.reference in a resource, as references() finds them, without building
    their paths (a document Bundle has thousands of nodes; paths are for error messages)."""
    out = [] if out is None else out
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                out.append(v)
            elif isinstance(v, dict | list) and k != "contained":
                reference_values(v, out)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, dict | list):
                reference_values(v, out)
    return out


def _patient_key(res: Resource, rows: dict[str, list[dict[str, Any]]]) -> str | None:
    """The Patient compartment a resource belongs to (its sharding key; DESIGN.md)."""
    rtype = res["resourceType"]
    if rtype == "Patient":
        return str(res["id"])
    params = patient_compartment().get(rtype, ())
    for row in rows.get("reference", ()):
        if row["param"] in params and row["target_type"] == "Patient" and row["target_id"]:
            return str(row["target_id"])
    return None


def _check_body_id(res: Resource, rtype: str, rid: str) -> None:
    """http://hl7.org/fhir/R4/http.html#update: the body's id must equal the URL's."""
    if isinstance(res, dict) and res.get("id") != rid:
        raise FhirError(
            400,
            Issue(
                "invalid",
                f"id trong nội dung ({res.get('id')}) khác id trên "
                f"URL ({rid}) / body id does not match the URL id",
                "id",
            ),
        )


def _saved(rtype: str, rid: str, version: int, us: int, content: str | bytes) -> Saved:
    from benhan.fhir.primitives import from_micros

    raw = content.encode() if isinstance(content, str) else content
    return Saved(rtype, rid, version, instant(from_micros(us)), raw)


def micros_of(value: str) -> int:
    from datetime import datetime

    return micros(datetime.fromisoformat(value))


def parse_etag(value: str) -> int:
    """W/"3" or "3" → 3; anything else is a 412, since it cannot match."""
    v = value.strip().removeprefix("W/").strip('"')
    if not v.isdigit():
        raise precondition(f"If-Match không hợp lệ / malformed If-Match {value!r}")
    return int(v)


def new_id() -> str:
    """A time-ordered UUID (version 7, RFC 9562): new rows land at the right edge of the
    primary-key and owner indexes instead of on random pages, which keeps ingest fast."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & (2**62 - 1)
    return str(uuid.UUID(int=value))
