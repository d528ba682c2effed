"""Certificates for tests: a root, an intermediate and leaves, made with `cryptography` alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from benhan.signing.signers import KeySigner

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def name(common: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sở Y tế Bắc Ninh (test)"),
        x509.NameAttribute(NameOID.COMMON_NAME, common),
    ])  # fmt: skip


def usage(ca: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs; a person or facility signs documents."""
    flags = dict.fromkeys(("key_encipherment", "data_encipherment", "key_agreement",
                           "encipher_only", "decipher_only"), False)  # fmt: skip
    return x509.KeyUsage(digital_signature=not ca, content_commitment=not ca,
                         key_cert_sign=ca, crl_sign=ca, **flags)  # fmt: skip


@dataclass(frozen=True)
class Issued:
    key: Key
    cert: x509.Certificate


def issue(
    common: str,
    issuer: Issued | None,
    *,
    ca: bool,
    start: datetime = NOW - timedelta(days=30),
    days: int = 365,
    key: Key | None = None,
) -> Issued:
    """A certificate for `common`, signed by `issuer` (self-signed when None)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = name(common)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage(ca), critical=True)
    )
    signing_key = issuer.key if issuer else key
    return Issued(key, builder.sign(signing_key, hashes.SHA256()))


@dataclass(frozen=True)
class Chain:
    root: Issued
    intermediate: Issued
    leaf: Issued

    def signer(self) -> KeySigner:
        return KeySigner(self.leaf.key, [self.leaf.cert, self.intermediate.cert, self.root.cert])


def make_chain(leaf: str = "BS. Nguyễn Văn An", **leaf_options: object) -> Chain:
    root = issue("Provincial test root", None, ca=True, days=3650, start=NOW - timedelta(days=400))
    mid = issue("Provincial test CA", root, ca=True, days=1825, start=NOW - timedelta(days=300))
    return Chain(root, mid, issue(leaf, mid, ca=False, **leaf_options))  # type: ignore[arg-type]
