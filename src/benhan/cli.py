"""The `benhan` command: serve, import, export, and one sub-command per job."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from benhan.config import Settings, tune_gc

if TYPE_CHECKING:
    from benhan.store.database import Store

app = typer.Typer(
    help="benhan — bệnh án điện tử và liên thông dữ liệu y tế / EMR and HIE", no_args_is_help=True
)
console = Console(stderr=True)


def _register_sub_apps() -> None:
    from benhan.auth.commands_accounts import accounts_app
    from benhan.auth.commands_oauth import clients_app, keys_app
    from benhan.identity.commands import mpi_app
    from benhan.signing.commands import verify_command
    from benhan.signing.ledger_commands import audit_app
    from benhan.signing.pki_commands import pki_app

    app.add_typer(accounts_app, name="accounts")
    app.add_typer(clients_app, name="clients")
    app.add_typer(keys_app, name="keys")
    app.add_typer(mpi_app, name="mpi")
    app.add_typer(pki_app, name="pki")
    app.add_typer(audit_app, name="audit")
    app.command("verify")(verify_command)


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

    # Links in Bundles point at where we serve, unless a proxy address was configured.
    os.environ.setdefault("BENHAN_BASE_URL", f"http://{host}:{port}/fhir")
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


DEMO_CLIENT = "benhan demo integrator"


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="địa chỉ / address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="cổng / port")] = 8000,
    people: Annotated[int, typer.Option(help="số người / people")] = 20_000,
    regenerate: Annotated[bool, typer.Option(help="tạo lại dữ liệu / generate again")] = False,
) -> None:
    """Tỉnh mô phỏng trên SQLite rồi chạy máy chủ / a synthetic province on SQLite, then serve."""
    from benhan.store.database import open_store
    from benhan.store.stats import counts_by_type

    cfg = Settings.from_env()
    store = open_store(cfg.database_url)
    store.create_schema()
    with store.read() as conn:
        empty = not counts_by_type(conn).get("Patient")
    if empty or regenerate:
        synth(people=people, years=2, seed=2025, out=None, replace=True)
    else:
        console.print("dùng lại dữ liệu có sẵn / reusing the existing data (--regenerate to renew)")
    from benhan.emr.setup import prepare_facility

    rooms = prepare_facility(store, cfg.facility)
    console.print(f"{len(rooms)} phòng khám / clinics at {cfg.facility}")
    _print_demo_access(store, cfg.facility, f"http://{host}:{port}")
    console.print(f"benhan: http://{host}:{port}/  ·  FHIR: http://{host}:{port}/fhir/metadata")
    serve(host=host, port=port, workers=1)


def _print_demo_access(store: Store, facility: str, origin: str) -> None:
    """The demo's accounts (one per role) and an integration client, printed to sign in with."""
    import sqlalchemy as sa
    from rich.table import Table

    from benhan.access import ROLES
    from benhan.auth.clients import register_client
    from benhan.auth.demo_accounts import ensure_demo_accounts
    from benhan.store.schema import oauth_client, resource

    with store.read() as conn:  # a patient of this facility with the most encounters
        patient = conn.scalar(
            sa.select(resource.c.patient_key)
            .where(
                resource.c.rtype == "Encounter",
                resource.c.facility == facility,
                resource.c.patient_key.is_not(None),
            )
            .group_by(resource.c.patient_key)
            .order_by(sa.func.count().desc(), resource.c.patient_key)
            .limit(1)
        )
    accounts = ensure_demo_accounts(store, facility, patient)
    with store.begin() as conn:  # a fresh secret each run: it is printed, never stored
        conn.execute(oauth_client.delete().where(oauth_client.c.name == DEMO_CLIENT))
        client, secret = register_client(
            conn, name=DEMO_CLIENT, role_code="system-integrator", facility=facility
        )
    table = Table(title=f"Tài khoản demo / demo accounts — {origin}/login")
    for col in ("vai trò / role", "tên đăng nhập / username", "mật khẩu / password"):
        table.add_column(col)
    for username, password, code in accounts:
        r = ROLES[code]
        table.add_row(f"{r.vi} / {r.en}", username, password)
    out = Console()
    out.print(table)
    # Whole, on lines of their own: a table would wrap or cut a secret someone has to copy.
    r = ROLES["system-integrator"]
    out.print(f"{r.vi} / {r.en} — OAuth client credentials:", highlight=False)
    out.print(f"  CLIENT_ID={client.client_id}", soft_wrap=True, highlight=False)
    out.print(f"  CLIENT_SECRET={secret}", soft_wrap=True, highlight=False)
    out.print(f"  mã truy cập / token: POST {origin}/oauth/token", soft_wrap=True, highlight=False)


