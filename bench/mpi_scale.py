"""The master patient index at a million patient records: batch relink, $match, match on ingest.

    .venv/bin/python bench/mpi_scale.py                         # 1,000,000 records, SQLite
    .venv/bin/python bench/mpi_scale.py --records 20000         # a small run, for trying
    .venv/bin/python bench/mpi_scale.py --backend postgres --records 100000
    .venv/bin/python bench/mpi_scale.py --records 100000 --profile var/bench/relink.prof

Data (cached; `--rebuild`): N Patient records of the synthetic province with its registration
mess, written with the fast path (benhan.synth.output.to_store) after the facilities' own
resources. Generating the province's care for the ~700,000 people behind a million records
would take most of an hour, so only Patients are made here, by synth's own functions: people
from PeopleGenerator (households, names, identifiers); at which levels of their route (commune
station, medical centre, provincial hospital) each registers, drawn per age band from what
CareGenerator does for a sample of 3,000 people in one year; each registration typed with
synth.mess.register at that facility. SQLite: var/bench/mpi-scale-<N>.sqlite3; PostgreSQL:
database benhan_bench_mpi_scale_<N> (kept; DROP it to reclaim the space). Every measurement runs
on a throw-away copy (a file copy, or CREATE DATABASE … TEMPLATE), so the cached store never
changes. Beside it, a pickle holds people not in the store, for new arrivals.

Measured, with targets from the issue:
* relink: `identity.persons.relink` on the whole copy in a fresh process, wall and CPU time with
  a per-step breakdown (functions relink calls, timed in place) and that process's peak RSS.
  Target: ≤ 600 s (10 minutes) on a 2-core machine.
* $match: 1,000 queries (`--queries`): stored records retyped as a desk would (identifiers
  other than the facility's dropped half the time, accents dropped half the time, a typo in
  the given name three times in ten) and brand-new people (one in five), timed around
  `identity.online.match(conn, patient)`. Then a few hundred (`--http-requests`) over HTTP
  (`benhan serve` on 127.0.0.1, a system-integrator token of the facility with most records),
  shuffled with the reference: `GET /fhir/Patient/{id}` of that facility's records. Target:
  the operation's p95 ≤ 50 ms.
* match on ingest: a batch of `--ingest` new Patients (half new records of people already in the
  store, half new people), generated with their year of care by synth's CareGenerator. Each
  variant runs twice on fresh copies: A = to_store alone (the hub's bulk path, one validating
  worker), B = to_store and then `online.drain` until the inbox is empty; overhead = (B − A) / A.
  Variants: the Patients alone, and the Patients with their care (a facility's data, where
  Patients are ~5 % of resources). Target: ≤ 20 %, for the realistic variant (ingest time at a
  hub is the time to take in a facility's data, not its Patients alone).

Figures go to var/bench/mpi-scale-<backend>-<N>.json. Batch time per million records against
Splink is bench/mpi.py's.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing
import pickle
import pstats
import random
import resource
import secrets
import shutil
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import common
import httpx
import orjson
import sqlalchemy as sa
from common import VAR, console, load, percentiles, pg_admin, pg_exists, pg_url, progress
from common import verdict as verdict_of
from rich.table import Table

from benhan.config import tune_gc
from benhan.identity import dedupe, index, online, persons
from benhan.store.database import Store, open_store
from benhan.store.schema import mpi_inbox
from benhan.store.schema import resource as resource_table
from benhan.synth.care import CareGenerator
from benhan.synth.care_fhir import new_id
from benhan.synth.care_tables import band
from benhan.synth.facilities import Facility, build_facilities, referral_targets, station_for
from benhan.synth.facilities import to_fhir as facility_fhir
from benhan.synth.mess import ascii_fold, register
from benhan.synth.people import PeopleGenerator, Person, to_fhir_patient
from benhan.synth.places import Commune, communes
from benhan.synth.province import SynthConfig

HUB = "27001"  # the facility code the hub's own jobs (relink, drain) act as
TARGET_RELINK_S = 600.0
TARGET_MATCH_P95_MS = 50.0
TARGET_OVERHEAD = 0.20
LEVELS = ("station", "centre", "hospital")
SAMPLE_PEOPLE = 3_000  # run through CareGenerator to learn where people register
SPARE_PEOPLE = 40_000  # people kept aside at build time for arrivals (queries and ingest)
QUERY_PEOPLE = 1_000  # the first of the new people are kept for $match, the rest may arrive
Resource = dict[str, Any]
Pattern = tuple[int, ...]  # the levels a person registers at, in order (indices into LEVELS)


# ---- the synthetic province's Patients, and nothing else ---------------------------------------


@dataclass
class Province:
    """Places, facilities and each commune's route (station, centre, hospital)."""

    config: SynthConfig
    places: list[Commune]
    facilities: list[Facility]
    routes: dict[str, tuple[Facility, Facility, Facility]] = field(default_factory=dict)

    @classmethod
    def make(cls, config: SynthConfig) -> Province:
        places = communes()
        facilities = build_facilities(config.seed, places, config.private_clinics)
        routes = {
            c.code: (station_for(facilities, c.code), *referral_targets(facilities, c))
            for c in places
        }
        return cls(config, places, facilities, routes)

    def people(self, seed: int) -> PeopleGenerator:
        stations = {code: route[0].code for code, route in self.routes.items()}
        return PeopleGenerator(
            seed, self.places, reference_date=self.config.end, ma_dkbd=lambda c: stations[c.code]
        )

    def care(self) -> CareGenerator:
        c = self.config
        return CareGenerator(c.seed, self.facilities, c.start, c.end, mess_rates=c.mess)


