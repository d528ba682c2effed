"""Access tokens: issued and verified, every way a token can be wrong, and keys rotated live."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from benhan.access import Actor, Scopes
from benhan.auth import keys, tokens
from benhan.auth.tokens import TokenError
from benhan.fhir import primitives
from benhan.store.schema import resource
from tests.auth.conftest import Clock
from tests.conftest import FROZEN

AUD = "http://testserver/fhir"
ISS = "http://testserver"
SCOPE = Scopes.parse("system/Patient.rs system/Observation.cruds")


def issue(conn: sa.Connection, **kw: Any) -> str:
    token, _ = tokens.issue(conn, subject="client:c1", scope=SCOPE, issuer=ISS, audience=AUD, **kw)
    return token


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def unb64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Header and claims decoded (unverified), and the signature as it is."""
    h, p, s = token.split(".")
    return unb64json(h), unb64json(p), s


def reason(conn: sa.Connection, token: str, audience: str = AUD) -> str:
    with pytest.raises(TokenError) as caught:
        tokens.verify(conn, token, audience=audience)
    return caught.value.reason


def test_round_trip(conn: sa.Connection) -> None:
    token, expires_in = tokens.issue(
        conn,
        subject="account:a1",
        scope=SCOPE,
        issuer=ISS,
        audience=AUD,
        extra={"facility": "27001", "role": "doctor"},
    )
    assert expires_in == 900
    claims = tokens.verify(conn, token, audience=AUD)
    assert claims["sub"] == "account:a1"
    assert claims["scope"] == "system/Patient.rs system/Observation.cruds"
    assert (claims["iss"], claims["aud"]) == (ISS, AUD)
    assert claims["exp"] - claims["iat"] == 900
    assert claims["iat"] == claims["nbf"] == int(FROZEN.timestamp())
    assert (claims["facility"], claims["role"]) == ("27001", "doctor")
    header, _, _ = parts(token)
    assert header == {"alg": "ES256", "kid": keys.signing_key(conn).kid, "typ": "at+jwt"}
    assert tokens.verify(conn, issue(conn), audience=AUD)["jti"] != claims["jti"]


def test_lifetime_is_capped(conn: sa.Connection) -> None:
    _, expires_in = tokens.issue(
        conn, subject="client:c1", scope=SCOPE, issuer=ISS, audience=AUD, ttl_s=10 * 24 * 3600
    )
    assert expires_in == keys.MAX_TOKEN_S
    with pytest.raises(ValueError, match="sub"):
        issue(conn, extra={"sub": "account:admin"})


def test_expired_with_clock_skew(conn: sa.Connection, clock: Clock) -> None:
    token = issue(conn)
    clock.advance(900 + 29)  # within the 30 s allowed for clocks that disagree
    assert tokens.verify(conn, token, audience=AUD)["sub"] == "client:c1"
    clock.advance(2)
    assert reason(conn, token) == "expired"


def test_not_yet_valid(conn: sa.Connection, clock: Clock) -> None:
    clock.advance(120)
    token = issue(conn)
    clock.advance(-120)
    assert reason(conn, token) == "not-yet-valid"
    clock.advance(100)
    assert tokens.verify(conn, token, audience=AUD)


def test_wrong_audience(conn: sa.Connection) -> None:
    token = issue(conn)
    assert reason(conn, token, audience="http://other-hospital/fhir") == "wrong-audience"
    assert reason(conn, token, audience=AUD + "/") == "wrong-audience"


def test_tampered_payload(conn: sa.Connection) -> None:
    token = issue(conn)
    header, _, sig = token.split(".")
    _, payload, _ = parts(token)
    payload["scope"] = "system/*.cruds"
    assert reason(conn, f"{header}.{b64json(payload)}.{sig}") == "bad-signature"


def test_tampered_signature(conn: sa.Connection) -> None:
    token = issue(conn)
    header, claims, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[10] ^= 0x01
    assert reason(conn, f"{header}.{claims}.{b64(bytes(raw))}") == "bad-signature"


def test_alg_none_is_refused(conn: sa.Connection) -> None:
    _, payload, _ = parts(issue(conn))
    kid = keys.signing_key(conn).kid
    head = b64json({"alg": "none", "kid": kid, "typ": "JWT"})
    assert reason(conn, f"{head}.{b64json(payload)}.") == "malformed"
    assert reason(conn, f"{head}.{b64json(payload)}.c2ln") == "algorithm"


def test_hs256_with_the_public_key_as_secret_is_refused(conn: sa.Connection) -> None:
    """The classic confusion attack: the attacker HMACs with the public key everyone can fetch."""
    _, payload, _ = parts(issue(conn))
    payload["sub"] = "account:admin"
    key = keys.signing_key(conn)
    for secret in (json.dumps(key.public_jwk).encode(), key.public().as_pem()):
        head = b64json({"alg": "HS256", "kid": key.kid, "typ": "JWT"})
        signing_input = f"{head}.{b64json(payload)}"
        sig = b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
        assert reason(conn, f"{signing_input}.{sig}") == "algorithm"


