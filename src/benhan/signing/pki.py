"""The provincial certificate authority and key custody, kept in the database.

benhan runs a small two-level CA (a long-lived root, and an issuing CA under it that signs every
clinician's and facility's certificate and the CRL), all ES256 on P-256. Certificates from a
licensed CA can be imported with their chain. Private keys are stored only encrypted (PKCS#8,
cryptography's BestAvailableEncryption) under the key passphrase; a key that lives in a PKCS#11
token or a remote-signing service is named by a URI instead. Several servers share the tables and
keep nothing of their own, so a revocation made on one is honoured by all at once.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from benhan.access import Actor
from benhan.fhir.primitives import from_micros, micros
from benhan.fhir.primitives import now as clock
from benhan.fhir.systems import check_ma_cskcb
from benhan.signing.signers import Algorithm, KeySigner, Signer
from benhan.store.audit import KEYS_CHANGED, record_security, security_event
from benhan.store.schema import pki_certificate as cert_table
from benhan.store.schema import pki_revocation as revoked_table

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
Kind = Literal["root", "issuing", "ca", "facility", "practitioner"]
LeafKind = Literal["facility", "practitioner"]
LEAF_KINDS: tuple[str, ...] = get_args(LeafKind)
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)
Unusable = Literal["never-issued", "expired", "not-yet-valid", "revoked", "chain-invalid", "no-key"]

DEFAULT_CA_NAME = "benhan — CA y tế tỉnh"
ROOT_DAYS, ISSUING_DAYS, MAX_LEAF_DAYS, CRL_DAYS = 20 * 365, 10 * 365, 5 * 365, 7
# Certificates start a minute early: servers sharing the database never agree on the clock exactly.
BACKDATE = timedelta(minutes=1)
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning, RFC 9336
PASSPHRASE_ENV = "BENHAN_KEY_PASSPHRASE"  # noqa: S105 (a variable name)
PASSPHRASE_FILE = "pki-key-passphrase"  # noqa: S105 (a file name)
RSA_BITS = 3072
_LOCK_ID = 0x62656E68616E  # "benhan": one CA creation at a time across servers (PostgreSQL)
_OWNER_RE = re.compile(r"(Organization|Practitioner)/([A-Za-z0-9\-.]{1,64})")
_OWNER_TYPE = {"facility": "Organization", "practitioner": "Practitioner"}
# RFC 5280 §5.3.1; a hold can be lifted and removeFromCRL is for delta CRLs: revocations here are
# permanent, so neither is offered.
REASONS = {
    r.value: r for r in x509.ReasonFlags if r.name not in ("certificate_hold", "remove_from_crl")
}


class PkiError(Exception):
    """A request the CA refuses, with a message for people (Vietnamese / English)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoUsableCertificate(PkiError):
    """signer_for found no certificate to sign with; `why` says which case it is."""

    def __init__(self, why: Unusable, message: str) -> None:
        super().__init__(message)
        self.why = why


class KeyPassphraseError(PkiError):
    """The key passphrase is missing, exposed, or does not open a stored key."""


@dataclass(frozen=True)
class Revocation:
    at: datetime
    reason: x509.ReasonFlags


@dataclass(frozen=True)
class CertificateRecord:
    """A stored certificate, and where its private key is."""

    fingerprint: str  # SHA-256 of the DER, hex
    kind: Kind
    owner: str
    facility: str
    certificate: x509.Certificate
    issuer: str | None  # the issuer's fingerprint; None for a self-signed root
    trust_anchor: bool
    revocation: Revocation | None
    key_uri: str | None
    encrypted_key: str | None = field(default=None, repr=False)

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    @property
    def serial_hex(self) -> str:
        return serial_hex(self.certificate.serial_number)

    @property
    def common_name(self) -> str:
        return _common_name(self.certificate)

    @property
    def algorithm(self) -> Algorithm:
        return certificate_algorithm(self.certificate)

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def key_held(self) -> str:
        """Where the private key is: "benhan" (encrypted in the database), a URI scheme, or "—"."""
        if self.encrypted_key:
            return "benhan"
        return self.key_uri.split(":", 1)[0] if self.key_uri else "—"


