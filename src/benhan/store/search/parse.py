"""Search parameter names (modifiers, chains, _has) and their values → typed criteria.

http://hl7.org/fhir/R4/search.html: a repeated name is AND, a comma in a value is OR, a name is
`code[:modifier][.chained-code…]` or `_has:Type:refparam:name`.
"""

from __future__ import annotations

from benhan.fhir.definitions import resource_types
from benhan.fhir.searchparams import SearchParam, params_for
from benhan.store.search.model import Criterion, Has, TokenValue, Value, unsupported
from benhan.store.search.values import (
    PARSERS,
    parse_date,
    parse_missing,
    parse_reference,
    parse_string,
    split_escaped,
    unescape,
)

# Modifiers this engine implements, per parameter type (others are rejected, never ignored:
# ignoring a modifier would silently change what the search means).
MODIFIERS: dict[str, frozenset[str]] = {
    "string": frozenset({"exact", "contains", "missing"}),
    "token": frozenset({"not", "text", "missing"}),
    "date": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "quantity": frozenset({"missing"}),
    "uri": frozenset({"below", "above", "missing"}),
    "reference": frozenset({"missing"}),  # plus a target resource type
}
# Resource-level parameters a system-level search (no type) accepts.
SYSTEM_CODES = frozenset({"_id", "_lastUpdated", "_tag", "_profile", "_security"})
MAX_DEPTH = 3  # chained and _has levels


class UnknownParam(Exception):
    """A parameter code that is not a supported search parameter of the type searched."""


def indexed_params(rtype: str | None) -> dict[str, SearchParam]:
    if rtype is None:
        return {c: p for c, p in params_for("Resource").items() if c in SYSTEM_CODES}
    return params_for(rtype)


def parse_criterion(rtype: str | None, name: str, raw: str, depth: int = 0) -> Criterion | None:
    """One (name, value) pair; None when every OR-ed value is empty (empty means: no filter).

    Raises UnknownParam for codes this engine does not know (the caller applies strictness),
    FhirError 400 for anything malformed.
    """
    if depth > MAX_DEPTH:
        raise UnknownParam(name)
    if name.startswith("_has:") or name == "_has":
        return _parse_has(rtype, name, raw, depth)
    head, dot, rest = name.partition(".")
    code, _, modifier = head.partition(":")
    if not code:
        raise UnknownParam(name)
    if code in ("_id", "_lastUpdated") and not dot:
        return _column_criterion(name, code, modifier or None, raw)
    param = indexed_params(rtype).get(code)
    if param is None:
        raise UnknownParam(name)
    if dot:
        return _parse_chain(param, name, modifier or None, rest, raw, depth)
    return _indexed_criterion(param, name, modifier or None, raw)


def _pieces(raw: str) -> list[str]:
    return [p for p in split_escaped(raw, ",") if p != ""]


def _column_criterion(name: str, code: str, modifier: str | None, raw: str) -> Criterion | None:
    if modifier is not None:
        raise unsupported(name, "bộ bổ nghĩa không hợp lệ", f"modifier :{modifier} not allowed")
    pieces = _pieces(raw)
    if not pieces:
        return None
    if code == "_id":  # ids hold no "|": the whole piece is the id
        ids = tuple(TokenValue(None, unescape(p), system_given=False) for p in pieces)
        return Criterion(name, code, "id", None, ids)
    return Criterion(name, code, "lastUpdated", None, tuple(parse_date(name, p) for p in pieces))


def _indexed_criterion(
    param: SearchParam, name: str, modifier: str | None, raw: str
) -> Criterion | None:
    target = _check_modifier(param, name, modifier)
    if modifier == "missing":
        if raw == "":
            return None
        return Criterion(name, param.code, param.type, "missing", (parse_missing(name, raw),))
    pieces = _pieces(raw)
    if not pieces:
        return None
    values = tuple(_value(param, name, modifier, target, p) for p in pieces)
    kept = None if target else modifier
    return Criterion(name, param.code, param.type, kept, values)


def _value(
    param: SearchParam, name: str, modifier: str | None, target: str | None, piece: str
) -> Value:
    if param.type == "reference":
        return parse_reference(name, piece, target, param.target)
    if param.type == "token" and modifier == "text":
        return parse_string(name, piece)
    return PARSERS[param.type](name, piece)


def _check_modifier(param: SearchParam, name: str, modifier: str | None) -> str | None:
    """Reject a modifier the type does not have; returns the `:Type` of a reference, if any."""
    if modifier is None or modifier in MODIFIERS[param.type]:
        return None
    if param.type == "reference" and modifier in param.target:
        return modifier
    raise unsupported(
        name,
        f"bộ bổ nghĩa :{modifier} không dùng được với tham số kiểu {param.type}",
        f"modifier :{modifier} is not supported for a {param.type} parameter",
    )


def _parse_chain(
    param: SearchParam, name: str, modifier: str | None, rest: str, raw: str, depth: int
) -> Criterion | None:
    """`subject:Patient.identifier=…`, `subject.name=…`: apply `rest` to the referenced types."""
    if param.type != "reference":
        raise unsupported(name, "chỉ nối chuỗi qua tham chiếu", "chaining needs a reference")
    target = _check_modifier(param, name, modifier)
    if modifier is not None and target is None:
        raise unsupported(name, "bộ bổ nghĩa không hợp lệ", f"modifier :{modifier} in a chain")
    types = (target,) if target else param.target
    code = rest.partition(".")[0].partition(":")[0]
    chain: list[tuple[str, Criterion]] = []
    for t in types:
        if code in ("_id", "_lastUpdated") or code in indexed_params(t):
            inner = parse_criterion(t, rest, raw, depth + 1)
            if inner is None:
                return None
            chain.append((t, inner))
    if not chain:
        raise UnknownParam(name)
    return Criterion(name, param.code, "reference", None, (), tuple(chain))


def _parse_has(rtype: str | None, name: str, raw: str, depth: int) -> Criterion | None:
    """`_has:Observation:patient:code=…` (http://hl7.org/fhir/R4/search.html#has)."""
    parts = name.split(":", 3)
    if len(parts) < 4 or not all(parts):
        raise unsupported(
            name,
            "dạng đúng là _has:Kiểu:tham-chiếu:tham-số",
            "expected _has:Type:reference-param:param",
        )
    _, source, ref_code, rest = parts
    if rtype is None:
        raise UnknownParam(name)
    if source not in resource_types():
        raise unsupported(name, "kiểu tài nguyên không hợp lệ", f"unknown resource type {source}")
    ref = params_for(source).get(ref_code)
    if ref is None or ref.type != "reference" or rtype not in ref.target:
        raise unsupported(
            name,
            f"{source}.{ref_code} không phải tham chiếu tới {rtype}",
            f"{source}:{ref_code} is not a reference parameter that can point at {rtype}",
        )
    inner = parse_criterion(source, rest, raw, depth + 1)
    if inner is None:
        return None
    return Criterion(name, "_has", "has", has=Has(source, ref_code, inner))
