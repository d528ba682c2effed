"""Many rows into one table, fast: COPY on PostgreSQL, one executemany of tuples on SQLite.

This is the write path's hot loop (about a dozen index rows per resource), where SQLAlchemy's
per-row parameter processing would cost more than the database itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa


def bulk_insert(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert rows (tuples in `columns` order) inside the connection's current transaction."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _copy(conn, table.name, tuple(columns), rows)
    else:
        conn.exec_driver_sql(_insert_sql(table.name, tuple(columns)), rows)


@cache
def _insert_sql(name: str, columns: tuple[str, ...]) -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


def _copy(
    conn: sa.Connection, name: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cur, cur.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)
