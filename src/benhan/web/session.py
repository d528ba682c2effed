"""The signed-in person on a page request: the session cookie, its CSRF token, the sign-in redirect.

The cookie holds a random value (auth/sessions.py stores only its hash). Forms that change
something carry the session's CSRF token (synchronizer token), checked with `require_csrf`; htmx
requests send it in the X-CSRF-Token header, which base.html sets with `hx-headers`.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from benhan.access import Actor
from benhan.auth.accounts import Account
from benhan.auth.sessions import lookup, touch
from benhan.fhir import primitives
from benhan.fhir.primitives import micros
from benhan.store.database import Store

SESSION_COOKIE = "benhan_session"
CSRF_HEADER = "X-CSRF-Token"
# A local path: one leading slash, then no slash or backslash (browsers read "/\\x" as "//x").
LOCAL_PATH = re.compile(r"^/(?![/\\])[^\\\x00-\x1f\x7f]*$")
_STATE = "page_session"


@dataclass
class PageSession:
    id: str  # the stored hash of the cookie value (the cookie value itself never leaves here)
    account: Account
    csrf: str
    actor: Actor


def current(request: Request) -> PageSession | None:
    """The live session of this request, or None; looked up once per request."""
    if hasattr(request.state, _STATE):
        cached: PageSession | None = getattr(request.state, _STATE)
        return cached
    found = _find(request)
    setattr(request.state, _STATE, found)
    return found


def _find(request: Request) -> PageSession | None:
    value = request.cookies.get(SESSION_COOKIE)
    if not value:
        return None
    store: Store = request.app.state.store
    # Read first; the idle deadline is moved in a short write only when it is due.
    with store.read() as conn:
        found = lookup(conn, value, slide=False)
    if found is None:
        return None
    row, acc = found
    stamp = micros(primitives.now())
    if row.needs_slide(stamp):
        with store.begin() as conn:
            row = touch(conn, row, stamp)
    # The audit trail names the session by a prefix of its hash: enough to follow it, no secret.
    actor = acc.actor(address=client_address(request), session=row.id_hash[:16])
    return PageSession(row.id_hash, acc, row.csrf, actor)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def require_csrf(request: Request, token: str) -> None:
    """403 unless `token` (or the X-CSRF-Token header) is this session's CSRF token."""
    session = current(request)
    given = token or request.headers.get(CSRF_HEADER, "")
    # Bytes: compare_digest refuses str with non-ASCII characters, which a forged form may send.
    if (
        session is None
        or not given
        or not hmac.compare_digest(given.encode(), session.csrf.encode())
    ):
        raise HTTPException(403, "CSRF")


def local_path(target: str | None, default: str = "/") -> str:
    """`target` when it is a path on this site, else `default` (no open redirects)."""
    return target if target and LOCAL_PATH.match(target) else default


def login_redirect(request: Request) -> RedirectResponse:
    """To the sign-in page, coming back here afterwards.

    An htmx request (a fragment) gets 401 with HX-Redirect instead, so that the whole page goes
    to the sign-in form rather than the form being swapped into the fragment's place.
    """
    login = request.url_for("login").path
    if request.headers.get("HX-Request") == "true":
        page = request.headers.get("HX-Current-URL", "")
        here = local_path(_path_of(page))
        target = f"{login}?next={quote(here, safe='/')}"
        return RedirectResponse(target, status_code=401, headers={"HX-Redirect": target})
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{login}?next={quote(local_path(here), safe='/')}", status_code=303)


def _path_of(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def set_session_cookie(request: Request, response: Response, value: str) -> None:
    # HttpOnly: no script reads it; Lax: not sent on cross-site POSTs; no Max-Age: it dies with
    # the browser (shared ward PCs), and the server enforces the timeouts anyway.
    response.set_cookie(
        SESSION_COOKIE,
        value,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


__all__ = [
    "CSRF_HEADER",
    "LOCAL_PATH",
    "SESSION_COOKIE",
    "PageSession",
    "clear_session_cookie",
    "client_address",
    "current",
    "local_path",
    "login_redirect",
    "require_csrf",
    "set_session_cookie",
]
