"""OAuth 2 and SMART on FHIR endpoints: token, authorize (with a consent page), JWKS, discovery.

The routes only translate HTTP; the grants are in auth/oauth.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from benhan.auth import keys, oauth
from benhan.config import Settings
from benhan.store.database import Store
from benhan.web import session as web_session
from benhan.web.rendering import PageRoute, render

FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 16 * 1024  # a token request is a few hundred bytes
# Token requests carry no cookie, so any web origin may call the token endpoint (SMART apps in a
# browser do); discovery and keys are public.
CORS = {"Access-Control-Allow-Origin": "*"}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Shorter than keys.DEFAULT_OVERLAP_S: a client refetches before a new key starts signing.
JWKS_MAX_AGE_S = 300

router = APIRouter(tags=["OAuth 2 / SMART"])
pages = APIRouter(route_class=PageRoute, include_in_schema=False)


def _settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def _store(request: Request) -> Store:
    value: Store = request.app.state.store
    return value


async def _form(request: Request) -> list[tuple[str, str]] | None:
    """The form-encoded body as pairs (repeats kept); None if not a small urlencoded form."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM:
        return None
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM_BYTES:
            return None
    return parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)


def _oauth_error(exc: oauth.OAuthError) -> JSONResponse:
    headers = {**NO_STORE, **CORS}
    if exc.basic_challenge:
        headers["WWW-Authenticate"] = 'Basic realm="benhan"'
    return JSONResponse(exc.body(), exc.status, headers=headers)


@router.post("/oauth/token", name="oauth_token")
async def token_endpoint(request: Request) -> Response:
    """RFC 6749 token endpoint: client_credentials, and authorization_code with PKCE."""
    params = await _form(request)
    if params is None:
        return _oauth_error(
            oauth.OAuthError(
                "invalid_request",
                f"Cần thân {FORM} nhỏ hơn {MAX_FORM_BYTES} byte / "
                f"the body must be {FORM} under {MAX_FORM_BYTES} bytes",
            )
        )
    address = web_session.client_address(request)
    cfg = _settings(request)

    def run() -> dict[str, Any] | oauth.OAuthError:
        # The error is returned, not raised, inside the transaction: a refused client's audit
        # event is committed with it.
        with _store(request).begin() as conn:
            try:
                return oauth.token(
                    conn,
                    params,
                    authorization=request.headers.get("authorization"),
                    issuer=oauth.origin(cfg.base_url),
                    audience=cfg.base_url,
                    address=address,
                )
            except oauth.OAuthError as exc:
                return exc

    result = await run_in_threadpool(run)
    if isinstance(result, oauth.OAuthError):
        return _oauth_error(result)
    return JSONResponse(result, headers={**NO_STORE, **CORS})


@router.get("/oauth/jwks", name="oauth_jwks")
def jwks_endpoint(request: Request) -> Response:
    """The public keys that sign access tokens (RFC 7517 key set)."""
    store = _store(request)
    with store.read() as conn:
        body = keys.jwks(conn)
    if not body["keys"]:  # first start: make the key now, so that a client can cache it
        with store.begin() as conn:
            keys.signing_key(conn)
            body = keys.jwks(conn)
    headers = {**CORS, "Cache-Control": f"public, max-age={JWKS_MAX_AGE_S}"}
    return JSONResponse(body, headers=headers, media_type="application/jwk-set+json")


@router.get("/.well-known/smart-configuration", name="smart_configuration")
@router.get("/fhir/.well-known/smart-configuration", name="fhir_smart_configuration")
def smart_configuration(request: Request) -> Response:
    """SMART App Launch discovery, at the root and relative to the FHIR base (as SMART asks)."""
    body = oauth.smart_configuration(_settings(request).base_url)
    return JSONResponse(body, headers={**CORS, "Cache-Control": "public, max-age=3600"})


# ---- the authorization endpoint: a page for the signed-in person ----------------------------


def _page_error(request: Request, reason: str) -> Response:
    return render(request, "oauth_consent.html", {"error": reason}, 400)


def _check(
    request: Request, params: list[tuple[str, str]], sess: web_session.PageSession
) -> oauth.Authorization | Response:
    """The checked request, or the page / redirect that answers a bad one."""
    cfg = _settings(request)
    try:
        with _store(request).read() as conn:
            return oauth.check_authorize(conn, params, sess.account, audience=cfg.base_url)
    except oauth.AuthorizePageError as exc:
        return _page_error(request, exc.reason)
    except oauth.AuthorizeRedirect as exc:
        return RedirectResponse(exc.location, status_code=303)


@pages.get("/oauth/authorize", name="oauth_authorize")
def authorize_page(request: Request) -> Response:
    """Ask the signed-in person whether the app may act for them, and with which scopes."""
    sess = web_session.current(request)
    if sess is None:
        return web_session.login_redirect(request)
    checked = _check(request, list(request.query_params.multi_items()), sess)
    if isinstance(checked, Response):
        return checked
    context = {
        "error": None,
        "app": checked.client.name,
        "user": sess.account.display_name,
        "scopes": _describe(checked),
        "identity": checked.scope.extra,
        "fields": checked.params,
        "csrf": sess.csrf,
        "redirect_host": _host(checked.redirect_uri),
    }
    page = render(request, "oauth_consent.html", context)
    page.headers.update(NO_STORE)  # it holds the session's CSRF token
    return page


@pages.post("/oauth/authorize", name="oauth_decide")
async def authorize_decision(request: Request) -> Response:
    """Allow: a one-time code to the app's redirect URI; deny: access_denied there."""
    form = await _form(request)
    if form is None:
        return _page_error(request, "bad-request")
    fields = dict(form)
    params = [(k, v) for k, v in form if k not in ("csrf", "decision")]
    return await run_in_threadpool(_decide, request, params, fields)


def _decide(request: Request, params: list[tuple[str, str]], fields: dict[str, str]) -> Response:
    sess = web_session.current(request)
    if sess is None:
        # Signed out meanwhile (or never signed in): sign in, then see the question again.
        back = request.url_for("oauth_authorize").path + "?" + urlencode(params)
        login = request.url_for("login").path
        return RedirectResponse(f"{login}?next={quote(back, safe='/')}", status_code=303)
    web_session.require_csrf(request, fields.get("csrf", ""))
    checked = _check(request, params, sess)
    if isinstance(checked, Response):
        return checked
    if fields.get("decision") != "allow":
        return RedirectResponse(oauth.deny(checked), status_code=303)
    with _store(request).begin() as conn:
        location = oauth.grant_code(conn, checked, sess.account)
    return RedirectResponse(location, status_code=303)


def _describe(req: oauth.Authorization) -> list[dict[str, Any]]:
    """The granted scopes for the page: resource types grouped by what the app may do to them."""
    groups: dict[str, list[str]] = {}
    for s in req.scope.items:
        groups.setdefault(s.actions, []).append(s.rtype)
    ordered = sorted(groups.items(), key=lambda g: (-len(g[0]), g[0]))  # widest rights first
    return [{"actions": acts, "types": sorted(set(types))} for acts, types in ordered]


def _host(uri: str) -> str:
    return urlsplit(uri).netloc


router.include_router(pages)
