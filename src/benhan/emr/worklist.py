"""The clinician's worklist: today's visits at the user's facility, in a fixed few searches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from benhan.emr.chart import age_on, by_ids, name_of, places
from benhan.emr.model import (
    ACTIVE,
    display_name,
    facility_refs,
    queue_label,
    queue_times,
    search_all,
)
from benhan.emr.queue import day_visits
from benhan.fhir.definitions import Resource
from benhan.store.repository import Repo

PAGE = 20


@dataclass(frozen=True)
class Waiting:
    """One visit on the worklist."""

    id: str
    patient_id: str
    number: str
    name: str
    age: int | None
    sex: str
    status: str
    clinic: str
    arrived: datetime | None
    minutes: int | None  # arrival → seen, or → now while still waiting


@dataclass(frozen=True)
class Worklist:
    known: bool  # False when the registry has no such facility yet
    rows: tuple[Waiting, ...]
    offset: int
    next_offset: int | None
    clinics: tuple[tuple[str, str], ...]  # (Location id, name)


def clinics(repo: Repo, facility_location: str) -> tuple[tuple[str, str], ...]:
    found = search_all(
        repo, "Location", [("partof", facility_location), ("_sort", "name"), ("_count", "100")]
    )
    return tuple((c["id"], c.get("name", "")) for c in found)


def worklist(repo: Repo, now: datetime, *, done: bool, clinic: str | None, offset: int) -> Worklist:
    """Today's visits at the user's facility (Vietnam's day): under way, or finished."""
    refs = facility_refs(repo)
    if refs is None:
        return Worklist(False, (), 0, None, ())
    # The facility's day in one search (see queue.day_params), then the tab and the page here:
    # a filter on status=finished would make SQLite list five years of visits.
    where = [("service-provider", refs.organization)]
    if clinic:
        where.append(("location", f"Location/{clinic}"))
    wanted = ("finished",) if done else ACTIVE
    day = [e for e in day_visits(repo, now.date(), where) if e.get("status") in wanted]
    if done:
        day.reverse()  # the last finished first
    found = day[offset : offset + PAGE]
    more = len(day) > offset + PAGE
    # Looked up by _id: an _include of them costs more than the search (see chart.py).
    subjects = {(e.get("subject") or {}).get("reference", "") for e in found}
    included = by_ids(repo, "Patient", subjects) | places(repo, found)
    rows = tuple(_waiting(e, included, now) for e in found)
    next_offset = offset + PAGE if more else None
    return Worklist(True, rows, offset, next_offset, clinics(repo, refs.location))


def _waiting(enc: Resource, included: dict[str, Resource], now: datetime) -> Waiting:
    subject = (enc.get("subject") or {}).get("reference", "")
    patient = included.get(subject, {})
    times = queue_times(enc)
    end = times.seen or now
    minutes = int((end - times.arrived).total_seconds() // 60) if times.arrived else None
    return Waiting(
        id=enc["id"],
        patient_id=subject.removeprefix("Patient/"),
        number=queue_label(enc),
        name=display_name(patient) if patient else "",
        age=age_on(patient.get("birthDate", ""), now.date())[0],
        sex=patient.get("gender", ""),
        status=enc.get("status", ""),
        clinic=name_of(included, (enc.get("location") or [{}])[0].get("location")),
        arrived=times.arrived,
        minutes=max(minutes, 0) if minutes is not None else None,
    )
