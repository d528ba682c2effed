"""The parsed form of a FHIR search: typed values and criteria, before any SQL is written."""

from __future__ import annotations

from dataclasses import dataclass, field

from benhan.fhir.outcome import FhirError, Issue

# http://hl7.org/fhir/R4/search.html#prefix
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


@dataclass(frozen=True, slots=True)
class StringValue:
    text: str


@dataclass(frozen=True, slots=True)
class TokenValue:
    """`code`, `system|code`, `|code` (system absent) or `system|` (any code of the system)."""

    system: str | None
    code: str | None
    system_given: bool


@dataclass(frozen=True, slots=True)
class DateValue:
    prefix: str
    lo: int  # first and last microsecond the searched date covers (UTC)
    hi: int


@dataclass(frozen=True, slots=True)
class NumberValue:
    prefix: str
    value: float
    lo: float  # the precision interval [lo, hi) of the value as written: 5.4 → [5.35, 5.45)
    hi: float


@dataclass(frozen=True, slots=True)
class QuantityValue:
    number: NumberValue
    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    rtype: str | None
    id: str | None
    url: str | None  # absolute URL or canonical, matched on the stored url column


@dataclass(frozen=True, slots=True)
class UriValue:
    uri: str


@dataclass(frozen=True, slots=True)
class MissingValue:
    missing: bool


Value = (
    StringValue
    | TokenValue
    | DateValue
    | NumberValue
    | QuantityValue
    | ReferenceValue
    | UriValue
    | MissingValue
)


@dataclass(frozen=True, slots=True)
class Has:
    """`_has:Type:refparam:…`: some `source_type` resource whose `ref_param` points here."""

    source_type: str
    ref_param: str
    inner: Criterion


@dataclass(frozen=True, slots=True)
class Criterion:
    """One search parameter occurrence: its values are OR-ed; criteria of a request are AND-ed.

    `type` is the index type (string, token, …) or a column strategy: "id", "lastUpdated",
    or "has" (then `has` is set). A chained reference carries, per target type, the criterion
    to apply to the referenced resources.
    """

    name: str  # as the client wrote it, for messages
    code: str
    type: str
    modifier: str | None = None
    values: tuple[Value, ...] = ()
    chain: tuple[tuple[str, Criterion], ...] = ()
    has: Has | None = None

    @property
    def negated(self) -> bool:
        """True when a resource matches by having NO matching index row (:not, :missing=true)."""
        if self.modifier == "not":
            return True
        return self.modifier == "missing" and any(
            isinstance(v, MissingValue) and v.missing for v in self.values
        )


@dataclass(frozen=True, slots=True)
class Include:
    """`_include` / `_revinclude`: source type and reference param ("*" = any), target type."""

    source_type: str
    param: str
    target_type: str | None
    iterate: bool


@dataclass
class SearchRequest:
    """Everything parsed and checked, no SQL yet."""

    rtype: str | None  # None = system-level search
    count: int = 20
    offset: int = 0
    total: str = "accurate"  # none | estimate | accurate
    summary: str | None = None
    elements: list[str] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (param code, descending)
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    criteria: list[Criterion] = field(default_factory=list)
    types: list[str] = field(default_factory=list)  # _type, system-level only


@dataclass
class SearchResult:
    matches: list[tuple[str, str, bytes]]  # (rtype, id, content JSON) in order, at most count
    included: list[tuple[str, str, bytes]]  # from _include/_revinclude, not in matches
    total: int | None
    has_next: bool
    patients: set[str] = field(default_factory=set)  # whose records were returned (audit)


def invalid(name: str, value: str, vi: str, en: str) -> FhirError:
    """400 for a value of the wrong form: names the parameter and the value, Vietnamese first."""
    return FhirError(
        400,
        Issue(
            "invalid",
            f"Giá trị không hợp lệ cho tham số {name}={value!r}: {vi} / "
            f"invalid value for search parameter {name}={value!r}: {en}",
        ),
    )


def unsupported(name: str, vi: str, en: str) -> FhirError:
    """400 for a parameter or modifier this server does not know or does not support."""
    return FhirError(
        400,
        Issue(
            "not-supported",
            f"Tham số tìm kiếm không được hỗ trợ: {name} ({vi}) / "
            f"unsupported search parameter: {name} ({en})",
        ),
    )
