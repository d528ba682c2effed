"""OAuth 2 grants without HTTP: client credentials, and authorization code with PKCE (S256 only).

Errors follow RFC 6749 §5.2 (token endpoint) and §4.1.2.1 (authorization endpoint): an
OAuthError carries the error code, a Vietnamese / English description and the status. At the
authorization endpoint an unknown client or an unregistered redirect URI is never redirected to
(AuthorizePageError: the page says so); every other problem goes back to the app's redirect URI.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa

from benhan.access import ANONYMOUS, Actor, ScopeError, Scopes
from benhan.access.roles import role
from benhan.auth import tokens
from benhan.auth.accounts import Account, AuthError, get_account
from benhan.auth.clients import Client, authenticate_client, get_client, in_context, system_capable
from benhan.fhir import primitives
from benhan.store.audit import LOGIN, record_security, security_event
from benhan.store.schema import auth_code

GRANT_TYPES = ("authorization_code", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
CODE_TTL_S = 60
# Identity and launch scopes a token may carry; others (openid, offline_access) are not offered:
# benhan issues no id_token and no refresh token.
GRANTABLE_EXTRA = ("fhirUser", "launch/patient")
MAX_STATE = 1024
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 §4.1
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of a SHA-256, unpadded
_US = 1_000_000


class OAuthError(Exception):
    """An RFC 6749 error: `error` code, description (Vietnamese / English), HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.basic_challenge = False  # the client tried HTTP Basic: answer with its challenge

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class AuthorizePageError(Exception):
    """No trustworthy redirect URI: the authorization page shows `reason` to the person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "unknown-client" | "bad-redirect-uri"


def _now_us() -> int:
    return primitives.micros(primitives.now())


def _single(params: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Parameters as a dict; a repeated one is refused (RFC 6749 §3.1, §3.2)."""
    out: dict[str, str] = {}
    for k, v in params:
        if k in out:
            raise OAuthError(
                "invalid_request", f"Tham số lặp lại / parameter given more than once: {k}"
            )
        out[k] = v
    return out


# ---- the token endpoint ---------------------------------------------------------------------


def token(
    conn: sa.Connection,
    params: Sequence[tuple[str, str]],
    *,
    authorization: str | None,
    issuer: str,
    audience: str,
    address: str | None,
) -> dict[str, Any]:
    """The token response for a form-encoded token request; OAuthError otherwise.

    Failed client authentications are recorded in the audit trail: the caller commits even when
    this raises.
    """
    p = _single(params)
    grant = p.get("grant_type")
    if not grant:
        raise OAuthError("invalid_request", "Thiếu grant_type / grant_type is missing")
    if grant not in GRANT_TYPES:
        raise OAuthError(
            "unsupported_grant_type", f"Không hỗ trợ / unsupported grant_type: {grant[:64]}"
        )
    client, authenticated = _client_of(conn, p, authorization, address)
    if grant == "client_credentials":
        return _client_credentials(conn, p, client, authenticated, issuer, audience, address)
    # A confidential client had to show its secret above; a public one proves itself by PKCE.
    return _authorization_code(conn, p, client, issuer, audience, address)


