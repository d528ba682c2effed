"""The index tables behind online matching: each record's blocking keys and name parts, how
many records bear each name part, the trained model, and the pairs reviewers decided.

A record's keys are the blocking rules' keys (blocking.DEFAULT_RULES) as text, so that a new
record finds the records batch linkage would have paired it with by one indexed lookup.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from benhan.fhir.primitives import micros, now
from benhan.identity.blocking import DEFAULT_RULES
from benhan.identity.columns import FAMILY, GIVEN, MIDDLE, Columns, Row, row_of, sound_key
from benhan.identity.model import Model
from benhan.identity.normalise import Person
from benhan.store.schema import mpi_key, mpi_model, mpi_pair, mpi_record, mpi_term

TERM_KINDS = ("family", "middle", "given")
TOTAL = "#"  # mpi_term kind holding each kind's total
BLOCK_CAP = 1000  # as in batch linkage: a key shared by more records says too little to pair on
SEP = "\x1f"
KEY_MAX, TERM_MAX = 400, 200  # the lengths of mpi_key.key and mpi_term.value
RECORD_FORMAT = 2  # of mpi_record.record (2: columns.row_of); the model records it


def part_values(p: Person) -> dict[str, str | None]:
    """The values a blocking rule reads, as text: equal exactly where columns.to_columns gives
    equal codes (a test holds the two together)."""
    folded, b = p.name.folded or None, p.birth
    return {
        "name_fold": folded,
        "name_sound": sound_key(folded) if folded else None,
        "family": p.name.family or None,
        "given": p.name.given or None,
        "birth": b.value.isoformat() if b else None,
        "year": str(b.value.year) if b else None,
        "cccd": p.cccd,
        "cmnd": p.cmnd,
        "bhyt": p.bhyt,
        "phone": p.phone,
        "commune": p.commune,
        "postcode": p.postcode,
        "address": p.address,
        "identifier": p.identifier,
    }


def keys_of(p: Person) -> list[str]:
    """One key per blocking rule whose parts the record has."""
    values, out = part_values(p), []
    for rule in DEFAULT_RULES:
        parts = [values[x] for x in rule.parts]
        if all(parts):
            out.append(_fit(SEP.join([rule.name, *(v or "" for v in parts)]), KEY_MAX))
    return out


def terms_of(row: Row) -> dict[str, str]:
    """The name parts whose frequencies weigh an exact name match (as columns.columns_of)."""
    out = {"family": row[FAMILY], "middle": row[MIDDLE], "given": row[GIVEN]}
    return {k: _fit(v, TERM_MAX) for k, v in out.items() if isinstance(v, str) and v}


def _fit(text: str, limit: int) -> str:
    """Text that fits its column: an overlong value (no real name is) becomes its digest, so
    it still equals exactly what equals it."""
    if len(text) <= limit:
        return text
    return text[: limit - 41] + "#" + hashlib.sha1(text.encode()).hexdigest()  # noqa: S324


def lock(conn: sa.Connection) -> None:
    """One writer of Persons at a time (drains in several server processes, a reviewer, a
    relink), until the transaction ends; SQLite's BEGIN IMMEDIATE already serialises writers."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("benhan-mpi"))))


# ---- records -------------------------------------------------------------------------------


def indexed_rows(conn: sa.Connection, ids: Iterable[str]) -> dict[str, Row]:
    """The rows of the indexed records among `ids`, as they were when last indexed."""
    todo, out = sorted(set(ids)), {}
    for i in range(0, len(todo), 500):
        q = sa.select(mpi_record.c.patient_id, mpi_record.c.record).where(
            mpi_record.c.patient_id.in_(todo[i : i + 500])
        )
        out.update({rid: orjson.loads(text) for rid, text in conn.execute(q)})
    return out


