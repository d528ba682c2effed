"""The day's queue of each clinic, read back from the Encounters: numbers, calls, waiting times.

Nothing but the Encounters holds the queue (emr/model.py): a number is the visit's QUEUE_NUMBER
identifier, a call is its CALLED_EXT extension, and the waiting times come from the moments
`queue_times` reads. Each function here is a handful of searches, never one per visit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from benhan.emr.model import (
    ACTIVE,
    QUEUE_NUMBER,
    called,
    local_now,
    parse_stamp,
    queue_label,
    queue_times,
    search_all,
)
from benhan.fhir.definitions import Resource
from benhan.fhir.primitives import VIETNAM
from benhan.store.repository import Repo

PAGE = 1000  # visits fetched per search: a clinic's whole day, a facility's day in a few pages
MAX_PAGES = 20
GONE = ("cancelled", "entered-in-error")  # visits that never were


def day_params(day: date) -> list[tuple[str, str]]:
    """Encounters that started after the day before `day` (Vietnam's date). The upper bound is
    left to started_on: a second date bound makes SQLite list every Encounter the facility ever
    had (measured 110–180 ms instead of 10 ms on a 5-year facility)."""
    return [("date", f"sa{(day - timedelta(days=1)).isoformat()}")]


def started_on(encounter: Resource, day: date) -> bool:
    start = parse_stamp((encounter.get("period") or {}).get("start"))
    return start is not None and start.astimezone(VIETNAM).date() == day


def number_of(encounter: Resource) -> int:
    """The visit's queue number (0 when it has none)."""
    for ident in encounter.get("identifier", []):
        if ident.get("system") == QUEUE_NUMBER:
            tail = str(ident.get("value", "")).rsplit("/", 1)[-1]
            return int(tail) if tail.isdigit() else 0
    return 0


def day_visits(repo: Repo, day: date, params: list[tuple[str, str]]) -> list[Resource]:
    """Every visit of `day` matching `params`, cancelled ones too, paged through (a clinic's day
    is one page)."""
    found: list[Resource] = []
    for page in range(MAX_PAGES):
        batch = search_all(
            repo,
            "Encounter",
            [
                *params,
                *day_params(day),
                ("_sort", "date"),
                ("_count", str(PAGE)),
                ("_offset", str(page * PAGE)),
            ],
        )
        found += [e for e in batch if started_on(e, day)]
        if len(batch) < PAGE:
            break
    return found


def clinic_day(repo: Repo, clinic_id: str, day: date) -> list[Resource]:
    """A clinic's visits of a day, by number."""
    visits = day_visits(repo, day, [("location", f"Location/{clinic_id}")])
    return sorted(present(visits), key=number_of)


def present(visits: Iterable[Resource]) -> list[Resource]:
    """Without the visits that were cancelled or entered in error."""
    return [e for e in visits if e.get("status") not in GONE]


def is_called(encounter: Resource) -> bool:
    return queue_times(encounter).called is not None


def is_waiting(encounter: Resource) -> bool:
    """Arrived and not called yet: still sitting in the waiting room."""
    return encounter.get("status") == "arrived" and not is_called(encounter)


def people_ahead(visits: Iterable[Resource], encounter: Resource) -> int:
    mine = number_of(encounter)
    return sum(1 for e in visits if is_waiting(e) and number_of(e) < mine)


def call_next(
    repo: Repo, clinic_id: str, day: date, when: datetime | None = None
) -> Resource | None:
    """Call the lowest number still waiting at a clinic; None when nobody is."""
    repo.lock(f"queue/{clinic_id}/{day.isoformat()}")  # two staff pressing at once call two people
    waiting = [e for e in clinic_day(repo, clinic_id, day) if is_waiting(e)]
    if not waiting:
        return None
    nxt = waiting[0]
    updated = called(nxt, when or local_now())
    return repo.update("Encounter", nxt["id"], updated).resource


def recall(repo: Repo, encounter_id: str, when: datetime | None = None) -> Resource | None:
    """Call a number again (the person did not come); None when the visit is past calling."""
    encounter = repo.read("Encounter", encounter_id).resource
    if encounter.get("status") != "arrived":
        return None
    return repo.update("Encounter", encounter_id, called(encounter, when or local_now())).resource


@dataclass(frozen=True)
class Board:
    """What a waiting-room screen shows: numbers only, never names."""

    now: str | None  # the number called last
    now_id: str | None
    recent: list[str]  # the ones called before it, newest first
    waiting: int  # not called yet
    next_up: str | None  # the number the next call will reach


def board(visits: list[Resource], recent: int = 5) -> Board:
    """The board of a clinic's day (visits as clinic_day returns them)."""
    calls = sorted(
        ((t, e) for e in visits if (t := queue_times(e).called) is not None),
        key=lambda pair: (pair[0], number_of(pair[1])),
        reverse=True,
    )
    waiting = [e for e in visits if is_waiting(e)]
    return Board(
        now=queue_label(calls[0][1]) if calls else None,
        now_id=calls[0][1]["id"] if calls else None,
        recent=[queue_label(e) for _t, e in calls[1 : recent + 1]],
        waiting=len(waiting),
        next_up=queue_label(waiting[0]) if waiting else None,
    )


@dataclass(frozen=True)
class Summary:
    """Minutes of one interval over a day's visits."""

    count: int
    median: float | None
    p90: float | None


@dataclass(frozen=True)
class Stats:
    """A clinic's day: how many are where, and how long each step took."""

    waiting: int  # arrived, not called
    called: int  # called, not seen yet
    being_seen: int  # in progress
    done: int  # finished
    to_called: Summary  # arrival → called
    to_seen: Summary  # arrival → seen
    seen_to_finished: Summary

    @property
    def total(self) -> int:
        return self.waiting + self.called + self.being_seen + self.done


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: list[float]) -> Summary:
    return Summary(len(values), percentile(values, 50), percentile(values, 90))


