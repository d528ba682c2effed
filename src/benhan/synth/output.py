"""Where a generated province goes: straight into the repository, or into per-facility files;
and the ground-truth files beside it."""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from multiprocessing import get_context
from multiprocessing.pool import AsyncResult, Pool
from pathlib import Path
from typing import IO, Any

import orjson

from benhan.store.database import Store
from benhan.store.repository import Write, prepare_write, store_writes
from benhan.synth.epidemic import write_ground_truth
from benhan.synth.province import Province, Resource

CHUNK = 2_000  # resources per database transaction on the fast path
Advance = Callable[[int], None]


def to_store(
    store: Store,
    resources: Iterable[tuple[str, Resource]],
    advance: Advance | None = None,
    workers: int = 0,
) -> int:
    """The fast path: validate, index and flush in large batches, owner facility per resource.

    References are not looked up one by one: the generator writes every referenced resource
    (facility, patient, encounter) before what references it, and the tests check that they
    all resolve. With workers > 0, validating and indexing run in that many processes while
    this one writes, in the original order.
    """
    total = 0
    chunks = _chunks(resources, CHUNK)
    with _pool(workers) as pool:
        prepared = _bounded(pool, chunks, 2 * workers) if pool else map(_prepare_chunk, chunks)
        for writes in prepared:
            with store.begin() as conn:
                store_writes(conn, writes, "")
            total += len(writes)
            if advance:
                advance(len(writes))
    return total


def _prepare_chunk(chunk: list[tuple[str, Resource]]) -> list[Write]:
    return [prepare_write(res, "PUT", facility=code) for code, res in chunk]


def _bounded(
    pool: Pool, chunks: Iterator[list[tuple[str, Resource]]], ahead: int
) -> Iterator[list[Write]]:
    """Results in order with at most `ahead` chunks in flight (Pool.imap would read the whole
    generator into memory when generating outruns writing)."""
    pending: deque[AsyncResult[list[Write]]] = deque()
    for chunk in chunks:
        pending.append(pool.apply_async(_prepare_chunk, (chunk,)))
        if len(pending) > ahead:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


@contextmanager
def _pool(workers: int) -> Iterator[Pool | None]:
    if workers <= 0:
        yield None
        return
    # fork: the workers inherit the loaded definitions and compiled search parameters.
    with get_context("fork").Pool(workers) as pool:
        yield pool


def to_ndjson(
    out_dir: Path, resources: Iterable[tuple[str, Resource]], advance: Advance | None = None
) -> int:
    """One folder per facility, one NDJSON file per resource type (what `benhan import` reads)."""
    files: dict[tuple[str, str], IO[bytes]] = {}
    total = 0
    try:
        for code, res in resources:
            key = (code, res["resourceType"])
            if key not in files:
                path = out_dir / code / f"{res['resourceType']}.ndjson"
                path.parent.mkdir(parents=True, exist_ok=True)
                files[key] = path.open("wb")
            files[key].write(orjson.dumps(res) + b"\n")
            total += 1
            if advance and total % 1000 == 0:
                advance(1000)
    finally:
        for fh in files.values():
            fh.close()
    return total


def write_truth(province: Province, truth_dir: Path) -> list[Path]:
    """people.csv (each registered Patient → the true person) and outbreaks.json."""
    truth_dir.mkdir(parents=True, exist_ok=True)
    people = truth_dir / "people.csv"
    with people.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "facility_code", "true_person_id", "mutations"])
        for r in province.registrations:
            w.writerow([r.patient_id, r.facility_code, r.true_person_id, ";".join(r.mutations)])
    outbreaks = truth_dir / "outbreaks.json"
    if province.simulation is not None:
        write_ground_truth(province.simulation, outbreaks)
    return [people, outbreaks]


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
