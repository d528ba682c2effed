"""What the tamper-evident ledger costs on writes, and how fast `audit verify` reads it back.

    .venv/bin/python bench/ledger.py                      # 20,000 resources, both backends
    .venv/bin/python bench/ledger.py --resources 8000 --bundles 3000 --single 300

Each path writes the same work into two fresh databases side by side: one with the ledger off
(the reference, `benhan.store.ledger.RECORD = False`, which nothing but this script sets) and
one with it on. The steps alternate between the two (off then on, then on then off, …), so that
whatever else the machine does lands on both alike; each database's time is the sum of its
steps. The paths:

- **bulk load**: the synthetic province's first N resources (`benhan.synth`, owners spread over
  the province's facilities) validated, indexed and stored 1,000 per transaction with
  `prepare_write` + `store_writes`, as `benhan synth --workers 0` loads them.
- **bulk load, storing only**: the storing part of the same steps, timed apart (validation
  excluded): the ledger's hashing against the database work alone, its strictest reading.
- **transaction**: Synthea transaction Bundles (bench/ingest.py's clones) parsed, validated and
  stored by `rest.bundle.process`, one transaction each: `POST /fhir` minus HTTP.
- **single**: one Patient per transaction through the unit of work, as a facility's HIS client,
  with its AuditEvent: the per-transaction cost (one more statement at commit).

Target (issue 7): the ledger adds at most 10 % to the time of a write path. Then `verify`
re-reads the bulk database written with the ledger on: versions checked per second (no target).
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from common import FACILITY, console, fresh_database, load, progress, verdict
from ingest import DATA, load_templates, make_batches, run_transaction
from rich.table import Table

from benhan.access import ROLES, Actor
from benhan.config import tune_gc
from benhan.store import ledger
from benhan.store.database import Store, open_store
from benhan.store.repository import prepare_write, store_writes
from benhan.store.unit import unit
from benhan.synth.province import SynthConfig, generate

TARGET = 0.10  # at most 10 % more time with the ledger on
CHUNK = 1000  # resources per bulk transaction
Step = Callable[[Store], dict[str, float]]  # one unit of work → seconds by part ("" = all of it)


@dataclass
class Path_:
    name: str
    resources: int
    warm: list[Step]  # untimed, on each fresh database
    steps: list[Step]  # timed, alternating between the two databases


@dataclass
class Result:
    backend: str
    path: str
    resources: int
    off: float  # seconds with the ledger off (the reference)
    on: float  # seconds with it on

    @property
    def overhead(self) -> float:
        return self.on / self.off - 1


# ---- the paths --------------------------------------------------------------------------------


def bulk_path(n: int) -> Path_:
    items = list(itertools.islice(generate(SynthConfig(people=max(500, n // 6), years=1)), n + 50))
    chunks = [items[i : i + CHUNK] for i in range(0, n, CHUNK)]

    def load_chunk(part: list[tuple[str, Any]]) -> Step:
        def step(store: Store) -> dict[str, float]:
            started = time.perf_counter()
            writes = [prepare_write(res, "PUT", facility=code) for code, res in part]
            prepared = time.perf_counter()
            with store.begin() as conn:
                store_writes(conn, writes, "")
            done = time.perf_counter()
            return {"": done - started, "storing only": done - prepared}

        return step

    return Path_("bulk load", n, [load_chunk(items[n:])], [load_chunk(c) for c in chunks])


def transaction_path(n: int) -> Path_:
    templates = load_templates(DATA)
    batches = make_batches(templates, n)

    def post(body: Any) -> Step:
        def step(store: Store) -> dict[str, float]:
            started = time.perf_counter()
            run_transaction(store, body)
            return {"": time.perf_counter() - started}

        return step

    warm = make_batches(templates[:1], 1)
    return Path_("transaction", sum(b.resources for b in batches), [post(b) for b in warm],
                 [post(b) for b in batches])  # fmt: skip


def single_path(n: int) -> Path_:
    role = ROLES["system-integrator"]
    his = Actor("client", "bench-his", role, FACILITY, role.scopes, account="bench-his")

    def create(i: int) -> Step:
        def step(store: Store) -> dict[str, float]:
            started = time.perf_counter()
            with unit(store, his, write=True) as repo:
                repo.create({"resourceType": "Patient", "name": [{"family": f"Nguyễn {i}"}]})
            return {"": time.perf_counter() - started}

        return step

    return Path_("single", n, [create(-i) for i in range(1, 21)], [create(i) for i in range(n)])


# ---- measuring --------------------------------------------------------------------------------


@contextmanager
def two_stores(backend: str) -> Iterator[tuple[Store, Store]]:
    with (
        fresh_database(backend, "ledger_off") as off_url,
        fresh_database(backend, "ledger_on") as on_url,
    ):
        stores = open_store(off_url), open_store(on_url)
        try:
            for s in stores:
                s.create_schema()
            yield stores
        finally:
            for s in stores:
                s.dispose()


def run_step(step: Step, store: Store, recording: bool) -> dict[str, float]:
    ledger.RECORD = recording
    try:
        return step(store)
    finally:
        ledger.RECORD = True


def measure(backend: str, path: Path_) -> tuple[list[Result], str]:
    """Every step on both databases, alternating which goes first."""
    spent: dict[bool, Counter[str]] = {False: Counter(), True: Counter()}
    with two_stores(backend) as (off, on), progress() as bar:
        for recording, store in ((False, off), (True, on)):
            for step in path.warm:
                run_step(step, store, recording)
        task = bar.add_task(f"{backend} {path.name}", total=len(path.steps))
        for i, step in enumerate(path.steps):
            order = ((False, off), (True, on)) if i % 2 == 0 else ((True, on), (False, off))
            for recording, store in order:
                spent[recording].update(run_step(step, store, recording))
            bar.advance(task)
        note = verify_rate(on) if path.name == "bulk load" else ""
    names = {part: f"{path.name}, {part}" if part else path.name for part in spent[False]}
    return [
        Result(backend, name, path.resources, spent[False][part], spent[True][part])
        for part, name in names.items()
    ], note


def verify_rate(store: Store) -> str:
    started = time.perf_counter()
    with store.read() as conn:
        report = ledger.verify(conn)
    seconds = time.perf_counter() - started
    if not report.intact:
        raise RuntimeError(f"the bench's own database does not verify: {dict(report.counts)}")
    return (
        f"{report.versions:,} versions in {len(report.chains)} chains, {seconds:.2f} s: "
        f"{report.versions / seconds:,.0f} versions/s"
    )


def report(results: list[Result]) -> Table:
    table = Table(title="Ledger overhead on writes (reference: the same steps with it off)")
    columns = ("backend", "path", "resources", "off s", "on s", "off res/s", "on res/s",
               "overhead", "target", "result")  # fmt: skip
    for col in columns:
        left = col in ("backend", "path", "target", "result")
        table.add_column(col, justify="left" if left else "right")
    for r in results:
        table.add_row(
            r.backend,
            r.path,
            f"{r.resources:,}",
            f"{r.off:.2f}",
            f"{r.on:.2f}",
            f"{r.resources / r.off:,.0f}",
            f"{r.resources / r.on:,.0f}",
            f"{r.overhead:+.1%}",
            f"≤ {TARGET:.0%}",
            verdict(r.overhead <= TARGET),
        )
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--resources", type=int, default=20_000, help="bulk load (0 skips it)")
    ap.add_argument("--bundles", type=int, default=5_000, help="transaction path (0 skips it)")
    ap.add_argument("--single", type=int, default=1_000, help="single writes (0 skips them)")
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = ap.parse_args()
    tune_gc()
    paths = []
    if args.resources:
        paths.append(bulk_path(args.resources))
    if args.bundles:
        paths.append(transaction_path(args.bundles))
    if args.single:
        paths.append(single_path(args.single))
    console.print(load())
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results, notes = [], []
    for backend in backends:
        for path in paths:
            measured, note = measure(backend, path)
            results += measured
            if note:
                notes.append(f"verify ({backend}, the bulk database): {note}")
    console.print(report(results))
    for line in notes:
        console.print(line)
    console.print(f"{load()} at the end.")


if __name__ == "__main__":
    main()
