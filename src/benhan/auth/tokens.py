"""JWT access tokens (RFC 9068 shape, ES256 only): issuing, and verifying every claim that matters.

Verification trusts nothing in the token before its signature is checked against one of our own
published keys, chosen by `kid`; the algorithm is fixed to ES256 whatever the header says, so
"none" and HS256-with-the-public-key tricks fail.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError

from benhan.access import Scopes
from benhan.auth import keys
from benhan.fhir import primitives

DEFAULT_TTL_S = 15 * 60
SKEW_S = 30  # clocks of servers and clients disagree by this much at most
REGISTERED = ("iss", "aud", "sub", "scope", "exp", "iat", "nbf", "jti")
JWT_TYPE = "at+jwt"  # RFC 9068 §2.1


class TokenError(Exception):
    """A refused token; `reason` is a short code (tests, audit), never the token itself."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _now_s() -> int:
    return int(primitives.now().timestamp())


def issue(
    conn: sa.Connection,
    *,
    subject: str,
    scope: Scopes,
    issuer: str,
    audience: str,
    ttl_s: int = DEFAULT_TTL_S,
    extra: Mapping[str, Any] | None = None,
    jti: str | None = None,
) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds (the token response's expires_in).

    `jti` names the token (the audit trail's session); a random one is made when not given.
    """
    ttl = max(1, min(ttl_s, keys.MAX_TOKEN_S))  # a retired key is kept only this long
    clash = set(extra or {}) & set(REGISTERED)
    if clash:
        raise ValueError(f"extra claims may not replace {sorted(clash)}")
    at = _now_s()
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "scope": str(scope),
        "exp": at + ttl,
        "iat": at,
        "nbf": at,
        "jti": jti or secrets.token_urlsafe(16),
        **(extra or {}),
    }
    key = keys.signing_key(conn)
    header = {"alg": keys.ALGORITHM, "kid": key.kid, "typ": JWT_TYPE}
    token = jwt.encode(header, claims, key.private(), algorithms=[keys.ALGORITHM])
    return token, ttl


def _b64json(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def header_of(token: str) -> dict[str, Any]:
    """The unverified JOSE header: only for choosing the key, never for trusting anything."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise TokenError("malformed")
    try:
        header = _b64json(parts[0])
    except (ValueError, UnicodeError, binascii.Error):
        raise TokenError("malformed") from None
    if not isinstance(header, dict):
        raise TokenError("malformed")
    return header


def verify(
    conn: sa.Connection, token: str, *, audience: str, issuer: str | None = None
) -> dict[str, Any]:
    """The claims of a valid token for `audience`; TokenError(reason) otherwise."""
    seen = _verified.get(token)
    if seen is not None and time.monotonic() - seen[0] < keys.CACHE_S:
        claims = dict(seen[1])
        _check_claims(claims, audience, issuer)  # expiry and audience, every time
        return claims
    claims = _verify_signature(conn, token)
    _check_claims(claims, audience, issuer)
    if len(_verified) >= VERIFIED_MAX:
        _verified.clear()
    _verified[token] = (time.monotonic(), dict(claims))
    return claims


# Signatures already checked, for as long as a key may stay cached (keys.CACHE_S): an ES256
# verification costs more than the rest of a small read.
_verified: dict[str, tuple[float, dict[str, Any]]] = {}
VERIFIED_MAX = 10_000


def _verify_signature(conn: sa.Connection, token: str) -> dict[str, Any]:
    header = header_of(token)
    if header.get("alg") != keys.ALGORITHM:
        raise TokenError("algorithm")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenError("unknown-kid")
    key = keys.verification_key(conn, kid)
    if key is None:
        raise TokenError("unknown-kid")
    try:
        claims = jwt.decode(token, key, algorithms=[keys.ALGORITHM]).claims
    except BadSignatureError:
        raise TokenError("bad-signature") from None
    except (JoseError, ValueError, TypeError):
        raise TokenError("malformed") from None
    return claims


def _check_claims(claims: dict[str, Any], audience: str, issuer: str | None) -> None:
    for name in REGISTERED:
        if name not in claims:
            raise TokenError("missing-claims")
    times = [claims[n] for n in ("exp", "iat", "nbf")]
    if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in times):
        raise TokenError("malformed")
    if not all(isinstance(claims[n], str) for n in ("sub", "scope", "jti", "iss")):
        raise TokenError("malformed")
    at = _now_s()
    if claims["exp"] + SKEW_S < at:
        raise TokenError("expired")
    if claims["nbf"] - SKEW_S > at or claims["iat"] - SKEW_S > at:
        raise TokenError("not-yet-valid")
    aud = claims["aud"]
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences:
        raise TokenError("wrong-audience")
    if issuer is not None and claims["iss"] != issuer:
        raise TokenError("wrong-issuer")