def _client_of(
    conn: sa.Connection, p: dict[str, str], authorization: str | None, address: str | None
) -> tuple[Client, bool]:
    """The calling client, and whether it proved itself with a secret (public ones cannot)."""
    basic = authorization is not None and authorization[:6].lower() == "basic "
    if authorization is not None and not basic:
        err = OAuthError(
            "invalid_client", "Chỉ nhận xác thực Basic / only HTTP Basic client auth", 401
        )
        err.basic_challenge = True
        raise err
    if basic and "client_secret" in p:
        raise OAuthError(
            "invalid_request",
            "Chỉ dùng một cách xác thực ứng dụng / use one client authentication method",
        )
    if basic:
        assert authorization is not None
        client_id, secret = _basic_credentials(authorization[6:].strip())
        if p.get("client_id", client_id) != client_id:
            raise OAuthError("invalid_request", "client_id không khớp / client_id mismatch")
    elif "client_secret" in p:
        client_id, secret = p.get("client_id", ""), p["client_secret"]
    else:
        client_id, secret = p.get("client_id", ""), None
    if not client_id:
        raise OAuthError("invalid_client", "Thiếu client_id / client_id is missing", 401)
    if secret is not None:
        try:
            return authenticate_client(conn, client_id, secret), True
        except AuthError:
            _refused(conn, client_id, address, "bad client secret")
            err = OAuthError(
                "invalid_client",
                "Sai mã ứng dụng hoặc khoá bí mật / wrong client id or secret",
                401,
            )
            err.basic_challenge = basic
            raise err from None
    client = get_client(conn, client_id)
    if client is None or not client.active or not client.public:
        _refused(conn, client_id, address, "no client authentication")
        raise OAuthError(
            "invalid_client",
            "Ứng dụng không tồn tại hoặc cần khoá bí mật / unknown client, or it needs its secret",
            401,
        )
    return client, False


def _basic_credentials(encoded: str) -> tuple[str, str]:
    try:
        raw = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raw = ""
    client_id, sep, secret = raw.partition(":")
    if not sep or not client_id:
        err = OAuthError("invalid_client", "Basic không hợp lệ / malformed HTTP Basic", 401)
        err.basic_challenge = True
        raise err
    # RFC 6749 §2.3.1: both parts are form-encoded before they are joined.
    return unquote_plus(client_id), unquote_plus(secret)


def _refused(conn: sa.Connection, client_id: str, address: str | None, why: str) -> None:
    who = Actor("client", client_id[:64], ANONYMOUS, "", Scopes(()), address=address)
    record_security(conn, who, security_event(LOGIN, ok=False, detail=why))


def _client_credentials(
    conn: sa.Connection,
    p: dict[str, str],
    client: Client,
    authenticated: bool,
    issuer: str,
    audience: str,
    address: str | None,
) -> dict[str, Any]:
    if not authenticated or not system_capable(role(client.role)):
        raise OAuthError(
            "unauthorized_client",
            "Ứng dụng này không được dùng client_credentials / "
            "this client may not use client_credentials",
        )
    requested = _parse_scope(p.get("scope", ""))
    if requested.extra or any(s.context != "system" for s in requested.items):
        raise OAuthError(
            "invalid_scope",
            "client_credentials chỉ nhận phạm vi system/… / "
            "client_credentials takes system/ scopes only",
        )
    if not requested.items:
        requested = in_context(client.allowed(), "system")
    jti = secrets.token_urlsafe(16)
    actor = client.actor(requested, address=address, session=jti)
    if not actor.scopes.items:
        raise OAuthError(
            "invalid_scope",
            "Không phạm vi nào được phép / none of the requested scopes is allowed",
        )
    extra = {"client_id": client.client_id, "facility": client.facility, "role": client.role}
    access, ttl = tokens.issue(
        conn,
        subject=f"client:{client.client_id}",
        scope=actor.scopes,
        issuer=issuer,
        audience=audience,
        extra=extra,
        jti=jti,
    )
    record_security(conn, actor, security_event(LOGIN, detail="client_credentials"))
    return _response(access, ttl, actor.scopes)