def test_unknown_kid(conn: sa.Connection) -> None:
    token = issue(conn)
    _, payload, sig = token.split(".")
    head = b64json({"alg": "ES256", "kid": "no-such-key", "typ": "at+jwt"})
    assert reason(conn, f"{head}.{payload}.{sig}") == "unknown-kid"
    no_kid = b64json({"alg": "ES256", "typ": "at+jwt"})
    assert reason(conn, f"{no_kid}.{payload}.{sig}") == "unknown-kid"


def test_foreign_key_with_our_kid(conn: sa.Connection) -> None:
    _, payload, _ = parts(issue(conn))
    forged = ECKey.generate_key("P-256", private=True)
    head = {"alg": "ES256", "kid": keys.signing_key(conn).kid, "typ": "at+jwt"}
    token = jwt.encode(head, payload, forged, algorithms=["ES256"])
    assert reason(conn, token) == "bad-signature"


@pytest.mark.parametrize("missing", ["exp", "aud", "sub", "scope", "jti", "nbf"])
def test_missing_claims(conn: sa.Connection, missing: str) -> None:
    _, payload, _ = parts(issue(conn))
    del payload[missing]
    key = keys.signing_key(conn)
    head = {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}
    token = jwt.encode(head, payload, key.private(), algorithms=["ES256"])
    assert reason(conn, token) == "missing-claims"


@pytest.mark.parametrize("junk", ["", "abc", "a.b", "a.b.c", "a.b.c.d", "!!!.e30.e30"])
def test_malformed(conn: sa.Connection, junk: str) -> None:
    assert reason(conn, junk) == "malformed"


def audit_count(conn: sa.Connection) -> int:
    q = sa.select(sa.func.count()).where(resource.c.rtype == "AuditEvent")
    return int(conn.scalar(q) or 0)


def test_rotation_without_downtime(conn: sa.Connection, clock: Clock) -> None:
    first = keys.signing_key(conn)
    before = issue(conn)
    events = audit_count(conn)

    new = keys.rotate(conn, actor=Actor.job("27001", "test"), overlap_s=600)
    assert audit_count(conn) == events + 1  # KEYS_CHANGED in the audit trail
    assert new.kid != first.kid
    published = {k["kid"] for k in keys.jwks(conn)["keys"]}
    assert published == {first.kid, new.kid}  # the new key is public before it signs
    assert parts(issue(conn))[0]["kid"] == first.kid  # …and does not sign yet

    clock.advance(601)
    after = issue(conn)
    assert parts(after)[0]["kid"] == new.kid
    assert tokens.verify(conn, before, audience=AUD)["sub"] == "client:c1"
    assert tokens.verify(conn, after, audience=AUD)["sub"] == "client:c1"

    # The old key stays published while a token it signed may live, then goes.
    clock.advance(keys.MAX_TOKEN_S - 2)
    assert first.kid in {k["kid"] for k in keys.jwks(conn)["keys"]}
    clock.advance(10)
    assert [k["kid"] for k in keys.jwks(conn)["keys"]] == [new.kid]
    keys.rotate(conn, actor=Actor.job("27001", "test"), overlap_s=0)
    assert first.kid not in {k.kid for k in keys.list_keys(conn)}  # deleted from the table


def test_jwks_serves_public_keys_that_verify(conn: sa.Connection) -> None:
    token = issue(conn)
    body = keys.jwks(conn)
    (jwk,) = body["keys"]
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["alg"] == "ES256"
    assert jwk["use"] == "sig" and {"x", "y", "kid"} <= set(jwk)
    assert "d" not in jwk  # never the private part
    # What a client does with the key set: pick the key by kid, check the signature.
    claims = jwt.decode(token, KeySet.import_key_set(body), algorithms=["ES256"]).claims
    assert claims["sub"] == "client:c1"


def test_a_key_made_elsewhere_is_found_despite_the_cache(conn: sa.Connection, clock: Clock) -> None:
    """Another server rotated: a kid this process has not cached makes it reload at once."""
    token = issue(conn)
    assert tokens.verify(conn, token, audience=AUD)  # the cache now holds the first key
    clock.advance(1)
    other = keys._new_key(conn, activates=primitives.micros(primitives.now()))
    assert parts(issue(conn))[0]["kid"] == other.kid  # the newest active key signs
    assert tokens.verify(conn, issue(conn), audience=AUD)


def test_signing_key_is_made_once(conn: sa.Connection) -> None:
    assert keys.list_keys(conn) == []
    k = keys.signing_key(conn)
    assert keys.signing_key(conn).kid == k.kid
    assert len(keys.list_keys(conn)) == 1
    with pytest.raises(ValueError):
        keys.rotate(conn, actor=Actor.job("27001", "test"), overlap_s=-1)
