"""A compiled FHIRPath subset: exactly what the official R4 SearchParameter expressions use."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any, TypeAlias

from benhan.fhir.definitions import element_types, resource_types


@dataclass(frozen=True, slots=True)
class Node:
    value: Any  # the JSON value: dict for complex types, str/bool/int/float/Decimal for primitives
    type: str  # FHIR type code: "HumanName", "date", "Patient.contact", "boolean", ...


# Internally a node is a plain (value, type) tuple: a tuple is several times cheaper to build
# than a frozen dataclass, so only the final result is wrapped in Node.
Item: TypeAlias = tuple[Any, str]
# Every compiled sub-expression: (input collection, root resource) → output collection.
Fn: TypeAlias = Callable[[list[Item], Item], list[Item]]
# How one element is read from one owner type: (JSON key, node type, type is the value's own
# resourceType — for elements typed "Resource" such as Bundle.entry.resource and contained).
Accessor: TypeAlias = tuple[tuple[str, str, bool], ...]
_UNSET: Accessor = (("", "", False),)  # a distinct object: "not looked up yet" in memo tables


@dataclass(frozen=True, slots=True)
class _Step:
    """One step of a static path: ("member", name), ("type", types) or ("where", keep(item))."""

    kind: str
    arg: Any


class _UnsupportedError(Exception):
    """Raised anywhere in the parser; compile_path turns it into the documented ValueError."""


_TRUE: Item = (True, "boolean")
_FALSE: Item = (False, "boolean")
_ANY_RESOURCE = ("Resource", "DomainResource")
_QUANTITY_KINDS = ("Quantity", "Age", "Count", "Distance", "Duration", "MoneyQuantity")
_SYSTEM_TYPES = {
    "Boolean": "boolean",
    "String": "string",
    "Integer": "integer",
    "Decimal": "decimal",
    "Date": "date",
    "DateTime": "dateTime",
    "Time": "time",
    "Quantity": "Quantity",
}


# ---------------------------------------------------------------- type information


@cache
def _type_codes() -> frozenset[str]:
    """Every type name the definitions know: resources, data types, backbones, primitives."""
    elements = element_types()
    codes = set(elements) | set(resource_types())
    for members in elements.values():
        for spec in members.values():  # [type codes, is_list, …]: only the codes matter here
            codes.update(spec[0])
    return frozenset(codes)


@cache
def _choice_suffixes() -> dict[str, str]:
    """Choice-key suffix → type code ("DateTime" → "dateTime"), for reading untyped nodes."""
    return {code[:1].upper() + code[1:]: code for code in _type_codes() if "." not in code}


@cache
def _type_set(name: str) -> frozenset[str]:
    """The node types that `is T`, `as T` and `ofType(T)` accept: T and its specialisations."""
    name = name.removeprefix("FHIR.")
    if name.startswith("System."):
        name = _SYSTEM_TYPES.get(name.removeprefix("System."), "")
    known = _type_codes()
    if name not in known:
        # The spec writes ofType(DateTime) once (Observation code-value-date): FHIR dateTime.
        name = name[:1].lower() + name[1:]
        if name not in known:
            raise _UnsupportedError(name)
    if name in _ANY_RESOURCE:
        return frozenset(resource_types()) | {name}
    if name == "Quantity":
        return frozenset(_QUANTITY_KINDS)
    return frozenset((name,))


@cache
def _accessors(owner: str, name: str, only: frozenset[str] | None) -> Accessor | None:
    """How `owner.name` is read; None for an untyped owner (a dict without resourceType)."""
    if not owner:
        return None
    members = element_types().get(owner)
    if members is None:
        return ()
    if name in members:
        pairs = [(name, members[name][0][0])]
    elif name + "[x]" in members:
        pairs = [(name + t[:1].upper() + t[1:], t) for t in members[name + "[x]"][0]]
    else:
        return ()
    return tuple(
        (key, typ, typ == "Resource")
        for key, typ in pairs
        if only is None or typ in only or typ == "Resource"
    )


def _own_type(value: Any) -> str:
    return value.get("resourceType", "") if isinstance(value, dict) else ""


def _infer_type(value: Any) -> str:
    """Best guess for a value reached without type information (bool before int: a subclass)."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float | Decimal):
        return "decimal"
    return _own_type(value)


