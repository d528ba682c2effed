"""The ledger: every stored version of every resource, hash-chained per facility and signed now
and then, so that a change made behind benhan's back shows.

Each version written through the repository (clinical data and the AuditEvents of the audit
trail alike) appends an entry to its owning facility's chain, when the writer's transaction
commits and as part of it:

    digest = SHA-256(JSON [rtype, id, version_id, last_updated, method, deleted, facility,
                           patient_key] ‖ "\\n" ‖ SHA-256(canonical content))
             (a deletion has no content: its digest ends with the JSON)
    hash   = SHA-256(prev ‖ JSON [facility, seq, rtype, id, version_id] ‖ digest)

`prev` is the previous entry's hash (a facility-specific genesis value before entry 1). The
digests are computed as the versions are written; the entries are added just before COMMIT,
under a row lock on each facility's head (`ledger_head`) that is therefore held only for a
statement or two and the commit: one facility's writers queue only there, other facilities'
never.

The content is hashed in a canonical form (keys sorted, no spaces) rather than byte for byte:
PostgreSQL's jsonb keeps the value, not the bytes, so the bytes read back differ from the bytes
written; `canonical` gives the same result for both (numbers included, see there).

A checkpoint (store/checkpoints.py) signs a chain's head with the facility's key and links to
the facility's previous checkpoint and to the store's newest. Whoever can write to the database
can also recompute a chain after changing it; what they cannot do is sign, so a rewrite of
anything before the newest checkpoint shows, and the report says how many entries no checkpoint
covers yet. The server checkpoints every chain now and then (signing/ledger_signing.py); keep
the trust anchors outside the database.

`verify` walks each chain and every stored version and names each break: a version changed,
deleted or inserted, an entry deleted, altered or rewritten, a head or checkpoint that does not
match, a signature that fails or a signer revoked before it signed, a checkpoint deleted,
replaced or inserted. It reads in keyset pages, so memory stays bounded.
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa
from cryptography import x509

from benhan.store import checkpoints
from benhan.store.bulk_insert import bulk_insert
from benhan.store.schema import (
    RESOURCE_COLUMNS,
    ledger_checkpoint,
    ledger_entry,
    ledger_head,
    resource,
    resource_version,
)

# For bench/ledger.py only, which turns it off to measure the write path without the ledger (its
# reference). Nothing else may: versions written while it is off show up as inserted.
RECORD = True

PAGE = 2000  # entries per page when verifying
ENTRY_COLUMNS = ("facility", "seq", "rtype", "id", "version_id", "digest", "prev", "hash")
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1  # the integers orjson reads as int
_FACILITY = RESOURCE_COLUMNS.index("facility")
# A deletion has no content: NULL, which SQLAlchemy writes as JSON null into jsonb.
_NO_CONTENT = (None, "null", b"null")

Progress = Callable[[int, int], None]  # (entries checked so far, entries in all)


# ---- hashing ----------------------------------------------------------------------------------


def genesis(facility: str) -> bytes:
    """What entry 1 of a facility's chain follows: a chain cannot be passed off as another's."""
    return hashlib.sha256(b"benhan-ledger\x00" + facility.encode()).digest()


def canonical(content: str | bytes, value: Any = None) -> bytes:
    """The JSON with sorted keys and no spaces, as it reads back from SQLite and PostgreSQL.
    `value`: the content already parsed, when the caller has it (it must be exactly what
    `content` encodes): parsing it again is half the cost."""
    if value is None:
        value = orjson.loads(content)
    if _has_marks(content):  # rare: only then walk the whole value
        value = _numbers_as_jsonb(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _has_marks(content: str | bytes) -> bool:
    """Whether the JSON may hold a number jsonb prints differently (or a string that looks so)."""
    if isinstance(content, bytes):
        return b"e+" in content or b"-0.0" in content
    return "e+" in content or "-0.0" in content


def _numbers_as_jsonb(node: Any) -> Any:
    """The value as it comes back from jsonb, whose numbers are decimals printed without an
    exponent: -0.0 comes back 0.0, and 1e+16 comes back 10000000000000000, an int to orjson."""
    if isinstance(node, float):
        return _float_as_jsonb(node)
    if isinstance(node, dict):
        return {k: _numbers_as_jsonb(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_numbers_as_jsonb(v) for v in node]
    return node


def _float_as_jsonb(value: float) -> float | int:
    if value == 0:
        return 0.0
    written = Decimal(orjson.dumps(value).decode())  # the decimal PostgreSQL received
    exponent = written.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0 and _I64_MIN <= written <= _U64_MAX:
        return int(written)  # printed with no decimal point: orjson reads an int back
    return value


def version_digest(row: Sequence[Any], value: Any = None) -> bytes:
    """The digest of one stored version, a row in RESOURCE_COLUMNS order (its content the bytes
    written or the text read back; `value` as for `canonical`)."""
    rtype, rid, vid, last_updated, method, deleted, content, facility, patient_key = row
    head = [rtype, rid, vid, last_updated, method, bool(deleted), facility, patient_key]
    h = hashlib.sha256(orjson.dumps(head))
    if content not in _NO_CONTENT:
        h.update(b"\n")
        h.update(hashlib.sha256(canonical(content, value)).digest())
    return h.digest()


def entry_hash(
    prev: bytes, facility: str, seq: int, rtype: str, rid: str, vid: int, digest: bytes
) -> bytes:
    return hashlib.sha256(prev + orjson.dumps([facility, seq, rtype, rid, vid]) + digest).digest()


# ---- the write path ---------------------------------------------------------------------------


Item = tuple[str, str, str, int, bytes]  # facility, rtype, id, version_id, digest
Head = tuple[int, bytes]  # seq, hash
Moved = list[tuple[str, int, bytes]]  # facility, new seq, new hash


def append(
    conn: sa.Connection, rows: Sequence[Sequence[Any]], values: Sequence[Any] | None = None
) -> None:
    """Chain stored versions (rows in RESOURCE_COLUMNS order) when the caller's transaction
    commits, and only if it does (a savepoint rolled back takes its versions with it).
    `values`: each row's content already parsed, when the caller has it (see `canonical`).

    The digests are computed now; the entries are written by the commit itself, just before
    COMMIT: the facilities' heads are locked for one or two statements and the commit, whatever
    the transaction did before, and a transaction appends once however many writes it made."""
    if not RECORD or not rows:
        return
    parsed = values if values is not None else [None] * len(rows)
    items = [
        (row[_FACILITY], row[0], row[1], row[2], version_digest(row, value))
        for row, value in zip(rows, parsed, strict=True)
    ]
    root = conn.get_transaction()
    if root is None:  # no transaction to wait for (a driver-level autocommit): chain now
        _chain(conn, items)
    else:
        _pending(root).items.extend(items)


class _Pending:
    """What one transaction wrote, and where each open savepoint began."""

    __slots__ = ("items", "savepoints")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.savepoints: list[int] = []


# Keyed by SQLAlchemy's transaction object: a new transaction never sees an old one's versions,
# even on a pooled connection whose last transaction ended without telling us.
_PENDING: weakref.WeakKeyDictionary[object, _Pending] = weakref.WeakKeyDictionary()


def _pending(root: object) -> _Pending:
    found = _PENDING.get(root)
    if found is None:
        found = _PENDING[root] = _Pending()
    return found


@sa.event.listens_for(sa.Engine, "commit")
def _chain_on_commit(conn: sa.Connection) -> None:
    pending = _PENDING.pop(conn.get_transaction(), None) if conn.get_transaction() else None
    if pending is not None and pending.items:
        _chain(conn, pending.items)


@sa.event.listens_for(sa.Engine, "rollback")
def _forget_on_rollback(conn: sa.Connection) -> None:
    if conn.get_transaction() is not None:
        _PENDING.pop(conn.get_transaction(), None)


@sa.event.listens_for(sa.Engine, "savepoint")
def _mark_savepoint(conn: sa.Connection, _name: str | None) -> None:
    root = conn.get_transaction()
    if root is not None:
        pending = _pending(root)
        pending.savepoints.append(len(pending.items))


@sa.event.listens_for(sa.Engine, "release_savepoint")
def _keep_savepoint(conn: sa.Connection, _name: str, _context: object) -> None:
    pending = _PENDING.get(conn.get_transaction()) if conn.get_transaction() else None
    if pending is not None and pending.savepoints:
        pending.savepoints.pop()


@sa.event.listens_for(sa.Engine, "rollback_savepoint")
def _drop_savepoint(conn: sa.Connection, _name: str, _context: object) -> None:
    pending = _PENDING.get(conn.get_transaction()) if conn.get_transaction() else None
    if pending is not None and pending.savepoints:
        del pending.items[pending.savepoints.pop() :]


def _chain(conn: sa.Connection, items: Sequence[Item]) -> None:
    """Append the entries, facility by facility, under the heads' locks."""
    if not items:
        return
    by_facility: dict[str, list[Item]] = {}
    for item in items:
        by_facility.setdefault(item[0], []).append(item)
    facilities = sorted(by_facility)
    pg = conn.dialect.name == "postgresql"
    small = pg and len(items) <= SMALL
    guessed = _hints(conn, facilities) if small else None
    if guessed is not None:
        current = _write_if_heads_are(conn, guessed, *_entries(by_facility, guessed))
        if current is None:
            return
        missing = [f for f in facilities if f not in current]
        heads = current | _lock_heads(conn, missing)
    else:
        heads = _lock_heads(conn, facilities)
    entries, moved = _entries(by_facility, heads)
    if small:
        _insert_and_move(conn, entries, moved)
    else:
        bulk_insert(conn, ledger_entry, ENTRY_COLUMNS, entries)
        _move_heads(conn, moved)
    if pg:
        _remember(conn, moved)


