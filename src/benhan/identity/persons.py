"""The hub's `Person` resources: one per real person found in more than one record.

Each facility's Patient stays exactly as the facility wrote it; the index writes only Persons
(tagged as its own), whose `link` lists the Patients of one person with an assurance level:
level4 when a shared valid CCCD or BHXH number, or a person's decision, made the link certain;
level3 when the model did. The access rules already follow `Person.link` (store/policy.py: a
clinician treating someone sees their records from other facilities), so linking is what joins
the record up.

Links are clustered with a union–find over the pairs at or above the link threshold, refusing
any union that would put two records the rules (or a reviewer) call different people into one
Person: chains of links must not merge two people either. `relink` does it for every record;
identity/online.py does it for the few records around each one written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa

from benhan.access import Actor
from benhan.fhir.definitions import Resource
from benhan.identity import index
from benhan.identity.columns import row_of
from benhan.identity.decide import REASONS, Thresholds
from benhan.identity.dedupe import link
from benhan.identity.fhir_csv import field_options, patient_row
from benhan.identity.normalise import Person
from benhan.identity.table import FieldSpec, Table, parse_field, person_from_row
from benhan.store import provenance
from benhan.store.bulk_insert import bulk_insert
from benhan.store.database import Store
from benhan.store.repository import Repo, new_id, prepare_write, store_writes
from benhan.store.schema import mpi_inbox, mpi_key, mpi_record, mpi_term, resource

TAG = {"system": "https://benhan.vn/CodeSystem/mpi", "code": "person", "display": "MPI"}
SAME_ID, CONFLICT = REASONS.index("same-id"), REASONS.index("conflict")
DECIDED = len(REASONS)  # a pair a person decided to link: beyond the rules' reasons
CERTAIN = frozenset({SAME_ID, DECIDED})


@dataclass
class Relink:
    """What a relink did."""

    records: int = 0
    persons: int = 0  # clusters of two records or more
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    refused: int = 0  # link pairs not followed: they would join a conflict into one Person
    review: int = 0  # pairs in the review band, for the review queue
    conflicts: int = 0
    clusters: list[list[str]] = field(default_factory=list)


def patients(store: Store) -> Iterator[Resource]:
    """Every current Patient in the store, read directly (a trusted job over the whole hub)."""
    q = sa.select(sa.cast(resource.c.content, sa.Text)).where(
        resource.c.rtype == "Patient", resource.c.deleted.is_(False)
    )
    with store.read() as conn:
        for text in conn.execute(q).scalars():
            yield orjson.loads(text)


def person_of(patient: Resource) -> Person:
    """A stored Patient as the linker compares it (the same path as the CSV of `fhir-csv`)."""
    row = patient_row(patient)
    return person_from_row(row["patient_id"], row, _specs(), Table(), [], patient.get("id", ""))


@cache
def _specs() -> dict[str, FieldSpec]:
    return {s.role: s for s in (parse_field(f) for f in field_options(with_address=True))}


class _Clusters:
    """Union–find over record indices that never joins two records in conflict."""

    def __init__(self, n: int, conflicts: list[tuple[int, int]]) -> None:
        self.parent = list(range(n))
        self.members: dict[int, list[int]] = {i: [i] for i in range(n)}
        self.against: dict[int, set[int]] = {}
        for a, b in conflicts:
            self.against.setdefault(a, set()).add(b)
            self.against.setdefault(b, set()).add(a)

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        bad = set().union(*(self.against.get(m, set()) for m in self.members[ra]))
        if bad & set(self.members[rb]):
            return False
        self.parent[rb] = ra
        self.members[ra] += self.members.pop(rb)
        return True


@dataclass(slots=True)
class Edges:
    """Scored pairs of record indices: final probability and decide.REASONS index of each."""

    ia: list[int]
    ib: list[int]
    prob: list[float]
    reason: list[int]

    @classmethod
    def of(
        cls, ia: np.ndarray, ib: np.ndarray, prob: np.ndarray, reason: np.ndarray, th: Thresholds
    ) -> Edges:
        """The pairs clustering reads: links and conflicts. Of a million records' tens of
        millions of candidate pairs that is a few hundred thousand, kept out of Python lists."""
        keep = (prob >= th.link) | (reason == CONFLICT)
        return cls(ia[keep].tolist(), ib[keep].tolist(), prob[keep].tolist(), reason[keep].tolist())

    def add_decisions(self, index_of: dict[str, int], decided: dict[tuple[str, str], str]) -> None:
        """People's decisions outrank the model: a decided link is certain, a pair kept apart
        is a conflict (never in one Person, not even through a chain)."""
        seen = {(a, b): k for k, (a, b) in enumerate(zip(self.ia, self.ib, strict=True))}
        for (a, b), state in decided.items():
            if a not in index_of or b not in index_of:
                continue
            i, j = sorted((index_of[a], index_of[b]))
            prob, why = (1.0, DECIDED) if state == "link" else (0.0, CONFLICT)
            if (i, j) in seen:
                k = seen[(i, j)]
                self.prob[k], self.reason[k] = prob, why
            else:
                self.ia.append(i)
                self.ib.append(j)
                self.prob.append(prob)
                self.reason.append(why)


def clusters(n: int, edges: Edges, th: Thresholds) -> tuple[list[list[int]], dict[int, str], int]:
    """Clusters of record indices (two or more), each record's assurance, and the number of
    link pairs refused because they would have joined a conflict."""
    ia, ib, prob, reason = edges.ia, edges.ib, edges.prob, edges.reason
    conflicts = [(a, b) for a, b, r in zip(ia, ib, reason, strict=True) if r == CONFLICT]
    found = _Clusters(n, conflicts)
    assurance: dict[int, str] = {}
    refused = 0
    # Certain links first, then the most probable: a refusal falls on the weakest evidence.
    order = sorted(range(len(ia)), key=lambda k: (reason[k] not in CERTAIN, -prob[k]))
    for k in order:
        if prob[k] < th.link or reason[k] == CONFLICT:
            continue
        if not found.union(ia[k], ib[k]):
            refused += 1
            continue
        level = "level4" if reason[k] in CERTAIN else "level3"
        for i in (ia[k], ib[k]):
            if assurance.get(i) != "level4":
                assurance[i] = level
    groups = [sorted(m) for m in found.members.values() if len(m) > 1]
    return groups, assurance, refused


def person_resource(pid: str, ids: list[str], assurance: dict[str, str]) -> Resource:
    """The Person of one cluster of Patient ids."""
    return {
        "resourceType": "Person",
        "id": pid,
        "meta": {"tag": [TAG]},
        "active": True,
        "link": [{"target": {"reference": f"Patient/{i}"}, "assurance": assurance[i]} for i in ids],
    }


def index_persons(conn: sa.Connection, among: set[str] | None) -> dict[str, Resource]:
    """The index's current Persons: all, or those linking any record of `among`."""
    q = sa.select(resource.c.id, sa.cast(resource.c.content, sa.Text)).where(
        resource.c.rtype == "Person", resource.c.deleted.is_(False)
    )
    if among is not None:
        ids = sa.select(mpi_record.c.person_id).where(
            mpi_record.c.patient_id.in_(sorted(among)), mpi_record.c.person_id.is_not(None)
        )
        q = q.where(resource.c.id.in_(ids))
    found = ((rid, orjson.loads(text)) for rid, text in conn.execute(q))
    return {rid: res for rid, res in found if TAG["code"] in _tags(res)}  # others aren't ours


