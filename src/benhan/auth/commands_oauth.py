"""`benhan clients …` and `benhan keys …`: OAuth client applications and token-signing keys."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from benhan.access import Actor
from benhan.config import Settings

clients_app = typer.Typer(
    help="Ứng dụng OAuth 2 / OAuth 2 client applications", no_args_is_help=True
)
keys_app = typer.Typer(help="Khoá ký mã truy cập / token-signing keys", no_args_is_help=True)
err = Console(stderr=True)
out = Console()


def _fail(message: str) -> NoReturn:
    err.print(f"[red]lỗi / error:[/red] {message}")
    raise typer.Exit(2)


@contextmanager
def _write() -> Iterator[tuple[sa.Connection, Settings]]:
    from benhan.store.database import open_store

    cfg = Settings.from_env()
    store = open_store(cfg.database_url)
    try:
        store.create_schema()
        with store.begin() as conn:
            yield conn, cfg
    finally:
        store.dispose()


def _when(us: int | None) -> str:
    from benhan.fhir.primitives import from_micros

    return "" if us is None else from_micros(us).strftime("%Y-%m-%d %H:%M:%S")


@clients_app.command("add")
def add_client(
    name: Annotated[str, typer.Option(help="tên ứng dụng / application name")],
    role: Annotated[str, typer.Option(help="vai trò / role code")],
    facility: Annotated[str, typer.Option(help="mã cơ sở MA_CSKCB / facility code")] = "",
    scopes: Annotated[
        str | None, typer.Option(help="phạm vi SMART / SMART scopes (default: the role's)")
    ] = None,
    redirect_uri: Annotated[
        list[str] | None, typer.Option(help="địa chỉ quay về / redirect URI (repeatable)")
    ] = None,
    public: Annotated[
        bool, typer.Option(help="ứng dụng công khai, PKCE / public client using PKCE")
    ] = False,
) -> None:
    """Đăng ký ứng dụng / register a client; its secret is shown once, here only."""
    from benhan.auth.accounts import AuthError
    from benhan.auth.clients import register_client

    try:
        with _write() as (conn, _cfg):
            client, secret = register_client(
                conn,
                name=name,
                role_code=role,
                facility=facility,
                scopes=scopes,
                redirect_uris=redirect_uri or (),
                public=public,
            )
    except AuthError as exc:
        _fail(exc.message)
    out.print(f"client_id: {client.client_id}", highlight=False)
    if secret:
        out.print(f"client_secret: {secret}", highlight=False)
        err.print(
            "Khoá bí mật chỉ hiện một lần: hãy lưu ngay / the secret is shown only once: save it"
        )
    err.print(f"scopes: {client.scopes}", highlight=False)


@clients_app.command("list")
def list_clients() -> None:
    """Liệt kê ứng dụng / list clients."""
    from benhan.auth.clients import list_clients as listed

    with _write() as (conn, _cfg):
        found = listed(conn)
    table = Table()
    table.add_column("client_id", no_wrap=True, min_width=16)  # ids are copied: never cut
    for title in ("tên / name", "vai trò / role", "cơ sở / facility", "loại / type"):
        table.add_column(title, overflow="fold")  # wrapped, never cut with …
    table.add_column("hoạt động / active")
    for c in found:
        kind = "public (PKCE)" if c.public else "confidential"
        table.add_row(c.client_id, c.name, c.role, c.facility, kind, "✓" if c.active else "✗")
    out.print(table)


@clients_app.command("disable")
def disable(client_id: Annotated[str, typer.Argument(help="client_id")]) -> None:
    """Tắt ứng dụng / disable a client: its tokens stop working at once."""
    from benhan.auth.accounts import AuthError
    from benhan.auth.clients import disable_client

    try:
        with _write() as (conn, _cfg):
            disable_client(conn, client_id)
    except AuthError as exc:
        _fail(exc.message)
    err.print(f"đã tắt / disabled: {client_id}", highlight=False)


@keys_app.command("rotate")
def rotate(
    overlap: Annotated[
        int, typer.Option(help="giây trước khi khoá mới ký / seconds before the new key signs")
    ] = 600,  # keys.DEFAULT_OVERLAP_S (imported late: the CLI starts fast)
) -> None:
    """Thay khoá ký / rotate the signing key, without downtime."""
    from benhan.auth import keys

    if overlap < 0:
        _fail("--overlap phải >= 0 / --overlap must be >= 0")
    with _write() as (conn, cfg):
        actor = Actor.job(cfg.facility, "benhan keys rotate")
        new = keys.rotate(conn, actor=actor, overlap_s=overlap)
    err.print(f"khoá mới / new key {new.kid}, ký từ / signs from {_when(new.activates)}")


@keys_app.command("list")
def list_keys() -> None:
    """Liệt kê khoá ký / list signing keys."""
    from benhan.auth import keys

    with _write() as (conn, _cfg):
        found = keys.list_keys(conn)
    table = Table()
    table.add_column("kid", no_wrap=True, min_width=43)  # a JWK thumbprint: never cut
    for title in ("tạo / created", "ký từ / activates", "thôi ký / retired"):
        table.add_column(title, overflow="fold")
    for k in found:
        table.add_row(k.kid, _when(k.created), _when(k.activates), _when(k.retired))
    out.print(table)
