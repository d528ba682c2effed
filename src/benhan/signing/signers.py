"""Who holds a private key, behind one interface: a key in the database, a PKCS#11 token or a
remote-signing service all sign bytes and show their certificate chain; nothing else of theirs
is seen by the code that signs documents, PDFs or checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

Algorithm = Literal["ES256", "RS256"]


class Signer(Protocol):
    """Signs with one certificate's key."""

    @property
    def algorithm(self) -> Algorithm: ...

    @property
    def chain(self) -> list[x509.Certificate]:
        """The signer's certificate first, then each issuer up to and including the root."""
        ...

    def sign(self, data: bytes) -> bytes:
        """The JOSE signature of `data` (RFC 7518 §3: ES256 as r‖s, 64 bytes; RS256 as
        PKCS#1 v1.5 over SHA-256)."""
        ...


def algorithm_of(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> Algorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("chỉ hỗ trợ khóa P-256 / only P-256 EC keys are supported")
        return "ES256"
    if key.key_size < 2048:
        raise ValueError("khóa RSA quá ngắn / RSA keys must have at least 2048 bits")
    return "RS256"


@dataclass(frozen=True)
class KeySigner:
    """A private key held in this process (read from the database or a file)."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    chain: list[x509.Certificate]

    @property
    def algorithm(self) -> Algorithm:
        return algorithm_of(self.key)

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