def _entries(
    by_facility: dict[str, list[Item]], heads: dict[str, Head]
) -> tuple[list[tuple[Any, ...]], Moved]:
    """The entries continuing each facility's chain from its head, and the heads after them."""
    entries, moved = [], []
    for facility in sorted(by_facility):
        seq, prev = heads[facility]
        for _f, rtype, rid, vid, digest in by_facility[facility]:
            seq += 1
            h = entry_hash(prev, facility, seq, rtype, rid, vid, digest)
            entries.append((facility, seq, rtype, rid, vid, digest, prev, h))
            prev = h
        moved.append((facility, seq, prev))
    return entries, moved


# The heads this process last wrote, per database: a guess that lets a commit lock, check and
# append in one round trip (_write_if_heads_are). Never trusted: a wrong guess costs one more
# round trip, so several processes need not agree on it.
_HINTS: weakref.WeakKeyDictionary[sa.Engine, dict[str, Head]] = weakref.WeakKeyDictionary()


def _hints(conn: sa.Connection, facilities: list[str]) -> dict[str, Head] | None:
    known = _HINTS.get(conn.engine, {})
    return {f: known[f] for f in facilities} if all(f in known for f in facilities) else None


def _remember(conn: sa.Connection, moved: Moved) -> None:
    _HINTS.setdefault(conn.engine, {}).update((f, (seq, h)) for f, seq, h in moved)