def members(person: Resource) -> list[str]:
    return [
        ref.removeprefix("Patient/")
        for link in person.get("link", [])
        if (ref := link.get("target", {}).get("reference", "")).startswith("Patient/")
    ]


def write_persons(
    conn: sa.Connection,
    facility: str,
    groups: list[list[str]],
    assurance: dict[str, str],
    among: set[str] | None,
    out: Relink,
) -> None:
    """Make the index's Persons (all, or those touching `among`) say exactly `groups`: each group
    keeps the id of the current Person it shares most records with, so a Person's id survives
    its cluster growing or shrinking; Persons left without a group are deleted."""
    current = index_persons(conn, among)
    owner = {pid: rid for rid, res in current.items() for pid in members(res)}
    wanted: dict[str, Resource] = {}
    for ids in sorted(groups, key=len, reverse=True):
        overlap: dict[str, int] = {}
        for pid in ids:
            if (rid := owner.get(pid)) and rid not in wanted:
                overlap[rid] = overlap.get(rid, 0) + 1
        # A new cluster gets a new id: one derived from its records could be the id of a
        # Person outside this group that a record of it once belonged to.
        rid = max(overlap, key=lambda r: (overlap[r], r)) if overlap else new_id()
        wanted[rid] = person_resource(rid, ids, assurance)
    repo = Repo(conn, Actor.job(facility, "mpi"))
    for rid in sorted(current.keys() - wanted.keys()):
        repo.delete("Person", rid)
        out.deleted += 1
    changed = {
        rid: res
        for rid, res in wanted.items()
        if rid not in current or current[rid].get("link") != res["link"]
    }
    out.unchanged += len(wanted) - len(changed)
    # The index is the only writer of its Persons (under index.lock), so versions come from
    # what it read, and a relink of a million records writes in bulk, not one call per Person;
    # person_resource builds one shape, which tests validate, so the validator is skipped.
    versions = {rid: int(res["meta"]["versionId"]) for rid, res in current.items()}
    writes = [
        prepare_write(res, "PUT", version=versions.get(rid, 0) + 1,
                      created=rid not in current, facility=facility, trusted=True)
        for rid, res in changed.items()
    ]  # fmt: skip
    for i in range(0, len(writes), 1000):
        batch = writes[i : i + 1000]  # with one Provenance of the batch: the hub's own linkage
        targets = provenance.targets_of(batch, facility)
        batch += provenance.provenance_writes(conn, repo.actor, targets, per_patient=False)
        store_writes(conn, batch, facility)
    out.created += sum(rid not in current for rid in changed)
    out.updated += sum(rid in current for rid in changed)
    out.persons = len(wanted)
    records = list(among if among is not None else owner)
    _set_person_ids(conn, records, {pid: rid for rid, r in wanted.items() for pid in members(r)})


