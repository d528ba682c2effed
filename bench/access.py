"""The cost of authorization and audit: the same reads and searches with both off and on.

"Off" is a trusted local job (no token, no row rules, no AuditEvent); "on" is a doctor with a
bearer token: the token is verified, the account loaded, the policy's predicate joins every
query, and each call writes its AuditEvent in a transaction of its own before it returns. Both
run through the repository's unit of work (the HTTP layer is the same for both and left out),
interleaved in random order on one store, so the ratio is measured in the same run.
Target: "on" at most 15 % over "off" (p50 and p95).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from common import FACILITY, console, percentiles, progress, verdict
from read import SPECIAL, build_postgres, build_sqlite, workload
from rich.table import Table

from benhan.access import Actor, Scopes
from benhan.api.security import bearer_actor
from benhan.auth.accounts import create_account
from benhan.auth.tokens import issue
from benhan.store.database import Store, open_store
from benhan.store.repository import Repo
from benhan.store.schema import INDEX_TABLES, account, resource, resource_version
from benhan.store.search import parse_search
from benhan.store.unit import unit

TARGET = 1.15
AUDIENCE = "http://127.0.0.1/fhir"
Call = Callable[[Repo], object]


@dataclass
class Probe:
    metric: str
    call: Call


def probes(url: str, reads: int, searches: int, everything: int) -> list[Probe]:
    work = workload(url, reads, searches)
    out = []
    for ref in work.reads:
        rtype, rid = ref.split("/", 1)
        out.append(Probe("read by id", lambda r, t=rtype, i=rid: r.read(t, i)))
    for system, value in work.identifiers:
        params = [("identifier", f"{system}|{value}")]
        out.append(Probe("search: identifier", lambda r, p=params: _search(r, "Patient", p)))
    obs = [("patient", SPECIAL), ("_count", "50")]
    for _ in range(searches):
        out.append(
            Probe("search: a patient's Observations", lambda r: _search(r, "Observation", obs))
        )
    for _ in range(everything):
        out.append(Probe("$everything", _everything))
    random.Random(7).shuffle(out)
    return out


def _everything(repo: Repo) -> object:
    return repo.everything(SPECIAL, since=None, types=[], count=100, offset=0)


def _search(repo: Repo, rtype: str, params: list[tuple[str, str]]) -> object:
    return repo.search(parse_search(rtype, params, strict=True), [k for k, _ in params])


def doctor_token(store: Store) -> str:
    with store.begin() as conn:
        conn.execute(account.delete().where(account.c.username == "bench.doctor"))
        acc = create_account(
            conn,
            username="bench.doctor",
            password="a long bench password",
            role_code="doctor",
            facility=FACILITY,
            display_name="Bench doctor",
        )
        token, _ = issue(
            conn,
            subject=f"account:{acc.id}",
            scope=Scopes.parse("user/*.rs"),
            issuer="http://127.0.0.1",
            audience=AUDIENCE,
        )
    return token


def measure(store: Store, plan: list[Probe], token: str) -> dict[tuple[str, str], list[float]]:
    job = Actor.job(FACILITY, "bench")
    header = f"Bearer {token}"

    def off(p: Probe) -> None:
        with unit(store, job, write=False) as repo:
            p.call(repo)

    def on(p: Probe) -> None:
        with store.read() as conn:
            who = bearer_actor(conn, header, address="127.0.0.1", audience=AUDIENCE)
        with unit(store, who, write=False) as repo:
            p.call(repo)

    for p in plan[:100]:  # warm-up: statement caches, page cache
        off(p)
        on(p)
    ms: dict[tuple[str, str], list[float]] = {}
    with progress() as bar:
        task = bar.add_task("calls (off and on, alternating)", total=2 * len(plan))
        for i, p in enumerate(plan):
            order = [("off", off), ("on", on)] if i % 2 else [("on", on), ("off", off)]
            for mode, fn in order:
                start = time.perf_counter()
                fn(p)
                ms.setdefault((p.metric, mode), []).append((time.perf_counter() - start) * 1000)
                bar.advance(task)
    return ms


def report(backend: str, n: int, ms: dict[tuple[str, str], list[float]], audits: int) -> Table:
    table = Table(title=f"authorization + audit cost — {backend}, {n:,} resources")
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
    table.caption = f"AuditEvents written by the 'on' calls: {audits:,}"
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--resources", type=int, default=100_000)
    ap.add_argument("--reads", type=int, default=1000)
    ap.add_argument("--searches", type=int, default=500)
    ap.add_argument("--everything", type=int, default=100)
    args = ap.parse_args()
    build = build_sqlite if args.backend == "sqlite" else build_postgres
    built = build(args.resources, False)
    store = open_store(built.url)
    store.create_schema()
    token = doctor_token(store)
    plan = probes(built.url, args.reads, args.searches, args.everything)

    def audits() -> int:
        with store.read() as conn:
            q = sa.select(sa.func.count()).where(resource.c.rtype == "AuditEvent")
            return int(conn.scalar(q) or 0)

    before = audits()
    ms = measure(store, plan, token)
    console.print(report(args.backend, args.resources, ms, audits() - before))
    forget_audit(store)
    store.dispose()


def forget_audit(store: Store) -> None:
    """The store is cached for the read bench: leave it as it was built."""
    with store.begin() as conn:
        for table in [resource, resource_version, *INDEX_TABLES.values()]:
            conn.execute(table.delete().where(table.c.rtype == "AuditEvent"))
        conn.execute(account.delete().where(account.c.username == "bench.doctor"))


if __name__ == "__main__":
    main()