def _write_if_heads_are(
    conn: sa.Connection, guessed: dict[str, Head], entries: list[tuple[Any, ...]], moved: Moved
) -> dict[str, Head] | None:
    """Lock the heads and, if they are what we guessed, append the entries and move them, in one
    statement (None then); else return the heads as they are, locked, and write nothing."""
    facilities = sorted(guessed)
    params = (
        _arrays(entries, ENTRY_COLUMNS)
        | _arrays(moved, ("fs", "seqs", "hs"))
        | {"old_seqs": [guessed[f][0] for f in facilities]}
        | {"old_hs": [guessed[f][1] for f in facilities], "n": len(facilities)}
    )
    rows = conn.exec_driver_sql(_HEAD_SQL["postgresql"]["guess"], params).all()
    if rows and rows[0][3]:
        _remember(conn, moved)
        return None
    return {f: (int(seq), bytes(chained)) for f, seq, chained, _ok in rows}


def _lock_heads(conn: sa.Connection, facilities: list[str]) -> dict[str, Head]:
    """The facilities' heads, locked until commit in one order for every writer, so that two
    never deadlock (FOR UPDATE; SQLite has one writer at a time already). A facility's first
    entry creates its head; a concurrent first writer then waits for ours."""
    heads = _select_heads(conn, facilities)
    missing = [f for f in facilities if f not in heads]
    if missing:
        start = [{"f": f, "h": genesis(f)} for f in missing]
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(_HEAD_SQL["postgresql"]["start"], start)
        else:
            _sqlite(conn).executemany(_HEAD_SQL["sqlite"]["start"], start)
        heads.update(_select_heads(conn, missing))
    return heads


