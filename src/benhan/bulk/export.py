"""Bulk Data $export (https://hl7.org/fhir/uv/bulkdata/STU2/export.html): NDJSON files and jobs."""

from __future__ import annotations

import logging
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import orjson
import sqlalchemy as sa

from benhan.access import JOB, Actor, Scopes, role
from benhan.config import Settings
from benhan.fhir.definitions import Resource, resource_types
from benhan.fhir.outcome import FhirError, Issue
from benhan.fhir.primitives import date_range, from_micros, instant, micros, now, split_ref
from benhan.store.database import Store
from benhan.store.policy import Policy
from benhan.store.repository import Repo
from benhan.store.schema import export_job, resource
from benhan.store.unit import unit

log = logging.getLogger("benhan.bulk")

Level = Literal["system", "patient", "group"]
Progress = Callable[[str, int], None]

NDJSON_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
UNSUPPORTED = ("_typeFilter", "_elements", "includeAssociatedData")
BATCH = 1000  # rows per fetch from the cursor: memory stays flat whatever the size of a type
PATIENT_CHUNK = 500  # patient ids per IN (...) of a Group-level export
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
FILE_NAME = re.compile(r"^[A-Z][A-Za-z]+\.ndjson$")
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True, slots=True)
class ExportFile:
    type: str
    path: Path
    count: int


@dataclass(frozen=True, slots=True)
class ExportParams:
    """A checked kick-off request (https://hl7.org/fhir/uv/bulkdata/STU2/export.html#query-parameters)."""

    request_url: str  # the kick-off URL as the client sent it, for the manifest's "request"
    types: tuple[str, ...] | None = None
    since: str | None = None
    since_us: int | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """One export_job row, as the status endpoint needs it."""

    id: str
    status: str  # accepted, running, completed, failed
    request: str
    created_us: int  # the kick-off moment: the manifest's transactionTime
    output: list[dict[str, Any]]  # {"type", "file", "count"} per NDJSON file
    error: str | None

    def manifest(self, base_url: str) -> dict[str, Any]:
        """The completion manifest (STU2 "Response - Complete Status")."""
        return {
            "transactionTime": instant(from_micros(self.created_us)),
            "request": self.request,
            "requiresAccessToken": True,  # the files are fetched with the kick-off's token
            "output": [
                {
                    "type": o["type"],
                    "url": f"{base_url}/$export-file/{self.id}/{o['file']}",
                    "count": o["count"],
                }
                for o in self.output
            ],
            "error": [],
        }


# ---- the NDJSON writer (also used by `benhan export`) -----------------------------------------


def write_ndjson(
    conn: sa.Connection,
    out_dir: Path,
    *,
    types: list[str] | None,
    since_us: int | None,
    patients: list[str] | None,
    progress: Progress | None = None,
    any_patient: bool = False,
    policy: Policy | None = None,
) -> list[ExportFile]:
    """Write one <Type>.ndjson per type with a match: current, non-deleted versions, as stored.

    Rows are streamed (a server-side cursor on PostgreSQL, BATCH rows at a time). `patients` keeps
    only those Patient compartments (Group level); `any_patient` keeps rows in any compartment
    (Patient level). Files of the same names in out_dir are overwritten. progress(type, n) is
    called after each batch: n more resources of that type were written. With a `policy`, only
    the rows it lets its actor see are written, de-identified where it says so.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rule = policy.visible(resource, None) if policy else None
    redact = policy.redact if policy and policy.deidentify else None
    with _Files(out_dir) as files:
        for query in _queries(types, since_us, patients, any_patient):
            _copy(conn, query if rule is None else query.where(rule), files, progress, redact)
        return files.written()


def export_as(
    repo: Repo,
    out_dir: Path,
    *,
    level: Level,
    types: list[str] | None,
    since_us: int | None,
    patients: list[str] | None,
) -> list[ExportFile]:
    """write_ndjson as the repository's actor: what they may see, recorded in their trail."""
    files = write_ndjson(
        repo.conn,
        out_dir,
        types=types,
        since_us=since_us,
        patients=patients,
        any_patient=level == "patient",
        policy=repo.policy,
    )
    access = repo.trail.record("operation", query=f"$export?level={level}")
    access.detail = f"{sum(f.count for f in files)} resources written"
    return files