def _reference_target(value: Any) -> tuple[str, str] | None:
    """(type, id) of a Reference's literal reference: "Patient/1", ".../fhir/Patient/1/_history/2".

    "urn:uuid:…", "#contained", conditional and identifier-only references have none.
    """
    ref = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(ref, str):
        return None
    parts = ref.split("/")
    n = len(parts)
    if n >= 4 and parts[-2] == "_history":
        n -= 2
    if n < 2 or not parts[n - 1] or parts[n - 2] not in resource_types():
        return None
    return parts[n - 2], parts[n - 1]


# ---------------------------------------------------------------- navigation


def _emit(value: Any, typ: str, nested: bool, out: list[Item]) -> None:
    """Append a JSON value as nodes, flattening lists (FHIRPath collections are flat)."""
    if isinstance(value, list):
        if nested:
            out.extend([(x, _own_type(x)) for x in value if x is not None])
        else:
            out.extend([(x, typ) for x in value if x is not None])
    else:
        out.append((value, _own_type(value) if nested else typ))


def _untyped_member(value: dict[str, Any], name: str, out: list[Item]) -> None:
    """Navigate without type information: the key itself, else a choice key like valueQuantity."""
    found = value.get(name)
    if found is not None:
        for x in found if isinstance(found, list) else (found,):
            if x is not None:
                out.append((x, _infer_type(x)))
        return
    n = len(name)
    suffixes = _choice_suffixes()
    for key, found in value.items():
        if len(key) > n and key.startswith(name) and key[n].isupper():
            typ = suffixes.get(key[n:])
            if typ is not None:
                _emit(found, typ, False, out)


def _member(name: str, only: frozenset[str] | None) -> Fn:
    """Child navigation; `only` narrows a choice element when an ofType() follows."""
    # Per-step memo: the hot loop costs one dict lookup per node instead of a cached call.
    table: dict[str, Accessor | None] = {}

    def step(items: list[Item], root: Item) -> list[Item]:
        out: list[Item] = []
        for value, owner in items:
            if not isinstance(value, dict):
                continue
            acc = table.get(owner, _UNSET)
            if acc is _UNSET:
                acc = table[owner] = _accessors(owner, name, only)
            if acc is None:
                _untyped_member(value, name, out)
                continue
            for key, typ, nested in acc:
                found = value.get(key)
                if found is not None:
                    _emit(found, typ, nested, out)
        return out

    return step


def _type_filter(name: str) -> Fn:
    """A leading type name (`Patient.name`): keeps the context only if it is of that type."""
    if name in _ANY_RESOURCE:
        return lambda items, root: items

    def step(items: list[Item], root: Item) -> list[Item]:
        return [item for item in items if item[1] == name]

    return step


def _of_type(types: frozenset[str]) -> Fn:
    return lambda items, root: [item for item in items if item[1] in types]


def _is_type(types: frozenset[str]) -> Fn:
    # `is` wants a single item; an empty or multi-item input yields empty rather than an error.
    return lambda items, root: [(items[0][1] in types, "boolean")] if len(items) == 1 else []


def _index(n: int) -> Fn:
    return lambda items, root: items[n : n + 1]


def _constant(item: Item) -> Fn:
    return lambda items, root: [item]


class _Total:
    """A step with a result even for an empty input (exists(), empty()): chains must reach it."""

    __slots__ = ("run",)

    def __init__(self, run: Fn) -> None:
        self.run = run

    def __call__(self, items: list[Item], root: Item) -> list[Item]:
        return self.run(items, root)


def _chain(steps: list[Fn]) -> Fn:
    """Run steps left to right, stopping as soon as the collection is empty."""
    for k, step in enumerate(steps):
        if k and isinstance(step, _Total):
            return _through(_chain(steps[:k]), step.run, steps[k + 1 :])
    if len(steps) == 1:
        return steps[0]
    first, rest = steps[0], tuple(steps[1:])

    def run(items: list[Item], root: Item) -> list[Item]:
        items = first(items, root)
        for step in rest:
            if not items:
                return items
            items = step(items, root)
        return items

    return run


def _through(head: Fn, total: Fn, rest: list[Fn]) -> Fn:
    """head, then `total` even when head yields nothing, then the rest."""
    tail = _chain(rest) if rest else None

    def run(items: list[Item], root: Item) -> list[Item]:
        out = total(head(items, root), root)
        return tail(out, root) if tail is not None and out else out

    return run


