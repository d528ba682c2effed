"""What the facility EMR writes, shared by its parts: the visit's FHIR shape and its clock.

A visit is one `Encounter` (class AMB), written at registration and carried through the day:

    status        arrived ───────────────► in-progress ──────────► finished
    (called / seen / finished below make each step; the caller writes with repo.update)
    timestamps    arrival      called       seen                    finished
                  period.start  CALLED_EXT  statusHistory[arrived]  period.end
                                            .period.end

- `identifier` (system QUEUE_NUMBER) is the ticket: `YYYY-MM-DD/<clinic Location id>/<n>`; `n`
  counts that clinic's visits of that day, from 1.
- `location[0].location` is the clinic: a `Location` whose `partOf` is the facility's Location
  and whose `type` carries the exam service (MA_DICH_VU of kind "exam", e.g. 02.9001 Khám Nội).
- `type[0]` is the same exam service; `serviceProvider` is the facility's Organization.
- `participant` gets the clinician (`Practitioner` when the account has one) when seen.
- Everything documented in the visit refers to it with `encounter` (Condition, Observation,
  ServiceRequest, DiagnosticReport, MedicationRequest, Composition, AllergyIntolerance).

No side table holds any of this: waiting times are read back from the Encounters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.primitives import VIETNAM, now
from benhan.store.repository import Repo
from benhan.store.search import parse_search

QUEUE_NUMBER = f"{sy.SID}/queue-number"
CALLED_EXT = "https://benhan.vn/StructureDefinition/queue-called"
ACTIVE = ("arrived", "triaged", "in-progress", "onleave")  # a visit still under way


def local_now() -> datetime:
    """Now, in Vietnam's offset (what a desk clock shows and what the resources record)."""
    return now().astimezone(VIETNAM)


def stamp(moment: datetime) -> str:
    """A FHIR dateTime to the second, +07:00."""
    return moment.astimezone(VIETNAM).replace(microsecond=0).isoformat()


def parse_stamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def ref(reference: str) -> dict[str, str]:
    return {"reference": reference}


@dataclass(frozen=True)
class QueueTimes:
    """The four moments of a visit; None where it has not happened (yet)."""

    arrived: datetime | None
    called: datetime | None
    seen: datetime | None
    finished: datetime | None

    def minutes(self, start: str, end: str) -> float | None:
        a, b = getattr(self, start), getattr(self, end)
        return None if a is None or b is None else (b - a).total_seconds() / 60


def queue_times(encounter: Resource) -> QueueTimes:
    period = encounter.get("period") or {}
    called = next(
        (e.get("valueDateTime") for e in encounter.get("extension", []) if e["url"] == CALLED_EXT),
        None,
    )
    end = period.get("end") if encounter.get("status") == "finished" else None
    return QueueTimes(
        parse_stamp(period.get("start")),
        parse_stamp(called),
        parse_stamp(_seen_at(encounter)),
        parse_stamp(end),
    )


def called(encounter: Resource, when: datetime) -> Resource:
    """The visit with its number called now (again: the last call counts)."""
    out = dict(encounter)
    others = [e for e in encounter.get("extension", []) if e["url"] != CALLED_EXT]
    out["extension"] = [*others, {"url": CALLED_EXT, "valueDateTime": stamp(when)}]
    return out


def seen(encounter: Resource, when: datetime, practitioner: str | None) -> Resource:
    """The visit once the clinician starts it: in-progress, the arrived period closed."""
    if encounter.get("status") != "arrived":
        return encounter  # already seen: the first moment counts
    out = dict(encounter)
    start = (encounter.get("period") or {}).get("start") or stamp(when)
    out["statusHistory"] = [
        *encounter.get("statusHistory", []),
        {"status": "arrived", "period": {"start": start, "end": stamp(when)}},
    ]
    out["status"] = "in-progress"
    if practitioner:
        out["participant"] = [*encounter.get("participant", []), {"individual": ref(practitioner)}]
    return out


