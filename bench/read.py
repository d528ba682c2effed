"""Read latency at scale: read by id, identifier search and $everything over HTTP, and RSS."""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa
from common import (
    FACILITY,
    VAR,
    console,
    load,
    percentiles,
    pg_admin,
    pg_exists,
    pg_url,
    progress,
    rss_mb,
    server,
    verdict,
)
from rich.table import Table
from sqlalchemy.schema import CreateTable

from benhan.access import Actor
from benhan.store.database import Store, open_store
from benhan.store.repository import Repo
from benhan.store.schema import metadata

CCCD = "https://benhan.vn/sid/cccd"
CSKCB = "https://benhan.vn/sid/ma-cskcb"
SPECIAL = "00000000-0000-4000-8000-000000000300"  # the patient with 300 resources
CHUNK = 1000
ORGS = 50
Resource = dict[str, Any]

FAMILY = [
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
]
MIDDLE = {"male": ["Văn", "Hữu", "Đức", "Minh", "Quang"], "female": ["Thị", "Ngọc", "Thu", "Mai"]}
GIVEN = {
    "male": ["An", "Bình", "Cường", "Dũng", "Hải", "Hùng", "Long", "Nam", "Sơn", "Tuấn"],
    "female": ["Anh", "Hà", "Hoa", "Hương", "Lan", "Linh", "Ngân", "Trang", "Vy", "Yến"],
}
VITALS = [
    ("8867-4", "Nhịp tim / Heart rate", "/min", 55, 110),
    ("8310-5", "Nhiệt độ / Body temperature", "Cel", 36, 39),
    ("29463-7", "Cân nặng / Body weight", "kg", 40, 90),
    ("8480-6", "Huyết áp tâm thu / Systolic blood pressure", "mm[Hg]", 95, 170),
    ("2339-0", "Glucose máu / Glucose", "mmol/L", 4, 12),
]
ICD10 = [
    ("I10", "Tăng huyết áp vô căn"),
    ("E11", "Đái tháo đường type 2"),
    ("J06", "Nhiễm trùng hô hấp trên cấp"),
    ("K29", "Viêm dạ dày và tá tràng"),
    ("M54", "Đau lưng"),
    ("J45", "Hen"),
]
FLOOR, READ, SEARCH = "HTTP floor: GET Patient/<missing> → 404", "read by id", "identifier search"
EVERYTHING = "Patient/$everything?_count=300"
TARGETS_MS = {READ: 5.0, SEARCH: 20.0, EVERYTHING: 100.0}
RSS_TARGET_MB = 300.0


# ---- resources --------------------------------------------------------------------------------