# ---------------------------------------------------------------- functions and operators


def _bool3(items: list[Item]) -> bool | None:
    """FHIRPath singleton evaluation: empty → unknown, one non-boolean item → true."""
    if len(items) != 1:
        return None
    value = items[0][0]
    return value if isinstance(value, bool) else True


def _where(criteria: Fn) -> Fn:
    return lambda items, root: [i for i in items if _bool3(criteria([i], root)) is True]


def _where_resolves_to(types: frozenset[str]) -> Fn:
    """`where(resolve() is T)` without resolving: the reference string names the type."""

    def step(items: list[Item], root: Item) -> list[Item]:
        out: list[Item] = []
        for item in items:
            target = _reference_target(item[0])
            if target is not None and target[0] in types:
                out.append(item)
        return out

    return step


def _resolve(items: list[Item], root: Item) -> list[Item]:
    """A stub of each referenced resource: enough for `is T`; the store is never consulted."""
    out: list[Item] = []
    for item in items:
        target = _reference_target(item[0])
        if target is not None:
            out.append(({"resourceType": target[0], "id": target[1]}, target[0]))
    return out


def _exists(items: list[Item], root: Item) -> list[Item]:
    return [_TRUE if items else _FALSE]


def _exists_where(where: Fn) -> _Total:
    return _Total(lambda items, root: _exists(where(items, root), root))


def _empty(items: list[Item], root: Item) -> list[Item]:
    return [_FALSE if items else _TRUE]


def _not(items: list[Item], root: Item) -> list[Item]:
    value = _bool3(items)
    return [] if value is None else [(not value, "boolean")]


def _first(items: list[Item], root: Item) -> list[Item]:
    return items[:1]


def _this(items: list[Item], root: Item) -> list[Item]:
    return items


def _root(items: list[Item], root: Item) -> list[Item]:
    return [root]


_NO_ARG_FUNCTIONS: dict[str, Fn] = {
    "resolve": _resolve,
    "exists": _Total(_exists),
    "empty": _Total(_empty),
    "not": _not,
    "first": _first,
}
_VARIABLES: dict[str, Fn] = {"$this": _this, "%resource": _root, "%rootResource": _root}


def _same(a: Any, b: Any) -> bool:
    # Python says True == 1; FHIRPath does not compare booleans with numbers.
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def _equality(left: Fn, right: Fn, negate: bool) -> Fn:
    def run(items: list[Item], root: Item) -> list[Item]:
        a = left(items, root)
        b = right(items, root) if a else a
        if not b:
            return []
        same = len(a) == len(b) and all(_same(x[0], y[0]) for x, y in zip(a, b, strict=True))
        return [(same != negate, "boolean")]

    return run


def _and(left: Fn, right: Fn) -> Fn:
    """Three-valued `and`: false wins, then unknown (empty), else true."""

    def run(items: list[Item], root: Item) -> list[Item]:
        a = _bool3(left(items, root))
        if a is False:
            return [_FALSE]
        b = _bool3(right(items, root))
        if b is False:
            return [_FALSE]
        return [_TRUE] if a and b else []

    return run


def _or(left: Fn, right: Fn) -> Fn:
    """Three-valued `or`: true wins, then unknown (empty), else false."""

    def run(items: list[Item], root: Item) -> list[Item]:
        a = _bool3(left(items, root))
        if a is True:
            return [_TRUE]
        b = _bool3(right(items, root))
        if b is True:
            return [_TRUE]
        return [_FALSE] if a is False and b is False else []

    return run


def _distinct(results: list[list[Item]]) -> list[Item]:
    """`|` removes duplicates: complex values by identity, primitives by value."""
    seen: set[tuple[Any, str]] = set()
    out: list[Item] = []
    for result in results:
        for value, typ in result:
            key = (id(value), typ) if isinstance(value, dict | list) else (value, typ)
            if key not in seen:
                seen.add(key)
                out.append((value, typ))
    return out