@dataclass(frozen=True)
class CertificateAuthority:
    root: CertificateRecord
    issuing: CertificateRecord


# ---- the key passphrase, and keys encrypted under it


def passphrase_path() -> Path:
    return Path(os.environ.get("BENHAN_VAR", "var")) / PASSPHRASE_FILE


def key_passphrase() -> bytes:
    """BENHAN_KEY_PASSPHRASE, else a random one made once in a 0600 file under BENHAN_VAR.

    Servers on several machines must share BENHAN_KEY_PASSPHRASE: each file is local."""
    from_env = os.environ.get(PASSPHRASE_ENV, "")
    if from_env:
        return from_env.encode()
    path = passphrase_path()
    if not path.exists():
        _create_passphrase_file(path)
    return _read_passphrase_file(path)


def _create_passphrase_file(path: Path) -> None:
    """Written whole under a temporary name, then linked: two servers starting together keep
    whichever came first, and neither reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another server made it first: keep theirs
            os.link(temporary, path)
    finally:
        temporary.unlink()


def _read_passphrase_file(path: Path) -> bytes:
    if path.stat().st_mode & 0o077:
        raise KeyPassphraseError(
            f"tệp mật khẩu khóa {path} để người khác đọc được: chạy chmod 600 / "
            f"the key passphrase file {path} is readable by others: run chmod 600"
        )
    value = path.read_bytes().strip()
    if not value:
        raise KeyPassphraseError(f"tệp mật khẩu khóa {path} rỗng / {path} is empty")
    return value


def _encrypt(key: PrivateKey) -> str:
    encryption = serialization.BestAvailableEncryption(key_passphrase())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return pem.decode()


def private_key(record: CertificateRecord) -> PrivateKey:
    """The record's private key, decrypted; KeyPassphraseError when the passphrase is wrong."""
    if not record.encrypted_key:
        raise NoUsableCertificate(
            "no-key",
            f"khóa riêng của chứng thư {record.serial_hex} không nằm trong benhan / "
            f"the private key of certificate {record.serial_hex} is not held by benhan",
        )
    try:
        return _decrypt(record.encrypted_key.encode(), key_passphrase())
    except ValueError:
        raise KeyPassphraseError(
            f"không mở được khóa riêng của chứng thư {record.serial_hex}: sai mật khẩu khóa "
            f"({PASSPHRASE_ENV} hoặc tệp {PASSPHRASE_FILE}) / cannot decrypt the private key of "
            f"certificate {record.serial_hex}: wrong key passphrase"
        ) from None


@functools.lru_cache(maxsize=256)
def _decrypt(pem: bytes, passphrase: bytes) -> PrivateKey:
    """Decrypted once per process: a key never changes for a given PEM and passphrase."""
    key = serialization.load_pem_private_key(pem, passphrase)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("unsupported key type")
    return key


# ---- the CA


def ensure_ca(
    conn: sa.Connection,
    *,
    name: str = DEFAULT_CA_NAME,
    actor: Actor | None = None,
    now: datetime | None = None,
) -> CertificateAuthority:
    """The provincial CA, created on first call (a root and an issuing CA under it)."""
    _lock(conn)
    existing = current_ca(conn)
    if existing is not None:
        return existing
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise PkiError("tên CA phải có 1–64 ký tự / the CA name must have 1–64 characters")
    at = _moment(now)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(name, "CA gốc / Root CA")
    root_cert = _ca_certificate(root_name, root_key, root_key, None, at, ROOT_DAYS, path_length=1)
    root = _store(conn, root_cert, kind="root", issuer=None, key=root_key, trust_anchor=True)
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing_cert = _ca_certificate(
        _name(name, "CA cấp chứng thư / Issuing CA"), issuing_key, root_key, root_cert, at,
        ISSUING_DAYS, path_length=0,
    )  # fmt: skip
    issuing = _store(conn, issuing_cert, kind="issuing", issuer=root.fingerprint, key=issuing_key)
    _audit(conn, actor, "", f"provincial CA created: root {root.serial_hex}, "
           f"issuing CA {issuing.serial_hex}")  # fmt: skip
    return CertificateAuthority(root, issuing)


