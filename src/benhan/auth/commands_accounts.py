"""`benhan accounts …`: add, list, and change people's accounts from the server's command line.

Whoever runs these commands on the server is trusted (they can read the database anyway); every
permission change is still audited, as the job "cli" of this node's facility. Passwords are read
without echo, or from standard input with --password-stdin; they are never printed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape

from benhan.access import ROLES, Actor, Reach
from benhan.auth.accounts import (
    Account,
    AuthError,
    create_account,
    find_account,
    list_accounts,
    set_password,
    update_account,
)
from benhan.auth.sessions import account_changed
from benhan.config import Settings

accounts_app = typer.Typer(help="Tài khoản người dùng / people's accounts", no_args_is_help=True)
console = Console(stderr=True)

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="đọc mật khẩu từ stdin (một dòng) / read the password from standard input",
    ),
]
Username = Annotated[str, typer.Argument(help="tên đăng nhập / username")]


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]lỗi / error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(2)


@contextmanager
def _unit() -> Iterator[tuple[sa.Connection, Actor]]:
    """A write transaction on the configured store, and the actor changes are audited as."""
    from benhan.store.database import open_store

    cfg = Settings.from_env()
    store = open_store(cfg.database_url)
    try:
        store.create_schema()
        with store.begin() as conn:
            yield conn, Actor.job(cfg.facility, "cli")
    except AuthError as exc:
        raise _fail(exc.message) from None
    finally:
        store.dispose()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Mật khẩu / password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise _fail("mật khẩu trống / empty password")
    return password


def _account(conn: sa.Connection, username: str) -> Account:
    acc = find_account(conn, username)
    if acc is None:
        raise _fail(f"không có tài khoản / no such account: {username}")
    return acc


@accounts_app.command("add")
def add(
    username: Annotated[str, typer.Option(help="tên đăng nhập / username")],
    role: Annotated[str, typer.Option(help="vai trò / role, e.g. doctor")],
    name: Annotated[str, typer.Option(help="họ tên hiển thị / display name")],
    facility: Annotated[
        str | None,
        typer.Option(help="mã cơ sở / MA_CSKCB; default: this node's for staff, '' for others"),
    ] = None,
    practitioner: Annotated[
        str | None, typer.Option(help="Practitioner id của nhân viên / the staff member's")
    ] = None,
    patient: Annotated[
        str | None, typer.Option(help="Patient id (vai trò patient) / for the patient role")
    ] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Thêm tài khoản / add an account."""
    password = _password(password_stdin)
    with _unit() as (conn, actor):
        if facility is None:
            staff = role in ROLES and ROLES[role].reach is Reach.FACILITY
            facility = actor.facility if staff else ""
        acc = create_account(
            conn,
            username=username,
            password=password,
            role_code=role,
            facility=facility,
            display_name=name,
            practitioner=practitioner,
            patient=patient,
        )
        account_changed(conn, actor, acc, f"created, role {acc.role}, facility {acc.facility}")
    typer.echo(f"đã thêm / added: {acc.username} ({acc.role}, {acc.facility or 'province'})")


@accounts_app.command("list")
def list_(
    facility: Annotated[
        str | None, typer.Option(help="chỉ cơ sở này / only this facility ('' for province)")
    ] = None,
) -> None:
    """Liệt kê tài khoản / list accounts (tab-separated)."""
    with _unit() as (conn, _):
        found = list_accounts(conn, facility)
    typer.echo("username\trole\tfacility\tactive\tlinked\tname")
    for a in found:
        linked = f"Practitioner/{a.practitioner}" if a.practitioner else ""
        linked = f"Patient/{a.patient}" if a.patient else linked
        active = "yes" if a.active else "no"
        typer.echo(f"{a.username}\t{a.role}\t{a.facility}\t{active}\t{linked}\t{a.display_name}")


@accounts_app.command("set-password")
def set_password_(username: Username, password_stdin: PasswordStdin = False) -> None:
    """Đặt mật khẩu mới / set a new password (signs the account out everywhere)."""
    password = _password(password_stdin)
    with _unit() as (conn, actor):
        acc = _account(conn, username)
        set_password(conn, acc.id, password)
        account_changed(conn, actor, acc, "password set")
    typer.echo(f"đã đổi mật khẩu / password set: {username}")


@accounts_app.command("set-role")
def set_role(
    username: Username, role: Annotated[str, typer.Argument(help="vai trò mới / new role")]
) -> None:
    """Đổi vai trò / change the role (signs the account out everywhere)."""
    with _unit() as (conn, actor):
        acc = _account(conn, username)
        changed = update_account(conn, acc.id, role_code=role)
        account_changed(conn, actor, changed, f"role {acc.role} -> {changed.role}")
    typer.echo(f"đã đổi vai trò / role set: {username} → {role}")


def _set_active(username: str, active: bool) -> None:
    with _unit() as (conn, actor):
        acc = _account(conn, username)
        changed = update_account(conn, acc.id, active=active)
        account_changed(conn, actor, changed, "enabled" if active else "disabled")


@accounts_app.command("disable")
def disable(username: Username) -> None:
    """Khoá tài khoản / disable an account (signs it out everywhere)."""
    _set_active(username, False)
    typer.echo(f"đã khoá / disabled: {username}")


@accounts_app.command("enable")
def enable(username: Username) -> None:
    """Mở lại tài khoản / enable an account again."""
    _set_active(username, True)
    typer.echo(f"đã mở lại / enabled: {username}")


__all__ = ["accounts_app"]
