"""Reading person records from any CSV, given which column plays which role."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from benhan.identity.normalise import (
    Person,
    normalise_bhyt,
    normalise_cccd,
    normalise_cmnd,
    normalise_commune,
    normalise_phone,
    normalise_sex,
    normalise_text,
    parse_birth_date,
    parse_name,
)

Role = Literal[
    "given", "family", "fullname", "birthdate", "sex", "cccd", "cmnd", "bhyt", "phone",
    "address", "commune", "postcode", "identifier",
]  # fmt: skip
ROLES: tuple[str, ...] = get_args(Role)
MAX_ERRORS = 50  # enough to see the pattern of a bad file without flooding the terminal


class TableError(Exception):
    """Bad input: every problem as "file:line:field: message"."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    column: str
    role: Role
    fmt: str | None = None  # strptime format, for birthdate


def parse_field(text: str) -> FieldSpec:
    """ "NGAY_SINH=birthdate:%d/%m/%Y" → FieldSpec; ValueError on an unknown role."""
    column, sep, rest = text.partition("=")
    role, _, fmt = rest.partition(":")
    if not sep or not column or role not in ROLES:
        raise ValueError(
            f"--field {text!r}: cần COT=VAI_TRO[:ĐỊNH_DẠNG] / need COLUMN=ROLE[:FORMAT],"
            f" ROLE one of {', '.join(ROLES)}"
        )
    if fmt and role != "birthdate":
        raise ValueError(f"--field {text!r}: chỉ birthdate có định dạng / only birthdate has one")
    return FieldSpec(column, role, fmt or None)  # type: ignore[arg-type]


@dataclass(slots=True)
class Table:
    people: list[Person] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)  # role → values not of its form


def read_table(path: Path, id_column: str, specs: Sequence[FieldSpec]) -> Table:
    """The records of a CSV file; raises TableError with every problem found (up to 50)."""
    problems: list[str] = []
    by_role: dict[str, FieldSpec] = {}
    for s in specs:
        if s.role in by_role:
            problems.append(f"{path}: --field: vai trò {s.role} hai lần / role given twice")
        by_role[s.role] = s
    if "fullname" in by_role and ({"family", "given"} & by_role.keys()):
        problems.append(f"{path}: --field: fullname hoặc family+given / not both")
    table = Table()
    with path.open(newline="", encoding="utf-8-sig") as fh:  # Excel writes a BOM
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        for col in [id_column, *(s.column for s in specs)]:
            if col not in header:
                problems.append(f"{path}:1:{col}: không có cột này / no such column")
        if problems:
            raise TableError(problems)
        seen: set[str] = set()
        for row in reader:
            line = reader.line_num
            rid = (row.get(id_column) or "").strip()
            if not rid or rid in seen:
                why = "trống / empty" if not rid else f"trùng / duplicate {rid!r}"
                problems.append(f"{path}:{line}:{id_column}: mã {why}")
            seen.add(rid)
            person = person_from_row(rid, row, by_role, table, problems, f"{path}:{line}")
            table.people.append(person)
            if len(problems) >= MAX_ERRORS:
                break
    if problems:
        raise TableError(problems)
    return table


def person_from_row(
    rid: str,
    row: dict[str, str],
    by_role: dict[str, FieldSpec],
    table: Table,
    problems: list[str],
    where: str,
) -> Person:
    def get(role: str) -> str | None:
        spec = by_role.get(role)
        value = (row.get(spec.column) or "").strip() if spec else ""
        return value or None

    p = Person(rid, name=parse_name(get("fullname"), get("family"), get("given")))
    if (text := get("birthdate")) is not None:
        try:
            p.birth = parse_birth_date(text, by_role["birthdate"].fmt or "%Y-%m-%d")
        except ValueError as e:
            problems.append(f"{where}:{by_role['birthdate'].column}: {e}")
    checks = (
        ("sex", normalise_sex), ("cccd", normalise_cccd), ("cmnd", normalise_cmnd),
        ("bhyt", normalise_bhyt), ("phone", normalise_phone), ("commune", normalise_commune),
        ("postcode", normalise_text), ("address", normalise_text), ("identifier", normalise_text),
    )  # fmt: skip
    for role, norm in checks:
        raw = get(role)
        value = norm(raw)
        if raw is not None and value is None:  # a value not of its form counts as missing
            table.ignored[role] = table.ignored.get(role, 0) + 1
        setattr(p, role, value)
    return p
