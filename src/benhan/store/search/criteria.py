"""Row-level WHERE clauses, one builder per parameter type, over the index tables.

Each builder answers "does this index row match this one value?"; match.py turns that into
"which resources have (or lack) such a row". Semantics: http://hl7.org/fhir/R4/search.html#ptypes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from benhan.fhir.primitives import fold
from benhan.store.search.model import (
    Criterion,
    DateValue,
    MissingValue,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
    Value,
)

Cond = ColumnElement[bool]
DAY_US = 86_400_000_000


# The access rule (store/policy.Policy.visible): the rows of a table the caller may read.
# With a type, the rows are of that one type (its scope is checked once, outside SQL).
Visibility = Callable[[FromClause, str | None], ColumnElement[bool] | None]


@dataclass(frozen=True, slots=True)
class Ctx:
    """What SQL building needs beyond the request: the dialect, the moment ("ap" is relative),
    and which rows the caller may see (None: all)."""

    dialect: str
    now_us: int
    visible: Visibility | None = None

    def only_visible(self, t: FromClause, rtype: str | None = None) -> list[Cond]:
        rule = self.visible(t, rtype) if self.visible else None
        return [] if rule is None else [rule]


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def prefix_match(col: Any, text: str, ctx: Ctx) -> Cond:
    """`col` starts with `text`.

    SQLite compares text bytewise (BINARY collation), so a range [text, successor) is exact and
    uses the (…, value) index; its LIKE is case-insensitive and never uses a plain index.
    PostgreSQL: LIKE 'text%' with user % and _ escaped (indexable under the C collation or a
    text_pattern_ops index).
    """
    if not text:
        return sa.true()
    last = ord(text[-1])
    if ctx.dialect == "sqlite" and last < 0xD7FF:
        return sa.and_(col >= text, col < text[:-1] + chr(last + 1))
    cond: Cond = col.like(like_escape(text) + "%", escape="\\")
    return cond


def string_row(ix: sa.Table, mod: str | None, v: Value, ctx: Ctx) -> Cond:
    assert isinstance(v, StringValue)
    if mod == "exact":
        return ix.c.value == v.text[:256]
    folded = fold(v.text)[:256]
    if mod == "contains":
        return ix.c.norm.like(f"%{like_escape(folded)}%", escape="\\")
    return prefix_match(ix.c.norm, folded, ctx)


def token_row(ix: sa.Table, mod: str | None, v: Value, ctx: Ctx) -> Cond:
    if isinstance(v, StringValue):  # :text, on the folded display/text
        return prefix_match(ix.c.text, fold(v.text)[:256], ctx)
    assert isinstance(v, TokenValue)
    if not v.system_given:
        return ix.c.code == v.code
    system = ix.c.system.is_(None) if v.system is None else ix.c.system == v.system
    return system if v.code is None else sa.and_(ix.c.code == v.code, system)


def date_cond(lo: Any, hi: Any, v: DateValue, ctx: Ctx) -> Cond:
    """http://hl7.org/fhir/R4/search.html#prefix on ranges: the row covers [lo, hi]."""
    eq = sa.and_(lo >= v.lo, hi <= v.hi)
    if v.prefix == "ap":
        return sa.and_(lo <= v.hi + _widen(v, ctx), hi >= v.lo - _widen(v, ctx))
    conds: dict[str, Cond] = {
        "eq": eq,
        "ne": sa.not_(eq),
        "gt": hi > v.hi,
        "lt": lo < v.lo,
        "ge": sa.or_(hi > v.hi, eq),
        "le": sa.or_(lo < v.lo, eq),
        "sa": lo > v.hi,
        "eb": hi < v.lo,
    }
    return conds[v.prefix]


def _widen(v: DateValue, ctx: Ctx) -> int:
    """ "ap": 10% of the distance from now to the searched date, at least a day."""
    distance = min(abs(ctx.now_us - v.lo), abs(ctx.now_us - v.hi))
    return max(DAY_US, distance // 10)


def date_row(ix: sa.Table, mod: str | None, v: Value, ctx: Ctx) -> Cond:
    assert isinstance(v, DateValue)
    return date_cond(ix.c.lo, ix.c.hi, v, ctx)


def number_cond(col: Any, v: NumberValue) -> Cond:
    """A stored number is a point; eq/ne use the precision of the searched one."""
    eq = sa.and_(col >= v.lo, col < v.hi)
    if v.prefix == "ap":
        margin = abs(v.value) / 10
        return sa.and_(col >= v.value - margin, col <= v.value + margin)
    conds: dict[str, Cond] = {
        "eq": eq,
        "ne": sa.not_(eq),
        "gt": col > v.value,
        "lt": col < v.value,
        "ge": col >= v.value,
        "le": col <= v.value,
        "sa": col > v.value,
        "eb": col < v.value,
    }
    return conds[v.prefix]


def number_row(ix: sa.Table, mod: str | None, v: Value, ctx: Ctx) -> Cond:
    assert isinstance(v, NumberValue)
    return number_cond(ix.c.value, v)


def quantity_row(ix: sa.Table, mod: str | None, v: Value, ctx: Ctx) -> Cond:
    """`n|system|code` compares the code; `n||code` the code or the human unit."""
    assert isinstance(v, QuantityValue)
    conds = [number_cond(ix.c.value, v.number)]
    if v.system is not None:
        conds.append(ix.c.system == v.system)
    if v.code is not None and v.system is not None:
        conds.append(ix.c.code == v.code)
    elif v.code is not None:
        conds.append(sa.or_(ix.c.code == v.code, ix.c.unit == v.code))
    return sa.and_(*conds)


def reference_row(ix: sa.Table, mod: str | None, v: Value, ctx: Ctx) -> Cond:
    assert isinstance(v, ReferenceValue)
    local = None
    if v.id is not None:
        local = ix.c.target_id == v.id
        if v.rtype is not None:
            local = sa.and_(local, ix.c.target_type == v.rtype)
    if v.url is None:
        assert local is not None
        return local
    by_url = ix.c.url == v.url[:512]
    return by_url if local is None else sa.or_(by_url, local)


def uri_row(ix: sa.Table, mod: str | None, v: Value, ctx: Ctx) -> Cond:
    assert isinstance(v, UriValue)
    uri = v.uri[:512]
    if mod == "below":
        return prefix_match(ix.c.value, uri, ctx)
    if mod == "above":  # the stored uri is a prefix of the searched one: list those prefixes
        return ix.c.value.in_([uri[:n] for n in range(1, len(uri) + 1)])
    return ix.c.value == uri


ROW_BUILDERS: dict[str, Callable[[sa.Table, str | None, Value, Ctx], Cond]] = {
    "string": string_row,
    "token": token_row,
    "date": date_row,
    "number": number_row,
    "quantity": quantity_row,
    "reference": reference_row,
    "uri": uri_row,
}


def rows_condition(ix: sa.Table, crit: Criterion, ctx: Ctx) -> Cond:
    """The OR of the criterion's values on one index row (any row of the param for :missing)."""
    values = [v for v in crit.values if not isinstance(v, MissingValue)]
    if not values:
        return sa.true()
    build = ROW_BUILDERS[crit.type]
    return sa.or_(*(build(ix, crit.modifier, v, ctx) for v in values))