def _select_heads(conn: sa.Connection, facilities: list[str]) -> dict[str, Head]:
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql(_HEAD_SQL["postgresql"]["lock"], {"fs": facilities}).all()
    else:
        rows = []
        for i in range(0, len(facilities), 500):  # SQLite's bound parameters per statement
            part = facilities[i : i + 500]
            sql = _HEAD_SQL["sqlite"]["lock"].replace("?", ", ".join("?" * len(part)))
            rows += _sqlite(conn).execute(sql, part).fetchall()
    return {f: (int(seq), bytes(chained)) for f, seq, chained in rows}


def _move_heads(conn: sa.Connection, moved: Moved) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_HEAD_SQL["postgresql"]["move"], _arrays(moved, ("fs", "seqs", "hs")))
    else:
        each = [{"f": f, "seq": seq, "h": h} for f, seq, h in moved]
        _sqlite(conn).executemany(_HEAD_SQL["sqlite"]["move"], each)


def _sqlite(conn: sa.Connection) -> sqlite3.Connection:
    """The driver's connection, in the same transaction: SQLAlchemy's own handling of a
    statement costs more than SQLite running these."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def _insert_and_move(conn: sa.Connection, entries: list[tuple[Any, ...]], moved: Moved) -> None:
    """A few entries and their heads in one statement: one round trip where COPY and UPDATE take
    four (COPY wins from a dozen rows or so)."""
    params = _arrays(entries, ENTRY_COLUMNS) | _arrays(moved, ("fs", "seqs", "hs"))
    conn.exec_driver_sql(_HEAD_SQL["postgresql"]["insert_and_move"], params)


def _arrays(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Rows as one array per column, for unnest()."""
    return {name: list(column) for name, column in zip(names, zip(*rows, strict=True), strict=True)}


