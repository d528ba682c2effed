"""A FHIR interaction as plain data, handed to the router by HTTP routes and Bundle entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Request:
    method: str  # GET, POST, PUT, PATCH, DELETE
    path: str  # relative to the FHIR base, no query: "Patient/1/_history/2", "", "$export"
    query: list[tuple[str, str]] = field(default_factory=list)
    body: Any = None  # parsed JSON (or form pairs for POST _search, already merged into query)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def prefer(self) -> dict[str, str]:
        out = {}
        for part in (self.headers.get("prefer") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key:
                out[key.strip().lower()] = value.strip().strip('"')
        return out


@dataclass(slots=True)
class Response:
    status: int
    body: Any = None  # a dict to serialise, bytes already serialised, or None
    location: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