def learn_patterns(province: Province) -> dict[int, list[Pattern]]:
    """Per age band, the levels each of a sample of people registered at in a year of
    CareGenerator's care (people who never came are left out: they make no record)."""
    gen, care = province.people(province.config.seed + 1), province.care()
    out: dict[int, list[Pattern]] = defaultdict(list)
    for person in gen.people(SAMPLE_PEOPLE):
        route = [f.code for f in province.routes[person.commune.code]]
        regs = care.person_care(person, ()).registrations
        levels = tuple(route.index(r.facility_code) for r in regs if r.facility_code in route)
        if levels:
            out[band(person.age(province.config.end))].append(levels)
    return dict(out)


def registrations(
    province: Province, patterns: dict[int, list[Pattern]], person: Person
) -> list[tuple[str, Resource]]:
    """The person's Patient at each facility of a drawn pattern, each typed with its own mess."""
    rng = random.Random(f"{province.config.seed}:{person.person_id}:mpi-scale")
    choices = patterns.get(band(person.age(province.config.end))) or [(0,)]
    ordinal = int(person.person_id[1:])
    out = []
    for seq, level in enumerate(rng.choice(choices), start=1):
        fac = province.routes[person.commune.code][level]
        reg = register(person, rng, fac.code, rates=province.config.mess, communes=province.places)
        mrn = f"{(ordinal * 7919 + int(fac.code)) % 10**9:09d}"  # unique per facility
        pid = f"{ordinal:08x}-{seq:04x}{new_id(rng)[13:]}"  # one person's records side by side
        out.append((fac.code, {**to_fhir_patient(reg.record, fac.code, mrn), "id": pid}))
    return out


@dataclass
class Spare:
    """People for arrivals: some already in the store, some never registered anywhere."""

    existing: list[Person]
    new: list[Person]
    patterns: dict[int, list[Pattern]]


