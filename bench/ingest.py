"""Ingest throughput: the transaction path, the same over HTTP, and the raw limit beside it."""

from __future__ import annotations

import argparse
import cProfile
import itertools
import os
import pstats
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from common import (
    BASE,
    FACILITY,
    ROOT,
    VAR,
    console,
    cpu_seconds,
    fresh_database,
    load,
    progress,
    server,
    verdict,
)
from rich.table import Table

from benhan.access import Actor
from benhan.config import tune_gc
from benhan.fhir.validation import validate
from benhan.rest.bundle import process
from benhan.rest.operations import OPERATIONS
from benhan.rest.router import Context
from benhan.store.database import Store, open_store
from benhan.store.repository import Repo

DATA = ROOT.parent / "shared" / "data" / "synthea-r4-bundles"  # next to the checkout
TARGET = {"sqlite": 5000.0, "postgres": 3000.0}
RAW_SHARE = 0.40  # the transaction path must reach at least 40% of the raw limit


@dataclass
class Batch:
    """One cloned transaction Bundle as the client would send it."""

    body: bytes
    resources: int


@dataclass
class Result:
    backend: str
    path: str
    resources: int
    seconds: float
    cpu: float  # CPU seconds of the Python process doing the work (this one, or the server)

    @property
    def rate(self) -> float:
        return self.resources / self.seconds


# ---- data -------------------------------------------------------------------------------------


def load_templates(data: Path) -> list[dict[str, Any]]:
    files = sorted(data.glob("*.json"))
    if not files:
        raise SystemExit(f"no *.json Bundles in {data}")
    return [orjson.loads(f.read_bytes()) for f in files]


def clone(bundle: dict[str, Any]) -> dict[str, Any]:
    """The Bundle with a fresh urn:uuid for every entry; fullUrls, ids and references follow."""
    fresh = {
        e["fullUrl"]: f"urn:uuid:{uuid.uuid4()}"
        for e in bundle["entry"]
        if str(e.get("fullUrl", "")).startswith("urn:uuid:")
    }
    ids = {
        old.removeprefix("urn:uuid:"): new.removeprefix("urn:uuid:") for old, new in fresh.items()
    }
    entries = []
    for e in bundle["entry"]:
        res = _relink(e["resource"], fresh)
        if res.get("id") in ids:
            res["id"] = ids[res["id"]]
        entries.append(
            {**e, "fullUrl": fresh.get(e.get("fullUrl"), e.get("fullUrl")), "resource": res}
        )
    return {**bundle, "entry": entries}


def _relink(node: Any, fresh: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: (fresh.get(v, v) if k == "reference" and isinstance(v, str) else _relink(v, fresh))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_relink(v, fresh) for v in node]
    return node


def make_batches(templates: list[dict[str, Any]], n: int) -> list[Batch]:
    """Cloned Bundles, cycling through the templates, until at least n resources."""
    out: list[Batch] = []
    total = 0
    for template in itertools.cycle(templates):
        if total >= n:
            break
        bundle = clone(template)
        out.append(Batch(orjson.dumps(bundle), len(bundle["entry"])))
        total += len(bundle["entry"])
    return out


# ---- the three paths --------------------------------------------------------------------------


def run_transaction(store: Store, batch: Batch) -> None:
    """What POST /fhir does, minus HTTP: parse, then process() in one database transaction."""
    bundle = orjson.loads(batch.body)
    with store.begin() as conn:
        process(Context(Repo(conn, Actor.job(FACILITY, "bench")), BASE, OPERATIONS), bundle)


def raw_setup(store: Store) -> sa.TextClause:
    kind = "jsonb" if store.is_postgres else "text"
    with store.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE raw (id text PRIMARY KEY, content {kind} NOT NULL)")
    value = "CAST(:content AS jsonb)" if store.is_postgres else ":content"
    return sa.text(f"INSERT INTO raw (id, content) VALUES (:id, {value})")


def run_raw(store: Store, insert: sa.TextClause, batch: Batch) -> None:
    """The raw limit: parse, validate each resource, one bare INSERT per resource (executemany)."""
    bundle = orjson.loads(batch.body)
    rows = []
    for e in bundle["entry"]:
        res = validate(e["resource"])
        rows.append({"id": str(uuid.uuid4()), "content": orjson.dumps(res).decode()})
    with store.begin() as conn:
        conn.execute(insert, rows)


def timed(
    label: str, batches: list[Batch], step: Callable[[Batch], None], pid: int | None = None
) -> tuple[float, float]:
    """Wall and CPU seconds (of pid, by default this process) for step() over every batch."""
    total = sum(b.resources for b in batches)
    pid = pid or os.getpid()
    with progress() as bar:
        task = bar.add_task(label, total=total)
        start, cpu = time.perf_counter(), cpu_seconds(pid)
        for b in batches:
            step(b)
            bar.advance(task, b.resources)
        return time.perf_counter() - start, cpu_seconds(pid) - cpu