def current_ca(conn: sa.Connection) -> CertificateAuthority | None:
    issuing = _records(conn, cert_table.c.kind == "issuing")
    if not issuing or issuing[0].issuer is None:
        return None
    root = _records(conn, cert_table.c.fingerprint == issuing[0].issuer)
    return CertificateAuthority(root[0], issuing[0]) if root else None


def _lock(conn: sa.Connection) -> None:
    """Serialise CA creation between servers (SQLite's write transactions already are)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_ID)))


def _name(organization: str, common_name: str, owner: str | None = None) -> x509.Name:
    """C=VN, O, CN (UTF8String), and the FHIR owner as UID, as Vietnamese CAs put an id there."""
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
    if owner:
        attributes.append(x509.NameAttribute(NameOID.USER_ID, owner))
    return x509.Name(attributes)


def _builder(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    issuer: x509.Certificate | None,
    start: datetime,
    end: datetime,
) -> x509.CertificateBuilder:
    """Subject, validity, and the key identifiers that tie a certificate to its issuer."""
    if issuer is None:
        authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
    else:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        authority = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - BACKDATE)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(authority, critical=False)
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs; a person or facility signs documents (non-repudiation)."""
    return x509.KeyUsage(
        digital_signature=not ca, content_commitment=not ca, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _ca_certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signing_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    at: datetime,
    days: int,
    *,
    path_length: int,
) -> x509.Certificate:
    return (
        _builder(subject, key.public_key(), issuer, at, at + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .sign(signing_key, hashes.SHA256())
    )


# ---- issuing


def issue(
    conn: sa.Connection,
    *,
    kind: LeafKind,
    owner: str,
    common_name: str,
    facility: str,
    days: int = 730,
    algorithm: Algorithm = "ES256",
    now: datetime | None = None,
    organization: str | None = None,
    crl_url: str | None = None,
    actor: Actor | None = None,
) -> CertificateRecord:
    """A document-signing certificate and a new key for a facility or a practitioner.

    `facility` is the MA_CSKCB; `organization` (the facility's name) goes in O=, the code if
    absent. The certificate ends with the issuing CA at the latest. The CA is created if needed."""
    problems = _owner_problems(kind, owner, facility)
    problems += _text_problems(common_name=common_name, organization=organization)
    if not 1 <= days <= MAX_LEAF_DAYS:
        problems.append(f"số ngày phải từ 1 đến {MAX_LEAF_DAYS} / days must be 1–{MAX_LEAF_DAYS}")
    if algorithm not in ALGORITHMS:
        problems.append(f"thuật toán {algorithm!r} không hỗ trợ / use ES256 or RS256")
    _refuse(problems)
    at = _moment(now)
    ca = ensure_ca(conn, actor=actor, now=now)
    if not ca.issuing.not_before <= at < ca.issuing.not_after:
        raise PkiError(
            "CA cấp chứng thư không có hiệu lực lúc này / the issuing CA is not valid then"
        )
    key = _new_key(algorithm)
    subject = _name((organization or facility).strip(), common_name.strip(), owner)
    end = min(at + timedelta(days=days), ca.issuing.not_after)
    builder = (
        _builder(subject, key.public_key(), ca.issuing.certificate, at, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([DOCUMENT_SIGNING]), critical=False)
    )
    if crl_url:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    certificate = builder.sign(private_key(ca.issuing), hashes.SHA256())
    record = _store(conn, certificate, kind=kind, owner=owner, facility=facility,
                    issuer=ca.issuing.fingerprint, key=key)  # fmt: skip
    _audit(conn, actor, facility, f"certificate {record.serial_hex} issued to {owner}, "
           f"valid until {end:%Y-%m-%d}", [owner])  # fmt: skip
    return record


def _new_key(algorithm: Algorithm) -> PrivateKey:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    return ec.generate_private_key(ec.SECP256R1())


def _owner_problems(kind: str, owner: str, facility: str) -> list[str]:
    problems = [p.text for p in check_ma_cskcb(facility)]
    match = _OWNER_RE.fullmatch(owner)
    if kind not in LEAF_KINDS:
        problems.append(f"loại {kind!r} không có: facility hoặc practitioner / unknown kind")
    elif not match:
        problems.append(
            f"chủ sở hữu {owner!r} phải là Organization/<MA_CSKCB> hoặc Practitioner/<id> / "
            "owner must be Organization/<MA_CSKCB> or Practitioner/<id>"
        )
    elif match[1] != _OWNER_TYPE[kind]:
        problems.append(f"chứng thư {kind} phải thuộc {_OWNER_TYPE[kind]}/… / owner type mismatch")
    elif kind == "facility" and match[2] != facility:
        problems.append(f"{owner} không phải cơ sở {facility} / owner is not facility {facility}")
    return problems


def _text_problems(**texts: str | None) -> list[str]:
    """X.520 upper bound: 64 characters for a common or organization name."""
    return [
        f"{field_name} phải có 1–64 ký tự / {field_name} must have 1–64 characters"
        for field_name, text in texts.items()
        if text is not None and not 1 <= len(text.strip()) <= 64
    ]


def _refuse(problems: list[str]) -> None:
    if problems:
        raise PkiError("; ".join(problems))


# ---- storage


def _store(
    conn: sa.Connection,
    certificate: x509.Certificate,
    *,
    kind: Kind,
    issuer: str | None,
    owner: str = "",
    facility: str = "",
    key: PrivateKey | None = None,
    key_uri: str | None = None,
    trust_anchor: bool = False,
) -> CertificateRecord:
    row = {
        "fingerprint": fingerprint(certificate),
        "serial": serial_hex(certificate.serial_number),
        "kind": kind,
        "owner": owner,
        "facility": facility,
        "common_name": _common_name(certificate)[:256],
        "issuer": issuer,
        "not_before": micros(certificate.not_valid_before_utc),
        "not_after": micros(certificate.not_valid_after_utc),
        "algorithm": certificate_algorithm(certificate),
        "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "private_key": _encrypt(key) if key is not None else None,
        "key_uri": key_uri,
        "trust_anchor": trust_anchor,
        "created": micros(clock()),
    }
    conn.execute(cert_table.insert().values(**row))
    return _record({**row, "revoked": None, "reason": None})


def _records(conn: sa.Connection, *where: sa.ColumnElement[bool]) -> list[CertificateRecord]:
    """Matching certificates with their revocation, newest first."""
    joined = cert_table.outerjoin(
        revoked_table, revoked_table.c.fingerprint == cert_table.c.fingerprint
    )
    query = (
        sa.select(cert_table, revoked_table.c.revoked, revoked_table.c.reason)
        .select_from(joined)
        .where(*where)
        .order_by(cert_table.c.not_before.desc(), cert_table.c.created.desc())
    )
    return [_record(row) for row in conn.execute(query).mappings()]


def _record(row: sa.RowMapping | Mapping[str, Any]) -> CertificateRecord:
    revocation = None
    if row["revoked"] is not None:
        revocation = Revocation(from_micros(row["revoked"]), REASONS[row["reason"]])
    return CertificateRecord(
        fingerprint=row["fingerprint"],
        kind=row["kind"],
        owner=row["owner"],
        facility=row["facility"],
        certificate=_parse(row["certificate"]),
        issuer=row["issuer"],
        trust_anchor=bool(row["trust_anchor"]),
        revocation=revocation,
        key_uri=row["key_uri"],
        encrypted_key=row["private_key"],
    )


@functools.lru_cache(maxsize=1024)
def _parse(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def certificates(conn: sa.Connection, *, owner: str | None = None) -> list[CertificateRecord]:
    """Every stored certificate (or an owner's), newest first."""
    return _records(conn, *([cert_table.c.owner == owner] if owner is not None else []))


def chain_of(conn: sa.Connection, record: CertificateRecord) -> list[CertificateRecord]:
    """The record, then each stored issuer up to the root."""
    chain = [record]
    while chain[-1].issuer is not None and len(chain) < 8:
        found = _records(conn, cert_table.c.fingerprint == chain[-1].issuer)
        if not found:
            break
        chain.append(found[0])
    return chain


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def serial_hex(serial: int) -> str:
    return f"{serial:X}"


def parse_serial(text: str | int) -> int:
    """A serial as people copy it: hex, with or without colons, spaces or a 0x prefix."""
    if isinstance(text, int):
        return text
    digits = re.sub(r"[\s:]", "", text).removeprefix("0x").removeprefix("0X")
    if not re.fullmatch(r"[0-9A-Fa-f]{1,40}", digits):
        raise PkiError(f"số hiệu {text!r} không phải số hex / serial must be hexadecimal")
    return int(digits, 16)


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def certificate_algorithm(certificate: x509.Certificate) -> Algorithm:
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return "RS256"
    raise PkiError("khóa phải là EC P-256 hoặc RSA ≥ 2048 bit / key must be P-256 or RSA ≥ 2048")


# ---- signing with the newest usable certificate


def signer_for(conn: sa.Connection, owner: str, *, at: datetime | None = None) -> Signer:
    """The signer of `owner`'s newest certificate valid at `at` (now) and never revoked, with
    its chain up to the root; NoUsableCertificate says why there is none."""
    moment = _moment(at)
    found = [r for r in certificates(conn, owner=owner) if r.kind in LEAF_KINDS]
    if not found:
        raise NoUsableCertificate(
            "never-issued",
            f"{owner} chưa được cấp chứng thư nào / no certificate was ever issued to {owner}",
        )
    reasons = []
    for record in found:
        chain = chain_of(conn, record)
        reason = _unusable(chain, moment)
        if reason is None:
            return _signer(chain)
        reasons.append(reason)
    why, message = reasons[0]  # the newest certificate's: the one people expect to be used
    raise NoUsableCertificate(why, message)


def _unusable(chain: list[CertificateRecord], moment: datetime) -> tuple[Unusable, str] | None:
    leaf = chain[0]
    if leaf.revocation is not None:
        r = leaf.revocation
        return "revoked", (
            f"chứng thư {leaf.serial_hex} đã bị thu hồi ngày {r.at:%Y-%m-%d} ({r.reason.value}) / "
            f"certificate {leaf.serial_hex} was revoked on {r.at:%Y-%m-%d} ({r.reason.value})"
        )
    if moment >= leaf.not_after:
        return "expired", (
            f"chứng thư {leaf.serial_hex} đã hết hạn ngày {leaf.not_after:%Y-%m-%d} / "
            f"certificate {leaf.serial_hex} expired on {leaf.not_after:%Y-%m-%d}"
        )
    if moment < leaf.not_before:
        return "not-yet-valid", (
            f"chứng thư {leaf.serial_hex} chỉ có hiệu lực từ {leaf.not_before:%Y-%m-%d %H:%M} / "
            f"certificate {leaf.serial_hex} is valid only from {leaf.not_before:%Y-%m-%d %H:%M}"
        )
    for ca in chain[1:]:
        if ca.revocation is not None or not ca.not_before <= moment < ca.not_after:
            return "chain-invalid", (
                f"CA {ca.common_name} ({ca.serial_hex}) đã hết hạn hoặc bị thu hồi / "
                f"issuer {ca.common_name} ({ca.serial_hex}) has expired or was revoked"
            )
    if chain[-1].issuer is not None:
        return "chain-invalid", "chuỗi chứng thư thiếu CA gốc / the chain lacks its root"
    if not leaf.encrypted_key and not leaf.key_uri:
        return "no-key", (
            f"chưa cấu hình khóa riêng cho chứng thư {leaf.serial_hex} / no private key or "
            f"signer is configured for certificate {leaf.serial_hex}"
        )
    return None


def _signer(chain: list[CertificateRecord]) -> Signer:
    leaf, certs = chain[0], [r.certificate for r in chain]
    if leaf.encrypted_key:
        return KeySigner(private_key(leaf), certs)
    assert leaf.key_uri is not None  # _unusable refused a certificate with neither
    if leaf.key_uri.startswith("pkcs11:"):
        from benhan.signing.pkcs11 import signer_from_uri

        return signer_from_uri(leaf.key_uri, certs)
    if leaf.key_uri.startswith("https://"):  # a CSC v2 remote-signing service's credential
        from benhan.signing import remote

        return remote.signer_from_uri(leaf.key_uri, certs)
    raise NoUsableCertificate(
        "no-key",
        f"chưa có bộ ký cho {leaf.key_uri} / no signer is configured for {leaf.key_uri}",
    )


# ---- revocation


def parse_reason(reason: str | x509.ReasonFlags) -> x509.ReasonFlags:
    """An RFC 5280 reason, by its name in the CRL (keyCompromise) or in Python (key_compromise)."""
    if isinstance(reason, x509.ReasonFlags):
        reason = reason.value
    by_name = {r.name: r for r in REASONS.values()}
    found = REASONS.get(reason) or by_name.get(reason)
    if found is None:
        raise PkiError(f"lý do {reason!r} không hợp lệ, dùng một trong / reason must be one of: "
                       + ", ".join(REASONS))  # fmt: skip
    return found


def revoke(
    conn: sa.Connection,
    serial: str | int,
    *,
    reason: str | x509.ReasonFlags,
    at: datetime | None = None,
    actor: Actor | None = None,
) -> CertificateRecord:
    """Revoke a clinician's or facility's certificate for good, from `at` (now)."""
    flag, number = parse_reason(reason), parse_serial(serial)
    moment = _moment(at)
    if moment > clock() + BACKDATE:
        raise PkiError("không thu hồi trước cho tương lai / a revocation cannot be in the future")
    found = _records(conn, cert_table.c.serial == serial_hex(number))
    leaves = [r for r in found if r.kind in LEAF_KINDS]
    if not leaves:
        detail = "là chứng thư CA / is a CA certificate" if found else "không có / not found"
        raise PkiError(f"chứng thư {serial_hex(number)}: {detail}")
    if len(leaves) > 1:
        raise PkiError(f"nhiều chứng thư cùng số hiệu {serial_hex(number)} / ambiguous serial")
    record = leaves[0]
    if record.revocation is not None:
        raise PkiError(f"chứng thư {record.serial_hex} đã bị thu hồi / is already revoked")
    assert record.issuer is not None  # a leaf is stored with its issuer
    conn.execute(
        revoked_table.insert().values(
            fingerprint=record.fingerprint, serial=record.serial_hex, issuer=record.issuer,
            reason=flag.value, revoked=micros(moment),
        )
    )  # fmt: skip
    _audit(conn, actor, record.facility,
           f"certificate {record.serial_hex} of {record.owner} revoked: {flag.value}",
           [record.owner])  # fmt: skip
    return _records(conn, cert_table.c.fingerprint == record.fingerprint)[0]


def crl(conn: sa.Connection, *, now: datetime | None = None) -> x509.CertificateRevocationList:
    """The issuing CA's CRL (RFC 5280 §5): every certificate it issued that was revoked."""
    return _crl(_ca(conn).issuing, _moment(now), conn)


def crls(
    conn: sa.Connection, *, now: datetime | None = None
) -> list[x509.CertificateRevocationList]:
    """The issuing CA's CRL and the root's (for the issuing CA itself): what an offline verifier
    needs to check every certificate below benhan's trust anchor."""
    ca, at = _ca(conn), _moment(now)
    return [_crl(ca.issuing, at, conn), _crl(ca.root, at, conn)]


def _ca(conn: sa.Connection) -> CertificateAuthority:
    ca = current_ca(conn)
    if ca is None:
        raise PkiError("chưa khởi tạo CA: chạy `benhan pki init` / no CA: run `benhan pki init`")
    return ca


def _crl(
    authority: CertificateRecord, at: datetime, conn: sa.Connection
) -> x509.CertificateRevocationList:
    ski = authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.certificate.subject)
        .last_update(at)
        .next_update(at + timedelta(days=CRL_DAYS))
        .add_extension(x509.CRLNumber(micros(at)), critical=False)  # grows with no sequence
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value),
            critical=False,
        )
    )
    query = sa.select(revoked_table).where(revoked_table.c.issuer == authority.fingerprint)
    for row in conn.execute(query.order_by(revoked_table.c.revoked)).mappings():
        entry = x509.RevokedCertificateBuilder().serial_number(int(row["serial"], 16))
        entry = entry.revocation_date(from_micros(row["revoked"]))
        if row["reason"] != "unspecified":  # RFC 5280 §5.3.1: omit rather than say unspecified
            entry = entry.add_extension(x509.CRLReason(REASONS[row["reason"]]), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(private_key(authority), hashes.SHA256())


def revocation_of(conn: sa.Connection, certificate: x509.Certificate) -> Revocation | None:
    """Whether a certificate benhan knows was revoked (for verifying online)."""
    found = _records(conn, cert_table.c.fingerprint == fingerprint(certificate))
    return found[0].revocation if found else None


def trust_anchors(conn: sa.Connection) -> list[x509.Certificate]:
    """The roots a signature must chain to: benhan's own, and imported ones marked trusted."""
    return [r.certificate for r in _records(conn, cert_table.c.trust_anchor.is_(True))]


# ---- certificates from a licensed CA


def import_certificate(
    conn: sa.Connection,
    chain_pem: bytes,
    *,
    owner: str,
    facility: str,
    key: bytes | str | None = None,
    key_password: bytes | None = None,
    trust_root: bool = False,
    actor: Actor | None = None,
    at: datetime | None = None,
) -> CertificateRecord:
    """Store a licensed CA's certificate with its chain (PEM, the signer's first).

    `key`: the private key as PEM (re-encrypted under benhan's passphrase), a URI naming where it
    is held ("pkcs11:…" per RFC 7512, or the https address of a remote-signing service), or None.
    The chain must end at a self-signed root or at a certificate already stored; that root becomes
    a trust anchor only with `trust_root=True`."""
    certs = _load_chain(chain_pem)
    kind: LeafKind = "facility" if owner.startswith("Organization/") else "practitioner"
    problems = _owner_problems(kind, owner, facility)
    problems += _chain_problems(certs, _moment(at))
    top = certs[-1]
    self_signed = top.issuer == top.subject
    above = None if self_signed else _stored_issuer(conn, top)
    if not self_signed and above is None:
        problems.append("chuỗi không dẫn tới CA gốc nào / the chain does not reach a root")
    if self_signed and len(certs) == 1:
        problems.append("chứng thư tự ký không có CA / a self-signed certificate has no CA")
    if trust_root and not self_signed:
        problems.append("chuỗi không có CA gốc để tin cậy / no root in the chain to trust")
    key_object, key_uri = _imported_key(certs[0], key, key_password, problems)
    if _records(conn, cert_table.c.fingerprint == fingerprint(certs[0])):
        problems.append(f"chứng thư {serial_hex(certs[0].serial_number)} đã được nhập / "
                        "already imported")  # fmt: skip
    _refuse(problems)
    issuer = above.fingerprint if above else None
    for ca in reversed(certs[1:]):
        issuer = _store_issuer(conn, ca, issuer, trust=trust_root and ca is top)
    record = _store(conn, certs[0], kind=kind, owner=owner, facility=facility, issuer=issuer,
                    key=key_object, key_uri=key_uri)  # fmt: skip
    _audit(conn, actor, facility, f"certificate {record.serial_hex} from "
           f"{certs[0].issuer.rfc4514_string()} imported for {owner}", [owner])  # fmt: skip
    return record


def _load_chain(chain_pem: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        certs = []
    if not certs:
        raise PkiError("không đọc được chứng thư PEM nào / no PEM certificate could be read")
    return certs


def _chain_problems(certs: list[x509.Certificate], moment: datetime) -> list[str]:
    """Each certificate issued and signed by the next, issuers are CAs, all valid at `moment`."""
    problems = _signature_problems(certs)
    for i, cert in enumerate(certs):
        if _is_ca(cert) != (i > 0):
            problems.append(f"chứng thư số {i + 1}: {'phải' if i else 'không được'} là CA / "
                            f"certificate {i + 1} must {'' if i else 'not '}be a CA")  # fmt: skip
        if not cert.not_valid_before_utc <= moment < cert.not_valid_after_utc:
            problems.append(f"chứng thư số {i + 1} không có hiệu lực lúc nhập / "
                            f"certificate {i + 1} is not valid now")  # fmt: skip
    if not _signs_documents(certs[0]):
        problems.append("chứng thư không cho phép ký / the certificate does not allow signing")
    try:
        certificate_algorithm(certs[0])
    except PkiError as exc:
        problems.append(exc.message)
    return problems


def _signature_problems(certs: list[x509.Certificate]) -> list[str]:
    problems = []
    for i, (child, parent) in enumerate(itertools.pairwise(certs)):
        if not _issued_by(child, parent):
            problems.append(
                f"chứng thư số {i + 1} không do chứng thư số {i + 2} ký / "
                f"certificate {i + 1} is not signed by certificate {i + 2}"
            )
    top = certs[-1]
    if top.issuer == top.subject and not _issued_by(top, top):
        problems.append("chữ ký của CA gốc không hợp lệ / the root's self-signature is invalid")
    return problems


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """RFC 5280 §6.1.3: the issuer name matches and the parent's key verifies the signature."""
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _signs_documents(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.digital_signature or usage.content_commitment


def _stored_issuer(conn: sa.Connection, cert: x509.Certificate) -> CertificateRecord | None:
    cas = _records(conn, cert_table.c.kind.in_(("root", "issuing", "ca")))
    return next((ca for ca in cas if _issued_by(cert, ca.certificate)), None)


def _store_issuer(
    conn: sa.Connection, cert: x509.Certificate, issuer: str | None, *, trust: bool
) -> str:
    """An imported CA certificate, stored once; trusting it again is explicit, never undone here."""
    existing = _records(conn, cert_table.c.fingerprint == fingerprint(cert))
    if not existing:
        return _store(conn, cert, kind="ca", issuer=issuer, trust_anchor=trust).fingerprint
    if trust and not existing[0].trust_anchor:
        conn.execute(
            cert_table.update()
            .where(cert_table.c.fingerprint == existing[0].fingerprint)
            .values(trust_anchor=True)
        )
    return existing[0].fingerprint


def _imported_key(
    leaf: x509.Certificate, key: bytes | str | None, password: bytes | None, problems: list[str]
) -> tuple[PrivateKey | None, str | None]:
    if key is None:
        return None, None
    if isinstance(key, str):
        if key.startswith("https://"):  # a remote-signing service: its address checked now
            from benhan.signing.remote import parse_uri

            try:
                parse_uri(key)
            except PkiError as exc:
                problems.append(str(exc))
        elif not key.startswith("pkcs11:") or "pin-value" in key:
            problems.append("địa chỉ khóa phải là pkcs11:… (không kèm PIN) hoặc https://… / "
                            "key URI must be pkcs11:… (without a PIN) or https://…")  # fmt: skip
        return None, key
    try:
        loaded = serialization.load_pem_private_key(key, password)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        problems.append("không đọc được khóa riêng (sai định dạng hoặc mật khẩu) / "
                        "cannot read the private key (bad PEM or password)")  # fmt: skip
        return None, None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) or _spki(
        loaded.public_key()
    ) != _spki(leaf.public_key()):
        problems.append("khóa riêng không khớp chứng thư / the key does not match the certificate")
        return None, None
    return loaded, None


def _spki(public_key: object) -> bytes:
    assert isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# ---- shared


def _moment(value: datetime | None) -> datetime:
    if value is None:
        return clock()
    if value.tzinfo is None:
        raise PkiError("thời điểm phải có múi giờ / the time must carry its offset")
    return value


def _audit(
    conn: sa.Connection, actor: Actor | None, facility: str, detail: str, owners: Iterable[str] = ()
) -> None:
    """A security event in the caller's transaction: certificates and keys changed."""
    who = actor or Actor.job(facility, "benhan pki")
    record_security(conn, who, security_event(KEYS_CHANGED, entities=owners, detail=detail))
