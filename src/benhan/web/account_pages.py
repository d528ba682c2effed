"""Accounts of a facility, managed by its administrators: create, change role, disable, reset."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from benhan.access import ROLES, Role
from benhan.auth.accounts import (
    Account,
    AuthError,
    create_account,
    get_account,
    list_accounts,
    set_password,
    update_account,
)
from benhan.auth.sessions import (
    account_changed,
)
from benhan.store.schema import resource
from benhan.web.forms import (
    FHIR_ID,
    Field,
    Message,
    guard,
    guard_post,
    page,
    see_other,
    store_of,
)
from benhan.web.i18n import N_
from benhan.web.rendering import PageRoute
from benhan.web.session import (
    PageSession,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# The roles a facility administrator may give: the facility's people, not province roles.
GRANTABLE = (
    "registrar",
    "nurse",
    "doctor",
    "lab-technician",
    "pharmacist",
    "facility-admin",
    "privacy-officer",
)


# ---- accounts (facility administrators) -------------------------------------------------

ACCOUNT_DONE = {
    "created": Message(N_("Đã tạo tài khoản.")),
    "role": Message(N_("Đã đổi vai trò. Người dùng phải đăng nhập lại.")),
    "disabled": Message(N_("Đã khoá tài khoản. Người dùng đã bị đăng xuất.")),
    "enabled": Message(N_("Đã mở lại tài khoản.")),
    "password": Message(N_("Đã đặt mật khẩu tạm. Người dùng phải đăng nhập lại.")),
}
ACCOUNT_ERRORS = {
    "weak-password": N_("Mật khẩu cần ít nhất 10 ký tự và không được chứa tên đăng nhập."),
    "bad-username": N_("Tên đăng nhập gồm 3–64 ký tự: chữ thường không dấu, số, dấu . _ -"),
    "exists": N_("Tên đăng nhập này đã có người dùng. Hãy chọn tên khác."),
    "bad-role": N_("Hãy chọn một vai trò trong danh sách."),
    "bad-name": N_("Họ tên hiển thị cần từ 1 đến 128 ký tự."),
    "bad-practitioner": N_("Không có nhân viên y tế (Practitioner) với mã này."),
    "self": N_("Bạn không thể đổi vai trò hoặc khoá chính tài khoản của mình."),
    "bad-request": N_("Yêu cầu không hợp lệ."),
}


def _is_admin(r: Role) -> bool:
    return r.code == "facility-admin"


def _account_error(exc: AuthError) -> Message:
    return Message(ACCOUNT_ERRORS.get(exc.code, ACCOUNT_ERRORS["bad-request"]))


@router.get("/accounts", name="accounts")
def accountspage(request: Request) -> Response:
    s = guard(request, _is_admin)
    if isinstance(s, Response):
        return s
    return _accountspage(request, s, notice=ACCOUNT_DONE.get(request.query_params.get("done", "")))


def _accountspage(
    request: Request,
    s: PageSession,
    *,
    notice: Message | None = None,
    error: Message | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    with store_of(request).read() as conn:
        accounts = list_accounts(conn, s.account.facility)
    ctx = {
        "accounts": accounts,
        "grantable": [ROLES[c] for c in GRANTABLE],
        "me": s.account,
        "notice": notice,
        "error": error,
        "form": form or {"username": "", "display_name": "", "role": "", "practitioner": ""},
    }
    return page(request, "accounts.html", ctx, status)


@router.post("/accounts", name="account_create")
def account_create(
    request: Request,
    csrf: Field = "",
    username: Field = "",
    display_name: Field = "",
    role: Field = "",
    practitioner: Field = "",
    password: Field = "",
) -> Response:
    s = guard_post(request, csrf, _is_admin)
    if isinstance(s, Response):
        return s
    form = {
        "username": username,
        "display_name": display_name,
        "role": role,
        "practitioner": practitioner,
    }
    try:
        with store_of(request).begin() as conn:
            pract = practitioner.strip().removeprefix("Practitioner/") or None
            _check_new_account(conn, role, display_name, pract)
            acc = create_account(
                conn,
                username=username.strip().lower(),
                password=password,
                role_code=role,
                facility=s.account.facility,
                display_name=display_name,
                practitioner=pract,
            )
            account_changed(conn, s.actor, acc, f"created, role {acc.role}")
    except AuthError as exc:
        return _accountspage(request, s, error=_account_error(exc), form=form, status=400)
    return see_other(request, "accounts", "done=created")


def _check_new_account(
    conn: sa.Connection, role: str, display_name: str, practitioner: str | None
) -> None:
    if role not in GRANTABLE:
        raise AuthError("bad-role", "role")
    if not 1 <= len(display_name.strip()) <= 128:
        raise AuthError("bad-name", "display name")
    if practitioner is not None:
        found = FHIR_ID.fullmatch(practitioner) and conn.scalar(
            sa.select(resource.c.id).where(
                resource.c.rtype == "Practitioner",
                resource.c.id == practitioner,
                resource.c.deleted.is_(False),
            )
        )
        if not found:
            raise AuthError("bad-practitioner", "practitioner")


def _change(
    request: Request,
    csrf: str,
    account_id: str,
    done: str,
    change: Callable[[sa.Connection, PageSession, Account], str],
) -> Response:
    """One change to an account of the admin's own facility, audited, its sessions ended."""
    s = guard_post(request, csrf, _is_admin)
    if isinstance(s, Response):
        return s
    try:
        with store_of(request).begin() as conn:
            target = get_account(conn, account_id)
            # Another facility's account does not exist, as far as this admin can tell.
            if target is None or target.facility != s.account.facility:
                raise HTTPException(404)
            detail = change(conn, s, target)
            account_changed(conn, s.actor, target, detail)
    except AuthError as exc:
        return _accountspage(request, s, error=_account_error(exc), status=400)
    return see_other(request, "accounts", f"done={done}")


@router.post("/accounts/{account_id}/role", name="account_role")
def account_role(request: Request, account_id: str, csrf: Field = "", role: Field = "") -> Response:
    def change(conn: sa.Connection, s: PageSession, target: Account) -> str:
        if target.id == s.account.id:
            raise AuthError("self", "self")
        if role not in GRANTABLE:
            raise AuthError("bad-role", "role")
        update_account(conn, target.id, role_code=role)
        return f"role {target.role} -> {role}"

    return _change(request, csrf, account_id, "role", change)


@router.post("/accounts/{account_id}/active", name="account_active")
def account_active(
    request: Request, account_id: str, csrf: Field = "", active: Field = ""
) -> Response:
    def change(conn: sa.Connection, s: PageSession, target: Account) -> str:
        if active not in ("0", "1"):
            raise AuthError("bad-request", "active")
        if target.id == s.account.id:
            raise AuthError("self", "self")
        update_account(conn, target.id, active=active == "1")
        return "enabled" if active == "1" else "disabled"

    done = "enabled" if active == "1" else "disabled"
    return _change(request, csrf, account_id, done, change)


@router.post("/accounts/{account_id}/password", name="account_password")
def account_password(
    request: Request, account_id: str, csrf: Field = "", password: Field = ""
) -> Response:
    def change(conn: sa.Connection, s: PageSession, target: Account) -> str:
        set_password(conn, target.id, password)
        return "temporary password set"

    return _change(request, csrf, account_id, "password", change)
