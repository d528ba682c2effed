"""`benhan import`: transaction/batch Bundles and Bulk Data NDJSON into the repository.

Resources keep their ids (NDJSON ids; `urn:uuid:` fullUrls of POSTed Bundle entries become the
ids), so importing the same data again creates no duplicates, and unchanged NDJSON resources are
skipped without a new version. Conditional references (`Organization?identifier=sys|val`) are
resolved against what is already stored; files are loaded referenced-types-first for that. A bad
line is reported as `file:line: problem` and the rest still loads. References to resources that
are not in the repository are kept and counted (a Bulk export may omit types).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from benhan.access import Actor
from benhan.fhir.definitions import Resource, resource_types
from benhan.fhir.outcome import FhirError
from benhan.fhir.primitives import split_ref
from benhan.fhir.systems import facility_source
from benhan.rest.bundle import process
from benhan.rest.operations import OPERATIONS
from benhan.rest.router import Context, is_conditional, resolve_conditional
from benhan.store.audit import Access, audit_event, write_events
from benhan.store.database import Store
from benhan.store.repository import Repo, Write, by_type, references
from benhan.store.schema import resource

CHUNK = 500
FIRST = (
    "Organization",
    "Location",
    "Practitioner",
    "PractitionerRole",
    "Medication",
    "Group",
    "Patient",
    "RelatedPerson",
    "Encounter",
)
Progress = Callable[[int], None]


@dataclass
class ImportReport:
    stored: Counter[str] = field(default_factory=Counter)
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    unresolved: Counter[str] = field(default_factory=Counter)  # target type → references


def files_of(paths: list[Path]) -> list[Path]:
    """Every .json/.ndjson file under the paths, NDJSON in referenced-types-first order."""
    found: list[Path] = []
    for p in paths:
        found += sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
    wanted = [f for f in found if f.suffix in (".json", ".ndjson")]
    return sorted(wanted, key=_load_order)


def _load_order(f: Path) -> tuple[int, str]:
    rtype = f.name.split(".", 1)[0]
    rank = FIRST.index(rtype) if rtype in FIRST else len(FIRST)
    return (0 if f.suffix == ".ndjson" else 1, f"{rank:03d}{f.name}")


def import_files(
    store: Store, facility: str, base: str, files: list[Path], advance: Progress | None = None
) -> ImportReport:
    job = _Job(store, facility, base, advance)
    for f in files:
        if f.suffix == ".ndjson":
            job.ndjson(f)
        else:
            job.bundle_file(f)
    _count_unresolved(store, job.seen, job.report)
    _audit(store, facility, job.report)
    return job.report


def _audit(store: Store, facility: str, report: ImportReport) -> None:
    """One AuditEvent for the whole run: what a local job wrote, not each resource."""
    stored = sum(report.stored.values())
    access = Access("batch", detail=f"benhan import: {stored} stored, {len(report.errors)} errors")
    with store.begin() as conn:
        write_events(conn, [audit_event(Actor.job(facility, "import"), access)], facility)


@dataclass
class _Job:
    """One import run: where it writes, what it found, and conditional references resolved."""

    store: Store
    facility: str
    base: str
    advance: Progress | None
    report: ImportReport = field(default_factory=ImportReport)
    seen: set[str] = field(default_factory=set)  # every reference written
    resolved: dict[str, str] = field(default_factory=dict)  # "Type?query" → "Type/id"

    def ctx(self, conn: sa.Connection) -> Context:
        return Context(Repo(conn, Actor.job(self.facility, "import")), self.base, dict(OPERATIONS))

    def ndjson(self, f: Path) -> None:
        batch: list[tuple[int, Resource]] = []
        with f.open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if self.advance:
                    self.advance(len(line))
                res = _parse_line(f, lineno, line, self.report) if line.strip() else None
                if res is not None:
                    batch.append((lineno, res))
                if len(batch) >= CHUNK:
                    self.load_batch(f, batch)
                    batch = []
        if batch:
            self.load_batch(f, batch)

    def load_batch(self, f: Path, batch: list[tuple[int, Resource]]) -> None:
        with self.store.begin() as conn:
            ctx = self.ctx(conn)
            current = _current(conn, [(r["resourceType"], r["id"]) for _n, r in batch])
            writes: list[Write] = []
            for lineno, res in batch:
                w = self.prepare(ctx, f, lineno, res, current)
                if w is not None:
                    writes.append(w)
                    _note_refs(w.resource, self.seen)
            for s in ctx.repo.flush(writes):
                self.report.stored[s.rtype] += 1

    def prepare(
        self,
        ctx: Context,
        f: Path,
        lineno: int,
        res: Resource,
        current: dict[tuple[str, str], tuple[int, bool, Resource | None]],
    ) -> Write | None:
        key = (res["resourceType"], res["id"])
        try:
            res = self.resolve_conditional(ctx, res)
            have = current.get(key)
            if have and not have[1] and _same(have[2], res, self.facility):
                self.report.unchanged += 1
                return None
            version = have[0] + 1 if have else 1
            w = ctx.repo.prepare(
                dict(res), "PUT", version=version, created=have is None or have[1], known=set()
            )
            current[key] = (version, False, res)  # the same id twice in a file: last one wins
            return w
        except FhirError as err:
            for issue in err.issues:
                self.report.errors.append(f"{f}:{lineno}: {issue.path or key[0]}: {issue.text}")
            return None

    def resolve_conditional(self, ctx: Context, res: Resource) -> Resource:
        conditional = {ref for _p, ref in references(res, "") if is_conditional(ref)}
        if not conditional:
            return res
        for ref in conditional - set(self.resolved):
            self.resolved[ref] = resolve_conditional(ctx, ref)
        out: Resource = _replace_refs(res, self.resolved)
        return out

    def bundle_file(self, f: Path) -> None:
        raw = f.read_bytes()
        if self.advance:
            self.advance(len(raw))
        try:
            bundle = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self.report.errors.append(
                f"{f}:{exc.lineno}: JSON không hợp lệ / malformed JSON: {exc.msg}"
            )
            return
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            self.report.errors.append(f"{f}:1: resourceType: cần một Bundle / expected a Bundle")
            return
        try:
            with self.store.begin() as conn:
                out = process(self.ctx(conn), _stable_ids(bundle))
        except FhirError as err:
            for issue in err.issues:
                self.report.errors.append(f"{f}:1: {issue.path or 'Bundle'}: {issue.text}")
            return
        _tally_bundle(bundle, out, self.report, self.seen)


def _parse_line(f: Path, lineno: int, line: bytes, report: ImportReport) -> Resource | None:
    try:
        res = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        report.errors.append(f"{f}:{lineno}: JSON không hợp lệ / malformed JSON: {exc}")
        return None
    if not isinstance(res, dict) or res.get("resourceType") not in resource_types():
        report.errors.append(
            f"{f}:{lineno}: resourceType: không phải tài nguyên FHIR R4 / not an R4 resource"
        )
        return None
    if not isinstance(res.get("id"), str):
        report.errors.append(
            f"{f}:{lineno}: {res['resourceType']}.id: thiếu id / NDJSON resources need an id"
        )
        return None
    return res


def _replace_refs(node: Any, resolved: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                resolved.get(v, v)
                if k == "reference" and isinstance(v, str)
                else _replace_refs(v, resolved)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_replace_refs(v, resolved) for v in node]
    return node


def _current(
    conn: sa.Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, bool, Resource | None]]:
    out: dict[tuple[str, str], tuple[int, bool, Resource | None]] = {}
    for rtype, ids in by_type(keys).items():
        rows = conn.execute(
            sa.select(
                resource.c.id,
                resource.c.version_id,
                resource.c.deleted,
                sa.cast(resource.c.content, sa.Text),
            ).where(resource.c.rtype == rtype, resource.c.id.in_(ids))
        )
        for rid, version, deleted, content in rows:
            out[(rtype, rid)] = (version, deleted, orjson.loads(content) if content else None)
    return out


def _same(stored: Resource | None, new: Resource, facility: str) -> bool:
    """Whether `new`, written by `facility`, would store what is stored already."""
    if stored is None:
        return False
    strip = ("meta",)
    a = {k: v for k, v in stored.items() if k not in strip}
    b = {k: v for k, v in new.items() if k not in strip}
    return a == b and _meta_tags(stored) == _meta_tags(new, facility)


def _meta_tags(res: Resource, facility: str = "") -> Any:
    """The meta a client controls; with `facility`, the meta.source the write would stamp."""
    meta = res.get("meta")
    out = {
        k: v
        for k, v in (meta if isinstance(meta, dict) else {}).items()
        if k not in ("versionId", "lastUpdated")
    }
    if facility:
        out.setdefault("source", facility_source(facility))
    return out


def _note_refs(res: Resource, seen: set[str]) -> None:
    seen.update(ref for _p, ref in references(res, "") if not is_conditional(ref))


def _count_unresolved(store: Store, seen: set[str], report: ImportReport) -> None:
    with store.read() as conn:
        missing = Repo(conn, Actor.job("", "import")).missing_targets(seen, set())
    for rtype, _rid in missing:
        report.unresolved[rtype] += 1


# ---- Bundles ----------------------------------------------------------------------------------


def _stable_ids(bundle: Resource) -> Resource:
    """POST entries with a urn:uuid fullUrl become PUTs to that uuid: re-imports add nothing."""
    entries = []
    for e in bundle.get("entry") or []:
        req = e.get("request") if isinstance(e, dict) else None
        full = e.get("fullUrl", "") if isinstance(e, dict) else ""
        res = e.get("resource") if isinstance(e, dict) else None
        if (
            isinstance(req, dict)
            and req.get("method") == "POST"
            and isinstance(res, dict)
            and isinstance(full, str)
            and full.startswith("urn:uuid:")
            and not req.get("ifNoneExist")
        ):
            rid = full.removeprefix("urn:uuid:")
            e = {
                **e,
                "request": {**req, "method": "PUT", "url": f"{res.get('resourceType')}/{rid}"},
            }
        entries.append(e)
    return {**bundle, "entry": entries}


def _tally_bundle(
    bundle: Resource, out: dict[str, Any], report: ImportReport, seen: set[str]
) -> None:
    for e in out.get("entry", []):
        status = str(e.get("response", {}).get("status", ""))
        loc = e.get("response", {}).get("location", "")
        if status.startswith(("200", "201")) and (parts := split_ref(loc.split("/_history")[0])):
            report.stored[parts[0]] += 1
    for e in bundle.get("entry") or []:
        if isinstance(e, dict) and isinstance(e.get("resource"), dict):
            _note_refs(e["resource"], seen)
