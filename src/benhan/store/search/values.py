"""Parsing one search value per parameter type (http://hl7.org/fhir/R4/search.html#ptypes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from benhan.fhir.definitions import resource_types
from benhan.fhir.primitives import date_range, split_ref
from benhan.store.search.model import (
    PREFIXES,
    DateValue,
    MissingValue,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
    Value,
    invalid,
)

_PREFIX_RE = re.compile(r"^([a-z]{2})(?=[^a-z]|$)")
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_UNESCAPE_RE = re.compile(r"\\([\\,$|])")


def split_escaped(text: str, sep: str, maxsplit: int = -1) -> list[str]:
    """Split on `sep` unless it is backslash-escaped (http://hl7.org/fhir/R4/search.html#escaping).

    Escapes are kept in the parts; unescape() each part once it is split to its final shape.
    """
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if c == sep and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    return _UNESCAPE_RE.sub(r"\1", text)


def parse_missing(name: str, raw: str) -> MissingValue:
    if raw not in ("true", "false"):
        raise invalid(name, raw, ":missing nhận true hoặc false", ":missing takes true or false")
    return MissingValue(raw == "true")


def parse_string(name: str, raw: str) -> StringValue:
    return StringValue(unescape(raw))


def parse_token(name: str, raw: str) -> TokenValue:
    parts = split_escaped(raw, "|", 1)
    if len(parts) == 1:
        return TokenValue(None, unescape(parts[0]), system_given=False)
    system, code = (unescape(p) or None for p in parts)
    if system is None and code is None:
        raise invalid(name, raw, "thiếu cả hệ mã lẫn mã", "neither system nor code given")
    return TokenValue(system, code, system_given=True)


def _prefix(name: str, raw: str) -> tuple[str, str]:
    m = _PREFIX_RE.match(raw)
    if not m:
        if raw[:1].isalpha():
            raise invalid(name, raw, "tiền tố không hợp lệ", f"bad prefix (use one of {PREFIXES})")
        return "eq", raw
    if m[1] not in PREFIXES:
        raise invalid(name, raw, "tiền tố không hợp lệ", f"bad prefix (use one of {PREFIXES})")
    return m[1], raw[2:]


def parse_date(name: str, raw: str) -> DateValue:
    prefix, rest = _prefix(name, raw)
    # A "+" in an offset arrives as a space when the client forgot to percent-encode it.
    span = date_range(rest.replace(" ", "+"))
    if span is None:
        raise invalid(name, raw, "không phải ngày/giờ FHIR", "not a FHIR date or dateTime")
    return DateValue(prefix, span[0], span[1])


def _decimal(name: str, raw: str, text: str) -> Decimal:
    if not _NUMBER_RE.match(text):
        raise invalid(name, raw, "không phải số", "not a number")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern already rules this out
        raise invalid(name, raw, "không phải số", "not a number") from None


def parse_number(name: str, raw: str) -> NumberValue:
    """A prefixed number; eq uses the precision written: 100 → [99.5, 100.5)."""
    prefix, rest = _prefix(name, raw)
    d = _decimal(name, raw, rest)
    exponent = d.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1)
    return NumberValue(prefix, float(d), float(d - half), float(d + half))


def parse_quantity(name: str, raw: str) -> QuantityValue:
    parts = split_escaped(raw, "|")
    if len(parts) not in (1, 3):
        raise invalid(name, raw, "dạng đúng là số|hệ|mã", "expected number|system|code")
    number = parse_number(name, unescape(parts[0]))
    if len(parts) == 1:
        return QuantityValue(number, None, None)
    return QuantityValue(number, unescape(parts[1]) or None, unescape(parts[2]) or None)


def parse_uri(name: str, raw: str) -> UriValue:
    return UriValue(unescape(raw))


def parse_reference(name: str, raw: str, target: str | None, targets: tuple[str, ...]) -> Value:
    """`Type/id`, `id`, or an absolute URL; `target` is the `:Type` modifier, if any."""
    text = unescape(raw)
    if _SCHEME_RE.match(text):
        parts = split_ref(text)
        if parts and parts[0] in resource_types() and target in (None, parts[0]):
            return ReferenceValue(parts[0], parts[1], text)
        return ReferenceValue(None, None, text)
    if "/" in text:
        parts = split_ref(text)
        plain = text.split("/_history/", 1)[0]  # a versioned reference finds the resource
        if not parts or f"{parts[0]}/{parts[1]}" != plain or parts[0] not in resource_types():
            raise invalid(name, raw, "tham chiếu không hợp lệ", "not a Type/id reference")
        if target not in (None, parts[0]) or parts[0] not in targets:
            raise invalid(name, raw, "kiểu đích không phù hợp", "type is not a target of it")
        return ReferenceValue(parts[0], parts[1], None)
    if not _ID_RE.match(text):
        raise invalid(name, raw, "id không hợp lệ", "not a valid resource id")
    return ReferenceValue(target, text, None)


PARSERS: dict[str, Callable[[str, str], Value]] = {
    "string": parse_string,
    "token": parse_token,
    "date": parse_date,
    "number": parse_number,
    "quantity": parse_quantity,
    "uri": parse_uri,
}
