"""Search parameters as data (the official R4 definitions) and the index rows extracted on write.

Each parameter's FHIRPath expression is compiled once; on every write the nodes it selects are
turned into rows for the index table of its type (string, token, date, reference, quantity,
number, uri), as http://hl7.org/fhir/R4/search.html describes for each datatype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from benhan.fhir.definitions import Resource, resource_types, search_param_defs
from benhan.fhir.fhirpath import Node, compile_items, compile_path
from benhan.fhir.primitives import MAX_US, date_range, fold, split_ref

INDEXED_TYPES = frozenset({"string", "token", "date", "reference", "quantity", "number", "uri"})
# Served from the resource table itself rather than from index rows.
COLUMN_PARAMS = frozenset({"_id", "_lastUpdated"})
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SearchParam:
    code: str
    type: str
    expression: str
    target: tuple[str, ...]
    select: Callable[[Resource], list[Node]]


@cache
def params_for(rtype: str) -> dict[str, SearchParam]:
    """Every indexed search parameter of one resource type, by code."""
    out: dict[str, SearchParam] = {}
    for d in search_param_defs():
        if d.type not in INDEXED_TYPES or not d.expression or d.code in COLUMN_PARAMS:
            continue
        if rtype not in d.base and not {"Resource", "DomainResource"} & set(d.base):
            continue
        paths = [p.strip() for p in d.expression.split("|")]
        mine = [p for p in paths if _applies(p, rtype)]
        if not mine:
            continue
        expr = " | ".join(mine)
        target = d.target or (tuple(resource_types()) if d.type == "reference" else ())
        out[d.code] = SearchParam(d.code, d.type, expr, target, compile_path(expr))
    return out


def _applies(path: str, rtype: str) -> bool:
    head = path.lstrip("(").split(".", 1)[0].split(" ", 1)[0]
    return head in (rtype, "Resource", "DomainResource")


# Appends the rows of one selected (value, FHIR type) to `out`, each tagged with the param code.
RowMaker = Callable[[Any, str, str, list[Row]], None]
# Per resource type: (param code, index type, row maker, selector, top-level keys or None).
_Plan = tuple[
    tuple[str, str, RowMaker, Callable[[Resource], list[Any]], tuple[str, ...] | None], ...
]


@cache
def _plan(rtype: str) -> _Plan:
    """params_for as a flat tuple, each expression specialised for this resource type."""
    out = []
    for p in params_for(rtype).values():
        selector = compile_items(p.expression, rtype)
        out.append((p.code, p.type, ROW_MAKERS[p.type], selector.run, selector.keys))
    return tuple(out)


def extract(resource: Resource) -> dict[str, list[Row]]:
    """Index rows for every search parameter of the resource, grouped by index type."""
    rows: dict[str, list[Row]] = {t: [] for t in INDEXED_TYPES}
    has = resource.keys()
    for code, kind, make, select, keys in _plan(resource["resourceType"]):
        # Most parameters read elements the resource does not have: a membership test is far
        # cheaper than evaluating the expression to find that out.
        if keys is not None and has.isdisjoint(keys):
            continue
        items = select(resource)
        if items:
            out = rows[kind]
            for value, typ in items:
                make(value, typ, code, out)
    return rows


# Codes, systems and names repeat across resources: folding each distinct string once pays.
# Plain dicts, emptied when full, are cheaper per hit than functools.lru_cache.
_CACHE_MAX = 8192
_folded: dict[str, str] = {}
_ranges: dict[str, tuple[int, int] | None] = {}
_refs: dict[str, tuple[str | None, str | None, str | None]] = {}


def _fold(text: str) -> str:
    """primitives.fold, memoised; ASCII needs neither NFD nor the đ mapping: lower() is exact."""
    if text.isascii():
        return text.lower()
    out = _folded.get(text)
    if out is None:
        if len(_folded) >= _CACHE_MAX:
            _folded.clear()
        out = _folded[text] = fold(text)
    return out


def _date_range(value: str) -> tuple[int, int] | None:
    """primitives.date_range, memoised (a pure function of the string)."""
    try:
        return _ranges[value]
    except KeyError:
        if len(_ranges) >= _CACHE_MAX:
            _ranges.clear()
        out = _ranges[value] = date_range(value)
        return out


def _strings(v: Any, t: str, code: str, out: list[Row]) -> None:
    if isinstance(v, str):
        out.append({"norm": _fold(v)[:256], "value": v[:256], "param": code})
    elif t == "HumanName" and isinstance(v, dict):
        _parts(v, _NAME_PARTS, code, out)
    elif t == "Address" and isinstance(v, dict):
        _parts(v, _ADDRESS_PARTS, code, out)


_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


def _parts(v: dict[str, Any], keys: tuple[str, ...], code: str, out: list[Row]) -> None:
    for k in keys:
        part = v.get(k)
        for s in part if isinstance(part, list) else (part,):
            if isinstance(s, str):
                out.append({"norm": _fold(s)[:256], "value": s[:256], "param": code})


def _tokens(v: Any, t: str, code: str, out: list[Row]) -> None:
    if isinstance(v, bool):
        out.append(_token(None, "true" if v else "false", None, code))
    elif isinstance(v, str | int):
        out.append(_token(None, str(v), None, code))
    elif not isinstance(v, dict):
        return
    elif t == "CodeableConcept" or "coding" in v:
        for c in v.get("coding", []):
            out.append(_token(c.get("system"), c.get("code"), c.get("display"), code))
        if v.get("text"):
            out.append(_token(None, None, v["text"], code))
    elif t == "Identifier":
        text = (v.get("type") or {}).get("text")
        out.append(_token(v.get("system"), v.get("value"), text, code))
    elif t == "ContactPoint":
        out.append(_token(v.get("system"), v.get("value"), None, code))
    elif "code" in v or "system" in v:  # Coding, Quantity as token
        out.append(_token(v.get("system"), v.get("code"), v.get("display"), code))


def _token(system: str | None, value: str | None, text: str | None, code: str) -> Row:
    return {
        "system": system[:256] if system else None,
        "code": value[:256] if value else None,
        "text": _fold(text)[:256] if text else None,
        "param": code,
    }


def _dates(v: Any, t: str, code: str, out: list[Row]) -> None:
    if isinstance(v, str):
        r = _date_range(v)
        if r:
            out.append({"lo": r[0], "hi": r[1], "param": code})
    elif t == "Period" and isinstance(v, dict):
        start, end = v.get("start"), v.get("end")
        lo = _date_range(start) if isinstance(start, str) else None
        hi = _date_range(end) if isinstance(end, str) else None
        if lo or hi:
            out.append(
                {"lo": lo[0] if lo else -MAX_US, "hi": hi[1] if hi else MAX_US, "param": code}
            )
    elif t == "Timing" and isinstance(v, dict):
        for e in v.get("event", []):
            _dates(e, "dateTime", code, out)


def _references(v: Any, t: str, code: str, out: list[Row]) -> None:
    if isinstance(v, str):  # canonical or uri
        out.append({"target_type": None, "target_id": None, "url": v[:512], "param": code})
        return
    ref = v.get("reference") if isinstance(v, dict) else None
    if not isinstance(ref, str):
        return
    parsed = _refs.get(ref)
    if parsed is None:
        if len(_refs) >= _CACHE_MAX:
            _refs.clear()
        parsed = _refs[ref] = _parse_ref(ref)
    out.append({"target_type": parsed[0], "target_id": parsed[1], "url": parsed[2], "param": code})


def _parse_ref(ref: str) -> tuple[str | None, str | None, str | None]:
    """(target_type, target_id, url) of a reference string."""
    parts = split_ref(ref)
    absolute = ref.startswith(("http://", "https://"))
    return (
        parts[0] if parts else None,
        parts[1] if parts and not absolute else None,
        ref[:512] if absolute or not parts else None,
    )


def _quantities(v: Any, t: str, code: str, out: list[Row]) -> None:
    if not isinstance(v, dict):
        return
    value = v.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        out.append(
            {
                "value": float(value),
                "system": v.get("system"),
                "code": v.get("code"),
                "unit": v.get("unit"),
                "param": code,
            }
        )


def _numbers(v: Any, t: str, code: str, out: list[Row]) -> None:
    if isinstance(v, int | float) and not isinstance(v, bool):
        out.append({"value": float(v), "param": code})


def _uris(v: Any, t: str, code: str, out: list[Row]) -> None:
    if isinstance(v, str):
        out.append({"value": v[:512], "param": code})


ROW_MAKERS: dict[str, RowMaker] = {
    "string": _strings,
    "token": _tokens,
    "date": _dates,
    "reference": _references,
    "quantity": _quantities,
    "number": _numbers,
    "uri": _uris,
}