def province_stream(
    province: Province, records: int, spare: Spare
) -> Iterator[tuple[str, Resource]]:
    """The facilities' resources, then Patients until `records` of them; fills `spare`."""
    for f in province.facilities:
        for res in facility_fhir(f):
            yield f.code, res
    gen, made, kept = province.people(province.config.seed), 0, 0
    stride = max(1, int(records / 1.5 / SPARE_PEOPLE))  # people average ~1.4 records each
    while made < records:
        person = gen.person()
        for code, patient in registrations(province, spare.patterns, person)[: records - made]:
            made += 1
            yield code, patient
        kept += 1
        if kept % stride == 0 and len(spare.existing) < SPARE_PEOPLE:
            spare.existing.append(person)
    spare.new = [gen.person() for _ in range(SPARE_PEOPLE)]  # the stream's next people


# ---- the cached store and its throw-away copies ---------------------------------------------


@dataclass(frozen=True)
class Base:
    backend: str
    records: int

    @property
    def name(self) -> str:
        return f"mpi-scale-{self.records}"

    @property
    def file(self) -> Path:
        return VAR / f"{self.name}.sqlite3"

    @property
    def dbname(self) -> str:
        return f"benhan_bench_mpi_scale_{self.records}"

    @property
    def spare_file(self) -> Path:
        return VAR / f"{self.name}-{self.backend}.spare.pickle"

    def exists(self) -> bool:
        data = self.file.exists() if self.backend == "sqlite" else pg_exists(self.dbname)
        return data and self.spare_file.exists()


def build(base: Base, rebuild: bool) -> dict[str, float]:
    """Generate and load the store unless a complete one is cached; its build figures."""
    figures = VAR / f"{base.name}-{base.backend}.build.json"
    if base.exists() and not rebuild:
        return dict(json.loads(figures.read_text())) if figures.exists() else {}
    province = Province.make(SynthConfig(people=0, years=1))
    started = time.perf_counter()
    spare = Spare([], [], learn_patterns(province))
    url = _partial_url(base)
    store = open_store(url)
    store.create_schema()
    tune_gc()
    with progress() as bar, store.bulk_load():
        task = bar.add_task("Patients → store", total=base.records + 2 * len(province.facilities))
        stream = province_stream(province, base.records, spare)
        total = common_to_store(store, stream, lambda n: bar.advance(task, n))
    store.dispose()
    _finish(base)
    base.spare_file.write_bytes(pickle.dumps(vars(spare)))  # plain fields: loadable anywhere
    out = {"resources": total, "seconds": time.perf_counter() - started}
    figures.write_text(json.dumps(out))
    console.print(
        f"built {base.records:,} Patient records ({total:,} resources) in {out['seconds']:,.0f} s"
    )
    return out


def common_to_store(store: Store, stream: Any, advance: Callable[[int], None]) -> int:
    from benhan.synth.output import to_store

    return to_store(store, stream, advance, workers=1)  # as `benhan synth` on two cores


def _partial_url(base: Base) -> str:
    if base.backend == "sqlite":
        partial = base.file.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        return f"sqlite:///{partial}"
    pg_admin(f'DROP DATABASE IF EXISTS "{base.dbname}_partial" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{base.dbname}_partial"')
    return pg_url(f"{base.dbname}_partial")


def _finish(base: Base) -> None:
    """Only a complete build takes the cached name."""
    if base.backend == "sqlite":
        base.file.with_suffix(".partial").rename(base.file)
        return
    pg_admin(f'DROP DATABASE IF EXISTS "{base.dbname}" WITH (FORCE)')
    pg_admin(f'ALTER DATABASE "{base.dbname}_partial" RENAME TO "{base.dbname}"')