SMALL = 16  # entries written by one INSERT … SELECT unnest() on PostgreSQL; more by COPY
# Plain SQL on the hot path, in each driver's parameter style: building SQLAlchemy statements
# would cost more than running them.
_HEAD_SQL = {
    "sqlite": {
        "lock": "SELECT facility, seq, hash FROM ledger_head WHERE facility IN (?)",
        "start": "INSERT INTO ledger_head (facility, seq, hash) VALUES (:f, 0, :h) "
        "ON CONFLICT DO NOTHING",
        "move": "UPDATE ledger_head SET seq = :seq, hash = :h WHERE facility = :f",
    },
    "postgresql": {
        "lock": "SELECT facility, seq, hash FROM ledger_head WHERE facility = ANY(%(fs)s) "
        "ORDER BY facility FOR UPDATE",  # rows are locked in this order
        "start": "INSERT INTO ledger_head (facility, seq, hash) VALUES (%(f)s, 0, %(h)s) "
        "ON CONFLICT DO NOTHING",
        "move": "UPDATE ledger_head AS head SET seq = moved.seq, hash = moved.hash "
        "FROM unnest(%(fs)s::varchar[], %(seqs)s::bigint[], %(hs)s::bytea[]) "
        "AS moved (facility, seq, hash) WHERE head.facility = moved.facility",
        "guess": "WITH cur AS (SELECT facility, seq, hash FROM ledger_head "
        "WHERE facility = ANY(%(fs)s) ORDER BY facility FOR UPDATE), "
        "ok AS (SELECT count(*) = %(n)s AS ok FROM cur JOIN unnest(%(fs)s::varchar[], "
        "%(old_seqs)s::bigint[], %(old_hs)s::bytea[]) AS guess (facility, seq, hash) "
        "USING (facility, seq, hash)), "
        "moved AS (UPDATE ledger_head AS head SET seq = moved.seq, hash = moved.hash "
        "FROM unnest(%(fs)s::varchar[], %(seqs)s::bigint[], %(hs)s::bytea[]) "
        "AS moved (facility, seq, hash), ok WHERE ok.ok AND head.facility = moved.facility), "
        "entries AS (INSERT INTO ledger_entry (facility, seq, rtype, id, version_id, digest, "
        "prev, hash) SELECT e.* FROM unnest(%(facility)s::varchar[], %(seq)s::bigint[], "
        "%(rtype)s::varchar[], %(id)s::varchar[], %(version_id)s::int[], %(digest)s::bytea[], "
        "%(prev)s::bytea[], %(hash)s::bytea[]) AS e, ok WHERE ok.ok) "
        "SELECT cur.facility, cur.seq, cur.hash, ok.ok FROM cur, ok",
        "insert_and_move": "WITH entries AS (INSERT INTO ledger_entry (facility, seq, rtype, "
        "id, version_id, digest, prev, hash) SELECT * FROM unnest(%(facility)s::varchar[], "
        "%(seq)s::bigint[], %(rtype)s::varchar[], %(id)s::varchar[], %(version_id)s::int[], "
        "%(digest)s::bytea[], %(prev)s::bytea[], %(hash)s::bytea[])) "
        "UPDATE ledger_head AS head SET seq = moved.seq, hash = moved.hash "
        "FROM unnest(%(fs)s::varchar[], %(seqs)s::bigint[], %(hs)s::bytea[]) "
        "AS moved (facility, seq, hash) WHERE head.facility = moved.facility",
    },
}


def seal(conn: sa.Connection, facility: str | None = None, batch: int = PAGE) -> int:
    """Chain the stored versions that have no entry, oldest first, and return how many: the
    history written before the ledger existed, once, after the upgrade that added it. Anything
    inserted behind benhan's back since would be chained too, so run `verify` first."""
    found = 0
    pending: list[tuple[Any, ...]] = []
    for row in _unrecorded_rows(conn, facility, with_content=True):
        pending.append(tuple(row))
        if len(pending) >= batch:
            found += _seal_batch(conn, pending)
    return found + _seal_batch(conn, pending)


def _seal_batch(conn: sa.Connection, rows: list[tuple[Any, ...]]) -> int:
    n = len(rows)
    _chain(conn, [(r[_FACILITY], r[0], r[1], r[2], version_digest(r)) for r in rows])
    rows.clear()
    return n


# ---- verification -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One place where the history does not hold, named as precisely as the ledger can."""

    kind: str  # see KINDS
    facility: str
    message: str  # Vietnamese / English
    seq: int | None = None
    rtype: str | None = None
    id: str | None = None
    version_id: int | None = None

    @property
    def version(self) -> str | None:
        return f"{self.rtype}/{self.id}/_history/{self.version_id}" if self.rtype else None


KINDS = {
    "version-altered": "phiên bản bị sửa / version changed after it was written",
    "version-missing": "phiên bản bị xoá / version deleted, its entry remains",
    "version-unrecorded": "phiên bản không có trong sổ / version inserted with no entry",
    "version-duplicated": "phiên bản bị nhân đôi / version stored twice",
    "entry-missing": "mục sổ bị xoá / ledger entries deleted",
    "entry-altered": "mục sổ bị sửa / ledger entry altered",
    "chain-broken": "chuỗi bị viết lại / chain rewritten before this entry",
    "head-mismatch": "đầu chuỗi không khớp / chain head does not match the last entry",
    "checkpoint-mismatch": "điểm kiểm không khớp chuỗi / checkpoint does not match the chain",
    "checkpoint-signature": "chữ ký điểm kiểm hỏng / checkpoint signature fails",
    "checkpoint-link": "điểm kiểm bị xoá, thay hoặc chèn / checkpoint deleted, replaced or "
    "inserted: the link to it breaks here",
}


