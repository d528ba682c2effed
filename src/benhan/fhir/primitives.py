"""Small FHIR chores on plain values: dates and their ranges, references, folded text."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from functools import cache

VIETNAM = timezone(timedelta(hours=7))  # naive FHIR dates are read as Vietnam local time
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_US = -(2**62)
MAX_US = 2**62

_DATE_RE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_FOLD = str.maketrans({"đ": "d", "Đ": "d"})


def fold(text: str) -> str:
    """Lower case without diacritics, so that "nguyen" finds "Nguyễn" and "Đặng" → "dang"."""
    decomposed = unicodedata.normalize("NFD", text.translate(_FOLD))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def now() -> datetime:
    return datetime.now(VIETNAM)


def instant(moment: datetime) -> str:
    """An R4 instant with the +07:00 offset, to the microsecond: meta.lastUpdated must equal
    the stored last_updated exactly, or `_since`/`_lastUpdated` would miss a change made in
    the same millisecond."""
    return moment.astimezone(VIETNAM).isoformat(timespec="microseconds")


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_micros(us: int) -> datetime:
    return (EPOCH + timedelta(microseconds=us)).astimezone(VIETNAM)


def date_range(value: str) -> tuple[int, int] | None:
    """The first and last microsecond a FHIR date/dateTime/instant covers; None if unparsable.

    "2024" covers the whole year, "2024-03-01" the whole day (in +07:00 when no offset is given,
    as http://hl7.org/fhir/R4/search.html#date allows the server to choose).
    """
    m = _DATE_RE.match(value)
    if not m:
        return None
    year, month, day, hh, mi, ss, frac, tz = m.groups()
    try:
        zone = _zone(tz)
        start = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hh or 0),
            int(mi or 0),
            int(ss or 0),
            round(float(frac) * 1e6) if frac else 0,
            tzinfo=zone,
        )
    except ValueError:
        return None
    end = _next(
        start,
        year=month is None,
        month=day is None,
        day=hh is None,
        minute=ss is None and hh is not None,
        second=ss is not None and frac is None,
    )
    if frac:
        end = start + timedelta(microseconds=1)
    return micros(start), micros(end) - 1


@cache
def _zone(tz: str | None) -> timezone:
    if not tz:
        return VIETNAM
    if tz == "Z":
        return UTC
    sign = 1 if tz[0] == "+" else -1
    return timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))


def _next(
    start: datetime, *, year: bool, month: bool, day: bool, minute: bool, second: bool
) -> datetime:
    if year:
        return start.replace(year=start.year + 1)
    if month:
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    if day:
        return start + timedelta(days=1)
    if minute:
        return start + timedelta(minutes=1)
    return start + timedelta(seconds=1)


_REF_RE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def split_ref(reference: str) -> tuple[str, str] | None:
    """("Patient", "123") from "Patient/123", ".../fhir/Patient/123/_history/2"; else None."""
    m = _REF_RE.search(reference)
    return (m[1], m[2]) if m else None
