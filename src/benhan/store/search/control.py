"""Result parameters: _count, _offset, _total, _summary, _elements, _sort, _include, _type.

http://hl7.org/fhir/R4/search.html#return; `_offset` is this server's paging cursor.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from benhan.fhir.definitions import element_types, resource_types
from benhan.fhir.searchparams import params_for
from benhan.store.search.model import Include, SearchRequest, invalid, unsupported
from benhan.store.search.parse import indexed_params

MAX_COUNT = 1000
SORTABLE = frozenset({"string", "token", "date", "number", "quantity", "uri"})
SUMMARIES = ("true", "text", "data", "count", "false")
TOTALS = ("none", "estimate", "accurate")
# General parameters (http://hl7.org/fhir/R4/http.html#parameters): the HTTP layer acts on them.
PASSED_THROUGH = frozenset({"_format", "_pretty"})
_ELEMENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _int(name: str, raw: str) -> int:
    if not re.fullmatch(r"\d{1,9}", raw.strip()):
        raise invalid(name, raw, "cần một số nguyên không âm", "expected a non-negative integer")
    return int(raw)


def set_count(req: SearchRequest, name: str, raw: str) -> None:
    req.count = min(_int(name, raw), MAX_COUNT)


def set_offset(req: SearchRequest, name: str, raw: str) -> None:
    req.offset = _int(name, raw)


def set_total(req: SearchRequest, name: str, raw: str) -> None:
    if raw not in TOTALS:
        raise invalid(name, raw, f"chỉ nhận {', '.join(TOTALS)}", f"expected one of {TOTALS}")
    req.total = raw


def set_summary(req: SearchRequest, name: str, raw: str) -> None:
    if raw not in SUMMARIES:
        raise invalid(name, raw, f"chỉ nhận {', '.join(SUMMARIES)}", f"expected one of {SUMMARIES}")
    req.summary = raw


def set_elements(req: SearchRequest, name: str, raw: str) -> None:
    known = _element_names(req.rtype)
    out: list[str] = []
    for e in (p.strip() for p in raw.split(",")):
        if not _ELEMENT_RE.match(e) or (known and e not in known):
            raise invalid(name, raw, f"phần tử {e!r} không tồn tại", f"no element {e!r}")
        out.append(e)
    req.elements = out


def _element_names(rtype: str | None) -> frozenset[str]:
    """Top-level element names of a type, choice elements without their [x]."""
    if rtype is None:
        return frozenset()
    return frozenset(e.removesuffix("[x]") for e in element_types().get(rtype, {}))


def set_sort(req: SearchRequest, name: str, raw: str) -> None:
    keys: list[tuple[str, bool]] = []
    params = indexed_params(req.rtype)
    for item in (p.strip() for p in raw.split(",")):
        code = item.removeprefix("-")
        param = params.get(code)
        if code not in ("_id", "_lastUpdated") and (param is None or param.type not in SORTABLE):
            raise invalid(
                name, raw, f"không sắp xếp được theo {code!r}", f"cannot sort by {code!r}"
            )
        keys.append((code, item.startswith("-")))
    req.sort = keys


def set_types(req: SearchRequest, name: str, raw: str) -> None:
    types = [t.strip() for t in raw.split(",")]
    bad = [t for t in types if t not in resource_types()]
    if bad:
        raise invalid(name, raw, f"kiểu tài nguyên không tồn tại: {bad[0]}", f"no type {bad[0]}")
    req.types = sorted({*req.types, *types})


def parse_include(
    name: str, raw: str, rtype: str | None, *, iterate: bool, reverse: bool
) -> Include:
    """`Type:param[:Target]`, `Type:*`, or `*`: every reference from (or, reversed, to) a match."""
    if raw == "*":
        return Include("*" if reverse else rtype or "*", "*", None, iterate)
    parts = raw.split(":")
    if len(parts) not in (2, 3) or parts[0] not in resource_types():
        raise invalid(name, raw, "dạng đúng là Kiểu:tham-số[:Kiểu-đích]", "expected Type:param")
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if code == "*":
        return Include(source, "*", target, iterate)
    param = params_for(source).get(code)
    if param is None or param.type != "reference":
        raise invalid(name, raw, f"{code} không phải tham chiếu", f"{code} is not a reference")
    if target is not None and target not in param.target:
        raise invalid(name, raw, f"{target} không phải kiểu đích", f"{target} is not a target")
    return Include(source, code, target, iterate)


def add_include(req: SearchRequest, name: str, raw: str) -> None:
    code, _, modifier = name.partition(":")
    if modifier not in ("", "iterate", "recurse"):
        raise unsupported(name, "bộ bổ nghĩa không hợp lệ", f"modifier :{modifier}")
    for piece in (p.strip() for p in raw.split(",") if p.strip()):
        reverse = code == "_revinclude"
        inc = parse_include(code, piece, req.rtype, iterate=bool(modifier), reverse=reverse)
        (req.revincludes if reverse else req.includes).append(inc)


CONTROLS: dict[str, Callable[[SearchRequest, str, str], None]] = {
    "_count": set_count,
    "_offset": set_offset,
    "_total": set_total,
    "_summary": set_summary,
    "_elements": set_elements,
    "_sort": set_sort,
    "_include": add_include,
    "_revinclude": add_include,
}


def apply_control(req: SearchRequest, name: str, raw: str) -> bool:
    """Apply a result parameter; False when `name` is not one (then it is a search criterion)."""
    code, _, modifier = name.partition(":")
    if code in PASSED_THROUGH:
        return True
    if code == "_type" and req.rtype is None:
        handler: Callable[[SearchRequest, str, str], None] | None = set_types
    else:
        handler = CONTROLS.get(code)
    if handler is None:
        return False
    if modifier and code not in ("_include", "_revinclude"):
        raise unsupported(name, "bộ bổ nghĩa không hợp lệ", f"modifier :{modifier}")
    handler(req, name, raw)
    return True