class Gen:
    """Deterministic, simple but realistic resources: patients with their visits."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.patients = 0
        self.orgs = [self.uid() for _ in range(ORGS)]

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def organizations(self) -> list[Resource]:
        return [
            {
                "resourceType": "Organization",
                "id": oid,
                "active": True,
                "identifier": [{"system": CSKCB, "value": f"27{i:03d}"}],
                "name": f"Cơ sở khám chữa bệnh {i:03d}, Bắc Ninh",
            }
            for i, oid in enumerate(self.orgs, 1)
        ]

    def patient(self, pid: str) -> Resource:
        self.patients += 1
        gender = self.rng.choice(("male", "female"))
        year = self.rng.randint(1935, 2023)
        family, middle = self.rng.choice(FAMILY), self.rng.choice(MIDDLE[gender])
        given = self.rng.choice(GIVEN[gender])
        century = (0 if year < 2000 else 2) + (gender == "female")
        cccd = f"027{century}{year % 100:02d}{self.patients % 1_000_000:06d}"
        return {
            "resourceType": "Patient",
            "id": pid,
            "active": True,
            "identifier": [{"use": "official", "system": CCCD, "value": cccd}],
            "name": [
                {
                    "use": "official",
                    "text": f"{family} {middle} {given}",
                    "family": family,
                    "given": [middle, given],
                }
            ],
            "gender": gender,
            "birthDate": f"{year}-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}",
            "address": [{"use": "home", "city": "Bắc Ninh", "country": "VN"}],
        }

    def encounter(self, pid: str, day: str, org: str) -> Resource:
        return {
            "resourceType": "Encounter",
            "id": self.uid(),
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
                "display": "ambulatory",
            },
            "subject": {"reference": f"Patient/{pid}"},
            "period": {"start": f"{day}T08:00:00+07:00", "end": f"{day}T09:30:00+07:00"},
            "serviceProvider": {"reference": f"Organization/{org}"},
        }

    def observation(self, pid: str, eid: str, day: str) -> Resource:
        code, display, unit, lo, hi = self.rng.choice(VITALS)
        return {
            "resourceType": "Observation",
            "id": self.uid(),
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"},
            "effectiveDateTime": f"{day}T08:15:00+07:00",
            "valueQuantity": {
                "value": round(self.rng.uniform(lo, hi), 1),
                "unit": unit,
                "system": "http://unitsofmeasure.org",
                "code": unit,
            },
        }

    def condition(self, pid: str, eid: str, day: str) -> Resource:
        code, display = self.rng.choice(ICD10)
        return {
            "resourceType": "Condition",
            "id": self.uid(),
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "code": "confirmed",
                    }
                ]
            },
            "code": {
                "coding": [
                    {"system": "http://hl7.org/fhir/sid/icd-10", "code": code, "display": display}
                ]
            },
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"},
            "recordedDate": day,
        }

    def day(self) -> str:
        return (
            f"{self.rng.randint(2019, 2025)}-{self.rng.randint(1, 12):02d}-"
            f"{self.rng.randint(1, 28):02d}"
        )

    def visit(self, pid: str, org: str, observations: int, condition: bool) -> list[Resource]:
        day = self.day()
        enc = self.encounter(pid, day, org)
        out = [enc] + [self.observation(pid, enc["id"], day) for _ in range(observations)]
        return out + ([self.condition(pid, enc["id"], day)] if condition else [])

    def special(self) -> list[Resource]:
        """Patient + 299 in the compartment (50 visits: 200 Observations, 49 Conditions)."""
        out = [self.patient(SPECIAL)]
        for i in range(50):
            out += self.visit(SPECIAL, self.orgs[0], 4, i < 49)
        return out

    def ordinary(self) -> list[Resource]:
        """About ten resources: the Patient and one to three visits."""
        pid, org = self.uid(), self.rng.choice(self.orgs)  # their usual facility
        out = [self.patient(pid)]
        for _ in range(self.rng.randint(1, 3)):
            out += self.visit(pid, org, self.rng.randint(2, 4), self.rng.random() < 0.5)
        return out


def schema_tag() -> str:
    """A cached store is reused only while the schema it was built with is the current one."""
    ddl = "".join(str(CreateTable(t)) for t in metadata.sorted_tables)
    return hashlib.sha256(ddl.encode()).hexdigest()[:8]


def resources(n: int, seed: int = 27) -> Iterator[Resource]:
    """Exactly n resources: the facilities, the special patient, then ordinary patients."""
    gen = Gen(seed)
    made = 0
    for group in _groups(gen):
        for res in group:
            if made >= n:
                return
            made += 1
            yield res


def _groups(gen: Gen) -> Iterator[list[Resource]]:
    yield gen.organizations()
    yield gen.special()
    while True:
        yield gen.ordinary()


def chunks(items: Iterator[Resource], size: int) -> Iterator[list[Resource]]:
    chunk: list[Resource] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ---- building the store (cached) --------------------------------------------------------------


@dataclass
class Built:
    url: str
    resources: int
    seconds: float
    size_mb: float

    @property
    def rate(self) -> float:
        return self.resources / self.seconds


def load_store(store: Store, n: int) -> float:
    """The repository's batched write path: prepare (validate + index) and flush, 1000 a time."""
    start = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("building", total=n)
        for chunk in chunks(resources(n), CHUNK):
            with store.begin() as conn:
                repo = Repo(conn, Actor.job(FACILITY, "bench"))
                repo.flush([repo.prepare(r, "POST", known=set()) for r in chunk])
            bar.advance(task, len(chunk))
    return time.perf_counter() - start


