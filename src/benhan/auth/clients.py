"""OAuth 2 client applications: registration, secrets (Argon2id), and the actor a client is.

A confidential client has a secret and uses the client-credentials grant with a machine role (or
the insurance and DoH roles, whose systems pull data without a person at the keyboard). A public
client (a browser or phone app) has no secret: it uses the authorization code with PKCE and acts
for the person who signs in, within the scopes registered for it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from benhan.access import Actor, Reach, Role, Scope, ScopeError, Scopes, role
from benhan.auth.accounts import AuthError, hash_password
from benhan.fhir import primitives
from benhan.store.schema import oauth_client

# Human roles whose organisation's systems may also pull data as a client (no person signs in).
SYSTEM_CAPABLE = frozenset({"insurance-assessor", "doh-analyst"})
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_hasher = PasswordHasher()
# Verified against when the client is unknown, so that a wrong id costs as long as a wrong secret.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    role: str
    facility: str
    scopes: str  # the most it may ask for
    redirect_uris: tuple[str, ...]
    public: bool
    active: bool

    def allowed(self) -> Scopes:
        """Its registered scopes, cut to its role's as the role is now."""
        return Scopes.parse(self.scopes).within(role(self.role).scopes)

    def actor(
        self, scopes: Scopes, *, address: str | None = None, session: str | None = None
    ) -> Actor:
        """The client acting for itself: requested ∩ registered ∩ role scopes."""
        r = role(self.role)
        return Actor(
            kind="client",
            name=self.client_id,
            role=r,
            facility=self.facility,
            scopes=scopes.within(self.allowed()).within(r.scopes),
            account=self.client_id,
            address=address,
            session=session,
        )


def system_capable(r: Role) -> bool:
    return r.machine or r.code in SYSTEM_CAPABLE


def in_context(scopes: Scopes, context: str) -> Scopes:
    """The same scopes in another SMART context (system/ for a client acting for itself)."""
    items = (Scope(context, s.rtype, s.actions) for s in scopes.items)
    return Scopes(tuple(dict.fromkeys(items)), scopes.extra)


def _check_redirect(uri: str) -> str:
    """https anywhere, or http on this machine (RFC 8252 §7.3); no fragment, no spaces."""
    parts = urlsplit(uri)
    loopback = parts.scheme == "http" and (parts.hostname or "") in LOOPBACK
    if (
        not (parts.scheme == "https" or loopback)
        or not parts.netloc
        or parts.fragment
        or any(c.isspace() for c in uri)
    ):
        raise AuthError(
            "bad-redirect-uri",
            f"Địa chỉ chuyển hướng phải là https (hoặc http trên máy này), không có # / "
            f"a redirect URI must be https (or loopback http) without a fragment: {uri!r}",
        )
    return uri


def register_client(
    conn: sa.Connection,
    *,
    name: str,
    role_code: str,
    facility: str,
    scopes: str | None = None,
    redirect_uris: Iterable[str] = (),
    public: bool = False,
) -> tuple[Client, str | None]:
    """A new active client and its secret (None for a public client), shown once, stored hashed."""
    try:
        r = role(role_code)
    except ValueError as exc:
        raise AuthError("bad-role", str(exc)) from None
    if public and r.machine:
        raise AuthError(
            "bad-role",
            "Ứng dụng công khai hành động thay người dùng, không dùng vai trò máy / "
            "a public client acts for a person and cannot have a machine role",
        )
    if not public and not system_capable(r):
        raise AuthError(
            "bad-role",
            f"Vai trò {r.code} chỉ dành cho người đăng nhập; hãy tạo ứng dụng công khai (PKCE) / "
            f"role {r.code} is for people: register a public (PKCE) client instead",
        )
    if r.reach is Reach.FACILITY and not facility:
        raise AuthError("bad-facility", "Vai trò này cần mã cơ sở / this role needs a facility")
    uris = tuple(dict.fromkeys(_check_redirect(u) for u in redirect_uris))
    if public and not uris:
        raise AuthError(
            "bad-redirect-uri",
            "Ứng dụng công khai cần địa chỉ chuyển hướng / a public client needs a redirect URI",
        )
    context = "system" if not public else "patient" if r.reach is Reach.OWN_RECORD else "user"
    if scopes is None:
        wanted = in_context(r.scopes, context)
    else:
        try:
            wanted = Scopes.parse(scopes)
        except ScopeError as exc:
            raise AuthError("bad-scope", str(exc)) from None
        if set(wanted.within(r.scopes).items) != set(wanted.items):
            raise AuthError(
                "bad-scope",
                f"Phạm vi vượt quá vai trò {r.code} / scopes wider than role {r.code}: {scopes}",
            )
    name = name.strip()
    if not name:
        raise AuthError("bad-name", "Cần tên ứng dụng / a client needs a name")
    secret = None if public else secrets.token_urlsafe(32)
    row = {
        "client_id": secrets.token_urlsafe(12),
        "secret_hash": hash_password(secret) if secret else None,
        "name": name[:128],
        "role": r.code,
        "facility": facility,
        "scopes": str(wanted),
        "redirect_uris": " ".join(uris),
        "active": True,
        "created": primitives.micros(primitives.now()),
    }
    conn.execute(oauth_client.insert().values(**row))
    return _client(row), secret


# Built once: every API request of a client looks it up.
_BY_ID = sa.select(oauth_client).where(oauth_client.c.client_id == sa.bindparam("client_id"))


def get_client(conn: sa.Connection, client_id: str) -> Client | None:
    row = conn.execute(_BY_ID, {"client_id": client_id}).mappings().first()
    return _client(row) if row else None


def list_clients(conn: sa.Connection) -> list[Client]:
    q = sa.select(oauth_client).order_by(oauth_client.c.name, oauth_client.c.client_id)
    return [_client(r) for r in conn.execute(q).mappings()]


def disable_client(conn: sa.Connection, client_id: str) -> Client:
    """Turn a client off: its tokens stop working at their next use (security.bearer_actor)."""
    done = conn.execute(
        oauth_client.update().where(oauth_client.c.client_id == client_id).values(active=False)
    )
    found = get_client(conn, client_id) if done.rowcount else None
    if found is None:
        raise AuthError("not-found", f"Không có ứng dụng / no such client: {client_id}")
    return found


def authenticate_client(conn: sa.Connection, client_id: str, secret: str) -> Client:
    """The active confidential client with this id and secret; AuthError("invalid-client") else."""
    row = conn.execute(
        sa.select(oauth_client.c.secret_hash, oauth_client.c.active).where(
            oauth_client.c.client_id == client_id
        )
    ).first()
    stored = row.secret_hash if row is not None else None
    ok: bool
    try:
        ok = _hasher.verify(stored or _DUMMY_HASH, secret)
    except (VerificationError, InvalidHashError):
        ok = False
    client = get_client(conn, client_id) if ok and stored else None
    if client is None or not client.active:
        raise AuthError(
            "invalid-client", "Sai mã ứng dụng hoặc khoá bí mật / wrong client id or secret"
        )
    return client


def _client(row: sa.RowMapping | Mapping[str, Any]) -> Client:
    uris = str(row["redirect_uris"] or "")
    return Client(
        client_id=str(row["client_id"]),
        name=str(row["name"]),
        role=str(row["role"]),
        facility=str(row["facility"]),
        scopes=str(row["scopes"]),
        redirect_uris=tuple(uris.split()),
        public=row["secret_hash"] is None,
        active=bool(row["active"]),
    )
