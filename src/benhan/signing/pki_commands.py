"""`benhan pki …`: the provincial CA, certificates for clinicians and facilities, revocations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, cast

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import sqlalchemy as sa

    from benhan.access import Actor
    from benhan.signing.pki import CertificateRecord, LeafKind
    from benhan.signing.signers import Algorithm

pki_app = typer.Typer(
    help="Chứng thư số và CA tỉnh / certificates and the provincial CA", no_args_is_help=True
)
err = Console(stderr=True)
out = Console()


class Encoding(StrEnum):
    der = "der"
    pem = "pem"


def _fail(message: str) -> NoReturn:
    err.print(f"[red]lỗi / error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


@contextmanager
def _write(command: str) -> Iterator[tuple[sa.Connection, Actor]]:
    """One transaction: a refused request (PkiError) changes nothing and exits with code 2."""
    from benhan.access import Actor
    from benhan.config import Settings
    from benhan.signing.pki import PkiError
    from benhan.store.database import open_store

    cfg = Settings.from_env()
    store = open_store(cfg.database_url)
    try:
        store.create_schema()
        with store.begin() as conn:
            yield conn, Actor.job(cfg.facility, f"benhan pki {command}")
    except PkiError as exc:
        _fail(exc.message)
    finally:
        store.dispose()


def _write_file(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        _fail(f"không ghi được {path} / cannot write {path}: {exc.strerror}")


@pki_app.command("init")
def init(
    name: Annotated[str, typer.Option(help="tên CA (O=) / the CA's organization name")] = (
        "benhan — CA y tế tỉnh"  # pki.DEFAULT_CA_NAME (imported late: the CLI starts fast)
    ),
) -> None:
    """Tạo CA tỉnh (một lần) / create the provincial CA, once."""
    from benhan.signing import pki

    with _write("init") as (conn, actor):
        existed = pki.current_ca(conn) is not None
        ca = pki.ensure_ca(conn, name=name, actor=actor)
    state = "đã có sẵn / already existed" if existed else "đã tạo / created"
    err.print(f"CA {state}", highlight=False)
    _table([ca.root, ca.issuing])


@pki_app.command("issue")
def issue(
    kind: Annotated[str, typer.Option(help="facility | practitioner")],
    owner: Annotated[str, typer.Option(help="Organization/<MA_CSKCB> | Practitioner/<id>")],
    name: Annotated[str, typer.Option(help="tên người/cơ sở (CN=) / common name")],
    facility: Annotated[str, typer.Option(help="mã cơ sở MA_CSKCB / facility code")],
    organization: Annotated[str | None, typer.Option(help="tên cơ sở (O=) / facility name")] = None,
    days: Annotated[int, typer.Option(help="số ngày hiệu lực / days valid")] = 730,
    algorithm: Annotated[str, typer.Option(help="ES256 | RS256")] = "ES256",
    crl_url: Annotated[str | None, typer.Option(help="địa chỉ CRL / CRL distribution URL")] = None,
) -> None:
    """Cấp chứng thư ký tài liệu / issue a document-signing certificate and key."""
    from benhan.signing import pki

    with _write("issue") as (conn, actor):
        record = pki.issue(
            conn,
            kind=cast("LeafKind", kind),
            owner=owner,
            common_name=name,
            facility=facility,
            days=days,
            algorithm=cast("Algorithm", algorithm),
            organization=organization,
            crl_url=crl_url,
            actor=actor,
        )  # pki.issue checks kind and algorithm and refuses others
    err.print(f"đã cấp / issued: {record.serial_hex}", highlight=False)
    _table([record])


@pki_app.command("revoke")
def revoke(
    serial: Annotated[str, typer.Argument(help="số hiệu (hex) / serial number, hexadecimal")],
    reason: Annotated[str, typer.Option(help="keyCompromise, superseded, …")],
) -> None:
    """Thu hồi chứng thư / revoke a certificate, for good."""
    from benhan.signing import pki

    with _write("revoke") as (conn, actor):
        record = pki.revoke(conn, serial, reason=reason, actor=actor)
    err.print(f"đã thu hồi / revoked: {record.serial_hex}", highlight=False)


@pki_app.command("crl")
def crl(
    output: Annotated[Path, typer.Option(help="tệp CRL / output file")],
    encoding: Annotated[
        Encoding | None, typer.Option("--format", help="der | pem (mặc định theo đuôi tệp)")
    ] = None,
) -> None:
    """Xuất danh sách thu hồi (CRL) / write the CRL, signed by the issuing CA."""
    from cryptography.hazmat.primitives.serialization import Encoding as Form

    from benhan.signing import pki

    chosen = encoding or (Encoding.pem if output.suffix.lower() == ".pem" else Encoding.der)
    with _write("crl") as (conn, _actor):
        revocations = pki.crl(conn)
    _write_file(output, revocations.public_bytes(Form.PEM if chosen is Encoding.pem else Form.DER))
    err.print(f"{output}: {len(revocations)} chứng thư bị thu hồi / revoked", highlight=False)


@pki_app.command("anchors")
def anchors(output: Annotated[Path, typer.Option(help="tệp PEM / output file")]) -> None:
    """Xuất CA gốc tin cậy (PEM) để kiểm tra ngoại tuyến / write the trust anchors, PEM."""
    from cryptography.hazmat.primitives.serialization import Encoding as Form

    from benhan.signing import pki

    with _write("anchors") as (conn, _actor):
        roots = pki.trust_anchors(conn)
    if not roots:
        _fail("chưa có CA gốc: chạy `benhan pki init` / no trust anchor yet: run `benhan pki init`")
    _write_file(output, b"".join(c.public_bytes(Form.PEM) for c in roots))
    err.print(f"{output}: {len(roots)} CA gốc / trust anchors", highlight=False)


@pki_app.command("import")
def import_chain(
    chain: Annotated[Path, typer.Argument(help="chuỗi chứng thư PEM / certificate chain, PEM")],
    owner: Annotated[str, typer.Option(help="Organization/<MA_CSKCB> | Practitioner/<id>")],
    facility: Annotated[str, typer.Option(help="mã cơ sở MA_CSKCB / facility code")],
    key: Annotated[Path | None, typer.Option(help="khóa riêng PEM / private key, PEM")] = None,
    key_uri: Annotated[
        str | None,
        typer.Option(
            help="khóa ở token pkcs11:… hoặc dịch vụ ký từ xa CSC https://…?credential=<id> / "
            "where the key is held: a PKCS#11 token or a CSC remote-signing service"
        ),
    ] = None,
    trust_root: Annotated[
        bool, typer.Option(help="tin cậy CA gốc của chuỗi / trust the chain's root")
    ] = False,
) -> None:
    """Nhập chứng thư của CA được cấp phép / import a licensed CA's certificate."""
    from benhan.signing import pki

    if key and key_uri:
        _fail("chỉ một trong --key và --key-uri / give --key or --key-uri, not both")
    if key_uri and key_uri.startswith("https://"):
        _check_remote(key_uri)
    source: bytes | str | None = _read(key) if key else key_uri
    with _write("import") as (conn, actor):
        record = pki.import_certificate(
            conn, _read(chain), owner=owner, facility=facility, key=source,
            trust_root=trust_root, actor=actor,
        )  # fmt: skip
    _table([record])


