"""The `benhan` command: serve, import, export, and one sub-command per job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from benhan.config import Settings, tune_gc

app = typer.Typer(
    help="benhan — bệnh án điện tử và liên thông dữ liệu y tế / EMR and HIE", no_args_is_help=True
)
console = Console(stderr=True)


class CliError(typer.Exit):
    """A failure the user can act on: a message naming the file, line and field, and a status."""

    def __init__(self, message: str, code: int = 2) -> None:
        console.print(f"[red]lỗi / error:[/red] {message}")
        super().__init__(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="địa chỉ / address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="cổng / port")] = 8000,
    workers: Annotated[int, typer.Option(help="số tiến trình / processes")] = 1,
) -> None:
    """Chạy máy chủ / run the server (FHIR at /fhir, pages at /)."""
    import uvicorn

    # access_log=False: uvicorn's would print query strings; benhan.api.access_log logs instead.
    uvicorn.run(
        "benhan.api.app:create_app",
        access_log=False,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        log_config=_log_config(),
    )


def _log_config() -> dict[str, object]:
    """uvicorn's logging, plus benhan's own loggers on the same handler."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, object] = copy.deepcopy(LOGGING_CONFIG)
    loggers = config["loggers"]
    assert isinstance(loggers, dict)
    loggers["benhan"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="địa chỉ / address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="cổng / port")] = 8000,
) -> None:
    """Chạy bản trình diễn trên SQLite / run the demo on the embedded SQLite default."""
    cfg = Settings.from_env()
    console.print(f"benhan: http://{host}:{port}/  ·  FHIR: http://{host}:{port}/fhir/metadata")
    if cfg.database_url.startswith("sqlite"):
        console.print(f"cơ sở dữ liệu / database: {cfg.database_url.split('///')[-1]}")
    serve(host=host, port=port, workers=1)


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="tệp hoặc thư mục / files or folders")],
) -> None:
    """Nhập Bundle (transaction/batch) và NDJSON / import Bundles and Bulk NDJSON."""
    from benhan.bulk.importer import files_of, import_files
    from benhan.store.database import open_store

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise CliError(f"không tìm thấy / not found: {', '.join(missing)}")
    files = files_of(paths)
    if not files:
        raise CliError("không có tệp .json/.ndjson / no .json or .ndjson files found")
    cfg = Settings.from_env()
    store = open_store(cfg.database_url)
    store.create_schema()
    tune_gc()
    with _bytes_progress(sum(f.stat().st_size for f in files), "nhập / importing") as advance:
        report = import_files(store, cfg.facility, cfg.base_url, files, advance)
    _print_import(report)
    if report.errors:
        raise typer.Exit(1)


def _print_import(report: object) -> None:
    from benhan.bulk.importer import ImportReport

    assert isinstance(report, ImportReport)
    table = Table(title="Đã nhập / imported")
    table.add_column("loại / type")
    table.add_column("số / count", justify="right")
    for rtype, n in sorted(report.stored.items()):
        table.add_row(rtype, f"{n:,}")
    console.print(table)
    console.print(f"không đổi / unchanged: {report.unchanged:,}")
    for rtype, n in sorted(report.unresolved.items()):
        console.print(
            f"[yellow]tham chiếu chưa có / unresolved references[/yellow] to {rtype}: {n:,}"
        )
    for line in report.errors:
        console.print(Text(line, style="red"), soft_wrap=True)


@app.command("export")
def export_(
    out_dir: Annotated[Path, typer.Argument(help="thư mục đích / output folder")],
    types: Annotated[str | None, typer.Option("--type", help="Patient,Encounter,…")] = None,
    since: Annotated[str | None, typer.Option(help="chỉ từ thời điểm / changed since")] = None,
) -> None:
    """Xuất NDJSON theo loại / export NDJSON, one file per resource type."""
    from benhan.bulk.export import write_ndjson
    from benhan.fhir.definitions import resource_types
    from benhan.fhir.primitives import date_range
    from benhan.store.database import open_store

    wanted = [t.strip() for t in types.split(",")] if types else None
    bad = [t for t in wanted or [] if t not in resource_types()]
    if bad:
        raise CliError(f"--type: loại không hợp lệ / unknown resource type {', '.join(bad)}")
    since_range = date_range(since) if since else None
    if since and since_range is None:
        raise CliError(f"--since: không phải ngày giờ FHIR / not a FHIR date-time: {since!r}")
    cfg = Settings.from_env()
    store = open_store(cfg.database_url)
    store.create_schema()
    out_dir.mkdir(parents=True, exist_ok=True)
    with store.read() as conn:
        files = write_ndjson(
            conn,
            out_dir,
            types=wanted,
            since_us=since_range[0] if since_range else None,
            patients=None,
        )
    for f in files:
        console.print(f"{f.path}: {f.count:,}")


def _bytes_progress(total: int, label: str) -> _Advance:
    return _Advance(total, label)


class _Advance:
    """A Rich progress bar over bytes read, usable as `advance(n)` by the job."""

    def __init__(self, total: int, label: str) -> None:
        self.progress = Progress(
            TextColumn(label),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not sys.stderr.isatty(),
        )
        self.task = self.progress.add_task(label, total=total)

    def __enter__(self) -> _Advance:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, n: int) -> None:
        self.progress.advance(self.task, n)


if __name__ == "__main__":
    app()
