"""Signed documents per second: sign + store, and verify, for visit summaries of a synthetic
province.

    .venv/bin/python bench/signing.py                    # 300 documents, SQLite, 4,000 people
    .venv/bin/python bench/signing.py --documents 1000 --backend postgres

A small synthetic province (`--people`, one year) is loaded into a fresh store, the provincial CA
issues a doctor's certificate (ES256, the default), and the visit summaries of `--documents`
encounters are built (documents.build_document, not timed). Then, each document in a
transaction of its own as a doctor signing at the end of a visit would:
* reference: store the unsigned document (documents.store_document);
* sign + store: jws.sign_document with the doctor's key, then store_document (a second copy of
  the store, so both write the same documents into the same state);
* build + sign + store: service.sign for the same encounters (a third copy), the whole "sign"
  click: the signer loaded, the document built from the stored visit, signed, stored with its
  signed Provenance (no target of its own: it shows what building adds);
* verify: verify.verify against the CA's trust anchors and CRLs, in memory (as `benhan verify`
  and $verify do); its reference is parsing the document from JSON.
Targets (issue 7): ≥ 500 sign + store per second and ≥ 1,000 verify per second on two cores.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from common import FACILITY, console, load, pg_admin, pg_url, progress, verdict
from rich.table import Table

from benhan.access import Actor, role
from benhan.config import tune_gc
from benhan.fhir.primitives import now
from benhan.signing import documents, jws, pki, service
from benhan.signing.verify import verify
from benhan.store.database import Store, open_store
from benhan.store.schema import resource
from benhan.store.unit import unit
from benhan.synth.output import to_store
from benhan.synth.province import SynthConfig, generate

TARGET_SIGN, TARGET_VERIFY = 500.0, 1000.0
DOCTOR = "Practitioner/bench-doctor"


def load_province(url: str, people: int) -> Store:
    store = open_store(url)
    store.create_schema()
    with progress() as bar, store.bulk_load():
        task = bar.add_task("province → store", total=None)
        to_store(
            store, generate(SynthConfig(people=people, years=1)), lambda n: bar.advance(task, n)
        )
    with unit(store, Actor.job(FACILITY, "bench"), write=True) as repo:
        doctor: dict[str, Any] = {"resourceType": "Practitioner", "id": DOCTOR.split("/")[1],
                                  "name": [{"text": "BS. Nguyễn Văn An"}]}  # fmt: skip
        repo.update("Practitioner", doctor["id"], doctor)
    with store.begin() as conn:
        pki.issue(conn, kind="practitioner", owner=DOCTOR, common_name="BS. Nguyễn Văn An",
                  facility=FACILITY)  # fmt: skip
    return store


def doctor() -> Actor:
    r = role("doctor")
    return replace(Actor("user", "bench", r, FACILITY, r.scopes, account="bench"),
                   practitioner=DOCTOR)  # fmt: skip


def build(store: Store, n: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Visit summaries of the facility's first encounters that have a diagnosis, and those
    encounters."""
    with store.read() as conn:
        q = sa.select(resource.c.id).where(
            resource.c.rtype == "Encounter", resource.c.facility == FACILITY
        )
        encounters = list(conn.execute(q.limit(n * 3)).scalars())
    out: list[dict[str, Any]] = []
    used: list[str] = []
    with unit(store, doctor(), write=False) as repo:
        for eid in encounters:
            if len(out) == n:
                break
            try:
                out.append(documents.build_document(repo, "visit-summary", encounter=eid,
                                                    author=DOCTOR))  # fmt: skip
            except documents.DocumentError:
                continue  # a cancelled visit has no summary
            used.append(eid)
    if len(out) < n:
        raise SystemExit(f"only {len(out)} documents could be built: raise --people")
    return used, out