@contextmanager
def copy_of(source: Base | str, label: str) -> Iterator[str]:
    """A throw-away copy of the cached store (a Base) or of a copy (its URL); removed after."""
    if isinstance(source, Base):
        source = f"sqlite:///{source.file}" if source.backend == "sqlite" else pg_url(source.dbname)
    if source.startswith("sqlite:///"):
        src = Path(source.removeprefix("sqlite:///"))
        with closing(sqlite3.connect(src)) as db:  # what a server left in its log goes in
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        dst = VAR / "mpi-scale-work" / f"{label}.sqlite3"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        try:
            yield f"sqlite:///{dst}"
        finally:
            for p in (dst, Path(f"{dst}-wal"), Path(f"{dst}-shm")):
                p.unlink(missing_ok=True)
        return
    name = f"benhan_bench_mpi_scale_{label}_{secrets.token_hex(4)}"
    pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{source.rsplit("/", 1)[1]}"')
    try:
        yield pg_url(name)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- relink, in a process of its own (its peak RSS is the relink's) -------------------------


class StepClock:
    """Seconds spent in the functions relink calls, by wrapping them where relink finds them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.pairs = 0

    def wrap(self, owner: Any, name: str, label: str) -> None:
        fn = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t

        setattr(owner, name, timed)

    def install(self) -> None:
        read, link = persons.patients, dedupe.link

        def patients(store: Store) -> Iterator[Resource]:  # relink lists them at once anyway
            t = time.perf_counter()
            rows = list(read(store))
            self.seconds["read Patients"] += time.perf_counter() - t
            return iter(rows)

        def linked(*args: Any, **kwargs: Any) -> Any:
            out = link(*args, **kwargs)
            self.pairs = len(out.ia)
            for step, s in out.seconds.items():
                self.seconds[f"link: {step}"] += s
            return out

        persons.patients = patients
        persons.link = linked  # type: ignore[attr-defined]  # where relink looks it up
        self.wrap(persons, "person_of", "normalise")
        self.wrap(persons, "clusters", "cluster")
        self.wrap(persons, "_rebuild_index", "index tables")
        self.wrap(index, "set_review", "review queue")
        self.wrap(persons, "write_persons", "Person writes")


def relink_child(url: str, profile: str | None, out: Any) -> None:
    tune_gc()
    clock = StepClock()
    clock.install()
    store = open_store(url)
    cpu = time.process_time()
    t = time.perf_counter()
    profiler = cProfile.Profile()
    if profile:
        profiler.enable()
    done = persons.relink(store, HUB)
    if profile:
        profiler.disable()
        profiler.dump_stats(profile)
    seconds = time.perf_counter() - t
    store.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = {k: v for k, v in asdict(done).items() if k != "clusters"}
    out.send(
        {
            "seconds": seconds,
            "cpu_seconds": time.process_time() - cpu,
            "peak_rss_mb": peak,
            "pairs": clock.pairs,
            "steps": dict(clock.seconds),
            "counts": counts,
        }
    )


def relink(url: str, profile: str | None) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: its own memory high-water
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=relink_child, args=(url, profile, theirs))
    console.print(f"{load()}: relink …")
    child.start()
    theirs.close()  # the child holds it now: if it dies, recv ends instead of waiting forever
    try:
        result: dict[str, Any] = ours.recv()
    except EOFError:
        child.join()
        raise SystemExit(f"the relink process died (exit code {child.exitcode})") from None
    child.join()
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    return result


# ---- $match ---------------------------------------------------------------------------------


@dataclass
class Query:
    kind: str  # "stored, identifier" | "stored, no identifier" | "new person"
    patient: Resource
    original: str | None  # the stored record it was typed from


def sample_queries(store: Store, province: Province, spare: Spare, n: int) -> list[Query]:
    """Four in five retyped stored records, one in five brand-new people; reproducible."""
    rng = random.Random(f"{province.config.seed}:queries")
    stored = n - n // 5
    with store.read() as conn:
        ids = (
            conn.execute(
                sa.select(resource_table.c.id)
                .where(resource_table.c.rtype == "Patient", resource_table.c.deleted.is_(False))
                .order_by(resource_table.c.id)
            )
            .scalars()
            .all()
        )
        picked = rng.sample(list(ids), min(stored, len(ids)))
        q = sa.select(sa.cast(resource_table.c.content, sa.Text)).where(
            resource_table.c.rtype == "Patient", resource_table.c.id.in_(picked)
        )
        records = {r["id"]: r for r in map(orjson.loads, conn.execute(q).scalars())}
    out = [retyped(records[pid], rng) for pid in picked]
    for person in spare.new[: min(n - len(out), QUERY_PEOPLE)]:
        (_, patient), *_ = registrations(province, spare.patterns, person)
        out.append(Query("new person", desk_view(patient), None))
    rng.shuffle(out)
    return out


def desk_view(patient: Resource) -> Resource:
    """What a desk sends: no id, no meta, no other facility's record number."""
    idents = [i for i in patient.get("identifier", []) if not i["system"].startswith(
        "https://benhan.vn/sid/ma-bn")]  # fmt: skip
    res = {k: v for k, v in patient.items() if k not in ("id", "meta", "identifier")}
    return {**res, "identifier": idents} if idents else res


def retyped(patient: Resource, rng: random.Random) -> Query:
    """A stored record as typed again at a desk: accents, a typo, identifiers left out."""
    res = desk_view(patient)
    if rng.random() < 0.5:
        res.pop("identifier", None)
    name = dict(res["name"][0])
    if rng.random() < 0.5:
        name = {**name, "family": ascii_fold(name["family"]),
                "given": [ascii_fold(g) for g in name["given"]]}  # fmt: skip
    if rng.random() < 0.3:
        name["given"] = [*name["given"][:-1], typo(name["given"][-1], rng)]
    name["text"] = " ".join([name["family"], *name["given"]])
    res["name"] = [name]
    kind = "stored, identifier" if res.get("identifier") else "stored, no identifier"
    return Query(kind, res, patient["id"])


def typo(word: str, rng: random.Random) -> str:
    """One letter dropped or doubled (a desk in a hurry); a one-letter word is kept."""
    if len(word) < 2:
        return word
    k = rng.randrange(len(word))
    return word[:k] + word[k + 1 :] if rng.random() < 0.5 else word[:k] + word[k] + word[k:]


@dataclass
class Timings:
    ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    found: Counter[str] = field(default_factory=Counter)  # kind → original among candidates
    certain: Counter[str] = field(default_factory=Counter)  # kind → some candidate certain
    returned: list[int] = field(default_factory=list)  # candidates graded possible or better
    scored: list[int] = field(default_factory=list)  # records sharing a blocking key: all scored


def time_match(url: str, queries: Sequence[Query], profile: str | None) -> Timings:
    """online.match on one connection, as a server worker would hold it; with `profile`, an
    untimed second pass over 200 queries under cProfile."""
    store = open_store(url)
    out = Timings()
    with store.read() as conn:
        for q in queries[:20]:  # untimed: compiled statements, page cache
            online.match(conn, q.patient)
        with progress() as bar:
            task = bar.add_task("$match (direct)", total=len(queries))
            for q in queries:
                t = time.perf_counter()
                found = online.match(conn, q.patient, count=100)
                ms = (time.perf_counter() - t) * 1000
                out.ms[q.kind].append(ms)
                out.ms["all"].append(ms)
                out.returned.append(len(found))
                keys = index.keys_of(persons.person_of(q.patient))
                out.scored.append(len(index.candidates(conn, keys)))
                out.found[q.kind] += any(c.patient_id == q.original for c in found)
                out.certain[q.kind] += any(c.grade == "certain" for c in found)
                bar.advance(task)
        if profile:
            with cProfile.Profile() as profiler:
                for q in queries[:200]:
                    online.match(conn, q.patient, count=100)
            profiler.dump_stats(profile)
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    store.dispose()
    return out


def busiest_facility(store: Store) -> tuple[str, list[str]]:
    """The facility with most Patient records, and their ids (what its integrator may read)."""
    with store.read() as conn:
        rows = conn.execute(
            sa.select(resource_table.c.facility, resource_table.c.id).where(
                resource_table.c.rtype == "Patient", resource_table.c.deleted.is_(False)
            )
        ).all()
    by = defaultdict(list)
    for fac, rid in rows:
        by[fac].append(rid)
    fac = max(by, key=lambda f: (len(by[f]), f))
    return fac, sorted(by[fac])


def time_http(
    url: str, queries: Sequence[Query], requests: int, seed: int
) -> dict[str, list[float]]:
    """$match and the reference read, shuffled together, from one keep-alive client."""
    store = open_store(url)
    fac, readable = busiest_facility(store)
    store.dispose()
    rng = random.Random(f"{seed}:http")
    calls: list[tuple[str, Any]] = [("$match", q.patient) for q in queries[:requests]]
    calls += [("read", rid) for rid in rng.sample(readable, min(requests, len(readable)))]
    rng.shuffle(calls)
    log = VAR / "mpi-scale-server.log"
    out: dict[str, list[float]] = defaultdict(list)
    with (
        common.server(url, log, facility=fac) as srv,
        httpx.Client(timeout=60, headers=srv.headers) as client,
    ):
        for kind, arg in calls[:40]:  # untimed warm-up
            _call(client, srv.url, kind, arg)
        with progress() as bar:
            task = bar.add_task(f"HTTP as {fac}'s integrator", total=len(calls))
            for kind, arg in calls:
                t = time.perf_counter()
                _call(client, srv.url, kind, arg)
                out[kind].append((time.perf_counter() - t) * 1000)
                bar.advance(task)
    return out


def _call(client: httpx.Client, base: str, kind: str, arg: Any) -> None:
    if kind == "read":
        r = client.get(f"{base}/Patient/{arg}")
    else:
        body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": arg}]}
        r = client.post(f"{base}/Patient/$match", content=orjson.dumps(body),
                        headers={"Content-Type": "application/fhir+json"})  # fmt: skip
    if r.status_code != 200:
        raise SystemExit(f"{kind}: HTTP {r.status_code}: {r.text[:300]}")
    r.read()


# ---- match on ingest --------------------------------------------------------------------------


@dataclass
class Arrivals:
    """One ingest batch: everything, and the Patients alone."""

    resources: list[tuple[str, Resource]]
    new_person_records: int
    existing_person_records: int

    @property
    def patients(self) -> list[tuple[str, Resource]]:
        return [(f, r) for f, r in self.resources if r["resourceType"] == "Patient"]


def arrivals(province: Province, spare: Spare, wanted: int) -> Arrivals:
    """A year of care of people already in the store and of new people, until each side has
    brought half of `wanted` Patient records (or the spare people run out)."""
    care = province.care()
    out = Arrivals([], 0, 0)
    for side, people in (("existing", spare.existing), ("new", spare.new[QUERY_PEOPLE:])):
        made = 0
        for person in people:
            if made >= wanted // 2:
                break
            done = care.person_care(person, ())
            out.resources += done.resources
            made += len(done.registrations)
        if side == "new":
            out.new_person_records = made
        else:
            out.existing_person_records = made
    return out


@dataclass
class Ingest:
    variant: str
    resources: int
    patients: int
    write_a: float
    write_b: float
    drain: float
    drained: int

    @property
    def overhead(self) -> float:
        return (self.write_b + self.drain - self.write_a) / self.write_a


def ingest(work: str, variant: str, batch: list[tuple[str, Resource]]) -> Ingest:
    patients = sum(r["resourceType"] == "Patient" for _, r in batch)
    write_a, _, _ = _ingest_once(work, f"{variant}: A", batch, drain=False)
    write_b, drain, drained = _ingest_once(work, f"{variant}: B", batch, drain=True)
    return Ingest(variant, len(batch), patients, write_a, write_b, drain, drained)


def _ingest_once(
    work: str, label: str, batch: list[tuple[str, Resource]], *, drain: bool
) -> tuple[float, float, int]:
    """On a fresh copy: seconds writing the batch, then seconds draining the inbox (if asked)
    and the records drained."""
    with copy_of(work, "ingest") as url, progress() as bar:
        store = open_store(url)
        task = bar.add_task(f"{label} write", total=len(batch))
        t = time.perf_counter()
        common_to_store(store, batch, lambda n: bar.advance(task, n))
        write = time.perf_counter() - t
        drained, drain_s = 0, 0.0
        if drain:
            waiting = sum(r["resourceType"] == "Patient" for _, r in batch)
            step = bar.add_task(f"{label} drain", total=waiting)
            t = time.perf_counter()
            drained = online.drain(store, HUB, progress=lambda n: bar.advance(step, n)).records
            drain_s = time.perf_counter() - t
            with store.read() as conn:
                left = conn.execute(sa.select(sa.func.count()).select_from(mpi_inbox))
                if left.scalar_one():
                    raise SystemExit("the drain left records in the inbox")
        store.dispose()
    return write, drain_s, drained


# ---- report -----------------------------------------------------------------------------------


def relink_table(r: dict[str, Any], records: int) -> Table:
    c = r["counts"]
    t = Table(title=f"Batch relink of {records:,} records: {r['pairs']:,} candidate pairs → "
              f"{c['persons']:,} Persons, review queue {c['review']:,}; {load()}")  # fmt: skip
    for h in ("step", "seconds", "share", "target", "result"):
        t.add_column(h, justify="left" if h == "step" else "right")
    steps = dict(r["steps"])
    steps["other (model, decisions, commit)"] = r["seconds"] - sum(steps.values())
    for name, s in steps.items():
        t.add_row(name, f"{s:,.1f}", f"{s / r['seconds']:.0%}", "", "")
    ok = r["seconds"] <= TARGET_RELINK_S
    t.add_row("[b]relink, wall[/b]", f"{r['seconds']:,.1f}", "100%",
              f"≤ {TARGET_RELINK_S:,.0f} s", verdict_of(ok))  # fmt: skip
    t.add_row("relink, CPU s", f"{r['cpu_seconds']:,.1f}", "", "", "")
    t.add_row("peak RSS of the relink process, MiB", f"{r['peak_rss_mb']:,.0f}", "", "", "")
    return t


def match_table(direct: Timings, http: dict[str, list[float]]) -> Table:
    read_p95 = percentiles(http["read"])[1] if http.get("read") else None
    t = Table(title="Patient/$match latency (ms); × read = p95 over the p95 of GET Patient/{id}; "
              f"{load()}")  # fmt: skip
    heads = ("path", "queries", "p50", "p95", "p99", "× read", "original found", "certain",
             "target", "result")  # fmt: skip
    for h in heads:
        t.add_column(h, justify="left" if h == "path" else "right")
    rows: list[tuple[str, list[float], str, str, bool | str | None]] = []
    for kind, ms in sorted(direct.ms.items(), key=lambda kv: kv[0] != "all"):
        found = "—" if kind in ("all", "new person") else f"{direct.found[kind] / len(ms):.1%}"
        certain = f"{sum(direct.certain.values()) if kind == 'all' else direct.certain[kind]:,}"
        rows.append((f"online.match: {kind}", ms, found, certain, kind == "all" or ""))
    if http.get("$match"):
        rows.append(("HTTP POST Patient/$match", http["$match"], "", "", ""))
        rows.append(("HTTP GET Patient/{id} (reference)", http["read"], "", "", None))
    for name, ms, found, certain, judged in rows:
        p50, p95, p99 = percentiles(ms)
        ratio = f"{p95 / read_p95:.1f}" if read_p95 and judged is not None else "—"
        goal = f"≤ {TARGET_MATCH_P95_MS:.0f}" if judged is True else ""
        result = verdict_of(p95 <= TARGET_MATCH_P95_MS) if judged is True else (
            verdict_of(None) if judged is None else "")  # fmt: skip
        t.add_row(name, f"{len(ms):,}", f"{p50:.1f}", f"{p95:.1f}", f"{p99:.1f}", ratio, found,
                  certain, goal, result)  # fmt: skip
    return t


def ingest_table(runs: list[Ingest], batch: Arrivals) -> Table:
    t = Table(title=f"Match on ingest: {batch.existing_person_records:,} new records of people "
              f"in the store + {batch.new_person_records:,} of new people; A = to_store, "
              f"B = to_store + online.drain, each on a fresh copy; {load()}")  # fmt: skip
    heads = ("variant", "resources", "Patients", "A write s", "B write s", "B drain s",
             "drain / A", "(B − A) / A", "target", "result")  # fmt: skip
    for h in heads:
        t.add_column(h, justify="left" if h == "variant" else "right")
    for r in runs:
        judged = r.variant == REALISTIC
        t.add_row(r.variant, f"{r.resources:,}", f"{r.patients:,} ({r.patients / r.resources:.0%})",
                  f"{r.write_a:,.1f}", f"{r.write_b:,.1f}", f"{r.drain:,.1f}",
                  f"{r.drain / r.write_a:.0%}", f"{r.overhead:.0%}",
                  f"≤ {TARGET_OVERHEAD:.0%}" if judged else "(not the target's)",
                  verdict_of(r.overhead <= TARGET_OVERHEAD) if judged else "")  # fmt: skip
    return t


REALISTIC = "Patients with their care"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000, help="Patient records in the store")
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--rebuild", action="store_true", help="generate and load the store again")
    ap.add_argument("--queries", type=int, default=1_000, help="$match calls timed directly")
    ap.add_argument("--http-requests", type=int, default=300, help="$match over HTTP (0: none)")
    ap.add_argument("--ingest", type=int, default=20_000, help="arriving Patients (0: none)")
    ap.add_argument("--profile", metavar="FILE", help="cProfile the relink into FILE")
    ap.add_argument("--profile-match", metavar="FILE", help="cProfile 200 more $match into FILE")
    args = ap.parse_args()
    tune_gc()  # as `benhan serve` and the import jobs do
    if args.records < 1_000 or args.queries < 100 or min(args.http_requests, args.ingest) < 0:
        raise SystemExit("--records ≥ 1000, --queries ≥ 100, the others ≥ 0")
    base = Base(args.backend, args.records)
    figures: dict[str, Any] = {"records": args.records, "backend": args.backend,
                               "build": build(base, args.rebuild)}  # fmt: skip
    spare = Spare(**pickle.loads(base.spare_file.read_bytes()))
    province = Province.make(SynthConfig(people=0, years=1))
    with copy_of(base, "relinked") as work:
        r = figures["relink"] = relink(work, args.profile)
        console.print(relink_table(r, args.records))
        store = open_store(work)
        queries = sample_queries(store, province, spare, args.queries)
        store.dispose()
        direct = time_match(work, queries, args.profile_match)
        http = time_http(work, queries, args.http_requests, 1) if args.http_requests else {}
        console.print(match_table(direct, http))
        for name, counts in (("scored", direct.scored), ("returned", direct.returned)):
            p50, p95, p99 = percentiles([float(n) for n in counts])
            console.print(f"candidates {name} per query: p50 {p50:.0f}, p95 {p95:.0f}, "
                          f"p99 {p99:.0f}, max {max(counts)}")  # fmt: skip
        figures["match_ms"] = {**{f"direct {k}": v for k, v in direct.ms.items()},
                               **{f"http {k}": v for k, v in http.items()}}  # fmt: skip
        figures["match_quality"] = {
            "found": direct.found, "certain": direct.certain,
            "scored": direct.scored, "returned": direct.returned,
        }  # fmt: skip
        if args.ingest:
            batch = arrivals(province, spare, args.ingest)
            runs = [ingest(work, "Patients only", batch.patients),
                    ingest(work, REALISTIC, batch.resources)]  # fmt: skip
            console.print(ingest_table(runs, batch))
            figures["ingest"] = [asdict(x) | {"overhead": x.overhead} for x in runs]
    out = VAR / f"mpi-scale-{args.backend}-{args.records}.json"
    out.write_text(json.dumps(figures, indent=1, default=str))
    console.print(f"{load()} at the end; figures → {out.relative_to(VAR.parents[1])}")


if __name__ == "__main__":
    main()