@dataclass
class ChainSummary:
    facility: str
    head: int | None  # the head's seq (None: no head row)
    entries: int = 0  # entries walked
    checkpoints: int = 0  # checkpoints whose hash and signature hold
    last_checkpoint: int | None = None  # the newest of those

    @property
    def unsigned(self) -> int:
        """Entries no good checkpoint covers yet: a rewrite of those would not show."""
        return max(0, (self.head or self.entries) - (self.last_checkpoint or 0))


@dataclass
class Note:
    """What a person should read about checkpoints that hold (a signer revoked after signing,
    a revocation that could not be checked): once per facility and message."""

    facility: str
    message: str
    first: int  # the seqs of the first and last checkpoints it is about
    last: int
    count: int = 1


@dataclass
class Report:
    trusted: bool  # checkpoint certificates were checked against trust anchors
    limit: int = 1000  # findings kept in `findings`; `counts` counts them all
    chains: list[ChainSummary] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    versions: int = 0  # stored versions checked against their entries
    notes: dict[tuple[str, str], Note] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return not self.counts

    def add(self, finding: Finding) -> None:
        self.counts[finding.kind] += 1
        if len(self.findings) < self.limit:
            self.findings.append(finding)

    def note(self, facility: str, seq: int, message: str) -> None:
        found = self.notes.get((facility, message))
        if found is None:
            self.notes[facility, message] = Note(facility, message, seq, seq)
        else:
            found.last, found.count = seq, found.count + 1


def verify(
    conn: sa.Connection,
    facility: str | None = None,
    *,
    anchors: Sequence[x509.Certificate] = (),
    revocation: checkpoints.Revocation | None = None,
    progress: Progress | None = None,
    limit: int = 1000,
    page: int = PAGE,
) -> Report:
    """Check every chain (or one facility's), every stored version against its entry, and
    every checkpoint; `anchors` are the trusted root or issuing certificates of the
    facilities' keys (without them a signature is checked against its own certificate only),
    `revocation` says whether a checkpoint's signer was revoked before it signed (the signing
    layer's CRLs: signing/ledger_signing.py). With a facility, its checkpoints' links to others
    are checked, not others' links to its own: only a full verify sees a facility that rewrote
    its chain and re-signed its checkpoints."""
    report = Report(trusted=bool(anchors), limit=limit)
    facilities = [facility] if facility is not None else _chained_facilities(conn)
    heads = _heads(conn, facilities)
    total, done = sum(seq for seq, _h in heads.values()), 0
    for name in facilities:
        summary = ChainSummary(name, heads[name][0] if name in heads else None)
        report.chains.append(summary)
        walk = _Walk(name, report, summary)
        for entries in _entry_pages(conn, name, page):
            for row in entries:
                walk.entry(row)
            done += len(entries)
            if progress:
                progress(done, max(total, done))
        walk.end(heads.get(name))
        _check_checkpoints(conn, summary, report, anchors, revocation, page)
    for row in _unrecorded_rows(conn, facility, with_content=False):
        _unrecorded(report, row)
    return report


