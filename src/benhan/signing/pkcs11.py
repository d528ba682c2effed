"""Signing with a key that never leaves a PKCS#11 token (a USB token, an HSM, SoftHSM in tests).

The token computes the signature; benhan holds only the certificate chain. ECDSA is asked of
the token as CKM_ECDSA over a SHA-256 digest made here (tokens that lack CKM_ECDSA_SHA256, as
SoftHSM 2.6 does, still sign), and PKCS#11 returns it as r‖s already, which is JOSE's form; RSA
is CKM_SHA256_RSA_PKCS, i.e. RS256. A token logs in once per process, not per session, so every
signer on one token shares one logged-in session, behind a lock.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote

import pkcs11
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Mechanism, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.types import SignMixin

from benhan.signing.pki import PkiError, certificate_algorithm
from benhan.signing.signers import Algorithm

MODULE_ENV = "BENHAN_PKCS11_MODULE"  # the library, when a key URI does not name it
PIN_ENV = "BENHAN_PKCS11_PIN"
# The session is gone (token pulled out, daemon restarted): open a new one and try once more.
_LOST = (p11.SessionClosed, p11.SessionHandleInvalid, p11.DeviceRemoved, p11.TokenNotPresent,
         p11.UserNotLoggedIn)  # fmt: skip


class _Token:
    """One token in this process: a logged-in session, opened when first needed."""

    def __init__(self, library_path: str, token_label: str, pin: str) -> None:
        self.library_path, self.label, self.pin = library_path, token_label, pin
        self._lock = threading.Lock()
        self._session: pkcs11.Session | None = None

    def sign(self, key_label: str, mechanism: Mechanism, payload: bytes) -> bytes:
        with self._lock:
            try:
                return self._sign(key_label, mechanism, payload)
            except _LOST:
                self._session = None
                return self._sign(key_label, mechanism, payload)

    def _sign(self, key_label: str, mechanism: Mechanism, payload: bytes) -> bytes:
        session = self._session or self.open()
        try:
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)
        except p11.NoSuchKey:
            raise PkiError(
                f"không có khóa {key_label!r} trên token {self.label!r} / "
                f"no private key {key_label!r} on token {self.label!r}"
            ) from None
        assert isinstance(key, SignMixin)  # every private key class of python-pkcs11 signs
        return bytes(key.sign(payload, mechanism=mechanism))

    def open(self) -> pkcs11.Session:
        token = self._find()
        try:
            self._session = token.open(user_pin=self.pin)
        except p11.UserAlreadyLoggedIn:  # another library handle in this process logged in
            self._session = token.open()
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
            raise PkiError(f"sai mã PIN của token {self.label!r} / wrong token PIN") from None
        except p11.PinLocked:
            raise PkiError(
                f"token {self.label!r} đã bị khóa PIN / the token PIN is locked"
            ) from None
        return self._session

    def _find(self) -> pkcs11.Token:
        try:
            return pkcs11.lib(self.library_path).get_token(token_label=self.label)
        except p11.NoSuchToken:
            raise PkiError(f"không thấy token {self.label!r} / no token {self.label!r}") from None
        except p11.PKCS11Error as exc:
            raise PkiError(
                f"không nạp được thư viện PKCS#11 {self.library_path} / cannot load the PKCS#11 "
                f"library {self.library_path}: {type(exc).__name__}"
            ) from None


_tokens: dict[tuple[str, str], _Token] = {}
_tokens_lock = threading.Lock()


def _token(library_path: str, token_label: str, pin: str) -> _Token:
    """The process's session on a token, logged in on first use. A token is remembered only
    once its PIN worked, and a later signer must bring the same PIN."""
    with _tokens_lock:
        found = _tokens.get((library_path, token_label))
        if found is None:
            found = _Token(library_path, token_label, pin)
            found.open()
            _tokens[library_path, token_label] = found
        elif not hmac.compare_digest(found.pin.encode(), pin.encode()):
            raise PkiError(f"sai mã PIN của token {token_label!r} / wrong token PIN")
        return found


class Pkcs11Signer:
    """A Signer whose private key stays in a PKCS#11 token, found by its label.

    Construction signs a test message and checks it with the certificate: a wrong PIN, a
    missing token or key, or a key that is not the certificate's fails here, not at signing."""

    def __init__(
        self,
        library_path: str,
        token_label: str,
        pin: str,
        key_label: str,
        chain: Sequence[x509.Certificate],
    ) -> None:
        if not chain:
            raise PkiError("thiếu chứng thư của khóa / the key's certificate chain is empty")
        self._chain = list(chain)
        self._algorithm = certificate_algorithm(self._chain[0])
        self._key_label = key_label
        self._token = _token(library_path, token_label, pin)
        self._check()

    @property
    def algorithm(self) -> Algorithm:
        return self._algorithm

    @property
    def chain(self) -> list[x509.Certificate]:
        return list(self._chain)

    def sign(self, data: bytes) -> bytes:
        if self._algorithm == "ES256":
            digest = hashlib.sha256(data).digest()
            return self._token.sign(self._key_label, Mechanism.ECDSA, digest)
        return self._token.sign(self._key_label, Mechanism.SHA256_RSA_PKCS, data)

    def _check(self) -> None:
        probe = b"benhan pkcs11 key check"
        signature = self.sign(probe)
        public = self._chain[0].public_key()
        try:
            if isinstance(public, ec.EllipticCurvePublicKey):
                if len(signature) != 64:
                    raise InvalidSignature
                r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                public.verify(encode_dss_signature(r, s), probe, ec.ECDSA(hashes.SHA256()))
            elif isinstance(public, rsa.RSAPublicKey):
                public.verify(signature, probe, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise PkiError(
                f"khóa {self._key_label!r} trên token không khớp chứng thư / "
                f"the token key {self._key_label!r} does not match the certificate"
            ) from None


def parse_uri(uri: str) -> tuple[dict[str, str], dict[str, str]]:
    """An RFC 7512 PKCS#11 URI: its path attributes (token, object…) and query (module-path…)."""
    if not uri.startswith("pkcs11:"):
        raise PkiError(f"không phải địa chỉ pkcs11: {uri!r} / not a PKCS#11 URI")
    path, _, query = uri.removeprefix("pkcs11:").partition("?")

    def attributes(text: str, separator: str) -> dict[str, str]:
        pairs = (part.partition("=") for part in text.split(separator) if part)
        return {unquote(k): unquote(v) for k, _, v in pairs}

    return attributes(path, ";"), attributes(query, "&")


def signer_from_uri(uri: str, chain: Sequence[x509.Certificate]) -> Pkcs11Signer:
    """The signer for a stored key URI, e.g.
    pkcs11:token=BV%20Tinh;object=bs-an?module-path=/usr/lib/softhsm/libsofthsm2.so.
    The PIN never sits in the database: BENHAN_PKCS11_PIN, or a pin-source file."""
    path, query = parse_uri(uri)
    module = query.get("module-path") or os.environ.get(MODULE_ENV, "")
    needed = {"token": path.get("token"), "object": path.get("object"), "module-path": module}
    missing = [name for name, value in needed.items() if not value]
    if missing:
        raise PkiError(f"địa chỉ khóa thiếu {', '.join(missing)} / the key URI lacks {missing}")
    return Pkcs11Signer(module, path["token"], _pin(query), path["object"], chain)


def _pin(query: dict[str, str]) -> str:
    source = query.get("pin-source", "")
    if source:
        return Path(source.removeprefix("file:")).read_text().strip()
    pin = os.environ.get(PIN_ENV, "")
    if not pin:
        raise PkiError(f"chưa đặt {PIN_ENV} cho token / {PIN_ENV} is not set")
    return pin
