"""The cost of authorization and audit: the same reads and searches with both off and on.

Two `benhan serve` processes on one store: "on" is the real server, called by a doctor with a
bearer token (token checked, account loaded, the policy's predicate in every query, an
AuditEvent queued per call and written in batches); "off" is bench/server_without_access.py, the
same program taking every caller for a trusted local job (no token, no row rule, no AuditEvent).
Each request goes to both, in alternating order, from one client over loopback.
Target: "on" at most 15 % over "off" at p50 and p95.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from common import FACILITY, VAR, console, percentiles, progress, server, verdict
from read import SPECIAL, build_postgres, build_sqlite, workload
from rich.table import Table

from benhan.access import ROLES
from benhan.auth.accounts import create_account
from benhan.auth.tokens import issue
from benhan.store.database import Store, open_store
from benhan.store.schema import INDEX_TABLES, account, resource, resource_version

TARGET = 1.15
USERNAME = "bench.doctor"
HERE = Path(__file__).resolve().parent


def probes(url: str, reads: int, searches: int, everything: int) -> list[tuple[str, str]]:
    """(metric, path under /fhir) for every request, shuffled."""
    work = workload(url, reads, searches)
    out = [("read by id", f"/{ref}") for ref in work.reads]
    out += [("search: identifier", f"/Patient?identifier={s}|{v}") for s, v in work.identifiers]
    out += [("search: a patient's Observations", f"/Observation?patient={SPECIAL}&_count=50")] * (
        searches
    )
    out += [("$everything", f"/Patient/{SPECIAL}/$everything")] * everything
    random.Random(7).shuffle(out)
    return out


def doctor_account(store: Store) -> str:
    forget(store)
    with store.begin() as conn:
        acc = create_account(
            conn,
            username=USERNAME,
            password="a long bench password",
            role_code="doctor",
            facility=FACILITY,
            display_name="Bench doctor",
        )
    return acc.id


def doctor_token(store: Store, account_id: str, audience: str) -> str:
    with store.begin() as conn:
        token, _ = issue(
            conn,
            subject=f"account:{account_id}",
            scope=ROLES["doctor"].scopes,
            issuer=audience.split("/fhir")[0],
            audience=audience,
            ttl_s=3600,
        )
    return token


def forget(store: Store) -> None:
    """The store is cached for the read bench: leave it as it was built."""
    with store.begin() as conn:
        for table in [resource, resource_version, *INDEX_TABLES.values()]:
            conn.execute(table.delete().where(table.c.rtype == "AuditEvent"))
        conn.execute(account.delete().where(account.c.username == USERNAME))


def measure(
    on: httpx.Client, off: httpx.Client, plan: list[tuple[str, str]]
) -> dict[tuple[str, str], list[float]]:
    for _metric, path in plan[:100]:  # warm-up: imports, statement caches, page cache
        on.get(path)
        off.get(path)
    ms: dict[tuple[str, str], list[float]] = {}
    with progress() as bar:
        task = bar.add_task("requests (off and on, alternating)", total=2 * len(plan))
        for i, (metric, path) in enumerate(plan):
            pair = [("on", on), ("off", off)] if i % 2 else [("off", off), ("on", on)]
            for mode, client in pair:
                start = time.perf_counter()
                r = client.get(path)
                ms.setdefault((metric, mode), []).append((time.perf_counter() - start) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"{mode} GET {path} → {r.status_code}: {r.text[:300]}")
                bar.advance(task)
    return ms


def report(backend: str, n: int, ms: dict[tuple[str, str], list[float]], audits: int) -> Table:
    table = Table(title=f"authorization + audit cost over HTTP — {backend}, {n:,} resources")
    for col in ("metric", "calls", "off p50", "off p95", "on p50", "on p95", "ratio p50",
                "ratio p95", f"≤ {TARGET:.2f}"):  # fmt: skip
        table.add_column(col, justify="left" if col == "metric" else "right")
    for metric in sorted({m for m, _ in ms}):
        off50, off95, _ = percentiles(ms[(metric, "off")])
        on50, on95, _ = percentiles(ms[(metric, "on")])
        r50, r95 = on50 / off50, on95 / off95
        table.add_row(
            metric,
            str(len(ms[(metric, "on")])),
            f"{off50:.2f} ms",
            f"{off95:.2f} ms",
            f"{on50:.2f} ms",
            f"{on95:.2f} ms",
            f"{r50:.2f}",
            f"{r95:.2f}",
            verdict(r50 <= TARGET and r95 <= TARGET),
        )
    table.caption = f"AuditEvents written for the 'on' requests: {audits:,}"
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--resources", type=int, default=100_000)
    ap.add_argument("--reads", type=int, default=1000)
    ap.add_argument("--searches", type=int, default=300)
    ap.add_argument("--everything", type=int, default=100)
    args = ap.parse_args()
    built = (build_sqlite if args.backend == "sqlite" else build_postgres)(args.resources, False)
    store = open_store(built.url)
    store.create_schema()
    account_id = doctor_account(store)
    plan = probes(built.url, args.reads, args.searches, args.everything)
    reference = [sys.executable, str(HERE / "server_without_access.py")]
    try:
        with (
            server(built.url, VAR / f"access-{args.backend}-on.log") as on_srv,
            server(built.url, VAR / f"access-{args.backend}-off.log", program=reference) as off,
        ):
            token = doctor_token(store, account_id, on_srv.url)
            with (
                httpx.Client(base_url=on_srv.url, timeout=60) as on,
                httpx.Client(base_url=off.url, timeout=60) as off_client,
            ):
                on.headers["Authorization"] = f"Bearer {token}"
                ms = measure(on, off_client, plan)
        with store.read() as conn:  # the servers flushed their queues on the way out
            q = sa.select(sa.func.count()).where(resource.c.rtype == "AuditEvent")
            audits = int(conn.scalar(q) or 0)
        console.print(report(args.backend, args.resources, ms, audits))
    finally:
        forget(store)
        store.dispose()


if __name__ == "__main__":
    main()