class _Walk:
    """One chain, entry after entry, in seq order."""

    def __init__(self, facility: str, report: Report, summary: ChainSummary) -> None:
        self.facility, self.report, self.summary = facility, report, summary
        self.seq, self.hash = 0, genesis(facility)

    def entry(self, row: Sequence[Any]) -> None:
        seq, rtype, rid, vid, digest, prev, stored = row[:7]
        digest, prev, stored = bytes(digest), bytes(prev), bytes(stored)
        if seq != self.seq + 1:
            self._missing(self.seq + 1, seq - 1)
        elif prev != self.hash:
            self._add(
                "chain-broken",
                seq,
                f"mục {seq} không nối tiếp mục {seq - 1}: mục trước đã bị viết lại / entry {seq} "
                f"does not follow entry {seq - 1}: an entry before it was rewritten",
            )
        if entry_hash(prev, self.facility, seq, rtype, rid, vid, digest) != stored:
            self._add(
                "entry-altered",
                seq,
                f"mục {seq} bị sửa, mã băm không khớp nội dung / ledger entry {seq} altered: "
                f"its hash does not match its fields ({rtype}/{rid}/_history/{vid})",
            )
        self._versions(seq, rtype, rid, vid, digest, row[7:13], row[13:19])
        self.seq, self.hash = seq, stored
        self.summary.entries += 1

    def _versions(
        self,
        seq: int,
        rtype: str,
        rid: str,
        vid: int,
        digest: bytes,
        *stored: Sequence[Any],
    ) -> None:
        where = f"{rtype}/{rid}/_history/{vid}"
        tables = ("resource", "resource_version")
        found = [(t, f) for t, f in zip(tables, stored, strict=True) if f[0] is not None]
        if not found:
            self._add(
                "version-missing",
                seq,
                f"{where} (mục {seq}) đã bị xoá khỏi kho / deleted from the store; its ledger "
                f"entry {seq} remains",
                rtype, rid, vid,
            )  # fmt: skip
        for table, fields in found:
            self.report.versions += 1
            if version_digest((rtype, rid, vid, *fields)) != digest:
                self._add(
                    "version-altered",
                    seq,
                    f"{where} (mục {seq}) đã bị sửa sau khi ghi / changed after it was written "
                    f"(table {table})",
                    rtype, rid, vid,
                )  # fmt: skip
        if len(found) > 1:
            self._add(
                "version-duplicated",
                seq,
                f"{where} (mục {seq}) có hai bản / is stored both as current and superseded",
                rtype, rid, vid,
            )  # fmt: skip

    def end(self, head: tuple[int, bytes] | None) -> None:
        if head is None:
            if self.seq:
                self._add(
                    "head-mismatch",
                    self.seq,
                    f"đầu chuỗi của cơ sở {self.facility!r} bị xoá / the chain head is missing",
                )
            return
        seq, chained = head
        if seq > self.seq:
            self._missing(self.seq + 1, seq)
        elif seq != self.seq or chained != self.hash:
            self._add(
                "head-mismatch",
                seq,
                f"đầu chuỗi (mục {seq}) không khớp mục cuối ({self.seq}) / the chain head (seq "
                f"{seq}) does not match the last entry (seq {self.seq})",
            )

    def _missing(self, first: int, last: int) -> None:
        span = f"{first}" if first == last else f"{first}–{last}"
        self._add(
            "entry-missing",
            first,
            f"mục {span} của sổ bị xoá / ledger entries {span} deleted",
        )

    def _add(
        self,
        kind: str,
        seq: int | None,
        message: str,
        rtype: str | None = None,
        rid: str | None = None,
        vid: int | None = None,
    ) -> None:
        self.report.add(Finding(kind, self.facility, message, seq, rtype, rid, vid))


def _chained_facilities(conn: sa.Connection) -> list[str]:
    """Every facility with a head, an entry or a checkpoint (entries found by a loose index
    scan: one probe per facility, not a pass over every entry)."""
    e = ledger_entry.c
    first = sa.select(sa.func.min(e.facility).label("f")).cte("walk", recursive=True)
    after = sa.select(sa.func.min(e.facility)).where(e.facility > first.c.f).scalar_subquery()
    walk = first.union_all(sa.select(after).where(first.c.f.is_not(None)))
    names = {f for f in conn.scalars(sa.select(walk.c.f)) if f is not None}
    names.update(conn.scalars(sa.select(ledger_head.c.facility)))
    names.update(conn.scalars(sa.select(ledger_checkpoint.c.facility).distinct()))
    return sorted(names)


def _heads(conn: sa.Connection, facilities: list[str]) -> dict[str, tuple[int, bytes]]:
    h = ledger_head.c
    rows = conn.execute(sa.select(h.facility, h.seq, h.hash).where(h.facility.in_(facilities)))
    return {f: (int(seq), bytes(chained)) for f, seq, chained in rows}


_STORED = ("last_updated", "method", "deleted", "content", "facility", "patient_key")