def build_sqlite(n: int, rebuild: bool) -> Built:
    path = VAR / f"read-{n}-{schema_tag()}.sqlite3"
    meta = path.with_suffix(".json")
    if rebuild:
        _remove_sqlite(path)
    if path.exists() and meta.exists():
        return Built(**json.loads(meta.read_text()))
    partial = path.with_name(f"{path.stem}.partial.sqlite3")
    _remove_sqlite(partial)
    store = open_store(f"sqlite:///{partial}")
    store.create_schema()
    seconds = load_store(store, n)
    with console.status("ANALYZE and checkpoint"), store.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    with store.read() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.dispose()
    partial.rename(path)
    built = Built(f"sqlite:///{path}", n, seconds, path.stat().st_size / 2**20)
    meta.write_text(json.dumps(built.__dict__))
    return built


def _remove_sqlite(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), path.with_suffix(".json")):
        p.unlink(missing_ok=True)


def build_postgres(n: int, rebuild: bool) -> Built:
    name = f"benhan_bench_read_{n}_{schema_tag()}"
    if rebuild:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if pg_exists(name):
        return _pg_built(name)
    partial = f"{name}_partial"
    pg_admin(f'DROP DATABASE IF EXISTS "{partial}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{partial}"')
    store = open_store(pg_url(partial))
    store.create_schema()
    seconds = load_store(store, n)
    store.dispose()
    with (
        console.status("VACUUM ANALYZE"),
        psycopg.connect(pg_url(partial), autocommit=True) as conn,
    ):
        conn.execute("VACUUM ANALYZE")
        conn.execute("CREATE TABLE bench_built (resources bigint, seconds float8)")
        conn.execute("INSERT INTO bench_built VALUES (%s, %s)", (n, seconds))
    pg_admin(f'ALTER DATABASE "{partial}" RENAME TO "{name}"')
    return _pg_built(name)


def _pg_built(name: str) -> Built:
    with psycopg.connect(pg_url(name)) as conn:
        row = conn.execute(
            "SELECT resources, seconds, pg_database_size(current_database()) FROM bench_built"
        ).fetchone()
    assert row is not None
    return Built(pg_url(name), int(row[0]), float(row[1]), row[2] / 2**20)


# ---- measuring --------------------------------------------------------------------------------


@dataclass
class Sample:
    metric: str
    ms: list[float]
    target: float | None = None
    floor: Sample | None = None  # the HTTP floor, for the ratio
    raw: Sample | None = None  # raw SQL for the same lookups

    @property
    def p95(self) -> float:
        return percentiles(self.ms)[1]


@dataclass
class Workload:
    reads: list[str]  # "Type/id"
    identifiers: list[tuple[str, str]]  # (system, value)


def workload(url: str, reads: int, searches: int) -> Workload:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        ids = conn.execute(
            sa.text("SELECT rtype, id FROM resource ORDER BY random() LIMIT :k"), {"k": reads}
        ).all()
        idents = conn.execute(
            sa.text(
                "SELECT system, code FROM ix_token WHERE rtype = 'Patient' "
                "AND param = 'identifier' ORDER BY random() LIMIT :k"
            ),
            {"k": searches},
        ).all()
    engine.dispose()
    return Workload([f"{t}/{i}" for t, i in ids], [(s, c) for s, c in idents])


@dataclass
class Probe:
    metric: str
    url: str
    status: int


def schedule(base: str, work: Workload, everything: int) -> list[Probe]:
    """Every request of every metric, shuffled together: load from elsewhere on the box then
    falls on all metrics alike, and the ratios stay meaningful."""
    probes = [
        Probe(FLOOR, f"{base}/Patient/does-not-exist-{i}", 404) for i in range(len(work.reads))
    ]
    probes += [Probe(READ, f"{base}/{r}", 200) for r in work.reads]
    probes += [
        Probe(SEARCH, f"{base}/Patient?identifier={s}|{v}", 200) for s, v in work.identifiers
    ]
    probes += [
        Probe(EVERYTHING, f"{base}/Patient/{SPECIAL}/$everything?_count=300", 200)
        for _ in range(everything)
    ]
    random.Random(7).shuffle(probes)
    return probes


