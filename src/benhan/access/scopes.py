"""SMART on FHIR scopes (v2 `user/Observation.rs`, with v1 `.read`/`.write`/`.*` understood).

http://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html. A scope names a context
(patient, user or system), a resource type or `*`, and the interactions it permits: c(reate),
r(ead), u(pdate), d(elete), s(earch).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

ACTIONS = "cruds"
V1 = {"read": "rs", "write": "cud", "*": "cruds"}
# Types a wildcard never covers: only a scope that names them opens them.
EXPLICIT_ONLY = frozenset({"AuditEvent"})
# Scopes about identity and launch, not data; accepted and passed through.
IDENTITY_SCOPES = frozenset(
    {"openid", "fhirUser", "profile", "offline_access", "online_access", "launch", "launch/patient"}
)
_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.(\*|read|write|c?r?u?d?s?)$")


class ScopeError(ValueError):
    """A scope string that is not a SMART scope."""


@dataclass(frozen=True, slots=True)
class Scope:
    context: str  # patient | user | system
    rtype: str  # a resource type or "*"
    actions: str  # subset of "cruds", in that order

    def __str__(self) -> str:
        return f"{self.context}/{self.rtype}.{self.actions}"

    @classmethod
    def parse(cls, text: str) -> Scope:
        m = _SCOPE.match(text)
        if m is None or m.group(3) == "":
            raise ScopeError(f"phạm vi không hợp lệ / not a SMART scope: {text!r}")
        context, rtype, acts = m.groups()
        return cls(context, rtype, V1.get(acts, acts))

    def covers(self, rtype: str, action: str) -> bool:
        if action not in self.actions:
            return False
        if self.rtype == "*":
            return rtype not in EXPLICIT_ONLY
        return self.rtype == rtype


@dataclass(frozen=True, slots=True)
class Scopes:
    """A set of data scopes; what a caller may do is what some scope covers."""

    items: tuple[Scope, ...]
    extra: tuple[str, ...] = ()  # identity/launch scopes, kept for the token response
    _hash: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Hashed on every request (policy and cache keys): once is enough for a frozen value.
        object.__setattr__(self, "_hash", hash((self.items, self.extra)))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def parse(cls, text: str | Iterable[str]) -> Scopes:
        return _parse(text if isinstance(text, str) else " ".join(text))

    def allows(self, rtype: str, action: str) -> bool:
        wildcard, named = _index(self)
        if action in wildcard and rtype not in EXPLICIT_ONLY:
            return True
        return action in named.get(rtype, "")

    def types(self, action: str) -> tuple[bool, frozenset[str]]:
        """(every type but EXPLICIT_ONLY?, types named) that `action` is allowed on."""
        wildcard = any(s.rtype == "*" and action in s.actions for s in self.items)
        named = frozenset(s.rtype for s in self.items if s.rtype != "*" and action in s.actions)
        return wildcard, named

    def within(self, granted: Scopes) -> Scopes:
        """The part of these (requested) scopes that `granted` permits, action by action."""
        return _within(self, granted)

    def __str__(self) -> str:
        return " ".join([*map(str, self.items), *self.extra])


# Every request parses its token's scope and asks about it dozens of times: the same few
# strings and sets over and over, so each answer is kept.
@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> Scopes:
    items, extra = [], []
    for w in text.split():
        if w in IDENTITY_SCOPES:
            extra.append(w)
        else:
            items.append(Scope.parse(w))
    return Scopes(tuple(dict.fromkeys(items)), tuple(dict.fromkeys(extra)))


@functools.lru_cache(maxsize=1024)
def _index(scopes: Scopes) -> tuple[str, dict[str, str]]:
    """(actions allowed on every type, actions per named type)."""
    wildcard = "".join(s.actions for s in scopes.items if s.rtype == "*")
    named: dict[str, str] = {}
    for s in scopes.items:
        if s.rtype != "*":
            named[s.rtype] = named.get(s.rtype, "") + s.actions
    return wildcard, named


@functools.lru_cache(maxsize=1024)
def _within(requested: Scopes, granted: Scopes) -> Scopes:
    out: list[Scope] = []
    for s in requested.items:
        if s.rtype == "*":
            keep = [g for g in granted.items if set(g.actions) & set(s.actions)]
            for g in keep:
                acts = "".join(a for a in ACTIONS if a in s.actions and a in g.actions)
                out.append(Scope(s.context, g.rtype, acts))
            continue
        acts = "".join(a for a in ACTIONS if a in s.actions and granted.allows(s.rtype, a))
        if acts:
            out.append(Scope(s.context, s.rtype, acts))
    return Scopes(tuple(dict.fromkeys(out)), requested.extra)