@dataclass(slots=True)
class _Expr:
    fn: Fn
    root_type: str | None = None  # "Patient" when the expression starts with the type `Patient`
    resolves: bool = False  # the expression is a bare `resolve()`
    resolve_is: frozenset[str] | None = None  # the expression is `resolve() is T`
    # A plain path from a resource type (`Observation.value.ofType(Quantity)`), step by step,
    # for compile_items to specialise once the resource type is known; None for anything else.
    path: tuple[_Step, ...] | None = None
    branches: tuple[_Expr, ...] = ()  # the operands of a top-level `|`


def _union(branches: list[_Expr]) -> _Expr:
    """`A | B | …`; branches that start with another resource type are skipped up front.

    The official expressions union up to 32 resource types (`AllergyIntolerance.patient |
    CarePlan.subject… | …`) and are evaluated on every resource; a lookup beats 32 calls.
    """
    every = tuple(b.fn for b in branches)
    typed = {b.root_type for b in branches if b.root_type is not None}
    plans = {t: tuple(b.fn for b in branches if b.root_type in (t, None)) for t in typed}
    untyped = tuple(b.fn for b in branches if b.root_type is None)

    def run(items: list[Item], root: Item) -> list[Item]:
        fns = plans.get(items[0][1], untyped) if len(items) == 1 else every
        if len(fns) == 1:  # the usual case: only the branch for this resource type applies
            return fns[0](items, root)
        results = [r for fn in fns if (r := fn(items, root))]
        if len(results) < 2:
            return results[0] if results else []
        return _distinct(results)

    common = branches[0].root_type
    same_root = all(b.root_type == common for b in branches)
    return _Expr(run, common if same_root else None, branches=tuple(branches))


# ---------------------------------------------------------------- parser

