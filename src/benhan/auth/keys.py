"""Token-signing keys (ES256, P-256): created, published in JWKS, rotated without downtime.

A key is published from `created`, signs from `activates`, and stops signing at `retired`. A new
key from rotate() activates only after a grace period, so every server and client has fetched it
in the JWKS before it signs anything; the old key retires at that moment and stays published until
every token it signed has expired, then it is deleted. Keys live in the database: several servers
share them and hold nothing of their own.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from joserfc.jwk import ECKey

from benhan.access import Actor
from benhan.fhir import primitives
from benhan.store.audit import KEYS_CHANGED, record_security, security_event
from benhan.store.schema import signing_key as key_table

ALGORITHM = "ES256"
CURVE = "P-256"
MAX_TOKEN_S = 3600  # no token lives longer (tokens.issue caps ttl_s): bounds a retired key's life
# Long enough for every server and JWKS-caching client to see a new key before it signs.
DEFAULT_OVERLAP_S = 10 * 60
CACHE_S = 5  # public keys kept in process this long; an unknown kid reloads at once
_US = 1_000_000


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: str
    public_jwk: dict[str, Any]
    created: int  # microseconds since the epoch, like every stored time
    activates: int
    retired: int | None

    def private(self) -> ECKey:
        return ECKey.import_key(self.private_pem)

    def public(self) -> ECKey:
        return ECKey.import_key(self.public_jwk)


def _now_us() -> int:
    return primitives.micros(primitives.now())


def _new_key(conn: sa.Connection, activates: int) -> SigningKey:
    key = ECKey.generate_key(CURVE, private=True)
    kid = key.thumbprint()  # RFC 7638: the same key always has the same id
    jwk = {**key.as_dict(private=False), "kid": kid, "use": "sig", "alg": ALGORITHM}
    row = {
        "kid": kid,
        "algorithm": ALGORITHM,
        "private_pem": key.as_pem(private=True).decode(),
        "public_jwk": json.dumps(jwk, sort_keys=True),
        "created": _now_us(),
        "activates": activates,
        "retired": None,
    }
    conn.execute(key_table.insert().values(**row))
    return _key(row)


def _key(row: sa.RowMapping | dict[str, Any]) -> SigningKey:
    return SigningKey(
        kid=str(row["kid"]),
        private_pem=str(row["private_pem"]),
        public_jwk=json.loads(row["public_jwk"]),
        created=int(row["created"]),
        activates=int(row["activates"]),
        retired=None if row["retired"] is None else int(row["retired"]),
    )


def _published(at: int) -> sa.ColumnElement[bool]:
    """Keys still in the JWKS at `at`: not retired, or retired recently enough that tokens live."""
    return sa.or_(key_table.c.retired.is_(None), key_table.c.retired + MAX_TOKEN_S * _US >= at)


def signing_key(conn: sa.Connection) -> SigningKey:
    """The key to sign with now: the newest active one; the first is made if there is none.

    Two servers starting on an empty table may each make one; both are published, so tokens
    from either verify, and the newest signs from then on.
    """
    at = _now_us()
    row = (
        conn.execute(
            sa.select(key_table)
            .where(
                key_table.c.activates <= at,
                sa.or_(key_table.c.retired.is_(None), key_table.c.retired > at),
            )
            .order_by(key_table.c.activates.desc(), key_table.c.created.desc(), key_table.c.kid)
            .limit(1)
        )
        .mappings()
        .first()
    )
    if row is not None:
        return _key(row)
    # An empty table (first start), or no active key (every key retired by hand): make one
    # that signs at once rather than refuse to issue tokens.
    return _new_key(conn, at)


def rotate(conn: sa.Connection, *, actor: Actor, overlap_s: int = DEFAULT_OVERLAP_S) -> SigningKey:
    """A new key, published now, signing after `overlap_s`; the current keys retire then."""
    if overlap_s < 0:
        raise ValueError("thời gian chờ phải >= 0 / overlap_s must be >= 0")
    at = _now_us()
    conn.execute(key_table.delete().where(sa.not_(_published(at))))
    signing_key(conn)  # there is something to rotate from, even on an empty table
    new = _new_key(conn, at + overlap_s * _US)
    conn.execute(
        key_table.update()
        .where(key_table.c.kid != new.kid, key_table.c.retired.is_(None))
        .values(retired=new.activates)
    )
    detail = f"signing key {new.kid} activates in {overlap_s} s"
    record_security(conn, actor, security_event(KEYS_CHANGED, detail=detail))
    _cache.clear()
    return new


def list_keys(conn: sa.Connection) -> list[SigningKey]:
    """Every stored key, newest first (for `benhan keys list`)."""
    q = sa.select(key_table).order_by(key_table.c.created.desc(), key_table.c.kid)
    return [_key(r) for r in conn.execute(q).mappings()]


def published_keys(conn: sa.Connection) -> list[SigningKey]:
    q = (
        sa.select(key_table)
        .where(_published(_now_us()))
        .order_by(key_table.c.created.desc(), key_table.c.kid)
    )
    return [_key(r) for r in conn.execute(q).mappings()]


def jwks(conn: sa.Connection) -> dict[str, Any]:
    """The JSON Web Key Set of every published public key (RFC 7517 §5)."""
    return {"keys": [k.public_jwk for k in published_keys(conn)]}


# Public keys only, per database (tests and tools may open several in one process).
_cache: dict[str, tuple[float, dict[str, ECKey]]] = {}


def verification_key(conn: sa.Connection, kid: str) -> ECKey | None:
    """The published public key `kid`, from a cache a few seconds old, else from the database."""
    where = conn.engine.url.render_as_string(hide_password=True)
    loaded = _cache.get(where)
    if loaded is not None and time.monotonic() - loaded[0] < CACHE_S and kid in loaded[1]:
        return loaded[1][kid]
    found = {k.kid: k.public() for k in published_keys(conn)}
    _cache[where] = (time.monotonic(), found)
    return found.get(kid)
