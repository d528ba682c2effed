"""The repository: create, read, vread, update, patch, delete, history, with every version kept.

Every write validates the resource (fhir.validation), checks that local references point at
resources that exist, stores the new version and its search-index rows in the caller's
transaction, so a failure anywhere leaves the previous state. Semantics follow
http://hl7.org/fhir/R4/http.html.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from benhan.fhir.definitions import Resource, patient_compartment
from benhan.fhir.outcome import FhirError, Issue, gone, not_found, precondition, unprocessable
from benhan.fhir.primitives import instant, micros, now, split_ref
from benhan.fhir.searchparams import extract
from benhan.fhir.validation import validate
from benhan.store.bulk_insert import bulk_insert
from benhan.store.schema import (
    INDEX_TABLES,
    INDEX_VALUES,
    RESOURCE_COLUMNS,
    index_columns,
    resource,
    resource_version,
)

CHUNK = 500  # rows per IN (...) lookup


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


class Repo:
    """All reads and writes of one unit of work, on behalf of one facility."""

    def __init__(self, conn: sa.Connection, facility: str) -> None:
        self.conn = conn
        self.facility = facility

    # ---- reads -------------------------------------------------------------------------

    def read(self, rtype: str, rid: str) -> Saved:
        """http://hl7.org/fhir/R4/http.html#read: 404 if never existed, 410 if deleted."""
        row = self.conn.execute(
            sa.select(
                resource.c.version_id,
                resource.c.last_updated,
                resource.c.deleted,
                sa.cast(resource.c.content, sa.Text),
            ).where(resource.c.rtype == rtype, resource.c.id == rid)
        ).first()
        if row is None:
            raise not_found(rtype, rid)
        if row.deleted:
            raise gone(rtype, rid)
        return _saved(rtype, rid, row.version_id, row.last_updated, row[3])

    def vread(self, rtype: str, rid: str, vid: str) -> Saved:
        """http://hl7.org/fhir/R4/http.html#vread: a deleted version reads as 410."""
        if not vid.isdigit():
            raise not_found(f"{rtype}/{rid}/_history", vid)
        row = None
        for table in (resource, resource_version):  # the current version, else an older one
            row = self.conn.execute(
                sa.select(
                    table.c.last_updated, table.c.deleted, sa.cast(table.c.content, sa.Text)
                ).where(table.c.rtype == rtype, table.c.id == rid, table.c.version_id == int(vid))
            ).first()
            if row is not None:
                break
        if row is None:
            raise not_found(f"{rtype}/{rid}/_history", vid)
        if row.deleted:
            raise gone(rtype, f"{rid}/_history/{vid}")
        return _saved(rtype, rid, int(vid), row.last_updated, row[2])

    def current_version(self, rtype: str, rid: str) -> tuple[int, bool] | None:
        row = self.conn.execute(
            sa.select(resource.c.version_id, resource.c.deleted).where(
                resource.c.rtype == rtype, resource.c.id == rid
            )
        ).first()
        return (row.version_id, row.deleted) if row else None

    def existing(self, refs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (type, id) pairs exist and are not deleted."""
        found: set[tuple[str, str]] = set()
        for rtype, ids in by_type(set(refs)).items():
            for i in range(0, len(ids), CHUNK):
                q = sa.select(resource.c.id).where(
                    resource.c.rtype == rtype,
                    resource.c.id.in_(ids[i : i + CHUNK]),
                    resource.c.deleted.is_(False),
                )
                found.update((rtype, r) for r in self.conn.scalars(q))
        return found

    # ---- writes ------------------------------------------------------------------------

    def create(self, res: Resource, *, known: set[tuple[str, str]] | None = None) -> Saved:
        """http://hl7.org/fhir/R4/http.html#create: the server assigns the id."""
        res = dict(res)
        res["id"] = new_id()
        return self.flush([self.prepare(res, "POST", known=known)])[0]

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

    def prepare_update(
        self,
        rtype: str,
        rid: str,
        res: Resource,
        if_match: str | None,
        method: str,
        known: set[tuple[str, str]] | None,
    ) -> Write:
        current = self.current_version(rtype, rid)
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
        )

    def delete(self, rtype: str, rid: str) -> int | None:
        """http://hl7.org/fhir/R4/http.html#delete: idempotent; returns the deletion version."""
        current = self.current_version(rtype, rid)
        if current is None or current[1]:
            return None
        version = current[0] + 1
        self._archive([(rtype, rid)])
        self.conn.execute(
            resource.update()
            .where(resource.c.rtype == rtype, resource.c.id == rid)
            .values(
                version_id=version,
                last_updated=micros(now()),
                method="DELETE",
                deleted=True,
                content=None,
                patient_key=None,
            )
        )
        self._drop_index_rows([(rtype, rid)])
        return version

    def prepare(
        self,
        res: Resource,
        method: str,
        *,
        version: int = 1,
        created: bool = True,
        known: set[tuple[str, str]] | None = None,
        facility: str = "",
    ) -> Write:
        """Validate and index one resource; nothing is written until flush().

        known=None checks references now; a set (possibly empty) of (type, id) pairs that the same
        transaction writes means the caller checks all references at once (check_references).
        """
        w = prepare_write(res, method, version=version, created=created, facility=facility)
        if known is None:
            self.check_references([(w.resource, w.resource["resourceType"])], set())
        return w

    def flush(self, writes: list[Write]) -> list[Saved]:
        """Store prepared writes with one bulk insert per table, in the caller's transaction."""
        if not writes:
            return []
        saved = [self._version_row(w) for w in writes]
        rows = [self._row(s, w) for s, w in zip(saved, writes, strict=True)]
        fresh = [r for r, w in zip(rows, writes, strict=True) if w.version_id == 1]
        stale = [r for r, w in zip(rows, writes, strict=True) if w.version_id > 1]
        bulk_insert(self.conn, resource, RESOURCE_COLUMNS, fresh)
        self._archive([(r[0], r[1]) for r in stale])
        self._update_current(stale)
        self._drop_index_rows([(r[0], r[1]) for r in stale])
        self._insert_index_rows(writes)
        return saved

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

    def _archive(self, keys: list[tuple[str, str]]) -> None:
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

    def _drop_index_rows(self, keys: list[tuple[str, str]]) -> None:
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

    # ---- references --------------------------------------------------------------------

    def lock(self, key: str) -> None:
        """Serialise conditional writes on the same criteria (SQLite's BEGIN IMMEDIATE already
        serialises all writers)."""
        if self._is_pg:
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

        items are (resource, path prefix for messages); one lookup per type for all of them.
        """
        wanted: dict[tuple[str, str], str] = {}
        for res, prefix in items:
            for path, ref in references(res, prefix):
                if ref.startswith(("http:", "https:", "urn:", "#")):
                    continue
                parts = split_ref(ref)
                if parts and parts not in known:
                    wanted.setdefault(parts, path)
        if not wanted:
            return
        missing = set(wanted) - self.existing(wanted)
        if missing:
            raise unprocessable(
                [
                    Issue(
                        "not-found",
                        f"Tham chiếu không tồn tại / reference target not found: {t}/{i}",
                        wanted[(t, i)],
                    )
                    for t, i in sorted(missing)
                ]
            )


def prepare_write(
    res: Resource, method: str, *, version: int = 1, created: bool = True, facility: str = ""
) -> Write:
    """Validate, stamp and index one resource without touching the database, so that bulk
    loaders can run it in worker processes."""
    meta = res.get("meta") if isinstance(res, dict) else None
    if not isinstance(res, dict) or not isinstance(meta, dict | None):
        validate(res)  # reports what is wrong before we touch it
    res = {"resourceType": res.get("resourceType"), "id": res.get("id"), **res}
    res["meta"] = {**(meta or {}), "versionId": str(version), "lastUpdated": instant(now())}
    content = orjson.dumps(res)
    validate(res, content)  # the exact bytes that will be stored
    rows = extract(res)
    return Write(res, method, version, created, content, rows, _patient_key(res, rows), facility)


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