def timed_gets(client: httpx.Client, probes: list[Probe]) -> dict[str, list[float]]:
    """Milliseconds per GET (the body fully read), one after another on a keep-alive client."""
    ms: dict[str, list[float]] = {}
    with progress() as bar:
        task = bar.add_task("HTTP requests", total=len(probes))
        for p in probes:
            start = time.perf_counter()
            r = client.get(p.url)
            ms.setdefault(p.metric, []).append((time.perf_counter() - start) * 1000)
            _check(p, r)
            bar.advance(task)
    return ms


def _check(p: Probe, r: httpx.Response) -> None:
    if r.status_code != p.status:
        raise RuntimeError(f"GET {p.url} → {r.status_code}, expected {p.status}: {r.text[:300]}")
    if p.metric == SEARCH and len(r.json().get("entry", [])) != 1:
        raise RuntimeError(f"GET {p.url} did not find exactly one Patient")


def timed_sql(label: str, url: str, sql: str, params: Sequence[tuple[str, ...]]) -> list[float]:
    """Milliseconds per query (all rows fetched) straight through the DB-API driver."""
    conn = _dbapi(url)
    if url.startswith("postgresql"):
        sql = sql.replace("?", "%s")
    ms = []
    try:
        with progress() as bar:
            task = bar.add_task(label, total=len(params))
            for p in params:
                start = time.perf_counter()
                rows = conn.execute(sql, p).fetchall()
                ms.append((time.perf_counter() - start) * 1000)
                if not rows:
                    raise RuntimeError(f"raw SQL found nothing for {p}")
                bar.advance(task)
    finally:
        conn.close()
    return ms


def _dbapi(url: str) -> Any:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    return psycopg.connect(url, autocommit=True)


RAW_READ = (
    "SELECT version_id, last_updated, deleted, CAST(content AS text) FROM resource "
    "WHERE rtype = ? AND id = ?"
)
RAW_SEARCH = (
    "SELECT r.rtype, r.id, CAST(r.content AS text) FROM ix_token t JOIN resource r "
    "ON r.rtype = t.rtype AND r.id = t.id WHERE t.rtype = 'Patient' AND t.param = 'identifier' "
    "AND t.system = ? AND t.code = ? AND NOT r.deleted"
)
RAW_EVERYTHING = (
    "SELECT rtype, id, CAST(content AS text) FROM resource WHERE patient_key = ? AND NOT deleted "
    "UNION ALL SELECT r.rtype, r.id, CAST(r.content AS text) FROM resource r JOIN "
    "(SELECT DISTINCT target_type, target_id FROM ix_reference WHERE patient_key = ? "
    "AND target_type <> 'Patient' AND target_id IS NOT NULL) t "
    "ON r.rtype = t.target_type AND r.id = t.target_id "
    "WHERE (r.patient_key IS NULL OR r.patient_key <> ?) AND NOT r.deleted"
)


@dataclass
class Outcome:
    samples: list[Sample]
    rss: tuple[float, float]
    everything_total: int
    everything_entries: int


def measure(built: Built, work: Workload, everything: int, log: Path) -> Outcome:
    with server(built.url, log) as srv, httpx.Client(timeout=60, headers=srv.headers) as client:
        probes = schedule(srv.url, work, everything)
        _warm_up(client, probes)
        ms = timed_gets(client, probes)
        rss = rss_mb(srv.pid)
        first = client.get(probes[[p.metric for p in probes].index(EVERYTHING)].url).json()
    raw = _raw_samples(built.url, work, everything)
    floor = Sample(FLOOR, ms[FLOOR])
    samples = [floor, *raw.values()]
    for metric, key in ((READ, "read"), (SEARCH, "search"), (EVERYTHING, "everything")):
        samples.append(Sample(metric, ms[metric], TARGETS_MS[metric], floor, raw[key]))
    return Outcome(samples, rss, int(first.get("total", -1)), len(first.get("entry", [])))