def _check_remote(uri: str) -> None:
    """A remote-signing key URI is read now, so a mistyped one fails here, not at signing."""
    from benhan.signing.pki import PkiError
    from benhan.signing.remote import parse_uri

    try:
        parse_uri(uri)
    except PkiError as exc:
        _fail(exc.message)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        _fail(f"không đọc được {path} / cannot read {path}: {exc.strerror}")


@pki_app.command("list")
def list_certificates(
    owner: Annotated[str | None, typer.Option(help="chỉ của / only this owner's")] = None,
) -> None:
    """Liệt kê chứng thư / list certificates."""
    from benhan.signing import pki

    with _write("list") as (conn, _actor):
        found = pki.certificates(conn, owner=owner)
    _table(found)


def _table(records: list[CertificateRecord]) -> None:
    table = Table()
    table.add_column("số hiệu / serial", no_wrap=True)  # copied into `revoke`: never cut
    for title in ("loại / kind", "chủ / owner", "tên / name"):
        table.add_column(title, overflow="fold")
    table.add_column("hết hạn / until", no_wrap=True)
    for title in ("khóa / key", "trạng thái / status"):
        table.add_column(title, overflow="fold")
    for r in records:
        key = f"{r.algorithm} {r.key_held}"
        until = f"{r.not_after:%Y-%m-%d}"
        table.add_row(r.serial_hex, r.kind, r.owner, r.common_name, until, key, _status(r))
    out.print(table)


def _status(r: CertificateRecord) -> str:
    from benhan.fhir.primitives import now

    if r.revocation:
        return f"thu hồi / revoked {r.revocation.at:%Y-%m-%d} ({r.revocation.reason.value})"
    if now() >= r.not_after:
        return "hết hạn / expired"
    return "tin cậy / trust anchor" if r.trust_anchor else "hiệu lực / valid"