@app.command()
def synth(
    people: Annotated[int, typer.Option(help="số người / people")] = 20_000,
    years: Annotated[int, typer.Option(help="số năm lịch sử / years of history")] = 2,
    seed: Annotated[int, typer.Option(help="hạt giống / seed (same seed, same data)")] = 2025,
    out: Annotated[
        Path | None,
        typer.Option(
            help="ghi NDJSON theo cơ sở / write per-facility NDJSON here instead of the repository"
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="xoá kho trước / empty the repository first")
    ] = False,
    clinics: Annotated[int, typer.Option(help="phòng khám tư / private clinics")] = 20,
    outbreaks: Annotated[int, typer.Option(help="ổ dịch ngẫu nhiên / random outbreaks")] = 6,
    incidence_scale: Annotated[
        float, typer.Option(help="nhân tỉ lệ mắc / scale disease incidence")
    ] = 1.0,
    mess: Annotated[
        str,
        typer.Option(help="lỗi nhập liệu / registration errors: typical | hard (few shared IDs)"),
    ] = "typical",
    workers: Annotated[
        int, typer.Option(help="tiến trình kiểm tra, lập chỉ mục / validating processes")
    ] = max(1, (os.cpu_count() or 2) - 1),
) -> None:
    """Sinh tỉnh Bắc Ninh mô phỏng / generate a synthetic Bắc Ninh province."""
    from benhan.synth.mess import MessRates
    from benhan.synth.output import to_ndjson, to_store, write_truth
    from benhan.synth.province import Province, SynthConfig, generate

    if people < 1 or years < 1:
        raise CliError("--people và --years phải ≥ 1 / --people and --years must be at least 1")
    if mess not in ("typical", "hard"):
        raise CliError(f"--mess: typical hoặc hard / typical or hard, not {mess!r}")
    config = SynthConfig(
        seed=seed,
        people=people,
        years=years,
        private_clinics=clinics,
        random_outbreaks=outbreaks,
        incidence_scale=incidence_scale,
        mess=MessRates.hard() if mess == "hard" else MessRates(),
    )
    cfg = Settings.from_env()
    province = Province(config, [])
    stream = generate(config, province)
    tune_gc()
    with _Advance(None, "sinh dữ liệu / generating") as advance:
        if out is not None:  # out/fhir is what `benhan import` reads; the truth stays apart
            total = to_ndjson(out / "fhir", stream, advance)
            truth_dir = out / "truth"
        else:
            store = _empty_store(cfg, replace)
            with store.bulk_load():
                total = to_store(store, stream, advance, workers=workers)
            truth_dir = cfg.export_dir.parent / "synth" / f"seed-{seed}" / "truth"
    paths = write_truth(province, truth_dir)
    console.print(
        f"{total:,} tài nguyên / resources; {len(province.registrations):,} "
        f"đăng ký / registrations; sự thật / ground truth: {paths[0].parent}"
    )


def _empty_store(cfg: Settings, replace: bool) -> Store:
    from benhan.store.database import open_store
    from benhan.store.stats import counts_by_type

    store = open_store(cfg.database_url)
    if replace:
        store.drop_schema()
    store.create_schema()
    with store.read() as conn:
        if counts_by_type(conn):
            raise CliError(
                "kho dữ liệu không rỗng / the repository is not empty: use --replace "
                "to empty it, or --out DIR to write files"
            )
    return store


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
    if report.stored.get("Patient"):
        from benhan.identity.commands import match_arrivals

        match_arrivals(store, cfg.facility)  # imported people join the provincial record now
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


@app.command()
def catalog(
    path: Annotated[Path, typer.Argument(help="tệp CSV/XLSX / CSV or XLSX file")],
    kind: Annotated[str, typer.Option(help="drug (thuốc) | service (dịch vụ)")] = "drug",
) -> None:
    """Kiểm tra danh mục của cơ sở / check a facility's drug or service catalogue file."""
    from benhan.catalog import load_catalog

    if kind not in ("drug", "service"):
        raise CliError(f"--kind: phải là drug hoặc service / must be drug or service, not {kind!r}")
    if not path.is_file():
        raise CliError(f"không tìm thấy / not found: {path}")
    result = load_catalog(path, kind)  # type: ignore[arg-type]
    for line in result.errors:
        console.print(Text(line, style="red"), soft_wrap=True)
    console.print(f"{len(result.items):,}/{result.rows:,} dòng hợp lệ / rows valid")
    if result.errors:
        raise typer.Exit(1)


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
    """A Rich progress bar usable as `advance(n)` by a job: over bytes when the total is
    known, else a running count with its rate."""

    def __init__(self, total: int | None, label: str) -> None:
        columns = (
            (BarColumn(), DownloadColumn(), TimeRemainingColumn())
            if total is not None
            else (MofNCompleteColumn(), TimeElapsedColumn())
        )
        self.progress = Progress(
            TextColumn(label),
            *columns,
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


_register_sub_apps()

if __name__ == "__main__":
    app()
