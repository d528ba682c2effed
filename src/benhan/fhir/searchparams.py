"""Search parameters as data (the official R4 definitions) and the index rows extracted on write.

Each parameter's FHIRPath expression is compiled once; on every write the nodes it selects are
turned into rows for the index table of its type (string, token, date, reference, quantity,
number, uri), as http://hl7.org/fhir/R4/search.html describes for each datatype.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from benhan.fhir.definitions import Resource, resource_types, search_param_defs
from benhan.fhir.fhirpath import Node, compile_path
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


def extract(resource: Resource) -> dict[str, list[Row]]:
    """Index rows for every search parameter of the resource, grouped by index type."""
    rows: dict[str, list[Row]] = {t: [] for t in INDEXED_TYPES}
    for p in params_for(resource["resourceType"]).values():
        out = rows[p.type]
        for node in p.select(resource):
            for row in ROW_MAKERS[p.type](node):
                row["param"] = p.code
                out.append(row)
    return rows


def _strings(node: Node) -> Iterator[Row]:
    v, t = node.value, node.type
    if isinstance(v, str):
        yield _string_row(v)
    elif t == "HumanName" and isinstance(v, dict):
        yield from _parts(v, ("text", "family", "given", "prefix", "suffix"))
    elif t == "Address" and isinstance(v, dict):
        yield from _parts(v, ("text", "line", "city", "district", "state", "postalCode", "country"))


def _parts(v: dict[str, Any], keys: tuple[str, ...]) -> Iterator[Row]:
    for k in keys:
        part = v.get(k)
        for s in part if isinstance(part, list) else [part]:
            if isinstance(s, str):
                yield _string_row(s)


def _string_row(s: str) -> Row:
    return {"norm": fold(s)[:256], "value": s[:256]}


def _tokens(node: Node) -> Iterator[Row]:
    v, t = node.value, node.type
    if isinstance(v, bool):
        yield _token(None, "true" if v else "false")
    elif isinstance(v, str | int):
        yield _token(None, str(v))
    elif not isinstance(v, dict):
        return
    elif t == "CodeableConcept" or "coding" in v:
        for c in v.get("coding", []):
            yield _token(c.get("system"), c.get("code"), c.get("display"))
        if v.get("text"):
            yield _token(None, None, v["text"])
    elif t == "Identifier":
        yield _token(v.get("system"), v.get("value"), (v.get("type") or {}).get("text"))
    elif t == "ContactPoint":
        yield _token(v.get("system"), v.get("value"))
    elif "code" in v or "system" in v:  # Coding, Quantity as token
        yield _token(v.get("system"), v.get("code"), v.get("display"))


def _token(system: str | None, code: str | None, text: str | None = None) -> Row:
    return {
        "system": system[:256] if system else None,
        "code": code[:256] if code else None,
        "text": fold(text)[:256] if text else None,
    }


def _dates(node: Node) -> Iterator[Row]:
    v, t = node.value, node.type
    if isinstance(v, str):
        r = date_range(v)
        if r:
            yield {"lo": r[0], "hi": r[1]}
    elif t == "Period" and isinstance(v, dict):
        lo = date_range(v["start"]) if isinstance(v.get("start"), str) else None
        hi = date_range(v["end"]) if isinstance(v.get("end"), str) else None
        if lo or hi:
            yield {"lo": lo[0] if lo else -MAX_US, "hi": hi[1] if hi else MAX_US}
    elif t == "Timing" and isinstance(v, dict):
        for e in v.get("event", []):
            yield from _dates(Node(e, "dateTime"))


def _references(node: Node) -> Iterator[Row]:
    v = node.value
    if isinstance(v, str):  # canonical or uri
        yield {"target_type": None, "target_id": None, "url": v[:512]}
        return
    ref = v.get("reference") if isinstance(v, dict) else None
    if not isinstance(ref, str):
        return
    parts = split_ref(ref)
    absolute = ref.startswith(("http://", "https://"))
    yield {
        "target_type": parts[0] if parts else None,
        "target_id": parts[1] if parts and not absolute else None,
        "url": ref[:512] if absolute or not parts else None,
    }


def _quantities(node: Node) -> Iterator[Row]:
    v = node.value
    if (
        isinstance(v, dict)
        and isinstance(v.get("value"), int | float)
        and not isinstance(v.get("value"), bool)
    ):
        yield {
            "value": float(v["value"]),
            "system": v.get("system"),
            "code": v.get("code"),
            "unit": v.get("unit"),
        }


def _numbers(node: Node) -> Iterator[Row]:
    if isinstance(node.value, int | float) and not isinstance(node.value, bool):
        yield {"value": float(node.value)}


def _uris(node: Node) -> Iterator[Row]:
    if isinstance(node.value, str):
        yield {"value": node.value[:512]}


ROW_MAKERS: dict[str, Callable[[Node], Iterator[Row]]] = {
    "string": _strings,
    "token": _tokens,
    "date": _dates,
    "reference": _references,
    "quantity": _quantities,
    "number": _numbers,
    "uri": _uris,
}
