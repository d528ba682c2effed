"""Matching as records arrive: `Patient/$match` for the registration desk, and the inbox drain
that links every Patient written at the hub (through the API, an import, sync or XML 130).

Both score a record against the records sharing a blocking key with it, with the model relink
trained and the name frequencies of every indexed record, so a record scores online as it
would in a batch relink. The drain then reclusters only the few records involved: the written
record, the records it may match, and the members of their Persons.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import orjson
import sqlalchemy as sa

from benhan.fhir.definitions import Resource
from benhan.identity import index
from benhan.identity.columns import Columns, Row, columns_of, row_of
from benhan.identity.compare import compare
from benhan.identity.decide import REASONS, Thresholds, apply_rules, rule_reasons
from benhan.identity.model import FieldWeight, Model, explain, match_weights, probability
from benhan.identity.normalise import Person
from benhan.identity.persons import (
    CONFLICT,
    Edges,
    Relink,
    clusters,
    person_of,
    relink,
    write_persons,
)
from benhan.store.database import Store
from benhan.store.schema import mpi_inbox, mpi_record, resource

Grade = Literal["certain", "probable", "possible"]
POSSIBLE = 0.5  # the desk sees a candidate as likely as not; the review queue starts higher
log = logging.getLogger("benhan.mpi")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One record that may be the same person, with the evidence field by field."""

    patient_id: str
    probability: float
    grade: Grade
    reason: str  # decide.REASONS: "same-id" when a shared identifier decided it
    explanation: list[FieldWeight]


class NoModel(Exception):
    """No model is trained yet (`benhan mpi relink` trains the first)."""


def grade_of(p: float, th: Thresholds) -> Grade | None:
    """FHIR's match grades: certain ≥ the auto-link threshold, probable ≥ review, possible ≥ ½."""
    if p >= th.link:
        return "certain"
    if p >= th.review:
        return "probable"
    return "possible" if p >= POSSIBLE else None


def load_people(conn: sa.Connection, ids: Sequence[str]) -> dict[str, tuple[int, Person]]:
    """Current (not deleted) Patients among `ids`, normalised: id → (version, record)."""
    out: dict[str, tuple[int, Person]] = {}
    ids = sorted(set(ids))
    for i in range(0, len(ids), 500):
        q = sa.select(resource.c.id, resource.c.version_id, sa.cast(resource.c.content, sa.Text))
        q = q.where(
            resource.c.rtype == "Patient",
            resource.c.id.in_(ids[i : i + 500]),
            resource.c.deleted.is_(False),
        )
        for rid, version, text in conn.execute(q):
            out[rid] = (version, person_of(orjson.loads(text)))
    return out


@dataclass(slots=True)
class _Scored:
    cols: Columns
    ia: np.ndarray
    ib: np.ndarray
    prob: np.ndarray
    reason: np.ndarray


def _score(
    conn: sa.Connection, model: Model, ids: list[str], rows: Sequence[Row], ia: np.ndarray,
    ib: np.ndarray, th: Thresholds,
) -> _Scored:  # fmt: skip
    cols = index.with_population(conn, columns_of(ids, rows))
    levels = compare(model.comparisons, cols, ia, ib)
    names = tuple(c.name for c in model.comparisons)
    reason = rule_reasons(cols, ia, ib, names, levels)
    prob = apply_rules(probability(match_weights(model, cols, ia, levels)), reason, th)
    return _Scored(cols, ia, ib, prob, reason)


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why the model scores a pair as it does, field by field (the side-by-side page)."""

    probability: float
    reason: str  # decide.REASONS
    fields: list[FieldWeight]


def score_pair(conn: sa.Connection, model: Model, a: Person, b: Person, th: Thresholds) -> Evidence:
    """One pair's probability, the rule that set it, and the weight of each field."""
    one, ids = np.zeros(1, np.int32), [a.record_id, b.record_id]
    scored = _score(conn, model, ids, [row_of(a), row_of(b)], one, one + 1, th)
    why = str(REASONS[int(scored.reason[0])])
    return Evidence(float(scored.prob[0]), why, explain(model, scored.cols, 0, 1))


