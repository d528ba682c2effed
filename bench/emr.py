"""The facility EMR under a working day's load: 50 people registering and documenting at once.

A synthetic province with 5 years of history (`benhan synth`, cached under var/bench) is served
by `benhan serve` (one worker, as `make demo` runs it). Locust (bench/emr_locustfile.py) drives
50 concurrent signed-in users (half registrars, half doctors) through the pages in a browser's
order: registrars search the desk as they type (a request per pause in typing), register new
people and issue queue numbers; doctors open the worklist, open a visit, record vital signs, a
diagnosis, a lab order and a prescription, and open the chart of the person with the longest
history at the facility. Each person reads and types for 2–6 s between clicks. Everyone signs
in first (50 people over 25 s); the figures are those of the working day after that.

Reference, measured under the same load in the same run: a static stylesheet (the server's own
queueing). Targets: every page p95 ≤ 300 ms; the 5-year chart p95 ≤ 500 ms.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from common import FACILITY, VAR, console, load, server, verdict
from rich.markup import escape
from rich.table import Table

from benhan.access import Actor
from benhan.auth.demo_accounts import ensure_demo_accounts
from benhan.emr.clinics import Clinic
from benhan.emr.model import facility_refs, local_now, search_all
from benhan.emr.queue import day_visits
from benhan.emr.registration import register_visit
from benhan.emr.setup import prepare_facility
from benhan.store.database import Store, open_store
from benhan.store.schema import resource
from benhan.store.unit import unit

HERE = Path(__file__).resolve().parent
PAGE_TARGET_MS = 300.0
CHART_TARGET_MS = 500.0
REFERENCE = "GET /static/forms.css"
SIGN_IN = "POST /login"
MORNING = 60  # visits registered before the run


def build(people: int, years: int, rebuild: bool) -> str:
    """A synthetic province in SQLite (cached), with the facility's clinics and demo accounts."""
    path = VAR / f"emr-{people}-{years}y.sqlite3"
    url = f"sqlite:///{path}"
    if rebuild:
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
    if not path.exists():
        VAR.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "BENHAN_DATABASE_URL": url, "BENHAN_FACILITY": FACILITY}
        benhan = str(Path(sys.executable).parent / "benhan")
        cmd = [benhan, "synth", "--people", str(people), "--years", str(years), "--replace"]
        subprocess.run(cmd, env=env, check=True)
    store = open_store(url)
    store.create_schema()
    ensure_demo_accounts(store, FACILITY, None)
    morning_queue(store, prepare_facility(store, FACILITY))
    store.dispose()
    return url


def morning_queue(store: Store, rooms: list[Clinic], size: int = MORNING) -> None:
    """Today's first visits (people of the facility, registered as the desk would), so that the
    doctors have a worklist from the first second; skipped when today's queue already exists."""
    job = Actor.job(FACILITY, "bench")
    with unit(store, job, write=True) as repo:
        refs = facility_refs(repo)
        assert refs is not None and rooms, "the synthetic province lacks the bench facility"
        if day_visits(repo, local_now().date(), [("service-provider", refs.organization)]):
            return
        people = search_all(
            repo, "Patient", [("organization", refs.organization), ("_count", str(size))]
        )
        for i, person in enumerate(people):
            register_visit(repo, refs, person["id"], rooms[i % len(rooms)])


def long_history_patient(url: str) -> str:
    """The person with the most encounters at the facility: the chart the target is about."""
    store = open_store(url)
    with store.read() as conn:
        key = conn.scalar(
            sa.select(resource.c.patient_key)
            .where(resource.c.rtype == "Encounter", resource.c.facility == FACILITY)
            .group_by(resource.c.patient_key)
            .order_by(sa.func.count().desc())
            .limit(1)
        )
        first = conn.scalar(
            sa.select(sa.func.min(resource.c.last_updated)).where(resource.c.patient_key == key)
        )
    store.dispose()
    assert key is not None, "the synthetic province has no encounter at the facility"
    console.print(f"chart patient: {key} (data since {first})")
    return str(key)


def run_locust(origin: str, users: int, seconds: int, chart_patient: str, out: Path) -> Path:
    prefix = out / "locust"
    env = {**os.environ, "BENCH_CHART_PATIENT": chart_patient}
    cmd = [
        str(Path(sys.executable).parent / "locust"),
        "-f",
        str(HERE / "emr_locustfile.py"),
        "--headless",
        "--host",
        origin,
        "--users",
        str(users),
        "--spawn-rate",
        "2",  # people arrive over 25 s; each sign-in is a deliberate ~0.3 s of Argon2id
        "--reset-stats",  # measure the working day once everyone is in
        "--run-time",
        f"{seconds}s",
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    subprocess.run(cmd, env=env, check=False)
    return Path(f"{prefix}_stats.csv")


def report(stats: Path) -> None:
    rows = [r for r in csv.DictReader(stats.open()) if r["Name"] != "Aggregated"]
    by_name = {r["Name"]: r for r in rows}  # names carry the method
    ref = by_name.get(REFERENCE)
    ref_p95 = float(ref["95%"]) if ref else None
    table = Table(title=f"EMR pages under load ({load()})")
    for col in ("page", "requests", "failures", "p50 ms", "p95 ms", "× ref p95", "target", ""):
        table.add_column(col, justify="left" if col == "page" else "right")
    worst = True
    for name, r in sorted(by_name.items()):
        p95 = float(r["95%"])
        target = CHART_TARGET_MS if "chart" in name else PAGE_TARGET_MS
        # Sign-in is Argon2id at RFC 9106's cost on purpose (once a day per person): shown, not
        # held to a page target.
        exempt = name in (REFERENCE, SIGN_IN)
        ok = None if exempt else p95 <= target and r["Failure Count"] == "0"
        worst = worst and (ok is not False)
        ratio = f"{p95 / ref_p95:.1f}" if ref_p95 else "–"
        table.add_row(
            escape(name),
            r["Request Count"],
            r["Failure Count"],
            r["50%"],
            r["95%"],
            ratio,
            "" if exempt else f"≤ {target:.0f}",
            verdict(ok) if name != SIGN_IN else "[dim]Argon2id[/dim]",
        )
    console.print(table)
    console.print("all targets met" if worst else "[red]some targets not met[/red]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=90)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    url = build(args.people, args.years, args.rebuild)
    patient = long_history_patient(url)
    out = VAR / "emr-run"
    out.mkdir(parents=True, exist_ok=True)
    with server(url, out / "server.log") as srv:
        origin = srv.url.removesuffix("/fhir")
        stats = run_locust(origin, args.users, args.seconds, patient, out)
    report(stats)
    (out / "args.json").write_text(json.dumps(vars(args)))


if __name__ == "__main__":
    main()