@functools.cache
def _entry_page() -> sa.Select[Any]:
    """A page of a chain in seq order, each entry with the version it covers, wherever it is."""
    e = ledger_entry
    current, older = resource.alias("cur"), resource_version.alias("old")

    def stored(t: sa.FromClause) -> list[sa.ColumnElement[Any]]:
        return [sa.cast(t.c[c], sa.Text) if c == "content" else t.c[c] for c in _STORED]

    def same(t: sa.FromClause) -> sa.ColumnElement[bool]:
        return sa.and_(t.c.rtype == e.c.rtype, t.c.id == e.c.id, t.c.version_id == e.c.version_id)

    return (
        sa.select(e.c.seq, e.c.rtype, e.c.id, e.c.version_id, e.c.digest, e.c.prev, e.c.hash)
        .add_columns(*stored(current), *stored(older))
        .select_from(e.outerjoin(current, same(current)).outerjoin(older, same(older)))
        .where(e.c.facility == sa.bindparam("f"), e.c.seq > sa.bindparam("after"))
        .order_by(e.c.seq)
        .limit(sa.bindparam("n"))
    )


def _entry_pages(conn: sa.Connection, facility: str, page: int) -> Iterator[Sequence[Any]]:
    after = 0
    while True:
        rows = conn.execute(_entry_page(), {"f": facility, "after": after, "n": page}).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def _check_checkpoints(
    conn: sa.Connection,
    summary: ChainSummary,
    report: Report,
    anchors: Sequence[x509.Certificate],
    revocation: checkpoints.Revocation | None,
    page: int,
) -> None:
    found = checkpoints.check(
        conn, summary.facility, anchors=anchors, revocation=revocation, page=page
    )
    for outcome in found:
        for kind, message in outcome.problems:
            report.add(Finding(kind, summary.facility, message, outcome.seq))
        for note in outcome.notes:
            report.note(summary.facility, outcome.seq, note)
        if outcome.holds:
            summary.checkpoints += 1
            summary.last_checkpoint = outcome.seq


def _unrecorded_rows(
    conn: sa.Connection, facility: str | None, *, with_content: bool
) -> Iterator[sa.Row[Any]]:
    """Stored versions with no entry in their facility's chain, streamed, oldest first when the
    content is asked for (to chain them). An outer join where no entry matched: PostgreSQL
    hashes the entries, SQLite builds a temporary index on them (a NOT EXISTS would make
    SQLite scan a facility's whole chain once per version)."""
    e = ledger_entry.c
    parts = []
    for t in (resource, resource_version):
        cols = [sa.cast(t.c[c], sa.Text) if c == "content" else t.c[c] for c in RESOURCE_COLUMNS]
        same = sa.and_(
            e.rtype == t.c.rtype,
            e.id == t.c.id,
            e.version_id == t.c.version_id,
            e.facility + "" == t.c.facility,  # not the primary key's prefix: see above
        )
        q = (
            sa.select(*(cols if with_content else cols[:3] + cols[7:8]))
            .select_from(t.outerjoin(ledger_entry, same))
            .where(e.rtype.is_(None))  # a column of the join: PostgreSQL plans an anti-join
        )
        parts.append(q.where(t.c.facility == facility) if facility is not None else q)
    query: sa.CompoundSelect[Any] | sa.Select[Any] = sa.union_all(*parts)
    if with_content:
        sub = query.subquery()
        query = sa.select(sub).order_by(sub.c.last_updated, sub.c.rtype, sub.c.id, sub.c.version_id)
    yield from conn.execute(query, execution_options={"stream_results": True, "yield_per": PAGE})


def _unrecorded(report: Report, row: Sequence[Any]) -> None:
    rtype, rid, vid, owner = row
    report.add(
        Finding(
            "version-unrecorded",
            owner,
            f"{rtype}/{rid}/_history/{vid} không có trong sổ của cơ sở {owner!r}: được chèn ngoài "
            f"benhan / has no ledger entry in facility {owner!r}: inserted behind benhan's back",
            None,
            rtype,
            rid,
            vid,
        )
    )
