"""Finding a person at the registration desk from whatever the desk has in hand.

One search box takes a scanned or pasted QR text of the chip card, a 12-digit personal ID, a
9-digit old ID, a health-insurance number (15-character legacy code or 10-digit BHXH number), or
a name with an optional birth year ("nguyen thi huong 1987"), accent- and case-insensitive. The
search runs through the repository as the desk's user, so it sees what they may see and is
audited like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from benhan.emr.citizen_card import CitizenCard, parse
from benhan.emr.model import search_page
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.store.repository import Repo

LIMIT = 20  # people per page of the desk's results
_YEAR = re.compile(r"^(.*?)\s*\b((?:19|20)\d{2})$")


@dataclass(frozen=True)
class Query:
    """What the box held, understood: how to search, and the card when it was a QR text."""

    kind: str  # qr | cccd | cmnd | bhyt | name
    params: tuple[tuple[str, str], ...]
    card: CitizenCard | None = None


def understand(text: str, *, today: date) -> Query:
    """The search a desk input stands for; CardError for a QR text that does not read."""
    value = text.strip()
    if "|" in value:
        card = parse(value, today=today)
        return Query("qr", (("identifier", f"{sy.CCCD}|{card.cccd}"),), card)
    compact = value.replace(" ", "").upper()
    if re.fullmatch(r"\d{12}", compact):
        return Query("cccd", (("identifier", f"{sy.CCCD}|{compact}"),))
    if re.fullmatch(r"\d{9}", compact):
        return Query("cmnd", (("identifier", f"{sy.CMND}|{compact}"),))
    if re.fullmatch(r"[A-Z]{2}\d{13}|\d{10}", compact):
        return Query("bhyt", (("identifier", f"{sy.BHYT}|{compact}"),))
    name, year = value, None
    m = _YEAR.match(value)
    if m:
        name, year = m.group(1), m.group(2)
    params = [("name", " ".join(name.split()))] if name.strip() else []
    if year:
        params.append(("birthdate", year))
    return Query("name", tuple(params))


def find(repo: Repo, query: Query, offset: int = 0) -> tuple[list[Resource], bool]:
    """One page of the Patients the query matches (LIMIT from `offset`), as the repository's
    user may see them, and whether more follow."""
    if not query.params:
        return [], False
    params = [*query.params, ("_count", str(LIMIT)), ("_offset", str(offset)), ("_sort", "name")]
    people, _included, more = search_page(repo, "Patient", params)
    return people, more