def _queries(
    types: list[str] | None, since_us: int | None, patients: list[str] | None, any_patient: bool
) -> Iterator[sa.Select[str, str]]:
    cond: list[sa.ColumnElement[bool]] = [resource.c.deleted.is_(False)]
    if types is not None:
        cond.append(resource.c.rtype.in_(types))
    elif since_us is not None:
        # ix_resource_updated leads with rtype: naming every type lets it serve _since.
        cond.append(resource.c.rtype.in_(sorted(resource_types())))
    if since_us is not None:
        cond.append(resource.c.last_updated >= since_us)
    if any_patient:
        cond.append(resource.c.patient_key.is_not(None))
    query = sa.select(resource.c.rtype, sa.cast(resource.c.content, sa.Text)).where(*cond)
    if patients is None:
        yield query
        return
    ids = list(dict.fromkeys(patients))
    for i in range(0, len(ids), PATIENT_CHUNK):
        yield query.where(resource.c.patient_key.in_(ids[i : i + PATIENT_CHUNK]))


def _copy(
    conn: sa.Connection,
    query: sa.Select[str, str],
    files: _Files,
    progress: Progress | None,
    redact: Callable[[bytes], bytes] | None,
) -> None:
    # yield_per implies stream_results: psycopg reads through a named (server-side) cursor.
    result = conn.execute(query.execution_options(yield_per=BATCH))
    for rows in result.partitions():
        done: dict[str, int] = {}
        for rtype, content in rows:
            files.write(rtype, redact(content.encode()).decode() if redact else content)
            done[rtype] = done.get(rtype, 0) + 1
        if progress is not None:
            for rtype, n in done.items():
                progress(rtype, n)