def _authorization_code(
    conn: sa.Connection,
    p: dict[str, str],
    client: Client,
    issuer: str,
    audience: str,
    address: str | None,
) -> dict[str, Any]:
    code, redirect_uri, verifier = p.get("code"), p.get("redirect_uri"), p.get("code_verifier")
    if not code or not redirect_uri or not verifier:
        raise OAuthError(
            "invalid_request",
            "Cần code, redirect_uri và code_verifier / code, redirect_uri and code_verifier "
            "are required",
        )
    row = _claim_code(conn, code)
    invalid = OAuthError(
        "invalid_grant",
        "Mã cấp quyền không hợp lệ, đã dùng hoặc hết hạn / "
        "the authorization code is invalid, used or expired",
    )
    if row is None or row.client_id != client.client_id or row.expires < _now_us():
        raise invalid
    if row.redirect_uri != redirect_uri:
        raise OAuthError(
            "invalid_grant", "redirect_uri khác lúc cấp mã / redirect_uri differs from the request"
        )
    if not _VERIFIER.fullmatch(verifier) or not hmac.compare_digest(
        s256(verifier), row.code_challenge
    ):
        raise OAuthError("invalid_grant", "code_verifier sai / code_verifier does not match")
    acc = get_account(conn, row.account_id)
    if acc is None or not acc.active:
        raise invalid
    jti = secrets.token_urlsafe(16)
    scopes = Scopes.parse(row.scope).within(client.allowed())
    actor = acc.actor(scopes, address=address, session=jti)
    granted = Scopes(actor.scopes.items, scopes.extra)
    context = _launch_context(acc, actor, audience)
    extra = {"client_id": client.client_id, "facility": acc.facility, "role": acc.role, **context}
    access, ttl = tokens.issue(
        conn,
        subject=f"account:{acc.id}",
        scope=granted,
        issuer=issuer,
        audience=audience,
        extra=extra,
        jti=jti,
    )
    detail = f"authorization_code client={client.client_id}"
    record_security(conn, actor, security_event(LOGIN, detail=detail))
    return {**_response(access, ttl, granted), **context}


def _launch_context(acc: Account, actor: Actor, audience: str) -> dict[str, str]:
    """SMART context: the signed-in user as a FHIR resource, and the patient for a patient."""
    out: dict[str, str] = {}
    user = actor.practitioner or actor.patient
    if user:
        out["fhirUser"] = f"{audience}/{user}"
    if acc.patient:
        out["patient"] = acc.patient
    return out


def _claim_code(conn: sa.Connection, code: str) -> sa.Row[Any] | None:
    """The code's row, marked used in the same statement: two servers cannot both redeem it."""
    key = hashlib.sha256(code.encode()).hexdigest()
    done = conn.execute(
        auth_code.update()
        .where(auth_code.c.code_hash == key, auth_code.c.used.is_(False))
        .values(used=True)
    )
    if done.rowcount != 1:
        return None
    return conn.execute(sa.select(auth_code).where(auth_code.c.code_hash == key)).first()


def _response(access: str, ttl: int, scopes: Scopes) -> dict[str, Any]:
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": str(scopes),
    }


def _parse_scope(text: str) -> Scopes:
    try:
        return Scopes.parse(text)
    except ScopeError as exc:
        raise OAuthError("invalid_scope", str(exc)) from None


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# ---- the authorization endpoint -------------------------------------------------------------


@dataclass(frozen=True)
class Authorization:
    """A checked authorization request, and what the person would grant by allowing it."""

    client: Client
    redirect_uri: str
    state: str | None
    scope: Scopes  # requested ∩ client ∩ the person's role
    code_challenge: str
    params: dict[str, str]  # the request as received, for the consent form to send back


