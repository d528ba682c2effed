"""Bundles and resource views: searchset and history Bundles, _summary and _elements, ETags."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from benhan.fhir.definitions import Resource, element_types
from benhan.fhir.primitives import from_micros, instant
from benhan.store.history import Version

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
ALWAYS = frozenset({"resourceType", "id", "meta"})


def etag(version_id: int | str) -> str:
    return f'W/"{version_id}"'


def full_url(base: str, rtype: str, rid: str) -> str:
    return f"{base}/{rtype}/{rid}"


def trim(content: bytes, summary: str | None, elements: list[str]) -> Any:
    """Apply _summary / _elements (http://hl7.org/fhir/R4/search.html#summary) to one resource."""
    if not elements and summary in (None, "false"):
        return orjson.Fragment(content)
    res: Resource = orjson.loads(content)
    rtype = res["resourceType"]
    defs = element_types().get(rtype, {})
    if elements:
        keep = ALWAYS | _json_keys(res, set(elements)) | _mandatory(res, defs)
    elif summary == "true":
        keep = ALWAYS | {k for k in res if _element(k, defs)[2]}
    elif summary == "text":
        keep = ALWAYS | {"text"} | _mandatory(res, defs)
    else:  # data
        keep = frozenset(res) - {"text"}
    out = {k: v for k, v in res.items() if k in keep}
    meta = dict(out.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    out["meta"] = meta
    return out


def _element(key: str, defs: dict[str, list[Any]]) -> list[Any]:
    if key in defs:
        return defs[key]
    for name, d in defs.items():
        if name.endswith("[x]") and key.startswith(name[:-3]):
            return d
    return [[], False, False, False]


def _json_keys(res: Resource, names: set[str]) -> set[str]:
    return {
        k
        for k in res
        if k in names or any(k.startswith(n) and k[len(n) :][:1].isupper() for n in names)
    }


def _mandatory(res: Resource, defs: dict[str, list[Any]]) -> set[str]:
    return {k for k in res if _element(k, defs)[3]}


def searchset(
    base: str,
    path: str,
    query: list[tuple[str, str]],
    result: Any,
    req: Any,
    issues: Resource | None,
) -> dict[str, Any]:
    """A searchset Bundle with self/next/previous links that replay the same search."""
    entries = [_entry(base, r, "match", req) for r in result.matches]
    entries += [_entry(base, r, "include", req) for r in result.included]
    if issues:
        entries.append({"resource": issues, "search": {"mode": "outcome"}})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        bundle["total"] = result.total
    bundle["link"] = _links(base, path, query, req.offset, req.count, result.has_next)
    bundle["entry"] = entries
    return bundle


def _entry(base: str, row: tuple[str, str, bytes], mode: str, req: Any) -> dict[str, Any]:
    rtype, rid, content = row
    return {
        "fullUrl": full_url(base, rtype, rid),
        "resource": trim(content, req.summary, req.elements),
        "search": {"mode": mode},
    }


def _links(
    base: str, path: str, query: list[tuple[str, str]], offset: int, count: int, has_next: bool
) -> list[dict[str, str]]:
    kept = [(k, v) for k, v in query if k not in ("_offset", "_count")]

    def url(at: int) -> str:
        q = urlencode([*kept, ("_count", str(count)), ("_offset", str(at))])
        return f"{base}/{path}?{q}" if path else f"{base}?{q}"

    links = [{"relation": "self", "url": url(offset)}]
    if has_next:
        links.append({"relation": "next", "url": url(offset + count)})
    if offset > 0:
        links.append({"relation": "previous", "url": url(max(0, offset - count))})
    return links


def history_bundle(
    base: str,
    path: str,
    query: list[tuple[str, str]],
    versions: list[Version],
    total: int,
    offset: int,
    count: int,
) -> dict[str, Any]:
    entries = []
    for v in versions:
        entry: dict[str, Any] = {"fullUrl": full_url(base, v.rtype, v.id)}
        if v.content is not None:
            entry["resource"] = orjson.Fragment(v.content)
        url = v.rtype if v.method == "POST" else f"{v.rtype}/{v.id}"
        entry["request"] = {"method": v.method, "url": url}
        entry["response"] = {
            "status": "201 Created"
            if v.method == "POST"
            else ("204 No Content" if v.deleted else "200 OK"),
            "etag": etag(v.version_id),
            "lastModified": instant(from_micros(v.last_updated)),
        }
        entries.append(entry)
    return {
        "resourceType": "Bundle",
        "type": "history",
        "total": total,
        "link": _links(base, path, query, offset, count, offset + count < total),
        "entry": entries,
    }