def indexed(conn: sa.Connection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """mpi_record rows of these records: version_id, person_id, keys, terms."""
    ids = list(ids)
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        q = sa.select(mpi_record).where(mpi_record.c.patient_id.in_(ids[i : i + 500]))
        for row in conn.execute(q).mappings():
            out[row["patient_id"]] = {
                "version_id": row["version_id"],
                "person_id": row["person_id"],
                "keys": orjson.loads(row["keys"]),
                "terms": orjson.loads(row["terms"]),
            }
    return out


def put_records(conn: sa.Connection, records: Sequence[tuple[str, int, Person | None]]) -> None:
    """(Re-)index records (id, version, normalised record or None when deleted): their keys and
    name counts replace what the previous version added."""
    old = indexed(conn, [r[0] for r in records])
    drop_keys: list[dict[str, str]] = []
    add_keys: list[dict[str, str]] = []
    delta: dict[tuple[str, str], int] = {}
    inserts, updates, deletes = [], [], []
    for rid, version, person in records:
        before = old.get(rid)
        row = row_of(person) if person else ()
        keys, terms = (keys_of(person), terms_of(row)) if person else ([], {})
        was = set(before["keys"]) if before else set()
        drop_keys += [{"k": k, "p": rid} for k in sorted(was - set(keys))]
        add_keys += [{"key": k, "patient_id": rid} for k in sorted(set(keys) - was)]
        if before:
            count_terms(delta, before["terms"], -1)
        count_terms(delta, terms, +1)
        if person is None:
            deletes.append({"p": rid})
        elif before:
            updates.append({"p": rid, "v": version, "k": _json(keys), "t": _json(terms),
                            "r": _json(row)})  # fmt: skip
        else:
            inserts.append({"patient_id": rid, "version_id": version, "person_id": None,
                            "keys": _json(keys), "terms": _json(terms),
                            "record": _json(row)})  # fmt: skip
    where = mpi_record.c.patient_id == sa.bindparam("p")
    if deletes:
        conn.execute(mpi_record.delete().where(where), deletes)
    if updates:
        names = {"version_id": "v", "keys": "k", "terms": "t", "record": "r"}
        values: dict[str, Any] = {column: sa.bindparam(name) for column, name in names.items()}
        conn.execute(mpi_record.update().where(where).values(values), updates)
    if inserts:
        conn.execute(mpi_record.insert(), inserts)
    if drop_keys:
        conn.execute(
            mpi_key.delete().where(
                mpi_key.c.key == sa.bindparam("k"), mpi_key.c.patient_id == sa.bindparam("p")
            ),
            drop_keys,
        )
    if add_keys:
        conn.execute(mpi_key.insert(), add_keys)
    add_terms(conn, delta)


def count_terms(delta: dict[tuple[str, str], int], terms: dict[str, str], sign: int) -> None:
    """Add a record's name parts, and each kind's total, to `delta`, `sign` times."""
    for kind, value in terms.items():
        for key in ((kind, value), (TOTAL, kind)):
            delta[key] = delta.get(key, 0) + sign


def add_terms(conn: sa.Connection, delta: dict[tuple[str, str], int]) -> None:
    """Add to the name-part counts (an upsert: many writers may count the same name)."""
    rows = [{"kind": k, "value": v, "n": n} for (k, v), n in sorted(delta.items()) if n]
    if not rows:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(mpi_term)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["kind", "value"], set_={"n": mpi_term.c.n + stmt.excluded.n}
        ),
        rows,
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# ---- candidates and population figures ----------------------------------------------------


def blocks(conn: sa.Connection, keys: Iterable[str], cap: int = BLOCK_CAP) -> dict[str, list[str]]:
    """The records of each key, leaving out keys more than `cap` records share."""
    wanted = sorted(set(keys))
    by_key: dict[str, list[str]] = {}
    for i in range(0, len(wanted), 500):
        q = sa.select(mpi_key.c.key, mpi_key.c.patient_id).where(
            mpi_key.c.key.in_(wanted[i : i + 500])
        )
        for key, pid in conn.execute(q):
            by_key.setdefault(key, []).append(pid)
    return {k: ids for k, ids in by_key.items() if len(ids) <= cap}


def candidates(conn: sa.Connection, keys: Sequence[str], cap: int = BLOCK_CAP) -> set[str]:
    """Records sharing any of `keys`, leaving out keys more than `cap` records share."""
    return {pid for ids in blocks(conn, keys, cap).values() for pid in ids}


def with_population(conn: sa.Connection, cols: Columns) -> Columns:
    """`cols` of a few records, with the name frequencies and given-name counts of every
    indexed record instead of the few's own (which would make every name look rare)."""
    words = {"family": cols.family_words, "middle": cols.middle_words, "given": cols.given_words}
    wanted = {(kind, _fit(w, TERM_MAX)) for kind, ws in words.items() for w in ws}
    counts = _term_counts(conn, wanted | {(TOTAL, k) for k in TERM_KINDS})
    tf = np.ones(len(cols), np.float64)
    for kind, codes in (("family", cols.family), ("middle", cols.middle), ("given", cols.given)):
        total = counts.get((TOTAL, kind), 0)
        # Per code: its share of the population; a record without the part weighs 0 (as batch).
        share = np.asarray([counts.get((kind, _fit(w, TERM_MAX)), 0) / total if total else 0.0
                            for w in words[kind]] + [0.0], np.float64)  # fmt: skip
        tf *= share[codes]  # code −1 reads the appended 0
    given_count = np.asarray(
        [counts.get(("given", _fit(w, TERM_MAX)), 0) for w in cols.given_words], np.int32
    ).reshape(-1)
    return replace(cols, name_tf=tf, given_count=given_count)


