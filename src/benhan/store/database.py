"""Opening the database: SQLite (WAL, busy timeout) by default, PostgreSQL (psycopg 3) by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from benhan.store.schema import metadata

if TYPE_CHECKING:
    from benhan.store.audit_writer import AuditWriter


@dataclass
class Store:
    engine: sa.Engine
    audit: AuditWriter = field(init=False)

    def __post_init__(self) -> None:
        from benhan.store.audit_writer import AuditWriter

        self.audit = AuditWriter(self)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """One atomic unit of work: committed on success, rolled back on any exception."""
        with self.engine.connect() as conn:
            # SQLite: take the write lock up front so two writers never deadlock on upgrade.
            conn.info["immediate"] = True
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            yield conn

    def create_schema(self) -> None:
        from benhan.store.migrations import upgrade

        upgrade(self)
        self.create_missing_indexes()  # after an interrupted bulk load

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Load an empty store without its value indexes, then build them once, sorted.

        Inserting millions of rows into B-trees keyed by values (dates, names, identifiers)
        touches pages at random and slows as they outgrow the cache; building each index
        afterwards sorts once. The indexes come back even if the load fails.
        """
        deferred = [i for t in metadata.sorted_tables for i in t.indexes if _deferrable(i)]
        with self.engine.begin() as conn:
            for index in deferred:
                index.drop(conn, checkfirst=True)
        try:
            yield
        finally:
            self.create_missing_indexes()
        self.analyze()

    def analyze(self) -> None:
        """Fresh statistics for the query planner. Without them SQLite chooses an index by its
        shape alone, and sorting 20 patients by name scanned every name row for each one (5 s
        on a 10,000-patient facility, 20 ms with statistics). SQLite samples (analysis_limit)
        so this stays well under a second on a database of gigabytes."""
        with self.engine.begin() as conn:
            if not self.is_postgres:
                conn.exec_driver_sql("PRAGMA analysis_limit=1000")
            conn.exec_driver_sql("ANALYZE")

    def create_missing_indexes(self) -> None:
        with self.engine.begin() as conn:
            for table in metadata.sorted_tables:
                for index in table.indexes:
                    index.create(conn, checkfirst=True)

    def drop_schema(self) -> None:
        """Remove every benhan table and the migration stamp (the demo's --regenerate)."""
        metadata.drop_all(self.engine)
        with self.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")

    def dispose(self) -> None:
        self.audit.close()  # what is queued is written before the connections go
        self.engine.dispose()


def _deferrable(index: sa.Index) -> bool:
    """Indexes on values, not on ids: the ones a bulk load fills at random places."""
    return index.name is not None and index.name.endswith("_lookup")


def open_store(url: str) -> Store:
    if url.startswith("sqlite"):
        return Store(_sqlite_engine(url))
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # JIT compilation costs more than it saves on these short, index-driven queries.
    engine = sa.create_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"options": "-c jit=off"},
    )
    return Store(engine)


def _sqlite_engine(url: str) -> sa.Engine:
    path = sa.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see Store.begin)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes under WAL
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        # A bigger page cache and fewer WAL checkpoints: index inserts touch many pages.
        cur.execute("PRAGMA cache_size=-32768")
        cur.execute("PRAGMA wal_autocheckpoint=10000")
        # Reads through a memory map shared by every connection, not a copy per page into each
        # connection's cache: the index's random lookups (identity/online.py) read many pages.
        cur.execute("PRAGMA mmap_size=4294967296")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # pysqlite's own transaction handling is off (isolation_level None): we emit BEGIN.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.pop("immediate", False) else "BEGIN")

    return engine


__all__ = ["Store", "metadata", "open_store"]
