"""Sign-in and sign-out, account administration, break-glass and the privacy officer's pages.

Sign-in defends against login CSRF (a forged form that signs the victim in as the attacker) with
a double-submit token: GET /login sets a random cookie (SameSite=Strict, HttpOnly) and puts the
same value in the form; POST /login refuses unless both match. A cross-site page can neither read
nor set that cookie. We chose it over an Origin/Referer check because older browsers on ward PCs
omit Origin on same-origin form posts and some proxies strip Referer, which would lock real users
out. Every form of a signed-in page carries the session's CSRF token instead (web/session.py).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from babel.dates import format_datetime
from fastapi import APIRouter, Form, Query, Request
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from benhan.access import ANONYMOUS, JOB, ROLES, Actor, Role
from benhan.auth.accounts import (
    Account,
    AuthError,
    authenticate,
    create_account,
    get_account,
    list_accounts,
    set_password,
    update_account,
)
from benhan.auth.break_glass import (
    DEFAULT_MINUTES,
    MAX_MINUTES,
    MAX_REASON,
    MIN_MINUTES,
    MIN_REASON,
    REASONS,
    BreakGlassError,
    active_grants,
    grants_for_facility,
    open_break_glass,
)
from benhan.auth.sessions import (
    account_changed,
    create_session,
    delete_session,
    hash_value,
)
from benhan.fhir.primitives import VIETNAM, now
from benhan.store.audit import LOGIN, LOGOUT, record_security, security_event
from benhan.store.database import Store
from benhan.store.schema import resource
from benhan.store.search import parse_search
from benhan.store.unit import unit
from benhan.web.i18n import N_, Lang
from benhan.web.rendering import PageRoute, language, render
from benhan.web.session import (
    SESSION_COOKIE,
    PageSession,
    clear_session_cookie,
    client_address,
    current,
    local_path,
    login_redirect,
    require_csrf,
    set_session_cookie,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

LOGIN_COOKIE = "benhan_login"
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
GRANT_DAYS = 30  # how far back the privacy page lists break-glass grants
AUDIT_ROWS = 100
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

Field = Annotated[str, Form()]


@dataclass(frozen=True)
class Message:
    """A sentence for the page, translated when rendered: `_(text, **values)`."""

    text: str
    values: dict[str, Any] = field(default_factory=dict)


# ---- shared -----------------------------------------------------------------------------


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _moment(lang: Lang, moment: datetime) -> str:
    pattern = "HH:mm dd/MM/yyyy" if lang == "vi" else "dd MMM yyyy, HH:mm"
    return format_datetime(moment, pattern, tzinfo=VIETNAM, locale=lang)


def _page(request: Request, template: str, ctx: dict[str, Any], status: int = 200) -> Response:
    lang = language(request)
    s = current(request)
    base = {
        "moment": partial(_moment, lang),
        "roles": {**ROLES, JOB.code: JOB, ANONYMOUS.code: ANONYMOUS},
        "csrf": s.csrf if s else "",
    }
    response = render(request, template, {**base, **ctx}, status)
    # These pages carry a CSRF token and people's names: never kept by a shared cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def _forbidden(request: Request) -> Response:
    return _page(request, "forbidden.html", {}, 403)


def _guard(request: Request, allowed: Callable[[Role], bool]) -> PageSession | Response:
    """The session when its role may use the page; else the sign-in redirect or a 403 page."""
    s = current(request)
    if s is None:
        return login_redirect(request)
    return s if allowed(s.actor.role) else _forbidden(request)


def _guard_post(
    request: Request, csrf: str, allowed: Callable[[Role], bool]
) -> PageSession | Response:
    """For forms that change something: the CSRF token first (403), then the role."""
    require_csrf(request, csrf)
    return _guard(request, allowed)


def _see_other(request: Request, name: str, query: str = "") -> RedirectResponse:
    path = request.url_for(name).path
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


# ---- sign-in and sign-out ---------------------------------------------------------------

LOGIN_FAILED = {
    "throttled": Message(N_("Đăng nhập sai quá nhiều lần. Hãy thử lại sau 15 phút.")),
    # One message whether the name is unknown, the password wrong or the account disabled.
    "invalid": Message(N_("Sai tên đăng nhập hoặc mật khẩu.")),
}


@router.get("/login", name="login")
def login_form(request: Request, next_: Annotated[str, Query(alias="next")] = "/") -> Response:
    target = local_path(next_)
    if current(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _login_page(request, target)


def _login_page(
    request: Request,
    target: str,
    error: Message | None = None,
    status: int = 200,
    username: str = "",
) -> Response:
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}", token):
        token = secrets.token_urlsafe(32)
    ctx = {"next": target, "token": token, "error": error, "username": username}
    response = _page(request, "login.html", ctx, status)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        path=request.url_for("login").path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/login", name="login_submit")
def login_submit(
    request: Request,
    username: Field = "",
    password: Field = "",
    token: Field = "",
    next_: Annotated[str, Form(alias="next")] = "/",
) -> Response:
    target = local_path(next_)
    name = username.strip().lower()
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not token or not cookie or not hmac.compare_digest(token.encode(), cookie.encode()):
        expired = Message(N_("Biểu mẫu đăng nhập đã hết hạn. Hãy đăng nhập lại."))
        return _login_page(request, target, expired, 403, name)
    address = client_address(request)
    old = request.cookies.get(SESSION_COOKIE)
    value: str | None = None
    failure: AuthError | None = None
    # One transaction whatever happens: a failed attempt must be remembered (throttling).
    with _store(request).begin() as conn:
        try:
            acc = authenticate(conn, name, password, address)
        except AuthError as exc:
            failure = exc
            anon = Actor(
                kind="user",
                name=name[:64],
                role=ANONYMOUS,
                facility="",
                scopes=ANONYMOUS.scopes,
                address=address,
            )
            record_security(conn, anon, security_event(anon, LOGIN, ok=False, detail=exc.code))
        else:
            if old:
                delete_session(conn, old)  # a new id at sign-in: no session fixation
            value, _ = create_session(conn, acc.id, address)
            actor = acc.actor(address=address, session=hash_value(value)[:16])
            record_security(conn, actor, security_event(actor, LOGIN))
    if value is None:
        code = failure.code if failure else "invalid"
        status = 429 if code == "throttled" else 400
        return _login_page(
            request, target, LOGIN_FAILED.get(code, LOGIN_FAILED["invalid"]), status, name
        )
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, value)
    response.delete_cookie(LOGIN_COOKIE, path=request.url_for("login").path)
    return response


@router.post("/logout", name="logout")
def logout(request: Request, csrf: Field = "") -> Response:
    require_csrf(request, csrf)
    s = current(request)
    assert s is not None  # require_csrf refuses a request without a session
    with _store(request).begin() as conn:
        delete_session(conn, request.cookies.get(SESSION_COOKIE, ""))
        record_security(conn, s.actor, security_event(s.actor, LOGOUT))
    response = _see_other(request, "login")
    clear_session_cookie(request, response)
    return response


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
def accounts_page(request: Request) -> Response:
    s = _guard(request, _is_admin)
    if isinstance(s, Response):
        return s
    return _accounts_page(request, s, notice=ACCOUNT_DONE.get(request.query_params.get("done", "")))


def _accounts_page(
    request: Request,
    s: PageSession,
    *,
    notice: Message | None = None,
    error: Message | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    with _store(request).read() as conn:
        accounts = list_accounts(conn, s.account.facility)
    ctx = {
        "accounts": accounts,
        "grantable": [ROLES[c] for c in GRANTABLE],
        "me": s.account,
        "notice": notice,
        "error": error,
        "form": form or {"username": "", "display_name": "", "role": "", "practitioner": ""},
    }
    return _page(request, "accounts.html", ctx, status)


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
    s = _guard_post(request, csrf, _is_admin)
    if isinstance(s, Response):
        return s
    form = {
        "username": username,
        "display_name": display_name,
        "role": role,
        "practitioner": practitioner,
    }
    try:
        with _store(request).begin() as conn:
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
        return _accounts_page(request, s, error=_account_error(exc), form=form, status=400)
    return _see_other(request, "accounts", "done=created")


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
    s = _guard_post(request, csrf, _is_admin)
    if isinstance(s, Response):
        return s
    try:
        with _store(request).begin() as conn:
            target = get_account(conn, account_id)
            # Another facility's account does not exist, as far as this admin can tell.
            if target is None or target.facility != s.account.facility:
                raise HTTPException(404)
            detail = change(conn, s, target)
            account_changed(conn, s.actor, target, detail)
    except AuthError as exc:
        return _accounts_page(request, s, error=_account_error(exc), status=400)
    return _see_other(request, "accounts", f"done={done}")


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


# ---- break-glass (clinicians who may) ---------------------------------------------------

GLASS_ERRORS = {
    "bad-reason-code": Message(N_("Hãy chọn một lý do trong danh sách.")),
    "bad-reason": Message(
        N_("Hãy ghi rõ lý do, từ %(min)s đến %(max)s ký tự."),
        {"min": MIN_REASON, "max": MAX_REASON},
    ),
    "bad-minutes": Message(
        N_("Thời hạn từ %(min)s đến %(max)s phút."), {"min": MIN_MINUTES, "max": MAX_MINUTES}
    ),
    "unknown-patient": Message(N_("Không tìm thấy người bệnh với mã này.")),
    "forbidden": Message(N_("Vai trò của bạn không được mở hồ sơ khẩn cấp.")),
}


def _may_break_glass(r: Role) -> bool:
    return r.break_glass


@router.get("/break-glass", name="break_glass")
def break_glass_page(request: Request) -> Response:
    s = _guard(request, _may_break_glass)
    if isinstance(s, Response):
        return s
    opened = Message(N_("Đã mở hồ sơ. Lượt truy cập này được ghi lại và sẽ được xem xét."))
    notice = opened if request.query_params.get("opened") else None
    return _glass_page(request, s, notice=notice)


def _glass_page(
    request: Request,
    s: PageSession,
    *,
    notice: Message | None = None,
    error: Message | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    with _store(request).read() as conn:
        grants = active_grants(conn, s.account.id)
    ctx = {
        "grants": grants,
        "reasons": list(REASONS.values()),
        "notice": notice,
        "error": error,
        "form": form
        or {"patient": "", "reason_code": "", "reason": "", "minutes": str(DEFAULT_MINUTES)},
        "limits": {
            "min_reason": MIN_REASON,
            "max_reason": MAX_REASON,
            "min_minutes": MIN_MINUTES,
            "max_minutes": MAX_MINUTES,
        },
    }
    return _page(request, "break_glass.html", ctx, status)


@router.post("/break-glass", name="break_glass_open")
def break_glass_open(
    request: Request,
    csrf: Field = "",
    patient: Field = "",
    reason_code: Field = "",
    reason: Field = "",
    minutes: Field = "",
) -> Response:
    s = _guard_post(request, csrf, _may_break_glass)
    if isinstance(s, Response):
        return s
    form = {"patient": patient, "reason_code": reason_code, "reason": reason, "minutes": minutes}
    try:
        if not minutes.strip().isdigit():
            raise BreakGlassError("bad-minutes", "minutes")
        with _store(request).begin() as conn:
            open_break_glass(conn, s.actor, patient, reason_code, reason, int(minutes))
    except BreakGlassError as exc:
        error = GLASS_ERRORS.get(exc.code, GLASS_ERRORS["forbidden"])
        return _glass_page(request, s, error=error, form=form, status=400)
    return _see_other(request, "break_glass", "opened=1")


# ---- privacy officer --------------------------------------------------------------------

OUTCOMES = {
    "0": N_("Thành công"),
    "4": N_("Bị từ chối hoặc lỗi nhỏ"),
    "8": N_("Lỗi nghiêm trọng"),
    "12": N_("Lỗi rất nghiêm trọng"),
}
PURPOSES = {"TREAT": N_("Điều trị"), "BTG": N_("Mở khẩn cấp"), "HOPERAT": N_("Vận hành")}
ACTIONS = {
    "110122": N_("Đăng nhập"),
    "110123": N_("Đăng xuất"),
    "110137": N_("Đổi quyền tài khoản"),
    "110127": N_("Mở hồ sơ khẩn cấp"),
    "read": N_("Xem"),
    "vread": N_("Xem"),
    "search-type": N_("Tìm kiếm"),
    "search-system": N_("Tìm kiếm"),
    "history-instance": N_("Xem lịch sử"),
    "history-type": N_("Xem lịch sử"),
    "history-system": N_("Xem lịch sử"),
    "create": N_("Tạo"),
    "update": N_("Sửa"),
    "patch": N_("Sửa"),
    "delete": N_("Xoá"),
    "operation": N_("Thao tác"),
    "transaction": N_("Giao dịch"),
    "batch": N_("Giao dịch"),
}


@dataclass(frozen=True)
class AuditRow:
    """One AuditEvent, as the privacy page shows it."""

    recorded: datetime | None
    who: str
    role: str
    facility: str
    action: str  # a label key of ACTIONS, else the code itself
    outcome: str
    purpose: str
    address: str

    @property
    def break_glass(self) -> bool:
        return self.purpose == "BTG"


def audit_row(content: bytes) -> AuditRow:
    event: dict[str, Any] = orjson.loads(content)
    agent = (event.get("agent") or [{}])[0]
    role = (((agent.get("role") or [{}])[0]).get("coding") or [{}])[0].get("code", "")
    subtype = (event.get("subtype") or [{}])[0].get("code", "")
    purposes = event.get("purposeOfEvent") or [{}]
    purpose = ((purposes[0].get("coding") or [{}])[0]).get("code", "")
    try:
        recorded: datetime | None = datetime.fromisoformat(event["recorded"])
    except (KeyError, TypeError, ValueError):
        recorded = None
    return AuditRow(
        recorded=recorded,
        who=str(agent.get("altId") or ""),
        role=str(role),
        facility=str((event.get("source") or {}).get("site") or ""),
        action=ACTIONS.get(subtype, subtype),
        outcome=OUTCOMES.get(str(event.get("outcome", "")), str(event.get("outcome", ""))),
        purpose=str(purpose),
        address=str((agent.get("network") or {}).get("address") or ""),
    )


def _is_privacy_officer(r: Role) -> bool:
    return r.code == "privacy-officer"


@router.get("/privacy", name="privacy")
def privacy_page(request: Request) -> Response:
    s = _guard(request, _is_privacy_officer)
    if isinstance(s, Response):
        return s
    facility = s.account.facility
    pid = (request.query_params.get("patient") or "").strip().removeprefix("Patient/")
    events: list[AuditRow] | None = None
    more = False
    error: Message | None = None
    with _store(request).read() as conn:
        grants = grants_for_facility(conn, facility, now() - timedelta(days=GRANT_DAYS))
        own = bool(pid) and _own_patient(conn, pid, facility)
    if pid and not own:
        # The same answer for another facility's patient and for none: nothing leaks.
        error = Message(N_("Người bệnh này không đăng ký tại cơ sở của bạn."))
    elif pid:
        store = _store(request)
        store.audit.flush(timeout=5)  # the reads of the last moments are on the trail too
        # Through the repository as the officer: their rules apply, and the look is audited.
        with unit(store, s.actor, write=False) as repo:
            params = [("patient", pid), ("_sort", "-date"), ("_count", str(AUDIT_ROWS))]
            found = repo.search(parse_search("AuditEvent", params, strict=True), ["patient"])
            events = [audit_row(content) for _, _, content in found.matches]
            more = found.has_next
    ctx = {
        "grants": grants,
        "grant_days": GRANT_DAYS,
        "patient": pid,
        "events": events,
        "more": more,
        "limit": AUDIT_ROWS,
        "error": error,
        "purposes": PURPOSES,
        "reasons": REASONS,
    }
    return _page(request, "privacy.html", ctx, 400 if error else 200)


def _own_patient(conn: sa.Connection, pid: str, facility: str) -> bool:
    if not FHIR_ID.fullmatch(pid):
        return False
    owner = conn.scalar(
        sa.select(resource.c.facility).where(resource.c.rtype == "Patient", resource.c.id == pid)
    )
    return owner == facility


__all__ = ["audit_row", "router"]