def stats(visits: Iterable[Resource]) -> Stats:
    """Counts and waiting times of a set of visits (one clinic's day, say)."""
    waiting = called_ = seen = done = 0
    to_called: list[float] = []
    to_seen: list[float] = []
    seen_done: list[float] = []
    for e in visits:
        status, t = e.get("status"), queue_times(e)
        if status == "arrived":
            if t.called is None:
                waiting += 1
            else:
                called_ += 1
        elif status == "finished":
            done += 1
        elif status in ("triaged", "in-progress", "onleave"):
            seen += 1
        for bucket, start, end in (
            (to_called, "arrived", "called"),
            (to_seen, "arrived", "seen"),
            (seen_done, "seen", "finished"),
        ):
            minutes = t.minutes(start, end)
            if minutes is not None and minutes >= 0:
                bucket.append(minutes)
    return Stats(
        waiting, called_, seen, done, summary(to_called), summary(to_seen), summary(seen_done)
    )


def clinic_of(encounter: Resource) -> str | None:
    """The clinic Location id a visit is queued at."""
    for loc in encounter.get("location", []):
        reference = (loc.get("location") or {}).get("reference", "")
        if reference.startswith("Location/"):
            return str(reference.removeprefix("Location/"))
    return None


def waiting_by_clinic(repo: Repo, organization: str, day: date) -> dict[str, int]:
    """How many are waiting (arrived, not called) at each clinic: one search of the arrived."""
    counts: dict[str, int] = {}
    for e in day_visits(repo, day, [("service-provider", organization), ("status", "arrived")]):
        clinic_id = clinic_of(e)
        if clinic_id and not is_called(e):
            counts[clinic_id] = counts.get(clinic_id, 0) + 1
    return counts


def under_way(repo: Repo, organization: str, patient_id: str, day: date) -> list[Resource]:
    """A person's visits of a day at this facility that are still under way."""
    params = [
        ("subject", f"Patient/{patient_id}"),
        ("service-provider", organization),
        ("status", ",".join(ACTIVE)),
    ]
    return day_visits(repo, day, params)


def facility_day(repo: Repo, organization: str, day: date) -> dict[str, list[Resource]]:
    """A facility's visits of a day, grouped by clinic id (one search, paged)."""
    grouped: dict[str, list[Resource]] = {}
    for e in present(day_visits(repo, day, [("service-provider", organization)])):
        clinic_id = clinic_of(e)
        if clinic_id:
            grouped.setdefault(clinic_id, []).append(e)
    for visits in grouped.values():
        visits.sort(key=number_of)
    return grouped


__all__ = [
    "Board",
    "Stats",
    "Summary",
    "board",
    "call_next",
    "clinic_day",
    "clinic_of",
    "day_params",
    "day_visits",
    "facility_day",
    "is_called",
    "is_waiting",
    "number_of",
    "people_ahead",
    "percentile",
    "present",
    "recall",
    "stats",
    "summary",
    "under_way",
    "waiting_by_clinic",
]