def match(
    conn: sa.Connection,
    patient: Resource,
    *,
    thresholds: Thresholds | None = None,
    count: int = 10,
    only_certain: bool = False,
) -> list[Candidate]:
    """The indexed records that may be `patient`, most probable first (Patient/$match)."""
    th = thresholds or Thresholds()
    model = index.current_model(conn)
    if model is None:
        raise NoModel
    query = person_of(patient)
    own = patient.get("id")
    found = index.candidates(conn, index.keys_of(query)) - {own}
    rows = index.indexed_rows(conn, found)
    if not rows:
        return []
    ids = sorted(rows)
    ib = np.arange(1, len(ids) + 1, dtype=np.int32)
    everyone = [row_of(query), *(rows[i] for i in ids)]
    scored = _score(conn, model, [own or "", *ids], everyone, np.zeros(len(ib), np.int32), ib, th)
    decided = index.decided(conn, [own, *ids]) if own else {}
    out = []
    for k, pid in enumerate(ids):
        p, why = float(scored.prob[k]), str(REASONS[int(scored.reason[k])])
        state = decided.get(index.ordered(own, pid)) if own else None
        if state is not None:
            p, why = (1.0, "decided") if state == "link" else (0.0, "decided")
        grade = grade_of(p, th)
        if grade is None or (only_certain and grade != "certain"):
            continue
        out.append(Candidate(pid, p, grade, why, explain(model, scored.cols, 0, k + 1)))
    out.sort(key=lambda c: (-c.probability, c.patient_id))
    return out[:count]


# ---- match on ingest --------------------------------------------------------------------------


@dataclass(slots=True)
class Drained:
    """What one drain did."""

    records: int = 0  # Patient versions taken from the inbox
    trained: bool = False  # no model yet: a full relink ran instead
    linked: Relink = field(default_factory=Relink)  # Person changes
    review: int = 0  # pairs put in the review queue
    failed: int = 0  # records that could not be matched (left for the next relink)


