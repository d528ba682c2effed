"""Shared bench plumbing: throw-away databases, a uvicorn subprocess, percentiles, Rich output."""

from __future__ import annotations

import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var" / "bench"
PG_SERVER = os.environ.get("BENHAN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
FACILITY = "27001"
BASE = "http://127.0.0.1/fhir"

console = Console(width=None if sys.stdout.isatty() else 160)


def load() -> str:
    """The 1-minute load average and the core count: other work on the box skews wall times."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "[dim]reference[/dim]"
    return "[green]pass[/green]" if ok else "[red]FAIL[/red]"


def percentiles(samples_ms: list[float]) -> tuple[float, float, float]:
    """p50, p95, p99 of the samples (inclusive method: exact at the ends)."""
    q = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return q[49], q[94], q[98]


# ---- databases --------------------------------------------------------------------------------


def pg_url(dbname: str) -> str:
    return f"{PG_SERVER}/{dbname}"


def pg_admin(sql: str) -> None:
    """One statement on the maintenance database, outside a transaction (CREATE/DROP DATABASE)."""
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(sql)


def pg_exists(dbname: str) -> bool:
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        return row is not None


@contextmanager
def fresh_database(backend: str, label: str) -> Iterator[str]:
    """A new empty database URL, removed afterwards even on error (SQLite: a temp file)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"benhan-bench-{label}-") as d:
            yield f"sqlite:///{d}/{label}.sqlite3"
        return
    name = f"benhan_bench_{label}_{secrets.token_hex(4)}"
    pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- the server subprocess --------------------------------------------------------------------


@dataclass
class Server:
    pid: int
    url: str  # http://127.0.0.1:port/fhir
    headers: dict[str, str]  # a facility integration client's bearer token


def integration_token(database_url: str, audience: str, facility: str = FACILITY) -> str:
    """A token for a system-integrator client of `facility`, made in the store the server uses
    (the client row is written directly: the bench measures requests, not OAuth)."""
    import secrets as _secrets

    from benhan.access import ROLES
    from benhan.auth.tokens import issue
    from benhan.store.database import open_store
    from benhan.store.schema import oauth_client

    store = open_store(database_url)
    store.create_schema()
    role = ROLES["system-integrator"]
    client_id = f"bench-{_secrets.token_hex(4)}"
    with store.begin() as conn:
        conn.execute(
            oauth_client.insert().values(
                client_id=client_id,
                secret_hash=None,
                name="bench",
                role=role.code,
                facility=facility,
                scopes=str(role.scopes),
                redirect_uris="",
                active=True,
                created=0,
            )
        )
        token, _ = issue(
            conn,
            subject=f"client:{client_id}",
            scope=role.scopes,
            issuer=audience.split("/fhir")[0],
            audience=audience,
            ttl_s=3600,
        )
    store.dispose()
    return token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def server(
    database_url: str,
    log: Path,
    ready_timeout: float = 120.0,
    program: list[str] | None = None,
    facility: str = FACILITY,
) -> Iterator[Server]:
    """`benhan serve` (uvicorn, one worker) on a free port; always stopped on the way out.
    `program` replaces the `benhan` executable (bench/access.py's reference server)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/fhir"
    env = {
        **os.environ,
        "BENHAN_DATABASE_URL": database_url,
        "BENHAN_VAR": str(VAR),
        "BENHAN_BASE_URL": url,
        "BENHAN_FACILITY": facility,
    }
    cmd = [
        *(program or [str(Path(sys.executable).parent / "benhan")]),
        "serve",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    headers = {"Authorization": f"Bearer {integration_token(database_url, url, facility)}"}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_ready(proc, url, ready_timeout, log)
            yield Server(proc.pid, url, headers)
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/Patient/ready-probe", timeout=2).status_code in (401, 404):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout}s; see {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> tuple[float, float]:
    """(current VmRSS, peak VmHWM) of a process in MiB, from /proc."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]
