"""Validation of every resource against R4 4.0.1 before anything is stored.

fhirkit checks structure, cardinality and datatypes; it does not check required code bindings,
so this module walks the resource with the official element types and checks each required
binding (http://hl7.org/fhir/R4/terminologies.html#required) itself. Every problem is collected.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import fhirkit
import orjson

from benhan.fhir.definitions import Resource, element_types, required_bindings, resource_types
from benhan.fhir.outcome import FhirError, Issue

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # http://hl7.org/fhir/R4/datatypes.html#id
CODED = frozenset({"code", "Coding", "CodeableConcept", "string", "uri"})
DATE_RE = re.compile(rb'"(\d{4})-(\d{2})-(\d{2})')


def check(resource: Any, raw: bytes | None = None) -> list[Issue]:
    """Every problem with one resource, each with its path; empty when it is valid.

    raw, when given, is the resource already serialised (the write path has it anyway)."""
    if not isinstance(resource, dict):
        return [
            Issue(
                "structure",
                "Tài nguyên phải là một đối tượng JSON / Resource must be a JSON object",
            )
        ]
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or rtype not in resource_types():
        msg = f"resourceType không hợp lệ: {rtype!r} / unknown resourceType {rtype!r}"
        return [Issue("structure", msg, "resourceType")]
    raw = raw or orjson.dumps(resource)  # fhirkit reads bytes twice as fast as Python objects
    issues = [
        Issue("structure" if "unknown element" in i.message else "value", i.message, i.path)
        for i in fhirkit.validate(raw)
        if i.severity == "error"
    ]
    rid = resource.get("id")
    if rid is not None and not (isinstance(rid, str) and ID_RE.match(rid)):
        issues.append(Issue("value", f"id không hợp lệ / invalid id {rid!r}", f"{rtype}.id"))
    issues.extend(_bindings(resource, rtype, rtype))
    issues.extend(_calendar(resource, rtype, raw))
    return issues


def validate(resource: Any, raw: bytes | None = None) -> Resource:
    """Raise 400 with every issue unless the resource is valid R4; return it unchanged."""
    issues = check(resource, raw)
    if issues:
        raise FhirError(400, *issues)
    assert isinstance(resource, dict)
    return resource


@cache
def _bound_keys(type_name: str) -> dict[str, tuple[str, str, bool]]:
    """JSON key → (element, type, bound here) for each child that is or may contain a binding.

    Choice elements are expanded to their keys (valueCode, valueCodeableConcept…), so a walk
    looks up the keys a node has instead of trying every element the type could have.
    """
    out = {}
    for name, (types, *_rest) in element_types().get(type_name, {}).items():
        bound = f"{type_name}.{name}" in required_bindings()
        # A resource inside this one (contained, Bundle.entry.resource) has bindings of its own.
        if not (bound or "Resource" in types or any(_reaches_binding(t) for t in types)):
            continue
        if name.endswith("[x]"):
            for t in types:
                out[name[:-3] + t[0].upper() + t[1:]] = (name, t, bound)
        else:
            out[name] = (name, types[0], bound)
    return out


@cache
def _reaches_binding(type_name: str, _seen: frozenset[str] = frozenset()) -> bool:
    if type_name in _seen or type_name not in element_types():
        return False
    seen = _seen | {type_name}
    for name, (types, *_rest) in element_types()[type_name].items():
        if f"{type_name}.{name}" in required_bindings():
            return True
        if any(_reaches_binding(t, seen) for t in types if t not in ("Extension", "Resource")):
            return True
    return False


def _bindings(node: dict[str, Any], type_name: str, path: str) -> list[Issue]:
    issues: list[Issue] = []
    wanted = _bound_keys(type_name)
    for key, values in node.items():
        spec = wanted.get(key)
        if spec is None:
            continue
        name, t, bound = spec
        many = isinstance(values, list)
        for i, v in enumerate(values if many else (values,)):
            at = f"{path}.{key}[{i}]" if many else f"{path}.{key}"
            if bound and t in CODED:
                issues.extend(_coded(v, t, f"{type_name}.{name}", f"{path}.{key}", i, many))
            elif isinstance(v, dict) and t == "Resource":
                inner = v.get("resourceType")
                if isinstance(inner, str) and inner in resource_types():
                    issues.extend(_bindings(v, inner, at))
            elif isinstance(v, dict) and t != "Extension":
                issues.extend(_bindings(v, t, at))
    return issues


def _coded(value: Any, t: str, element: str, key_path: str, i: int, many: bool) -> list[Issue]:
    allowed = required_bindings()[element]
    path = f"{key_path}[{i}]" if many else key_path
    if t == "Coding":
        codes = [value.get("code")] if isinstance(value, dict) else []
    elif t == "CodeableConcept":
        codes = [c.get("code") for c in value.get("coding", [])] if isinstance(value, dict) else []
        if codes and not any(c in allowed for c in codes):
            return [_binding_issue(codes[0], element, path)]
        return []
    else:
        codes = [value]
    return [_binding_issue(c, element, path) for c in codes if c is not None and c not in allowed]


def _binding_issue(code: Any, element: str, path: str) -> Issue:
    from benhan.fhir.definitions import binding_value_sets

    vs = binding_value_sets()[element]
    return Issue(
        "code-invalid", f"Mã {code!r} không thuộc {vs} / code {code!r} is not in {vs}", path
    )


def _calendar(resource: Resource, rtype: str, raw: bytes) -> list[Issue]:
    """Dates that match the R4 regex but not the calendar (fhirkit accepts 2021-02-29)."""
    if all(_real_day(m) for m in DATE_RE.finditer(raw)):
        return []
    return [
        Issue("value", f"Ngày không tồn tại / no such calendar date {v!r}", p)
        for p, v in _strings(resource, rtype)
        if (m := DATE_RE.match(b'"' + v[:10].encode())) and not _real_day(m)
    ]


def _real_day(m: re.Match[bytes]) -> bool:
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    return not 1 <= month <= 12 or 1 <= day <= calendar.monthrange(year, month)[1]


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")