def _set_person_ids(conn: sa.Connection, records: list[str], person_of: dict[str, str]) -> None:
    """mpi_record.person_id of `records` (and of every record now in a Person) follows."""
    rows = {pid: person_of.get(pid) for pid in records} | person_of
    if rows:
        conn.execute(
            mpi_record.update()
            .where(mpi_record.c.patient_id == sa.bindparam("p"))
            .values(person_id=sa.bindparam("person")),
            [{"p": pid, "person": rid} for pid, rid in rows.items()],
        )


def relink(
    store: Store,
    facility: str,
    *,
    thresholds: Thresholds | None = None,
    step: Callable[[str, int], Callable[[int], None]] | None = None,
) -> Relink:
    """Link every Patient of the store anew and rebuild the index from scratch: the model,
    every record's keys and name counts, the review queue, and the Persons (new clusters
    created, changed ones updated, vanished ones deleted, the rest left untouched). People's
    decisions on pairs stand."""
    th = thresholds or Thresholds()
    records = list(patients(store))
    people = [person_of(p) for p in records]
    ids = [p["id"] for p in records]
    out = Relink(records=len(records))
    linkage = None
    if len(records) >= 2:
        kwargs: dict[str, Any] = {"thresholds": th}
        if step is not None:
            kwargs["step"] = step
        linkage = link(people, **kwargs)
    with store.begin() as conn:
        index.lock(conn)
        edges = Edges([], [], [], [])
        band: dict[tuple[str, str], float] = {}
        if linkage is not None:
            edges = Edges.of(linkage.ia, linkage.ib, linkage.probability, linkage.reason, th)
            prob = linkage.probability
            out.conflicts = int((linkage.reason == CONFLICT).sum())
            for k in np.flatnonzero((prob >= th.review) & (prob < th.link)).tolist():
                band[index.ordered(ids[linkage.ia[k]], ids[linkage.ib[k]])] = float(prob[k])
            index.save_model(conn, linkage.model, len(records))
        decided = index.decided(conn)
        for pair in decided:
            band.pop(pair, None)
        edges.add_decisions({pid: i for i, pid in enumerate(ids)}, decided)
        groups, assurance, out.refused = clusters(len(records), edges, th)
        out.review = len(band)
        _rebuild_index(conn, records, people)
        index.set_review(conn, band, None)
        named = [[ids[i] for i in g] for g in groups]
        out.clusters = [sorted(g) for g in named]
        write_persons(conn, facility, named, {ids[i]: a for i, a in assurance.items()}, None, out)
    return out


def _rebuild_index(conn: sa.Connection, records: list[Resource], people: list[Person]) -> None:
    """Every record's keys, name counts and version, written afresh; queued writes this relink
    covered leave the inbox (later versions stay for the next drain)."""
    person_ids = dict(
        conn.execute(sa.select(mpi_record.c.patient_id, mpi_record.c.person_id)).all()
    )
    for table in (mpi_key, mpi_term, mpi_record):
        conn.execute(table.delete())
    keys: list[tuple[str, str]] = []
    rows: list[tuple[Any, ...]] = []
    delta: dict[tuple[str, str], int] = {}
    for res, p in zip(records, people, strict=True):
        rid, ks, row = res["id"], index.keys_of(p), row_of(p)
        terms = index.terms_of(row)
        keys += [(k, rid) for k in ks]
        version = int((res.get("meta") or {}).get("versionId", "1"))
        rows.append((rid, version, person_ids.get(rid), _j(ks), _j(terms), _j(row)))
        index.count_terms(delta, terms, +1)
    keys.sort()  # in the primary key's order: appends to the b-tree, not random inserts
    bulk_insert(conn, mpi_key, ("key", "patient_id"), keys)
    columns = ("patient_id", "version_id", "person_id", "keys", "terms", "record")
    bulk_insert(conn, mpi_record, columns, rows)
    bulk_insert(conn, mpi_term, ("kind", "value", "n"), [(k, v, n) for (k, v), n in delta.items()])
    done = sa.select(mpi_record.c.patient_id).where(
        mpi_record.c.patient_id == mpi_inbox.c.patient_id,
        mpi_record.c.version_id >= mpi_inbox.c.version_id,
    )
    conn.execute(mpi_inbox.delete().where(sa.exists(done)))


def _j(value: Any) -> str:
    return orjson.dumps(value).decode()


def _tags(res: Resource) -> set[str]:
    return {
        t.get("code", "")
        for t in (res.get("meta") or {}).get("tag", [])
        if t.get("system") == TAG["system"]
    }


__all__ = ["TAG", "Edges", "Relink", "clusters", "person_of", "person_resource", "relink",
           "write_persons"]  # fmt: skip