def finished(encounter: Resource, when: datetime) -> Resource:
    """The visit closed now; a visit never seen is closed as seen at the same moment."""
    out = seen(encounter, when, None)
    history = list(out.get("statusHistory", []))
    history.append(
        {
            "status": "in-progress",
            "period": {"start": _seen_at(out) or stamp(when), "end": stamp(when)},
        }
    )
    return {
        **out,
        "status": "finished",
        "statusHistory": history,
        "period": {**(out.get("period") or {}), "end": stamp(when)},
    }


def _seen_at(encounter: Resource) -> str | None:
    return next(
        (
            h.get("period", {}).get("end")
            for h in encounter.get("statusHistory", [])
            if h["status"] == "arrived"
        ),
        None,
    )


def codes_of(concept: dict[str, Any], system: str) -> list[str]:
    """The codes of a CodeableConcept in one system."""
    return [c["code"] for c in concept.get("coding", []) if c.get("system") == system]


def queue_label(encounter: Resource) -> str:
    """The number printed on the ticket and shown on the board ("007")."""
    for ident in encounter.get("identifier", []):
        if ident.get("system") == QUEUE_NUMBER:
            return f"{int(ident['value'].rsplit('/', 1)[1]):03d}"
    return ""


def queue_value(day: date, clinic_id: str, n: int) -> str:
    return f"{day.isoformat()}/{clinic_id}/{n}"


@dataclass(frozen=True)
class FacilityRefs:
    """The facility's own Organization and Location, by its MA_CSKCB."""

    code: str
    organization: str  # "Organization/…"
    location: str  # "Location/…"
    name: str


def search_page(
    repo: Repo, rtype: str, params: list[tuple[str, str]]
) -> tuple[list[Resource], dict[str, Resource], bool]:
    """One page of a search through the repository (as the user, audited): its resources, the
    included ones by "Type/id", and whether more follow. No total: counting every match is what
    costs on a big facility."""
    params = [*params, ("_total", "none")]
    result = repo.search(parse_search(rtype, params, strict=True), [k for k, _ in params])
    found = [orjson.loads(c) for _t, _i, c in result.matches]
    included = {f"{t}/{i}": orjson.loads(c) for t, i, c in result.included}
    return found, included, result.has_next


def search_all(repo: Repo, rtype: str, params: list[tuple[str, str]]) -> list[Resource]:
    """The resources of one page of a search (see search_page)."""
    return search_page(repo, rtype, params)[0]


def facility_refs(repo: Repo) -> FacilityRefs | None:
    """The signed-in user's facility, or None when the registry has no such facility yet."""
    ident = f"{sy.MA_CSKCB}|{repo.facility}"
    orgs = search_all(repo, "Organization", [("identifier", ident), ("_count", "1")])
    locs = search_all(repo, "Location", [("identifier", ident), ("_count", "1")])
    if not orgs or not locs:
        return None
    org = orgs[0]
    return FacilityRefs(
        repo.facility, f"Organization/{org['id']}", f"Location/{locs[0]['id']}", org.get("name", "")
    )


def display_name(patient: Resource) -> str:
    """A Patient's name as Vietnamese write it: family, middle and given, in that order."""
    names = patient.get("name") or []
    name: dict[str, Any] = (
        next((n for n in names if n.get("use") == "official"), names[0]) if names else {}
    )
    if name.get("text"):
        return str(name["text"])
    return " ".join([name.get("family", ""), *name.get("given", [])]).strip()


__all__ = [
    "ACTIVE",
    "CALLED_EXT",
    "QUEUE_NUMBER",
    "FacilityRefs",
    "QueueTimes",
    "called",
    "codes_of",
    "display_name",
    "facility_refs",
    "finished",
    "local_now",
    "parse_stamp",
    "queue_label",
    "queue_times",
    "queue_value",
    "ref",
    "search_all",
    "search_page",
    "seen",
    "stamp",
]