def drain(
    store: Store,
    facility: str,
    *,
    thresholds: Thresholds | None = None,
    batch: int = 1000,  # per transaction: at a million records, 1,000 drain ~30 % faster than 200
    progress: Callable[[int], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> Drained:
    """Match every queued Patient, a batch per transaction, until the inbox is empty (or `stop`
    says so between batches). Before the first model exists, a relink indexes everything at
    once (and trains the model)."""
    th = thresholds or Thresholds()
    out = Drained()
    with store.read() as conn:
        has_model = index.current_model(conn) is not None
        waiting = conn.execute(sa.select(sa.func.count()).select_from(mpi_inbox)).scalar_one()
    if not waiting:
        return out
    if not has_model:
        out.trained, out.linked = True, relink(store, facility, thresholds=th)
        out.records = waiting
    while not stop():
        try:
            with store.begin() as conn:
                rows = _take(conn, batch)
                if not rows:
                    break
                _match_batch(conn, facility, rows, th, out)
        except Exception:  # one bad record must not stop every later one
            _one_by_one(store, facility, th, out, batch)
            continue
        out.records += len(rows)
        if progress:
            progress(len(rows))
    return out


def _take(conn: sa.Connection, batch: int) -> list[tuple[str, int]]:
    index.lock(conn)  # a second drainer waits, then finds what is left
    q = sa.select(mpi_inbox.c.patient_id, mpi_inbox.c.version_id).limit(batch)
    return [(p, v) for p, v in conn.execute(q)]


def _match_batch(
    conn: sa.Connection, facility: str, rows: list[tuple[str, int]], th: Thresholds, out: Drained
) -> None:
    model = index.current_model(conn)
    assert model is not None
    out.review += reindex(conn, facility, {r[0] for r in rows}, model, th, out.linked)
    conn.execute(
        mpi_inbox.delete().where(
            mpi_inbox.c.patient_id == sa.bindparam("p"),
            mpi_inbox.c.version_id == sa.bindparam("v"),
        ),
        [{"p": p, "v": v} for p, v in rows],
    )


def _one_by_one(store: Store, facility: str, th: Thresholds, out: Drained, batch: int) -> None:
    """A batch failed: match its records one per transaction; one that fails alone leaves the
    inbox, counted in `out.failed` and logged by id only (the next relink indexes it)."""
    with store.read() as conn:
        rows = _take(conn, batch)
    for pid, version in rows:
        try:
            with store.begin() as conn:
                _match_batch(conn, facility, [(pid, version)], th, out)
            out.records += 1
        except Exception as exc:
            log.error("mpi: Patient/%s could not be matched (%s)", pid, type(exc).__name__)
            out.failed += 1
            with store.begin() as conn:
                conn.execute(
                    mpi_inbox.delete().where(
                        mpi_inbox.c.patient_id == pid, mpi_inbox.c.version_id == version
                    )
                )


def reindex(
    conn: sa.Connection,
    facility: str,
    written: set[str],
    model: Model,
    th: Thresholds,
    out: Relink,
) -> int:
    """Index the written records as they are now, and recluster them with what they match."""
    current = load_people(conn, sorted(written))
    # A deleted record's Person must still be rewritten: remember it before the record goes.
    before = {m for ms in _persons_around(conn, written).values() for m in ms}
    index.put_records(
        conn,
        [(rid, *current[rid]) if rid in current else (rid, 0, None) for rid in sorted(written)],
    )
    return recluster(conn, facility, written | before, model, th, out)


def recluster(
    conn: sa.Connection,
    facility: str,
    seeds: set[str],
    model: Model,
    th: Thresholds,
    out: Relink,
) -> int:
    """Cluster anew the seeds, the records sharing a key with them, and everyone in their
    Persons, honouring people's decisions; write the Persons and the review queue for the
    pairs a seed is in. Pairs are scored as batch linkage would score them: a seed with each
    record it shares a key with, and the members of each Person among themselves. Returns the
    number of a seed's pairs in the review band."""
    seed_keys = {pid: rec["keys"] for pid, rec in index.indexed(conn, seeds).items()}
    found = index.blocks(conn, {k for keys in seed_keys.values() for k in keys})
    near = {pid: {c for k in keys for c in found.get(k, ()) if c != pid}
            for pid, keys in seed_keys.items()}  # fmt: skip
    rows = index.indexed_rows(conn, set(near).union(*near.values()))  # seeds: indexed just now
    near = _relevant(conn, model, th, near, rows)
    group = set(seeds).union(*near.values())
    persons = _persons_around(conn, group)  # a Person is always rewritten whole
    group |= {pid for members in persons.values() for pid in members}
    rows |= index.indexed_rows(conn, group - rows.keys())
    ids = sorted(group & rows.keys())
    at = {pid: i for i, pid in enumerate(ids)}
    pairs = {tuple(sorted((at[s], at[c]))) for s, cs in near.items() if s in at
             for c in cs if c in at}  # fmt: skip
    for members in persons.values():
        inside = sorted(at[m] for m in members if m in at)
        pairs |= {(a, b) for k, a in enumerate(inside) for b in inside[k + 1 :]}
    band: dict[tuple[str, str], float] = {}
    edges = Edges([], [], [], [])
    if pairs:
        ia, ib = (np.asarray(x, np.int32) for x in zip(*sorted(pairs), strict=True))
        scored = _score(conn, model, ids, [rows[i] for i in ids], ia, ib, th)
        edges = Edges.of(ia, ib, scored.prob, scored.reason, th)
        for k in np.flatnonzero((scored.prob >= th.review) & (scored.prob < th.link)).tolist():
            a, b = ids[ia[k]], ids[ib[k]]
            if a in seeds or b in seeds:  # the queue is rewritten only where a seed is
                band[(a, b)] = float(scored.prob[k])
        out.conflicts += int((scored.reason == CONFLICT).sum())
    decided = index.decided(conn, ids)
    for pair in decided:
        band.pop(pair, None)
    edges.add_decisions(at, decided)
    groups, assurance, refused = clusters(len(ids), edges, th)
    out.refused += refused
    index.set_review(conn, band, seeds)
    named = [[ids[i] for i in g] for g in groups]
    write_persons(conn, facility, named, {ids[i]: a for i, a in assurance.items()}, group, out)
    return len(band)


def _relevant(
    conn: sa.Connection, model: Model, th: Thresholds, near: dict[str, set[str]],
    rows: dict[str, Row],
) -> dict[str, set[str]]:  # fmt: skip
    """Of each seed's key-mates, those that can change a Person or the queue: at or above the
    review threshold, or in conflict with it. Most key-mates are other people sharing a name
    or a birthday; leaving them (and their Persons) out keeps a drain's work to the few."""
    ids = sorted(rows)
    at = {pid: i for i, pid in enumerate(ids)}
    pairs = [(at[s], at[c]) for s, cs in near.items() if s in at for c in cs if c in at]
    if not pairs:
        return {s: set() for s in near}
    ia, ib = np.asarray(pairs, np.int32).T  # any order: each pair is judged on its own
    scored = _score(conn, model, ids, [rows[i] for i in ids], ia, ib, th)
    keep = (scored.prob >= th.review) | (scored.reason == CONFLICT)
    out: dict[str, set[str]] = {s: set() for s in near}
    for k in np.flatnonzero(keep).tolist():
        out[ids[ia[k]]].add(ids[ib[k]])
    return out


def _persons_around(conn: sa.Connection, ids: set[str]) -> dict[str, list[str]]:
    """The members of every Person that links one of `ids`: person id → patient ids."""
    out: dict[str, list[str]] = {}
    todo = sorted(ids)
    for i in range(0, len(todo), 500):
        persons = sa.select(mpi_record.c.person_id).where(
            mpi_record.c.patient_id.in_(todo[i : i + 500]), mpi_record.c.person_id.is_not(None)
        )
        q = sa.select(mpi_record.c.person_id, mpi_record.c.patient_id).where(
            mpi_record.c.person_id.in_(persons)
        )
        for person, pid in conn.execute(q):
            members = out.setdefault(person, [])
            if pid not in members:
                members.append(pid)
    return out