class AuthorizeRedirect(Exception):
    """An error the app hears about at its (registered) redirect URI."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def check_authorize(
    conn: sa.Connection, params: Sequence[tuple[str, str]], account: Account, *, audience: str
) -> Authorization:
    """Validate an authorization request for the signed-in `account`.

    AuthorizePageError when the client or its redirect URI cannot be trusted, AuthorizeRedirect
    for every other problem.
    """
    names = [k for k, _ in params]
    p = dict(params)
    client = get_client(conn, p.get("client_id", ""))
    if client is None or not client.active or names.count("client_id") != 1:
        raise AuthorizePageError("unknown-client")
    redirect_uri = p.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris or names.count("redirect_uri") != 1:
        raise AuthorizePageError("bad-redirect-uri")
    state = p.get("state")

    def fail(error: str, description: str) -> AuthorizeRedirect:
        return AuthorizeRedirect(
            redirect_with(redirect_uri, error=error, error_description=description, state=state)
        )

    try:
        p = _single(params)
    except OAuthError as exc:
        raise fail(exc.error, exc.description) from None
    if state is not None and len(state) > MAX_STATE:
        raise fail("invalid_request", "state quá dài / state is too long")
    if p.get("response_type") != "code":
        raise fail("unsupported_response_type", "Chỉ hỗ trợ response_type=code / code only")
    if p.get("code_challenge_method") != "S256":
        raise fail(
            "invalid_request",
            "Cần PKCE với code_challenge_method=S256 / PKCE with S256 is required",
        )
    challenge = p.get("code_challenge", "")
    if not _CHALLENGE.fullmatch(challenge):
        raise fail("invalid_request", "code_challenge không hợp lệ / malformed code_challenge")
    if "aud" in p and p["aud"].rstrip("/") != audience:
        # SMART: a token asked for another server's FHIR base must not be issued here.
        raise fail("invalid_request", "aud không phải máy chủ này / aud is not this server")
    try:
        requested = Scopes.parse(p.get("scope", ""))
    except ScopeError as exc:
        raise fail("invalid_scope", str(exc)) from None
    if any(s.context == "system" for s in requested.items):
        raise fail("invalid_scope", "Không nhận phạm vi system/… ở đây / no system/ scopes here")
    if not requested.items:  # none asked: all the app may have, for this person
        context = "patient" if account.patient else "user"
        requested = Scopes(in_context(client.allowed(), context).items, requested.extra)
    granted = account.actor(requested.within(client.allowed())).scopes
    if not granted.items:
        raise fail(
            "invalid_scope", "Không phạm vi nào được phép / none of the requested scopes is allowed"
        )
    extra = tuple(e for e in requested.extra if e in GRANTABLE_EXTRA)
    return Authorization(
        client, redirect_uri, state, Scopes(granted.items, extra), challenge, dict(p)
    )


def grant_code(conn: sa.Connection, req: Authorization, account: Account) -> str:
    """The person allowed: a one-time code (only its hash is stored); the app's redirect URL."""
    code = secrets.token_urlsafe(32)
    at = _now_us()
    conn.execute(auth_code.delete().where(auth_code.c.expires < at))  # keep the table small
    conn.execute(
        auth_code.insert().values(
            code_hash=hashlib.sha256(code.encode()).hexdigest(),
            client_id=req.client.client_id,
            account_id=account.id,
            redirect_uri=req.redirect_uri,
            scope=str(req.scope),
            code_challenge=req.code_challenge,
            expires=at + CODE_TTL_S * _US,
            used=False,
        )
    )
    return redirect_with(req.redirect_uri, code=code, state=req.state)


def deny(req: Authorization) -> str:
    description = "Người dùng từ chối / the user denied the request"
    return redirect_with(
        req.redirect_uri, error="access_denied", error_description=description, state=req.state
    )


def redirect_with(uri: str, **params: str | None) -> str:
    """`uri` with `params` added to its query (a registered URI may already have one)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


# ---- discovery -----------------------------------------------------------------------------


def smart_configuration(base_url: str) -> dict[str, Any]:
    """SMART App Launch 2 discovery (.well-known/smart-configuration) for FHIR at `base_url`."""
    issuer = origin(base_url)
    data_scopes = [
        f"{context}/*.{acts}"
        for context in ("patient", "user", "system")
        for acts in ("rs", "cruds")
    ]
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/oauth/jwks",
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "scopes_supported": [*GRANTABLE_EXTRA, *data_scopes],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "context-standalone-patient",
            "permission-patient",
            "permission-user",
            "permission-v2",
            "permission-v1",
        ],
    }


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: the issuer of tokens for the FHIR base `url`."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
