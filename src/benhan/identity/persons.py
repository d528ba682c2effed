"""The hub's `Person` resources: one per real person found in more than one record.

Each facility's Patient stays exactly as the facility wrote it; a relink writes only Persons
(tagged as the index's own), whose `link` lists the Patients of one person with an assurance
level: level4 when a shared valid CCCD or BHXH number made the link certain, level3 when the
model did. The access rules already follow `Person.link` (store/policy.py: a clinician treating
someone sees their records from other facilities), so linking is what joins the record up.

Links are clustered with a union–find over the pairs at or above the link threshold, refusing
any union that would put two records the rules call a conflict (same ID, clearly different
person) into one Person: chains of links must not merge two people either.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from benhan.access import Actor
from benhan.fhir.definitions import Resource
from benhan.identity.decide import REASONS, Thresholds
from benhan.identity.dedupe import Linkage, link
from benhan.identity.fhir_csv import field_options, patient_row
from benhan.identity.normalise import Person
from benhan.identity.table import FieldSpec, Table, parse_field, person_from_row
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.store.schema import resource

TAG = {"system": "https://benhan.vn/CodeSystem/mpi", "code": "person", "display": "MPI"}
NAMESPACE = uuid.UUID("5b1e6d0c-5f0e-4c8e-9a55-6e5ee1b3a001")  # Person ids, stable per cluster
SAME_ID, CONFLICT = REASONS.index("same-id"), REASONS.index("conflict")


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
    specs: dict[str, FieldSpec] = {
        s.role: s for s in (parse_field(f) for f in field_options(with_address=True))
    }
    row = patient_row(patient)
    return person_from_row(row["patient_id"], row, specs, Table(), [], patient["id"])


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


def clusters(linkage: Linkage, th: Thresholds) -> tuple[list[list[int]], dict[int, str], int]:
    """Clusters of record indices (two or more), each record's assurance, and the number of
    link pairs refused because they would have joined a conflict."""
    ia, ib = linkage.ia.tolist(), linkage.ib.tolist()
    prob, reason = linkage.probability.tolist(), linkage.reason.tolist()
    conflicts = [(a, b) for a, b, r in zip(ia, ib, reason, strict=True) if r == CONFLICT]
    found = _Clusters(len(linkage.cols), conflicts)
    assurance: dict[int, str] = {}
    refused = 0
    # Certain links first, then the most probable: a refusal falls on the weakest evidence.
    order = sorted(range(len(ia)), key=lambda k: (reason[k] != SAME_ID, -prob[k]))
    for k in order:
        if prob[k] < th.link or reason[k] == CONFLICT:
            continue
        if not found.union(ia[k], ib[k]):
            refused += 1
            continue
        level = "level4" if reason[k] == SAME_ID else "level3"
        for i in (ia[k], ib[k]):
            if assurance.get(i) != "level4":
                assurance[i] = level
    groups = [sorted(m) for m in found.members.values() if len(m) > 1]
    return groups, assurance, refused


def person_resource(ids: list[str], assurance: dict[str, str]) -> Resource:
    """The Person of one cluster; its id is derived from the cluster's first record, so a
    relink that finds the same cluster writes the same Person."""
    pid = str(uuid.uuid5(NAMESPACE, min(ids)))
    return {
        "resourceType": "Person",
        "id": pid,
        "meta": {"tag": [TAG]},
        "active": True,
        "link": [{"target": {"reference": f"Patient/{i}"}, "assurance": assurance[i]} for i in ids],
    }


def relink(
    store: Store,
    facility: str,
    *,
    thresholds: Thresholds | None = None,
    step: Callable[[str, int], Callable[[int], None]] | None = None,
) -> Relink:
    """Link every Patient of the store anew and make the index's Persons say so: new clusters
    created, changed ones updated, vanished ones deleted, the rest left untouched."""
    th = thresholds or Thresholds()
    records = list(patients(store))
    out = Relink(records=len(records))
    if len(records) < 2:
        linkage = None
    else:
        kwargs: dict[str, Any] = {"thresholds": th}
        if step is not None:
            kwargs["step"] = step
        linkage = link([person_of(p) for p in records], **kwargs)
    wanted: dict[str, Resource] = {}
    if linkage is not None:
        groups, assurance, out.refused = clusters(linkage, th)
        band = (linkage.probability >= th.review) & (linkage.probability < th.link)
        out.review, out.conflicts = int(band.sum()), int((linkage.reason == CONFLICT).sum())
        for g in groups:
            ids = [records[i]["id"] for i in g]
            res = person_resource(ids, {records[i]["id"]: assurance[i] for i in g})
            wanted[res["id"]] = res
            out.clusters.append(sorted(ids))
    out.persons = len(wanted)
    _write(store, facility, wanted, out)
    return out


def _write(store: Store, facility: str, wanted: dict[str, Resource], out: Relink) -> None:
    with store.begin() as conn:
        repo = Repo(conn, Actor.job(facility, "mpi relink"))
        q = sa.select(resource.c.id, sa.cast(resource.c.content, sa.Text)).where(
            resource.c.rtype == "Person", resource.c.deleted.is_(False)
        )
        current = {
            rid: orjson.loads(text)
            for rid, text in conn.execute(q)
            if TAG["code"] in _tags(orjson.loads(text))  # other Persons are not the index's
        }
        for rid in sorted(current.keys() - wanted.keys()):
            repo.delete("Person", rid)
            out.deleted += 1
        for rid, res in wanted.items():
            old = current.get(rid)
            if old is not None and old.get("link") == res["link"]:
                out.unchanged += 1
                continue
            repo.update("Person", rid, res)
            if old is None:
                out.created += 1
            else:
                out.updated += 1


def _tags(res: Resource) -> set[str]:
    return {
        t.get("code", "")
        for t in (res.get("meta") or {}).get("tag", [])
        if t.get("system") == TAG["system"]
    }


__all__ = ["TAG", "Relink", "clusters", "person_of", "person_resource", "relink"]