class _Files:
    """The open <Type>.ndjson files of one export, each opened on its type's first resource."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.handles: dict[str, IO[bytes]] = {}
        self.counts: dict[str, int] = {}

    def write(self, rtype: str, content: str) -> None:
        handle = self.handles.get(rtype)
        if handle is None:
            name = f"{rtype}.ndjson"
            if not FILE_NAME.match(name):  # the type becomes a file name: never trust it blindly
                raise ValueError(f"unexpected resource type {rtype!r}")
            handle = self.handles[rtype] = (self.out_dir / name).open("wb", buffering=1 << 16)
            self.counts[rtype] = 0
        handle.write(content.encode())
        handle.write(b"\n")
        self.counts[rtype] += 1

    def written(self) -> list[ExportFile]:
        counts = sorted(self.counts.items())
        return [ExportFile(t, self.out_dir / f"{t}.ndjson", n) for t, n in counts]

    def __enter__(self) -> _Files:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self.handles.values():
            handle.close()


# ---- kick-off parameters --------------------------------------------------------------------


def parse_params(
    query: list[tuple[str, str]], *, request_url: str, group: str | None = None
) -> ExportParams:
    """Check the kick-off parameters; every problem is reported at once, in one 400."""
    values: dict[str, list[str]] = {}
    for key, value in query:
        values.setdefault(key, []).append(value)
    issues = _output_format(values.get("_outputFormat", []))
    types, type_issues = _types(values.get("_type", []))
    since, since_us, since_issues = _since(values.get("_since", []))
    issues += type_issues + since_issues
    issues += [
        Issue("not-supported", f"Tham số {name} chưa được hỗ trợ / {name} is not supported", name)
        for name in UNSUPPORTED
        if name in values
    ]
    if issues:
        raise FhirError(400, *issues)
    return ExportParams(request_url, types, since, since_us, group)


def _output_format(given: list[str]) -> list[Issue]:
    return [
        Issue(
            "not-supported",
            f"_outputFormat không được hỗ trợ / unsupported _outputFormat "
            f"{fmt!r}: use application/fhir+ndjson",
            "_outputFormat",
        )
        for fmt in given
        if fmt.strip() not in NDJSON_FORMATS
    ]


def _types(given: list[str]) -> tuple[tuple[str, ...] | None, list[Issue]]:
    names = [t.strip() for v in given for t in v.split(",") if t.strip()]
    unknown = [t for t in names if t not in resource_types()]
    issues = [
        Issue(
            "invalid",
            f"Loại tài nguyên không tồn tại / unknown resource type in _type: {t}",
            "_type",
        )
        for t in unknown
    ]
    return (tuple(dict.fromkeys(names)) if names else None), issues


def _since(given: list[str]) -> tuple[str | None, int | None, list[Issue]]:
    if not given:
        return None, None, []
    if len(given) > 1:
        return None, None, [Issue("invalid", "Chỉ được một _since / only one _since", "_since")]
    # An unencoded "+" in a query string arrives as a space: "…T10:00:00 07:00".
    value = re.sub(r" (\d{2}:\d{2})$", r"+\1", given[0].strip())
    span = date_range(value) if _INSTANT.match(value) else None
    if span is None:
        text = (
            "_since phải là một instant FHIR / _since must be a FHIR instant such as "
            f"2025-03-01T06:30:00+07:00, got {given[0][:100]!r}"
        )
        return None, None, [Issue("invalid", text, "_since")]
    return value, span[0], []


# ---- jobs -----------------------------------------------------------------------------------


def kick_off(
    store: Store, settings: Settings, level: Level, params: ExportParams, actor: Actor
) -> str:
    """Record an export job and start it on a daemon thread; returns the job id.

    The job's whole state is its export_job row, so any API process behind the load balancer
    answers the status calls. The files go to settings.export_dir / job id: in production that
    must be storage shared by every API process, or a download only works on the one that wrote it.
    The job runs as `actor` (what it may see is what it exports) and only they may fetch it.
    """
    patients = group_members(store, actor, params.group) if level == "group" else None
    job_id = uuid.uuid4().hex
    record = {
        "level": level,
        "types": params.types,
        "since": params.since,
        "since_us": params.since_us,
        "group": params.group,
        "patients": patients,
        "owner": owner_of(actor),
    }
    with unit(store, actor, write=True) as repo:
        conn = repo.conn
        repo.trail.record("operation", query=f"$export?level={level}")
        conn.execute(
            export_job.insert().values(
                id=job_id,
                status="accepted",
                request=params.request_url,
                params=orjson.dumps(record).decode(),
                created=micros(now()),
                facility=actor.facility,
            )
        )
    worker = threading.Thread(
        target=run_job,
        args=(store, settings.export_dir, job_id),
        name=f"export-{job_id[:8]}",
        daemon=True,
    )
    worker.start()
    return job_id


def owner_of(actor: Actor) -> dict[str, Any]:
    """What a job must remember of who asked for it, to act as them later."""
    return {
        "kind": actor.kind,
        "name": actor.name,
        "role": actor.role.code,
        "facility": actor.facility,
        "account": actor.account,
        "practitioner": actor.practitioner,
        "patient": actor.patient,
        "scopes": str(actor.scopes),
    }


def actor_of(owner: dict[str, Any]) -> Actor:
    code = owner["role"]
    r = JOB if code == JOB.code else role(code)
    return Actor(
        kind=owner["kind"],
        name=owner["name"],
        role=r,
        facility=owner["facility"],
        scopes=Scopes.parse(owner["scopes"]).within(r.scopes),
        account=owner["account"],
        practitioner=owner["practitioner"],
        patient=owner["patient"],
    )


def group_members(store: Store, actor: Actor, gid: str | None) -> list[str]:
    """Patient ids of a Group's active members (Group.member.entity); 404/410 if no such Group."""
    if gid is None:
        raise ValueError("a Group-level export needs a group id")
    with unit(store, actor, write=False) as repo:
        group: Resource = repo.read("Group", gid).resource
    ids: list[str] = []
    for member in group.get("member") or []:
        ref = (member.get("entity") or {}).get("reference")
        parts = split_ref(ref) if isinstance(ref, str) and not member.get("inactive") else None
        if parts and parts[0] == "Patient":  # other member types have no compartment to export
            ids.append(parts[1])
    return list(dict.fromkeys(ids))


def run_job(store: Store, export_dir: Path, job_id: str) -> None:
    """The work of one job: accepted → running → completed with its manifest, or failed."""
    try:
        params = _start(store, job_id)
        if params is None:  # deleted before it started
            return
        actor = actor_of(params["owner"])
        with unit(store, actor, write=False) as repo:
            files = export_as(
                repo,
                export_dir / job_id,
                level=params["level"],
                types=params["types"],
                since_us=params["since_us"],
                patients=params["patients"],
            )
        _finish(store, export_dir, job_id, files)
    except Exception as exc:  # a job must end in a recorded state, whatever went wrong
        # The job id and the exception type only: a message may quote SQL parameters or content.
        log.error("export job %s failed: %s", job_id, type(exc).__name__)
        _fail(store, export_dir, job_id, exc)