def measure_direct(
    backend: str, batches: list[Batch], warm: Batch, profile: Path | None
) -> list[Result]:
    n = sum(b.resources for b in batches)
    out = []
    with fresh_database(backend, "raw") as url:
        store = _store(url)
        insert = raw_setup(store)
        run_raw(store, insert, warm)
        wall, cpu = timed(f"{backend} raw limit", batches, lambda b: run_raw(store, insert, b))
        out.append(Result(backend, "raw limit", n, wall, cpu))
        store.dispose()
    with fresh_database(backend, "tx") as url:
        store = _store(url)
        run_transaction(store, warm)
        prof = profile.with_stem(f"{profile.stem}-{backend}") if profile else None
        with _profiling(prof):
            wall, cpu = timed(
                f"{backend} transaction", batches, lambda b: run_transaction(store, b)
            )
        out.append(Result(backend, "transaction", n, wall, cpu))
        store.dispose()
    return out


def measure_http(backend: str, batches: list[Batch], warm: Batch) -> Result:
    n = sum(b.resources for b in batches)
    with fresh_database(backend, "http") as url:
        _store(url).dispose()  # schema first, so the server's startup is not in the timing
        with (
            server(url, VAR / f"ingest-{backend}-server.log") as srv,
            httpx.Client(timeout=120, headers=srv.headers) as client,
        ):
            post = _poster(client, srv.url)
            post(warm)
            wall, cpu = timed(f"{backend} HTTP POST /fhir", batches, post, srv.pid)
    return Result(backend, "transaction over HTTP", n, wall, cpu)


def _poster(client: httpx.Client, url: str) -> Callable[[Batch], None]:
    def post(b: Batch) -> None:
        # exactly /fhir: "/fhir/" (trailing slash) is routed as an interaction, not a Bundle
        r = client.post(url, content=b.body, headers={"Content-Type": "application/fhir+json"})
        if r.status_code != 200:
            raise RuntimeError(f"POST /fhir → {r.status_code}: {r.text[:500]}")

    return post


def _store(url: str) -> Store:
    store = open_store(url)
    store.create_schema()
    return store


@contextmanager
def _profiling(path: Path | None) -> Iterator[None]:
    """cProfile the block into path (and print the top costs), or do nothing."""
    if path is None:
        yield
        return
    prof = cProfile.Profile()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        prof.dump_stats(path)
        console.print(f"[bold]profile[/bold] → {path} (top 25 by own time)")
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


# ---- report -----------------------------------------------------------------------------------


def report(results: list[Result]) -> Table:
    raw = {r.backend: r.rate for r in results if r.path == "raw limit"}
    table = Table(title="Ingest throughput (transaction Bundles cloned from Synthea)")
    for col in (
        "backend",
        "path",
        "resources",
        "seconds",
        "cpu s",
        "resources/s",
        "× raw limit",
        "target",
        "result",
    ):
        table.add_column(
            col,
            justify="right"
            if col in ("resources", "seconds", "cpu s", "resources/s", "× raw limit")
            else "left",
        )
    for r in results:
        share = r.rate / raw[r.backend] if r.backend in raw else None
        target, ok = _target(r, share)
        table.add_row(
            r.backend,
            r.path,
            f"{r.resources:,}",
            f"{r.seconds:.2f}",
            f"{r.cpu:.2f}",
            f"{r.rate:,.0f}",
            f"{share:.0%}" if share is not None else "—",
            target,
            verdict(ok),
        )
    return table


def _target(r: Result, share: float | None) -> tuple[str, bool | None]:
    if r.path != "transaction":
        return "—", None
    goal = TARGET[r.backend]
    ok = r.rate >= goal and share is not None and share >= RAW_SHARE
    return f"≥ {goal:,.0f}/s and ≥ {RAW_SHARE:.0%} of raw", ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--resources", type=int, default=20_000)
    ap.add_argument(
        "--http-resources", type=int, default=5_000, help="resources for the HTTP run (0 to skip)"
    )
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--profile", type=Path, help="cProfile the transaction path into this file")
    args = ap.parse_args()
    tune_gc()  # as `benhan serve` and `benhan import` run
    templates = load_templates(args.data)
    batches = make_batches(templates, args.resources)
    http_batches = make_batches(templates, args.http_resources) if args.http_resources else []
    warm = make_batches(templates[:1], 1)[0]
    console.print(
        f"{load()}; {len(batches)} Bundles, {sum(b.resources for b in batches):,} resources "
        f"({sum(len(b.body) for b in batches) / 1e6:.1f} MB)"
    )
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results: list[Result] = []
    for backend in backends:
        results += measure_direct(backend, batches, warm, args.profile)
        if http_batches:
            results.append(measure_http(backend, http_batches, warm))
    console.print(report(results))
    console.print(
        f"{load()} at the end. cpu s: the Python process doing the work (this one; the "
        "server for HTTP); the database server's own CPU is not in it."
    )


if __name__ == "__main__":
    main()