def _term_counts(conn: sa.Connection, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, value in wanted:
        by_kind.setdefault(kind, []).append(value)
    for kind, values in by_kind.items():
        q = sa.select(mpi_term.c.value, mpi_term.c.n).where(
            mpi_term.c.kind == kind, mpi_term.c.value.in_(values)
        )
        out.update({(kind, v): n for v, n in conn.execute(q)})
    return out


# ---- the model -----------------------------------------------------------------------------


def save_model(conn: sa.Connection, model: Model, records: int) -> None:
    content = _json({**model.to_json(), "record_format": RECORD_FORMAT})
    conn.execute(
        mpi_model.insert(), {"trained": micros(now()), "records": records, "content": content}
    )


def current_model(conn: sa.Connection) -> Model | None:
    """The newest model relink trained; None before the first relink, or when the newest was
    trained by an older benhan whose comparisons or stored rows differ (the drain then
    relinks)."""
    q = sa.select(mpi_model.c.content).order_by(mpi_model.c.trained.desc()).limit(1)
    text = conn.execute(q).scalar()
    if not text:
        return None
    data = orjson.loads(text)
    if data.get("record_format") != RECORD_FORMAT:
        return None
    try:
        return Model.from_json(data)
    except (KeyError, ValueError):
        return None


# ---- decided and review pairs ---------------------------------------------------------------


def ordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def decided(conn: sa.Connection, ids: Iterable[str] | None = None) -> dict[tuple[str, str], str]:
    """Pairs people decided ("link" or "apart"), among `ids` (all when None)."""
    q = sa.select(mpi_pair.c.patient_a, mpi_pair.c.patient_b, mpi_pair.c.state).where(
        mpi_pair.c.state.in_(["link", "apart"])
    )
    if ids is not None:
        ids = sorted(set(ids))
        q = q.where(mpi_pair.c.patient_a.in_(ids), mpi_pair.c.patient_b.in_(ids))
    return {(a, b): state for a, b, state in conn.execute(q)}


def set_review(
    conn: sa.Connection, band: dict[tuple[str, str], float], touching: Iterable[str] | None
) -> None:
    """Make the review queue hold exactly `band` (pair → probability) among the pairs with a
    record in `touching` (all pairs when None): new pairs queued, changed probabilities
    updated, pairs that left the band dropped. Decided pairs are never queued again."""
    c = mpi_pair.c
    current: dict[tuple[str, str], tuple[str, float]] = {}
    if touching is None:
        rows: Iterable[Any] = conn.execute(
            sa.select(c.patient_a, c.patient_b, c.state, c.probability)
        )
        current = {(a, b): (state, p) for a, b, state, p in rows}
    else:
        ids = sorted(set(touching))
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = sa.select(c.patient_a, c.patient_b, c.state, c.probability).where(
                sa.or_(c.patient_a.in_(part), c.patient_b.in_(part))
            )
            current |= {(a, b): (state, p) for a, b, state, p in conn.execute(q)}
    stamp = micros(now())
    pair = (c.patient_a == sa.bindparam("a")) & (c.patient_b == sa.bindparam("b"))
    gone = [{"a": a, "b": b} for (a, b), (state, _) in current.items()
            if state == "review" and (a, b) not in band]  # fmt: skip
    if gone:
        conn.execute(mpi_pair.delete().where(pair), gone)
    new = [
        {"patient_a": a, "patient_b": b, "probability": p, "state": "review", "updated": stamp}
        for (a, b), p in band.items()
        if (a, b) not in current
    ]
    if new:
        conn.execute(mpi_pair.insert(), new)
    moved = []
    for (a, b), p in band.items():
        state, was = current.get((a, b), ("", p))
        if state == "review" and was != p:
            moved.append({"a": a, "b": b, "p": p})
    if moved:
        conn.execute(mpi_pair.update().where(pair).values(probability=sa.bindparam("p")), moved)