def per_document(store: Store, items: list[Any], work: Callable[..., Any]) -> float:
    """Documents per second, each item (a document, or an encounter) in a transaction of its
    own."""
    started = time.perf_counter()
    for item in items:
        with unit(store, doctor(), write=True) as repo:
            work(repo, item)
    return len(items) / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--documents", type=int, default=300)
    ap.add_argument("--people", type=int, default=4000)
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    args = ap.parse_args()
    tune_gc()
    tmp = Path(tempfile.mkdtemp(prefix="benhan-bench-signing-"))
    names = [f"benhan_bench_signing_{i}" for i in range(3)]
    try:
        if args.backend == "sqlite":
            urls = [f"sqlite:///{tmp / f'{i}.sqlite3'}" for i in range(3)]
        else:
            for name in names:
                pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            pg_admin(f'CREATE DATABASE "{names[0]}"')
            urls = [pg_url(name) for name in names]
        plain = load_province(urls[0], args.people)
        encounters, docs = build(plain, args.documents)
        plain.dispose()
        for i in (1, 2):
            if args.backend == "sqlite":
                shutil.copyfile(tmp / "0.sqlite3", tmp / f"{i}.sqlite3")
            else:
                pg_admin(f'CREATE DATABASE "{names[i]}" TEMPLATE "{names[0]}"')
        plain, signed_store, clicked = (open_store(u) for u in urls)
        with signed_store.read() as conn:
            signer = pki.signer_for(conn, DOCTOR)
            anchors, crls = pki.trust_anchors(conn), pki.crls(conn)
        ref_rate = per_document(plain, docs, documents.store_document)
        signed: list[dict[str, Any]] = []

        def sign_and_store(repo: Any, doc: dict[str, Any]) -> None:
            out = jws.sign_document(doc, signer, who=DOCTOR, when=now())
            documents.store_document(repo, out)
            signed.append(out)

        sign_rate = per_document(signed_store, docs, sign_and_store)
        click_rate = per_document(clicked, encounters, sign_as_the_doctor)
        texts = [orjson.dumps(d) for d in signed]
        started = time.perf_counter()
        parsed = [orjson.loads(t) for t in texts]
        parse_rate = len(texts) / (time.perf_counter() - started)
        started = time.perf_counter()
        results = [verify(d, anchors=anchors, crls=crls) for d in parsed]
        verify_rate = len(parsed) / (time.perf_counter() - started)
        if not all(r.ok for r in results):
            raise SystemExit("a signed document did not verify")
        sizes = [len(jws.canonical(d)) for d in docs]
        rates = (ref_rate, sign_rate, click_rate, parse_rate, verify_rate)
        report(args, rates, sizes, len(docs[0]["entry"]))
        for s in (plain, signed_store, clicked):
            s.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if args.backend == "postgres":
            for name in names:
                pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sign_as_the_doctor(repo: Any, encounter: str) -> None:
    """What the doctor's "sign" does (service.sign): load the signer, build the document from
    the stored visit, sign it, store it with its signed Provenance."""
    service.sign(repo, "visit-summary", encounter=encounter)


def report(args: Any, rates: tuple[float, ...], sizes: list[int], entries: int) -> None:
    ref, sign, click, parse, ver = rates
    t = Table(title=f"Signed visit summaries ({args.documents} documents, {args.backend}; "
              f"canonical size median {statistics.median(sizes):,.0f} B; {load()})")  # fmt: skip
    for h in ("measure", "per second", "reference", "ratio", "target", "result"):
        t.add_column(h, justify="left" if h == "measure" else "right")
    t.add_row("store the unsigned document", f"{ref:,.0f}", "", "", "", verdict(None))
    t.add_row("sign + store", f"{sign:,.0f}", f"{ref:,.0f}", f"{sign / ref:.2f}",
              f"≥ {TARGET_SIGN:,.0f}", verdict(sign >= TARGET_SIGN))  # fmt: skip
    t.add_row("build + sign + store (service.sign)", f"{click:,.0f}", f"{ref:,.0f}",
              f"{click / ref:.2f}", "", verdict(None))  # fmt: skip
    t.add_row("parse the document (JSON)", f"{parse:,.0f}", "", "", "", verdict(None))
    t.add_row("verify", f"{ver:,.0f}", f"{parse:,.0f}", f"{ver / parse:.3f}",
              f"≥ {TARGET_VERIFY:,.0f}", verdict(ver >= TARGET_VERIFY))  # fmt: skip
    console.print(t)
    console.print(f"first document: {entries} entries")


if __name__ == "__main__":
    main()
