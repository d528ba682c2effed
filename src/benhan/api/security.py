"""Who is calling the FHIR API: the bearer token checked, and the actor built from today's rows.

The role and facility come from the account or client row on every request (a role change or a
disabled account takes effect at once); the token only narrows what the role grants.
"""

from __future__ import annotations

import sqlalchemy as sa

from benhan.access import Actor, ScopeError, Scopes
from benhan.auth.accounts import get_account
from benhan.auth.clients import get_client
from benhan.auth.tokens import TokenError, verify
from benhan.fhir.outcome import FhirError, Issue


def _unauthorized(text: str) -> FhirError:
    return FhirError(401, Issue("login", text))


def bearer_actor(
    conn: sa.Connection, authorization: str | None, *, address: str | None, audience: str
) -> Actor:
    """The actor of a request with `Authorization: Bearer <token>`; FhirError 401 otherwise."""
    if not authorization:
        raise _unauthorized(
            "Cần đăng nhập: gửi mã truy cập (Authorization: Bearer …) / "
            "authentication required: send an access token (Authorization: Bearer …)"
        )
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or " " in value:
        raise _unauthorized("Chỉ nhận mã truy cập Bearer / only Bearer access tokens are accepted")
    try:
        claims = verify(conn, value, audience=audience)
        scopes = Scopes.parse(claims["scope"])
    except TokenError as exc:
        raise _unauthorized(
            f"Mã truy cập không hợp lệ hoặc đã hết hạn / "
            f"invalid or expired access token ({exc.reason})"
        ) from None
    except ScopeError:
        raise _unauthorized("Mã truy cập không hợp lệ / invalid access token (scope)") from None
    kind, _, ident = str(claims["sub"]).partition(":")
    session = str(claims["jti"])
    client_id = claims.get("client_id")
    if kind == "client":
        client = get_client(conn, ident)
        if client is not None and client.active:
            return client.actor(scopes, address=address, session=session)
    elif kind == "account":
        acc = get_account(conn, ident)
        # The app the person signed in through must still be allowed, and it caps the scopes.
        app = get_client(conn, client_id) if isinstance(client_id, str) else None
        if acc is not None and acc.active and (client_id is None or (app and app.active)):
            if app is not None:
                scopes = scopes.within(app.allowed())
            return acc.actor(scopes, address=address, session=session)
    raise _unauthorized(
        "Tài khoản hoặc ứng dụng không còn hoạt động / the account or client is no longer active"
    )
