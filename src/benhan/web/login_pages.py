"""Sign-in and sign-out.

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
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from benhan.access import ANONYMOUS, Actor
from benhan.auth.accounts import (
    AuthError,
    authenticate,
)
from benhan.auth.sessions import (
    create_session,
    delete_session,
    hash_value,
)
from benhan.store.audit import LOGIN, LOGOUT, record_security, security_event
from benhan.web.forms import (
    Field,
    Message,
    page,
    see_other,
    store_of,
)
from benhan.web.i18n import N_
from benhan.web.rendering import PageRoute
from benhan.web.session import (
    SESSION_COOKIE,
    clear_session_cookie,
    client_address,
    current,
    local_path,
    require_csrf,
    set_session_cookie,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

LOGIN_COOKIE = "benhan_login"


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
    return _loginpage(request, target)


def _loginpage(
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
    response = page(request, "login.html", ctx, status)
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
        return _loginpage(request, target, expired, 403, name)
    address = client_address(request)
    old = request.cookies.get(SESSION_COOKIE)
    value: str | None = None
    failure: AuthError | None = None
    # One transaction whatever happens: a failed attempt must be remembered (throttling).
    with store_of(request).begin() as conn:
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
            record_security(conn, anon, security_event(LOGIN, ok=False, detail=exc.code))
        else:
            if old:
                delete_session(conn, old)  # a new id at sign-in: no session fixation
            value, _ = create_session(conn, acc.id, address)
            actor = acc.actor(address=address, session=hash_value(value)[:16])
            record_security(conn, actor, security_event(LOGIN))
    if value is None:
        code = failure.code if failure else "invalid"
        status = 429 if code == "throttled" else 400
        return _loginpage(
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
    with store_of(request).begin() as conn:
        delete_session(conn, request.cookies.get(SESSION_COOKIE, ""))
        record_security(conn, s.actor, security_event(LOGOUT))
    response = see_other(request, "login")
    clear_session_cookie(request, response)
    return response