def _warm_up(client: httpx.Client, probes: list[Probe]) -> None:
    """A few of each request first: imports, SQLAlchemy's statement cache, the page cache."""
    seen: dict[str, int] = {}
    for p in probes:
        if seen.setdefault(p.metric, 0) < 50:
            seen[p.metric] += 1
            client.get(p.url)


def _raw_samples(url: str, work: Workload, everything: int) -> dict[str, Sample]:
    reads = [tuple(r.split("/", 1)) for r in work.reads]
    return {
        "read": Sample(
            "raw SQL: read by primary key", timed_sql("raw SQL read", url, RAW_READ, reads)
        ),
        "search": Sample(
            "raw SQL: identifier via ix_token",
            timed_sql("raw SQL search", url, RAW_SEARCH, work.identifiers),
        ),
        "everything": Sample(
            "raw SQL: $everything union",
            timed_sql(
                "raw SQL $everything",
                url,
                RAW_EVERYTHING,
                [(SPECIAL, SPECIAL, SPECIAL)] * everything,
            ),
        ),
    }


# ---- report -----------------------------------------------------------------------------------


def report(backend: str, built: Built, out: Outcome) -> Table:
    table = Table(
        title=f"Read latency, {backend}, {built.resources:,} resources ({built.size_mb:,.0f} MiB)"
    )
    for col in (
        "metric",
        "n",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "target",
        "p95/target",
        "× HTTP floor",
        "× raw SQL",
        "result",
    ):
        table.add_column(col, justify="left" if col in ("metric", "result") else "right")
    for s in out.samples:
        table.add_row(*_row(s))
    rss, peak = out.rss
    table.add_row(
        f"server RSS after the run (peak {peak:,.0f} MiB)",
        "",
        "",
        f"{rss:,.0f} MiB",
        "",
        f"≤ {RSS_TARGET_MB:.0f} MiB",
        f"{rss / RSS_TARGET_MB:.2f}",
        "",
        "",
        verdict(rss <= RSS_TARGET_MB),
    )
    return table


def _row(s: Sample) -> list[str]:
    p50, p95, p99 = percentiles(s.ms)

    def ratio(ref: Sample | None) -> str:
        return f"{p95 / ref.p95:.1f}" if ref else ""

    target = f"≤ {s.target:g}" if s.target else ""
    share = f"{p95 / s.target:.2f}" if s.target else ""
    ok = p95 <= s.target if s.target else None
    return [
        s.metric,
        f"{len(s.ms):,}",
        f"{p50:.2f}",
        f"{p95:.2f}",
        f"{p99:.2f}",
        target,
        share,
        ratio(s.floor),
        ratio(s.raw),
        verdict(ok),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--resources", type=int, default=1_000_000)
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--rebuild", action="store_true", help="build the store even if cached")
    ap.add_argument("--reads", type=int, default=2000)
    ap.add_argument("--searches", type=int, default=1000)
    ap.add_argument("--everything", type=int, default=100)
    args = ap.parse_args()
    build = build_sqlite if args.backend == "sqlite" else build_postgres
    built = build(args.resources, args.rebuild)
    console.print(
        f"store: {built.url} — {built.resources:,} resources built in "
        f"{built.seconds:,.0f} s ({built.rate:,.0f}/s), {built.size_mb:,.0f} MiB"
    )
    work = workload(built.url, args.reads, args.searches)
    out = measure(built, work, args.everything, VAR / f"read-{args.backend}-server.log")
    console.print(report(args.backend, built, out))
    console.print(
        f"$everything?_count=300 for the special patient: total {out.everything_total},"
        f" {out.everything_entries} entries on the page; {load()}"
    )


if __name__ == "__main__":
    main()