_TOKEN = re.compile(
    r"""\s+
    | (?P<str>'(?:[^'\\]|\\.)*')
    | (?P<num>\d+(?:\.\d+)?)
    | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<var>[%$][A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>!=|[=|.()\[\],])
    """,
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")
_ESCAPES = {
    "'": "'",
    '"': '"',
    "`": "`",
    "\\": "\\",
    "/": "/",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_EOF = ("eof", "")


def _tokenize(expression: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if match is None:
            raise _UnsupportedError(expression[pos:])
        pos = match.end()
        if match.lastgroup is not None:
            tokens.append((match.lastgroup, match.group()))
    return tokens


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) == 5:
        return chr(int(code[1:], 16))
    if code not in _ESCAPES:
        raise _UnsupportedError(code)
    return _ESCAPES[code]


def _literal(kind: str, text: str) -> Fn:
    if kind == "str":
        return _constant((_ESCAPE.sub(_unescape, text[1:-1]), "string"))
    if "." in text:
        return _constant((Decimal(text), "decimal"))
    return _constant((int(text), "integer"))


class _Parser:
    """Recursive descent in FHIRPath precedence: or < and < = != < | < is as < . [] ()."""

    def __init__(self, expression: str) -> None:
        self.tokens = _tokenize(expression)
        self.pos = 0

    def peek(self, ahead: int = 0) -> tuple[str, str]:
        i = self.pos + ahead
        return self.tokens[i] if i < len(self.tokens) else _EOF

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.pos += 1
        return token

    def expect(self, kind: str, text: str | None = None) -> str:
        got_kind, got_text = self.take()
        if got_kind != kind or (text is not None and got_text != text):
            raise _UnsupportedError(got_text)
        return got_text

    def at(self, kind: str, text: str) -> bool:
        return self.peek() == (kind, text)

    def parse(self) -> _Expr:
        expr = self.parse_or()
        if self.peek() != _EOF:
            raise _UnsupportedError(self.peek()[1])
        return expr

    def parse_or(self) -> _Expr:
        expr = self.parse_and()
        while self.at("id", "or"):
            self.take()
            expr = _Expr(_or(expr.fn, self.parse_and().fn))
        return expr

    def parse_and(self) -> _Expr:
        expr = self.parse_equality()
        while self.at("id", "and"):
            self.take()
            expr = _Expr(_and(expr.fn, self.parse_equality().fn))
        return expr

    def parse_equality(self) -> _Expr:
        expr = self.parse_union()
        if self.at("op", "=") or self.at("op", "!="):
            negate = self.take()[1] == "!="
            expr = _Expr(_equality(expr.fn, self.parse_union().fn, negate))
        return expr

    def parse_union(self) -> _Expr:
        branches = [self.parse_type()]
        while self.at("op", "|"):
            self.take()
            branches.append(self.parse_type())
        return branches[0] if len(branches) == 1 else _union(branches)

    def parse_type(self) -> _Expr:
        expr = self.parse_postfix()
        while self.at("id", "is") or self.at("id", "as"):
            operator = self.take()[1]
            types = self.parse_type_name()
            if operator == "as":
                path = None if expr.path is None else (*expr.path, _Step("type", types))
                expr = _Expr(_chain([expr.fn, _of_type(types)]), expr.root_type, path=path)
            else:
                resolve_is = types if expr.resolves else None
                expr = _Expr(_chain([expr.fn, _is_type(types)]), resolve_is=resolve_is)
        return expr

    def parse_type_name(self) -> frozenset[str]:
        name = self.expect("id")
        if name in ("FHIR", "System") and self.at("op", "."):
            self.take()
            name += "." + self.expect("id")
        return _type_set(name)

    def parse_postfix(self) -> _Expr:
        first = self.parse_term()
        steps: list[Fn | str] = [first.fn if isinstance(first, _Expr) else first]
        while True:
            if self.at("op", "."):
                self.take()
                steps.append(self.parse_invocation())
            elif self.at("op", "["):
                self.take()
                steps.append(_index(int(self.expect("num"))))
                self.expect("op", "]")
            else:
                break
        expr = first if isinstance(first, _Expr) else _Expr(_member(first, None))
        if len(steps) == 1:
            return expr
        path = _path_of(expr.path, steps[1:])
        return _Expr(_build_chain(steps), expr.root_type, path=path)

    def parse_term(self) -> _Expr | str:
        """A term, or the bare name of a member to navigate from the context."""
        kind, text = self.take()
        if kind in ("str", "num"):
            return _Expr(_literal(kind, text))
        if kind == "var" and text in _VARIABLES:
            return _Expr(_VARIABLES[text])
        if kind == "op" and text == "(":
            expr = self.parse_or()
            self.expect("op", ")")
            return expr
        if kind != "id":
            raise _UnsupportedError(text)
        if text in ("true", "false"):
            return _Expr(_constant((text == "true", "boolean")))
        if self.at("op", "("):
            return _Expr(self.parse_call(text), resolves=text == "resolve")
        if text in _ANY_RESOURCE:
            return _Expr(_type_filter(text), path=())
        if text in resource_types():
            return _Expr(_type_filter(text), root_type=text, path=())
        return text

    def parse_invocation(self) -> Fn | str:
        name = self.expect("id")
        return self.parse_call(name) if self.at("op", "(") else name

    def parse_call(self, name: str) -> Fn:
        """`name(` … `)`; `(` is the current token."""
        self.expect("op", "(")
        fn: Fn
        if name in _NO_ARG_FUNCTIONS and self.at("op", ")"):
            fn = _NO_ARG_FUNCTIONS[name]
        elif name in ("ofType", "as", "is"):
            types = self.parse_type_name()
            fn = _is_type(types) if name == "is" else _OfType(types)
        elif name in ("where", "exists"):
            criteria = self.parse_or()
            where = _Where(criteria)
            fn = _exists_where(where.run) if name == "exists" else where
        else:
            raise _UnsupportedError(name)
        self.expect("op", ")")
        return fn


class _OfType:
    """ofType(T) as a recognisable step, so a preceding choice member reads only the T keys."""

    __slots__ = ("run", "types")

    def __init__(self, types: frozenset[str]) -> None:
        self.types = types
        self.run = _of_type(types)

    def __call__(self, items: list[Item], root: Item) -> list[Item]:
        return self.run(items, root)


class _Where:
    """where(criteria) as a recognisable step: compile_items tests one item at a time."""

    __slots__ = ("keep", "run")

    def __init__(self, criteria: _Expr) -> None:
        types = criteria.resolve_is
        if types is not None:  # `where(resolve() is T)`: the reference string names the type
            self.run = _where_resolves_to(types)
            self.keep = _resolves_to(types)
        else:
            self.run = _where(criteria.fn)
            self.keep = _satisfies(criteria.fn)

    def __call__(self, items: list[Item], root: Item) -> list[Item]:
        return self.run(items, root)


def _resolves_to(types: frozenset[str]) -> Callable[[Item, Item], bool]:
    def keep(item: Item, root: Item) -> bool:
        target = _reference_target(item[0])
        return target is not None and target[0] in types

    return keep


def _satisfies(criteria: Fn) -> Callable[[Item, Item], bool]:
    return lambda item, root: _bool3(criteria([item], root)) is True


def _path_of(base: tuple[_Step, ...] | None, steps: list[Fn | str]) -> tuple[_Step, ...] | None:
    """The static path of `base.steps…`; None when a step is not a member, type or where."""
    if base is None:
        return None
    path = list(base)
    for step in steps:
        if isinstance(step, str):
            path.append(_Step("member", step))
        elif isinstance(step, _OfType):
            path.append(_Step("type", step.types))
        elif isinstance(step, _Where):
            path.append(_Step("where", step.keep))
        else:
            return None
    return tuple(path)


def _build_chain(steps: list[Fn | str]) -> Fn:
    """Member names become navigation steps, narrowed by an ofType() right after them."""
    fns: list[Fn] = []
    for i, step in enumerate(steps):
        if isinstance(step, str):
            after = steps[i + 1] if i + 1 < len(steps) else None
            only = after.types if isinstance(after, _OfType) else None
            fns.append(_member(step, only))
        elif isinstance(step, _OfType):
            fns.append(step.run)  # still needed: nested resources and untyped nodes
        elif isinstance(step, _Where):
            fns.append(step.run)
        else:
            fns.append(step)
    return _chain(fns)


# ---------------------------------------------------------------- public API


def _parse(expression: str) -> _Expr:
    try:
        return _Parser(expression).parse()
    except (_UnsupportedError, ValueError, RecursionError):
        raise ValueError(f"unsupported FHIRPath: {expression}") from None


def _compile(expression: str) -> Fn:
    return _parse(expression).fn


@lru_cache(maxsize=4096)
def compile_path(expression: str) -> Callable[[dict[str, Any]], list[Node]]:
    """Parse once; the result evaluates the expression on a resource (plain JSON dict)."""
    fn = _compile(expression)

    def evaluate(resource: dict[str, Any]) -> list[Node]:
        root = (resource, resource.get("resourceType", ""))
        return [Node(value, typ) for value, typ in fn([root], root)]

    return evaluate


@lru_cache(maxsize=4096)
def compile_relative(expression: str) -> Callable[[Node, dict[str, Any]], list[Node]]:
    """Like compile_path, evaluated on a node inside `resource` (%resource is the resource).

    For composite components, e.g. `value.ofType(Quantity)` on an Observation.component node:
    the node's type tells which element names and choice keys exist.
    """
    fn = _compile(expression)

    def evaluate(context: Node, resource: dict[str, Any]) -> list[Node]:
        root = (resource, resource.get("resourceType", ""))
        return [Node(value, typ) for value, typ in fn([(context.value, context.type)], root)]

    return evaluate


# ---------------------------------------------------------------- specialised for one type

# Reads one value of a statically known type, appending what the rest of the path selects.
Walk: TypeAlias = Callable[[Any, list[Item], Item], None]


def _nothing(value: Any, out: list[Item], root: Item) -> None:
    """A path that statically selects nothing (absent element, filtered type)."""


class _Dynamic(Exception):
    """The path reaches a node whose type is only known at run time: use the generic code."""


@dataclass(frozen=True, slots=True)
class Selector:
    """An expression compiled for one resource type (see compile_items)."""

    run: Callable[[dict[str, Any]], list[Item]]
    # Top-level keys one of which must be present for a non-empty result; None when unknown
    # (e.g. `Patient.deceased.exists()` selects `false` from a resource without the key).
    keys: tuple[str, ...] | None


def _walker(owner: str, path: tuple[_Step, ...]) -> Walk:
    """Fold a static path into nested closures: types, choice keys and filters are resolved
    here once, so evaluation is dict lookups with no per-step lists or type tables."""
    if not path:
        return lambda value, out, root: out.append((value, owner))
    step, rest = path[0], path[1:]
    if step.kind == "type":
        return _walker(owner, rest) if owner in step.arg else _nothing
    if step.kind == "where":
        return _where_walker(owner, step.arg, _walker(owner, rest))
    acc = _accessors(owner, step.arg, None)
    if acc is None or any(nested for _, _, nested in acc):
        raise _Dynamic(owner)
    if all(s.kind == "type" for s in rest):  # the leaf: append without one more call per value
        kept = tuple((key, typ) for key, typ, _ in acc if all(typ in s.arg for s in rest))
        return _leaf_member(kept) if kept else _nothing
    children = tuple((key, w) for key, typ, _ in acc if (w := _walker(typ, rest)) is not _nothing)
    return _member_walker(children) if children else _nothing


def _where_walker(owner: str, keep: Callable[[Item, Item], bool], child: Walk) -> Walk:
    if child is _nothing:
        return _nothing

    def walk(value: Any, out: list[Item], root: Item) -> None:
        if keep((value, owner), root):
            child(value, out, root)

    return walk


def _member_walker(children: tuple[tuple[str, Walk], ...]) -> Walk:
    def walk(value: Any, out: list[Item], root: Item) -> None:
        if not isinstance(value, dict):
            return
        for key, child in children:
            found = value.get(key)
            if found is None:
                continue
            if isinstance(found, list):
                for x in found:
                    if x is not None:
                        child(x, out, root)
            else:
                child(found, out, root)

    return walk


def _leaf_member(keys: tuple[tuple[str, str], ...]) -> Walk:
    def walk(value: Any, out: list[Item], root: Item) -> None:
        if not isinstance(value, dict):
            return
        for key, typ in keys:
            found = value.get(key)
            if found is None:
                continue
            if isinstance(found, list):
                out.extend([(x, typ) for x in found if x is not None])
            else:
                out.append((found, typ))

    return walk


def _branch(expr: _Expr, rtype: str) -> tuple[Walk | None, tuple[str, ...] | None]:
    """One `|` operand: a specialised walk and its top-level keys, or None when not static."""
    path = expr.path
    try:
        if path is None:
            raise _Dynamic(rtype)
        walk = _walker(rtype, path)
    except _Dynamic:
        return None, None
    if walk is _nothing:
        return walk, ()
    if path and path[0].kind == "member":
        return walk, tuple(key for key, _, _ in _accessors(rtype, path[0].arg, None) or ())
    return walk, None


def _walk_fn(walk: Walk) -> Fn:
    def run(items: list[Item], root: Item) -> list[Item]:
        out: list[Item] = []
        walk(root[0], out, root)
        return out

    return run


def _select_walk(walk: Walk, rtype: str) -> Callable[[dict[str, Any]], list[Item]]:
    """The usual case, a single static path: one call, no root collection."""

    def run(resource: dict[str, Any]) -> list[Item]:
        out: list[Item] = []
        walk(resource, out, (resource, rtype))
        return out

    return run


def _select(fns: list[Fn]) -> Callable[[dict[str, Any]], list[Item]]:
    """Mirror _union: one branch is returned as is, several non-empty ones are de-duplicated."""
    if not fns:
        return lambda resource: []

    def run(resource: dict[str, Any]) -> list[Item]:
        root = (resource, resource.get("resourceType", ""))
        results = [r for fn in fns if (r := fn([root], root))]
        if len(results) < 2:
            return results[0] if results else []
        return _distinct(results)

    return run


@lru_cache(maxsize=8192)
def compile_items(expression: str, rtype: str) -> Selector:
    """compile_path for resources of type `rtype` (only), returning raw (value, type) items.

    Same results as compile_path (without the Node wrapping), but plain paths — the bulk of the
    official search expressions — run as direct dict walks, and `keys` lets a caller skip the
    call entirely when the resource has none of the top-level elements the expression reads.
    """
    expr = _parse(expression)
    walks: list[Walk | None] = []
    fns: list[Fn] = []
    keys: list[str] | None = []
    for branch in expr.branches or (expr,):
        if branch.root_type not in (rtype, None):
            continue  # the generic union skips these too: they start with another type
        walk, branch_keys = _branch(branch, rtype)
        walks.append(walk)
        fns.append(branch.fn if walk is None else _walk_fn(walk))
        keys = None if keys is None or branch_keys is None else [*keys, *branch_keys]
    only = walks[0] if len(walks) == 1 else None
    run = _select(fns) if only is None else _select_walk(only, rtype)
    return Selector(run, None if keys is None else tuple(dict.fromkeys(keys)))
