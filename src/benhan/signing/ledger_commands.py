"""`benhan audit …`: check the tamper-evident history (`verify`), sign a chain's head
(`checkpoint`; the server also does it on a schedule), and chain what was stored before the
ledger existed (`seal`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from cryptography import x509
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benhan.config import Settings
from benhan.signing import pki
from benhan.signing.ledger_signing import facility_signer, revocation_check
from benhan.signing.signers import KeySigner, algorithm_of
from benhan.store import checkpoints, ledger

if TYPE_CHECKING:
    from benhan.store.database import Store

audit_app = typer.Typer(help="Lịch sử chống sửa đổi / tamper-evident history", no_args_is_help=True)
err = Console(stderr=True)
out = Console()


def _fail(message: str) -> NoReturn:
    err.print(f"[red]lỗi / error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def _store() -> Iterator[Store]:
    from benhan.store.database import open_store

    store = open_store(Settings.from_env().database_url)
    try:
        store.create_schema()
        yield store
    finally:
        store.dispose()


@audit_app.command()
def verify(
    facility: Annotated[
        str | None, typer.Option(help="mã cơ sở / facility code (default: every chain)")
    ] = None,
    anchor: Annotated[
        list[Path] | None,
        typer.Option(help="chứng thư tin cậy PEM / trusted root or CA certificate (repeatable)"),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=0, help="số phát hiện in ra / findings shown at most")
    ] = 200,
) -> None:
    """Kiểm tra lịch sử / check the chains, every stored version, the checkpoints (1: broken)."""
    anchors = [cert for path in anchor or [] for cert in _certificates(path)]
    with _store() as store, store.read() as conn, _bar() as progress:
        revocation = revocation_check(conn)
        report = ledger.verify(
            conn, facility, anchors=anchors, revocation=revocation, progress=progress, limit=limit
        )
    _print_report(report)
    raise typer.Exit(0 if report.intact else 1)


@contextmanager
def _bar() -> Iterator[ledger.Progress]:
    with Progress(
        TextColumn("kiểm tra / verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("verify", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _print_report(report: ledger.Report) -> None:
    chains = Table(title="Chuỗi theo cơ sở / chains by facility")
    for col in ("cơ sở / facility", "mục / entries", "đầu / head", "điểm kiểm / checkpoints",
                "chưa ký / unsigned"):  # fmt: skip
        chains.add_column(col, justify="left" if col.startswith("cơ") else "right")
    for c in report.chains:
        last = f" (… {c.last_checkpoint:,})" if c.last_checkpoint else ""
        head = "—" if c.head is None else f"{c.head:,}"
        chains.add_row(c.facility or '""', f"{c.entries:,}", head, f"{c.checkpoints}{last}",
                       f"{c.unsigned:,}")  # fmt: skip
    out.print(chains)
    if report.findings:
        out.print(_findings_table(report))
    shown, total = len(report.findings), sum(report.counts.values())
    if total > shown:
        out.print(f"… {total - shown:,} phát hiện nữa / more findings not shown (--limit)")
    if not report.trusted and any(c.checkpoints for c in report.chains):
        out.print(
            "[yellow]chữ ký chỉ được kiểm với chứng thư của chính nó / signatures checked "
            "against their own certificates only: give --anchor to check whom they chain to"
            "[/yellow]"
        )
    for note in report.notes.values():
        seqs = f"{note.first:,}" if note.count == 1 else f"{note.first:,}–{note.last:,}"
        out.print(
            f"[yellow]ghi chú / note[/yellow] {escape(note.facility)}, điểm kiểm / checkpoints "
            f"{seqs} ({note.count}): {escape(note.message)}",
            highlight=False,
        )
    for kind, n in sorted(report.counts.items()):
        out.print(f"  {kind}: {n:,} — {ledger.KINDS[kind]}", highlight=False)
    verdict = (
        "[green]nguyên vẹn / intact[/green]" if report.intact else "[red]BỊ SỬA / BROKEN[/red]"
    )
    out.print(f"{report.versions:,} phiên bản đã kiểm / versions checked: {verdict}")


def _findings_table(report: ledger.Report) -> Table:
    table = Table(title="Chỗ hỏng / where the history breaks")
    for col in ("loại / kind", "cơ sở / facility", "mục / seq", "phiên bản / version",
                "chi tiết / details"):  # fmt: skip
        table.add_column(col, overflow="fold")
    for f in report.findings:
        seq = "—" if f.seq is None else str(f.seq)
        table.add_row(f.kind, f.facility, seq, f.version or "—", escape(f.message))
    return table


@audit_app.command()
def checkpoint(
    facility: Annotated[str, typer.Option(help="mã cơ sở / facility code")],
    key: Annotated[
        Path | None,
        typer.Option(help="khoá riêng PEM / a private key, PEM (default: the facility's)"),
    ] = None,
    chain: Annotated[
        Path | None,
        typer.Option(help="chuỗi chứng thư PEM / its certificate first, then the issuers"),
    ] = None,
) -> None:
    """Ký đầu chuỗi của một cơ sở / sign a facility's chain head with its certificate."""
    from benhan.fhir.primitives import from_micros

    if (key is None) != (chain is None):
        _fail("--key và --chain đi cùng nhau / --key and --chain go together")
    with _store() as store:
        try:
            with store.begin() as conn:
                signer = _signer(key, chain) if key and chain else facility_signer(conn, facility)
                made = checkpoints.make(conn, facility, signer)
        except (checkpoints.CheckpointError, pki.PkiError) as exc:
            _fail(str(exc))
    when = from_micros(made.at).strftime("%Y-%m-%d %H:%M:%S %z")
    out.print(
        f"điểm kiểm / checkpoint: cơ sở / facility {made.facility!r}, mục / seq {made.seq:,}, "
        f"{made.hash.hex()}, {when}",
        soft_wrap=True,
        highlight=False,
    )


@audit_app.command()
def seal(
    facility: Annotated[
        str | None, typer.Option(help="mã cơ sở / facility code (default: every facility)")
    ] = None,
) -> None:
    """Đưa lịch sử cũ vào sổ / chain versions stored before the ledger (once; `verify` first)."""
    with _store() as store, store.begin() as conn:
        n = ledger.seal(conn, facility)
    out.print(f"{n:,} phiên bản đã vào sổ / versions chained")


def _certificates(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        _fail(f"không đọc được / cannot read {path}: {exc.strerror}")
    except ValueError:
        _fail(f"không phải chứng thư PEM / no PEM certificate in {path}")


def _signer(key_path: Path, chain_path: Path) -> KeySigner:
    """The facility's key and chain from PEM files, checked to belong together."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_private_key,
    )

    chain = _certificates(chain_path)
    try:
        key = load_pem_private_key(key_path.read_bytes(), password=None)
    except OSError as exc:
        _fail(f"không đọc được / cannot read {key_path}: {exc.strerror}")
    except TypeError:
        _fail(f"khoá được mã hoá, chưa hỗ trợ / {key_path}: encrypted keys are not supported")
    except ValueError:
        _fail(f"không phải khoá riêng PEM / no PEM private key in {key_path}")
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        _fail(f"{key_path}: chỉ hỗ trợ khoá EC P-256 hoặc RSA / only EC P-256 or RSA keys")
    try:
        algorithm_of(key)
    except ValueError as exc:
        _fail(f"{key_path}: {exc}")

    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != chain[0].public_key().public_bytes(*spki):
        _fail(
            f"khoá không khớp chứng thư đầu tiên / the key in {key_path} does not belong to the "
            f"first certificate in {chain_path}"
        )
    return KeySigner(key, chain)
