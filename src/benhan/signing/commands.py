"""`benhan verify FILE|URL`: check a signed document (a FHIR document's JSON, or its signed PDF)
offline and say exactly what failed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from cryptography import x509
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benhan.signing.pdf_verify import verify_pdf
from benhan.signing.verify import Verification, verify

console = Console()
TRUST_HELP = "PEM of the trust anchors (benhan pki anchors --output); default: this node's store"


def verify_command(
    source: Annotated[
        str, typer.Argument(help="a document Bundle (JSON) or a signed PDF: a file or its URL")
    ],
    trust: Annotated[list[Path], typer.Option("--trust", help=TRUST_HELP)] = [],  # noqa: B006
    crl: Annotated[
        list[Path], typer.Option("--crl", help="a revocation list (DER or PEM), repeatable")
    ] = [],  # noqa: B006
    token: Annotated[
        str | None, typer.Option(help="bearer token for a URL (default: $BENHAN_TOKEN)")
    ] = None,
) -> None:
    """Kiểm tra chữ ký số của một tài liệu / verify a signed document."""
    data = _fetch(source, token or os.environ.get("BENHAN_TOKEN"))
    if trust:
        anchors = [c for path in trust for c in _certificates(path)]
        crls = [_crl(path) for path in crl]
    else:
        anchors, crls = _from_store()
        crls += [_crl(path) for path in crl]
    if data.startswith(b"%PDF-"):
        result = verify_pdf(data, anchors=anchors, crls=crls)
    else:
        result = verify(_json(source, data), anchors=anchors, crls=crls)
    console.print(_table(result))
    verdict = "[green]HỢP LỆ / VALID[/green]" if result.ok else "[red]KHÔNG HỢP LỆ / INVALID[/red]"
    console.print(verdict)
    raise typer.Exit(0 if result.ok else 1)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]lỗi / error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(2)


def _fetch(source: str, token: str | None) -> bytes:
    if source.startswith(("http://", "https://")):
        headers = {"Accept": "application/fhir+json, application/pdf"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = httpx.get(source, headers=headers, timeout=30)
        except httpx.HTTPError as err:
            raise _fail(f"{source}: không tải được / cannot fetch ({type(err).__name__})") from None
        if response.status_code != 200:
            raise _fail(f"{source}: HTTP {response.status_code}")
        return response.content
    path = Path(source)
    if not path.is_file():
        raise _fail(f"{source}: không có tệp / no such file")
    return path.read_bytes()


def _json(source: str, data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise _fail(f"{source}: không phải JSON hay PDF / neither JSON nor PDF ({err})") from None


def _certificates(path: Path) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as err:
        raise _fail(
            f"{path}: không đọc được chứng thư PEM / not PEM certificates ({err})"
        ) from None
    return certs


def _crl(path: Path) -> x509.CertificateRevocationList:
    try:
        data = path.read_bytes()
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except (OSError, ValueError) as err:
        raise _fail(f"{path}: không đọc được CRL / not a CRL ({err})") from None


def _from_store() -> tuple[list[x509.Certificate], list[x509.CertificateRevocationList]]:
    from benhan.config import Settings
    from benhan.signing import pki
    from benhan.store.database import open_store

    store = open_store(Settings.from_env().database_url)
    try:
        with store.read() as conn:
            anchors = pki.trust_anchors(conn)
            crls = pki.crls(conn) if anchors else []
    finally:
        store.dispose()
    if not anchors:
        raise _fail("không có điểm tin cậy: dùng --trust / no trust anchors here: use --trust")
    return anchors, list(crls)


def _table(result: Verification) -> Table:
    table = Table(title="Kiểm tra chữ ký / signature checks")
    for head in ("", "kiểm tra / check", "kết quả / result"):
        table.add_column(head)
    for c in result.checks:
        mark = "[red]✗[/red]" if not c.ok else ("[yellow]![/yellow]" if c.warning else "[green]✓")
        table.add_row(mark, c.name, c.message)
    return table