def _start(store: Store, job_id: str) -> dict[str, Any] | None:
    with store.begin() as conn:
        started = conn.execute(
            export_job.update()
            .values(status="running")
            .where(export_job.c.id == job_id, export_job.c.status == "accepted")
        ).rowcount
        if not started:
            return None
        raw = conn.scalar(sa.select(export_job.c.params).where(export_job.c.id == job_id))
    params: dict[str, Any] = orjson.loads(raw or "{}")
    return params


def _finish(store: Store, export_dir: Path, job_id: str, files: list[ExportFile]) -> None:
    output = [{"type": f.type, "file": f.path.name, "count": f.count} for f in files]
    with store.begin() as conn:
        done = conn.execute(
            export_job.update()
            .values(
                status="completed",
                finished=micros(now()),
                output=orjson.dumps(output).decode(),
            )
            .where(export_job.c.id == job_id, export_job.c.status == "running")
        ).rowcount
    if not done:  # deleted while it ran: leave no files behind
        shutil.rmtree(export_dir / job_id, ignore_errors=True)
    log.info("export job %s: %s", job_id, "completed" if done else "deleted while running")


def _fail(store: Store, export_dir: Path, job_id: str, exc: Exception) -> None:
    # Partial files are incomplete and hold patient data: remove them.
    shutil.rmtree(export_dir / job_id, ignore_errors=True)
    reason = type(exc).__name__  # not str(exc): it may quote SQL parameters or server paths
    if isinstance(exc, FhirError):
        reason = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        reason = f"{reason}: {exc.strerror}"  # "No space left on device"
    try:
        with store.begin() as conn:
            conn.execute(
                export_job.update()
                .values(
                    status="failed",
                    finished=micros(now()),
                    error=reason[:2000],
                )
                .where(export_job.c.id == job_id)
            )
    except Exception as again:  # the database itself is gone: the log is all that is left
        log.error("export job %s: could not record the failure: %s", job_id, type(again).__name__)


def status(store: Store, job_id: str, actor: Actor) -> Job:
    """The job as stored; 404 if there is no such job (never was, or deleted) or if `actor` is
    not who asked for it."""
    row = None
    if JOB_ID.match(job_id):
        with store.read() as conn:
            row = conn.execute(sa.select(export_job).where(export_job.c.id == job_id)).first()
    if row is None or not _owns(actor, orjson.loads(row.params).get("owner") or {}):
        raise unknown_job(job_id)
    output = orjson.loads(row.output) if row.output else []
    return Job(row.id, row.status, row.request, row.created, output, row.error)


def _owns(actor: Actor, owner: dict[str, Any]) -> bool:
    return actor.unrestricted or (owner.get("kind"), owner.get("name")) == (actor.kind, actor.name)


def delete_job(store: Store, settings: Settings, job_id: str, actor: Actor) -> None:
    """Forget a job and remove its files (STU2 "Delete a Bulk Data Request"); 404 if unknown."""
    status(store, job_id, actor)  # 404 unless the caller owns it
    gone = 0
    if JOB_ID.match(job_id):
        with store.begin() as conn:
            gone = conn.execute(export_job.delete().where(export_job.c.id == job_id)).rowcount
    if not gone:
        raise unknown_job(job_id)
    # After the row: a job still running sees it gone and removes what it writes (_finish).
    shutil.rmtree(settings.export_dir / job_id, ignore_errors=True)


def job_file(store: Store, settings: Settings, job_id: str, name: str, actor: Actor) -> Path:
    """The path of one output file of a completed job; 404 for anything else."""
    missing = FhirError(
        404, Issue("not-found", f"Không tìm thấy tệp / no such export file: {job_id}/{name}"[:300])
    )
    if not FILE_NAME.match(name):
        raise missing
    job = status(store, job_id, actor)
    if job.status != "completed" or name not in {o["file"] for o in job.output}:
        raise missing
    job_dir = (settings.export_dir / job.id).resolve()
    path = (job_dir / name).resolve()
    if not path.is_relative_to(job_dir) or not path.is_file():
        raise missing
    return path


def unknown_job(job_id: str) -> FhirError:
    return FhirError(
        404,
        Issue(
            "not-found",
            f"Không tìm thấy yêu cầu xuất {job_id[:64]} / export job {job_id[:64]} not found",
        ),
    )
