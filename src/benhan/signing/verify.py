"""Checking a signed FHIR document offline, against trust anchors and CRLs, and saying exactly
what failed.

Each step is a `Check` (name, ok, message in Vietnamese " / " English), reported in this order:

    signature     Bundle.signature is present
    jws           its data is a well-formed compact JWS with detached payload
    algorithm     ES256 or RS256 and a key that fits ("none", HS256 and the rest are refused)
    signing-time  sigT is readable, not in the future, and equals Bundle.signature.when
    chain         each x5c certificate is issued and signed by the next (names the position)
    trust         the chain ends at, or is issued by, a trust anchor
    validity      each certificate is valid at the signing time
    key-usage     the signer's certificate allows signing and is not a CA
    revocation    one per certificate below the anchor: revoked, not revoked, or no CRL (warning)
    certificate   the kid names the x5c leaf (a swapped certificate shows here)
    content       the signature over the canonical document verifies with the leaf's key
    signature-type  Bundle.signature.type is the commitment the signature covers (srCms)
    signer        only when the caller expects a signer: who and the certificate are theirs

The first three are gates: when one fails nothing after it can be evaluated. Malformed input
never raises; it fails a check. The JWS signature is verified with joserfc, a library other
than the signing code (which signs through `Signer`); certificates with `cryptography`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any, Final, TypeVar

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey, RSAKey
from joserfc.registry import HeaderParameter

from benhan.signing.jws import (
    ALGORITHMS,
    OID_URN,
    SIG_FORMAT,
    SIGNATURE_TYPE_SYSTEM,
    SigningError,
    b64_decode,
    b64url_decode,
    canonical,
    instant,
    parse_time,
    thumbprint,
)
from benhan.signing.signers import Algorithm

_E = TypeVar("_E", bound=x509.ExtensionType)

# A signer's clock may run a little ahead of the verifier's.
CLOCK_SKEW: Final = timedelta(minutes=5)
# Header parameters this verifier understands, so they may be listed in `crit`.
UNDERSTOOD_CRITICAL: Final = frozenset({"sigT", "srCms"})
COMPROMISE: Final = frozenset(
    {
        x509.ReasonFlags.key_compromise,
        x509.ReasonFlags.ca_compromise,
        x509.ReasonFlags.aa_compromise,
    }
)
REASONS_VI: Final[Mapping[x509.ReasonFlags, str]] = {
    x509.ReasonFlags.unspecified: "không nêu lý do",
    x509.ReasonFlags.key_compromise: "khóa bị lộ",
    x509.ReasonFlags.ca_compromise: "CA bị xâm phạm",
    x509.ReasonFlags.affiliation_changed: "thay đổi đơn vị",
    x509.ReasonFlags.superseded: "đã được thay thế",
    x509.ReasonFlags.cessation_of_operation: "ngừng hoạt động",
    x509.ReasonFlags.certificate_hold: "tạm dừng",
    x509.ReasonFlags.privilege_withdrawn: "bị rút quyền",
    x509.ReasonFlags.aa_compromise: "AA bị xâm phạm",
    x509.ReasonFlags.remove_from_crl: "gỡ khỏi CRL",
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str  # Vietnamese " / " English
    warning: bool = False  # passed, but a person should read it

    def __str__(self) -> str:
        mark = "✗" if not self.ok else "!" if self.warning else "✓"
        return f"{mark} {self.name}: {self.message}"

    @classmethod
    def passed(cls, name: str, vi: str, en: str, *, warning: bool = False) -> Check:
        return cls(name, True, f"{vi} / {en}", warning)

    @classmethod
    def failed(cls, name: str, vi: str, en: str) -> Check:
        return cls(name, False, f"{vi} / {en}")


@dataclass(frozen=True)
class Verification:
    checks: tuple[Check, ...]
    signer: x509.Certificate | None = None  # the leaf of x5c, when it could be read
    signed_at: datetime | None = None  # sigT, when it could be read

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    @property
    def warnings(self) -> list[Check]:
        return [check for check in self.checks if check.ok and check.warning]

    def named(self, name: str) -> list[Check]:
        """The checks called `name` (revocation has one per certificate)."""
        return [check for check in self.checks if check.name == name]

    def report(self) -> str:
        """One line per check, for a terminal or a log."""
        return "\n".join(str(check) for check in self.checks)


@dataclass(frozen=True)
class ExpectedSigner:
    """Who the caller expects to have signed, and the certificates registered for them."""

    who: str  # reference, e.g. "Practitioner/abc"
    certificates: Sequence[x509.Certificate]  # any of them (a renewed certificate is another)


@dataclass(frozen=True)
class _Jws:
    """A parsed Bundle.signature: every certificate is read once per verify."""

    compact: str
    header: dict[str, Any]
    chain: list[x509.Certificate]
    leaf_key: Any  # the signer's public key, read once
    signed_at: datetime


class _Fail(Exception):
    """One check's failure while parsing: carries the check's message."""

    def __init__(self, vi: str, en: str) -> None:
        super().__init__(_msg(vi, en))


def _msg(vi: str, en: str) -> str:
    return f"{vi} / {en}"


def _common_name(cert: x509.Certificate) -> str:
    return _cn(cert.subject)


def _cn(name: x509.Name) -> str:
    """A name as people know it: its common name, else the whole distinguished name."""
    found = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = found[0].value if found else name.rfc4514_string()
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _at(position: int, cert: x509.Certificate) -> tuple[str, str]:
    """'vị trí 1 (CN)' / 'position 1 (CN)': positions count from the signer's certificate."""
    common = _common_name(cert)
    return (
        f"chứng thư ở vị trí {position} ({common})",
        f"the certificate at position {position} ({common})",
    )


# ---------------------------------------------------------------- entry point


def verify(
    bundle: Mapping[str, Any],
    *,
    anchors: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList] = (),
    at: datetime | None = None,
    expected_signer: ExpectedSigner | None = None,
) -> Verification:
    """Check the signature of a FHIR document; `at` is the verifier's "now" (default: now)."""
    now = at or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("`at` needs a time zone offset")
    present, element = _signature_element(bundle)
    if element is None:
        return Verification((present,))
    formed, parsed = _parse(element)
    if parsed is None:
        return Verification((present, formed))
    algorithm = _algorithm(parsed)
    gates = (present, formed, algorithm)
    if not algorithm.ok:
        return Verification(gates, parsed.chain[0], parsed.signed_at)
    binding = _certificate(parsed.header, parsed.chain[0])
    checks = [*gates, *_certificate_checks(parsed, anchors, crls, now, element), binding]
    checks.append(_content(bundle, parsed, bound=binding.ok))
    checks.append(_signature_type(element, parsed.header))
    if expected_signer is not None:
        checks.append(_signer(element, parsed.chain[0], expected_signer))
    return Verification(tuple(checks), parsed.chain[0], parsed.signed_at)


def _certificate_checks(
    parsed: _Jws,
    anchors: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    now: datetime,
    element: Mapping[str, Any],
) -> list[Check]:
    chain, signed_at = parsed.chain, parsed.signed_at
    anchor = _issuing_anchor(chain[-1], anchors)
    return [
        _signing_time(element, signed_at, now),
        _chain(chain),
        _trust(chain[-1], anchor, anchors),
        _validity(chain, anchor, signed_at),
        _key_usage(chain[0]),
        *revocation_checks(chain, anchors, crls, signed_at, now),
    ]


# ---------------------------------------------------------------- gates


def _signature_element(bundle: Any) -> tuple[Check, Mapping[str, Any] | None]:
    name = "signature"
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        return Check.failed(name, "không phải một Bundle", "not a Bundle"), None
    element = bundle.get("signature")
    if element is None:
        return Check.failed(
            name, "tài liệu không có chữ ký", "no signature: the document is unsigned"
        ), None
    if not isinstance(element, Mapping):
        return Check.failed(
            name, "Bundle.signature phải là một đối tượng", "Bundle.signature must be an object"
        ), None
    return Check.passed(name, "tài liệu có chữ ký", "the document carries a signature"), element


def _parse(element: Mapping[str, Any]) -> tuple[Check, _Jws | None]:
    try:
        parsed = _parse_jws(element)
    except _Fail as failure:
        return Check("jws", False, str(failure)), None
    return Check.passed("jws", "JWS hợp lệ về cấu trúc", "the JWS is well formed"), parsed


def _parse_jws(element: Mapping[str, Any]) -> _Jws:
    sig_format = element.get("sigFormat", SIG_FORMAT)
    if sig_format != SIG_FORMAT:
        raise _Fail(
            f"định dạng chữ ký {sig_format!r} không được hỗ trợ",
            f"unsupported sigFormat {sig_format!r} (expected {SIG_FORMAT})",
        )
    compact = _compact(element.get("data"))
    header_segment, payload_segment, signature_segment = _segments(compact)
    if payload_segment:
        raise _Fail(
            "JWS phải tách rời nội dung (phần giữa để trống)",
            "the JWS payload must be detached (an empty middle part)",
        )
    try:
        b64url_decode(signature_segment)
    except ValueError:
        raise _Fail(
            "phần chữ ký của JWS không phải base64url",
            "the JWS signature part is not base64url",
        ) from None
    header = _header(header_segment)
    chain = _x5c(header.get("x5c"))
    return _Jws(compact, header, chain, _leaf_key(chain[0]), _sig_t(header.get("sigT")))


def _compact(data: Any) -> str:
    if not isinstance(data, str) or not data:
        raise _Fail(
            "Bundle.signature.data trống hoặc không phải chuỗi base64",
            "Bundle.signature.data is missing or not a base64 string",
        )
    try:
        return b64_decode(data).decode("ascii")
    except ValueError:  # also UnicodeDecodeError
        raise _Fail(
            "Bundle.signature.data không phải base64 của một JWS",
            "Bundle.signature.data is not the base64 of a JWS",
        ) from None


def _segments(compact: str) -> tuple[str, str, str]:
    parts = compact.split(".")
    if len(parts) != 3:
        raise _Fail(
            f"JWS dạng compact phải có 3 phần, có {len(parts)}",
            f"a compact JWS has 3 parts, this one has {len(parts)}",
        )
    return parts[0], parts[1], parts[2]


def _header(segment: str) -> dict[str, Any]:
    try:
        header = orjson.loads(b64url_decode(segment))
    except (ValueError, orjson.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        raise _Fail(
            "phần đầu (header) của JWS không phải JSON base64url",
            "the JWS header is not base64url JSON",
        )
    if not isinstance(header.get("alg"), str):
        raise _Fail("phần đầu JWS thiếu alg", "the JWS header has no alg")
    crit = header.get("crit", [])
    listed = crit if isinstance(crit, list) else ["crit"]
    unknown = {str(n) for n in listed if not (isinstance(n, str) and n in UNDERSTOOD_CRITICAL)}
    if unknown or header.get("b64", True) is not True:
        names = ", ".join(sorted(map(str, unknown))) or "b64"
        raise _Fail(
            f"phần đầu JWS có tham số bắt buộc không hỗ trợ: {names}",
            f"the JWS header has critical parameters not understood: {names}",
        )
    return header


def _x5c(value: Any) -> list[x509.Certificate]:
    if not isinstance(value, list) or not value:
        raise _Fail(
            "phần đầu JWS không có chuỗi chứng thư x5c",
            "the JWS header has no x5c certificate chain",
        )
    chain: list[x509.Certificate] = []
    for position, entry in enumerate(value, start=1):
        try:
            if not isinstance(entry, str):
                raise ValueError("not a string")
            cert = x509.load_der_x509_certificate(b64_decode(entry))
            cert.extensions  # noqa: B018  parsed now, so a malformed one fails here
            chain.append(cert)
        except ValueError:
            raise _Fail(
                f"x5c: chứng thư ở vị trí {position} không đọc được (base64 DER)",
                f"x5c: the certificate at position {position} is not readable (base64 DER)",
            ) from None
    return chain


def _leaf_key(leaf: x509.Certificate) -> Any:
    try:
        return leaf.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise _Fail(
            "khóa công khai của chứng thư ký không đọc được",
            "the public key of the signer's certificate cannot be read",
        ) from None


def _sig_t(value: Any) -> datetime:
    try:
        if not isinstance(value, str):
            raise ValueError("not a string")
        return parse_time(value)
    except ValueError:
        raise _Fail(
            "phần đầu JWS thiếu thời điểm ký sigT hợp lệ (ISO 8601 có múi giờ)",
            "the JWS header has no valid sigT signing time (ISO 8601 with an offset)",
        ) from None


def _algorithm(parsed: _Jws) -> Check:
    name, alg = "algorithm", parsed.header["alg"]
    if alg not in ALGORITHMS:
        return Check.failed(
            name,
            f"thuật toán {alg!r} bị từ chối (chỉ chấp nhận ES256, RS256)",
            f"algorithm {alg!r} is refused (only ES256 and RS256 are accepted)",
        )
    if not _fits(alg, parsed.leaf_key):
        return Check.failed(
            name,
            f"khóa của chứng thư ký không dùng được với {alg}",
            f"the signer's certificate key cannot be used with {alg}",
        )
    return Check.passed(name, f"thuật toán {alg}", f"algorithm {alg}")


def _fits(alg: str, key: Any) -> bool:
    if alg == "ES256":
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    return isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048


# ---------------------------------------------------------------- time and certificates


def _signing_time(element: Mapping[str, Any], signed_at: datetime, now: datetime) -> Check:
    name = "signing-time"
    if signed_at > now + CLOCK_SKEW:
        return Check.failed(
            name,
            f"thời điểm ký {instant(signed_at)} ở trong tương lai",
            f"the signing time {instant(signed_at)} is in the future",
        )
    when = element.get("when")
    try:
        stated = parse_time(when) if isinstance(when, str) else None
    except ValueError:
        stated = None
    if stated is None or stated.replace(microsecond=0) != signed_at.replace(microsecond=0):
        return Check.failed(
            name,
            f"Bundle.signature.when ({when}) khác thời điểm đã ký ({instant(signed_at)})",
            f"Bundle.signature.when ({when}) differs from the signed time ({instant(signed_at)})",
        )
    return Check.passed(name, f"ký lúc {instant(signed_at)}", f"signed at {instant(signed_at)}")


def _chain(chain: Sequence[x509.Certificate]) -> Check:
    name = "chain"
    for position, (child, parent) in enumerate(pairwise(chain), start=1):
        problem = _link_problem(position, child, parent)
        if problem is not None:
            return Check(name, False, problem)
    return Check.passed(
        name,
        f"chuỗi {len(chain)} chứng thư đúng thứ tự",
        f"the chain of {len(chain)} certificates is in order",
    )


def _link_problem(position: int, child: x509.Certificate, parent: x509.Certificate) -> str | None:
    if child.issuer == parent.subject and _is_ca(parent) and _issued_by(child, parent):
        return None  # the usual case: no labels to build
    child_vi, child_en = _at(position, child)
    parent_vi, parent_en = _at(position + 1, parent)
    if child.issuer != parent.subject:
        issuer = _cn(child.issuer)
        return _msg(
            f"{child_vi} do '{issuer}' cấp, không phải {parent_vi}: chuỗi sai thứ tự",
            f"{child_en} was issued by '{issuer}', not by {parent_en}: the chain is out of order",
        )
    if not _is_ca(parent):
        return _msg(
            f"{parent_vi} không phải chứng thư CA nên không thể cấp {child_vi}",
            f"{parent_en} is not a CA certificate, so it cannot issue {child_en}",
        )
    return _msg(
        f"chữ ký trên {child_vi} không khớp với khóa của {parent_vi}",
        f"the signature on {child_en} does not verify with the key of {parent_en}",
    )


def _extension(holder: x509.Certificate | x509.RevokedCertificate, kind: type[_E]) -> _E | None:
    """The extension's value, None when absent (x5c extensions were parsed in `_x5c`)."""
    try:
        return holder.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    constraints = _extension(cert, x509.BasicConstraints)
    usage = _extension(cert, x509.KeyUsage)
    return constraints is not None and constraints.ca and (usage is None or usage.key_cert_sign)


@lru_cache(maxsize=4096)  # certificates never change: a province has a few chains, checked often
def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _issuing_anchor(
    last: x509.Certificate, anchors: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    """The anchor the chain ends at: `last` itself, or the anchor that signed it."""
    if last in anchors:
        return last
    for anchor in anchors:
        if anchor.subject == last.issuer and _is_ca(anchor) and _issued_by(last, anchor):
            return anchor
    return None


def _trust(
    last: x509.Certificate,
    anchor: x509.Certificate | None,
    anchors: Sequence[x509.Certificate],
) -> Check:
    name = "trust"
    if anchor is not None:
        root = _common_name(anchor)
        return Check.passed(
            name,
            f"chuỗi dẫn tới chứng thư gốc tin cậy '{root}'",
            f"the chain leads to the trusted root '{root}'",
        )
    known = ", ".join(f"'{_common_name(a)}'" for a in anchors) or "—"
    top, issuer = _common_name(last), _cn(last.issuer)
    if last.issuer == last.subject:  # a root of its own, perhaps named like ours
        why_vi = f"'{top}' là chứng thư gốc tự ký không nằm trong danh sách tin cậy"
        why_en = f"'{top}' is a self-signed root that is not a trust anchor"
    else:
        why_vi, why_en = f"'{top}' do '{issuer}' cấp", f"'{top}' was issued by '{issuer}'"
    return Check.failed(
        name,
        f"chuỗi không dẫn tới chứng thư gốc tin cậy nào ({known}); {why_vi}",
        f"the chain does not lead to a trusted root ({known}); {why_en}",
    )


def _validity(
    chain: Sequence[x509.Certificate], anchor: x509.Certificate | None, signed_at: datetime
) -> Check:
    """Every certificate of the chain, and the anchor above it, at the signing time."""
    name = "validity"
    positioned: list[tuple[int | None, x509.Certificate]] = list(enumerate(chain, start=1))
    if anchor is not None and anchor not in chain:
        positioned.append((None, anchor))  # not in x5c: named as the anchor
    for position, cert in positioned:
        if signed_at > cert.not_valid_after_utc:
            (where_vi, where_en), expired = (
                _label(position, cert),
                instant(cert.not_valid_after_utc),
            )
            return Check.failed(
                name,
                f"{where_vi} đã hết hạn ngày {expired}, trước khi ký",
                f"{where_en} expired on {expired}, before the signing time",
            )
        if signed_at < cert.not_valid_before_utc:
            (where_vi, where_en), start = _label(position, cert), instant(cert.not_valid_before_utc)
            return Check.failed(
                name,
                f"{where_vi} chưa có hiệu lực khi ký (từ {start})",
                f"{where_en} was not yet valid at the signing time (valid from {start})",
            )
    return Check.passed(
        name,
        f"mọi chứng thư còn hiệu lực lúc ký {instant(signed_at)}",
        f"every certificate was valid at the signing time {instant(signed_at)}",
    )


def _label(position: int | None, cert: x509.Certificate) -> tuple[str, str]:
    if position is not None:
        return _at(position, cert)
    common = _common_name(cert)
    return f"chứng thư gốc tin cậy ({common})", f"the trust anchor ({common})"


def _key_usage(leaf: x509.Certificate) -> Check:
    name = "key-usage"
    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        return Check.failed(
            name,
            "chứng thư ký là chứng thư CA, không dùng để ký tài liệu",
            "the signer's certificate is a CA certificate, not one for signing documents",
        )
    usage = _extension(leaf, x509.KeyUsage)
    if usage is None:  # RFC 5280 §4.2.1.3: no extension, no restriction
        return Check.passed(
            name,
            "chứng thư không giới hạn mục đích dùng khóa",
            "the certificate does not restrict its key usage",
        )
    if not (usage.digital_signature or usage.content_commitment):
        return Check.failed(
            name,
            "chứng thư không cho phép ký số (digitalSignature/nonRepudiation)",
            "the certificate does not allow signing (digitalSignature or nonRepudiation)",
        )
    return Check.passed(name, "chứng thư cho phép ký số", "the certificate allows signing")


# ---------------------------------------------------------------- revocation


def revocation_checks(
    chain: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    signed_at: datetime,
    now: datetime,
) -> list[Check]:
    """One check per certificate below the trust anchor; anchors are trusted as they are."""
    by_issuer: dict[x509.Name, list[x509.CertificateRevocationList]] = {}
    for crl in crls:
        by_issuer.setdefault(crl.issuer, []).append(crl)
    known = [*chain, *anchors]
    return [
        _revocation_of(position, cert, known, by_issuer.get(cert.issuer, []), signed_at, now)
        for position, cert in enumerate(chain, start=1)
        if cert not in anchors
    ]


def _revocation_of(
    position: int,
    cert: x509.Certificate,
    known: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    signed_at: datetime,
    now: datetime,
) -> Check:
    name = "revocation"
    where_vi, where_en = _at(position, cert)
    issuer_name = _cn(cert.issuer)
    if not crls:
        return Check.passed(
            name,
            f"không có CRL của '{issuer_name}': chưa kiểm tra thu hồi {where_vi}",
            f"no CRL from '{issuer_name}': revocation of {where_en} was not checked",
            warning=True,
        )
    issuer = next((c for c in known if c.subject == cert.issuer), None)
    crl = _signed_crl(crls, issuer)
    if crl is None:
        return Check.failed(
            name,
            f"CRL của '{issuer_name}' không do chính nhà phát hành đó ký",
            f"the CRL for '{issuer_name}' is not signed by that issuer",
        )
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is None:
        return _not_revoked(name, where_vi, where_en, crl, now)
    return _revoked(name, where_vi, where_en, entry, signed_at)


def _signed_crl(
    crls: Sequence[x509.CertificateRevocationList], issuer: x509.Certificate | None
) -> x509.CertificateRevocationList | None:
    """The newest CRL that `issuer` really signed."""
    if issuer is None:
        return None
    signed = [crl for crl in crls if _crl_signed_by(crl, issuer)]
    return max(signed, key=lambda crl: crl.last_update_utc, default=None)


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    # A CRL is checked against its issuer once per process: it is the same bytes until the
    # next one is published (its SHA-256 names it; CRL objects cannot be hashed themselves).
    return _crl_signature_valid(crl.fingerprint(hashes.SHA256()), issuer, crl)


_CRL_CHECKS: dict[tuple[bytes, x509.Certificate], bool] = {}
_CRL_CHECKS_MAX = 1024


def _crl_signature_valid(
    digest: bytes, issuer: x509.Certificate, crl: x509.CertificateRevocationList
) -> bool:
    key = (digest, issuer)
    found = _CRL_CHECKS.get(key)
    if found is None:
        try:
            found = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
        except (TypeError, ValueError):
            found = False
        if len(_CRL_CHECKS) >= _CRL_CHECKS_MAX:
            _CRL_CHECKS.clear()
        _CRL_CHECKS[key] = found
    return found


def _not_revoked(
    name: str, where_vi: str, where_en: str, crl: x509.CertificateRevocationList, now: datetime
) -> Check:
    issued = instant(crl.last_update_utc)
    next_update = crl.next_update_utc
    if next_update is not None and next_update < now:
        return Check.passed(
            name,
            f"{where_vi} không bị thu hồi theo CRL ngày {issued}, nhưng CRL đã "
            f"quá hạn cập nhật ({instant(next_update)})",
            f"{where_en} is not revoked by the CRL of {issued}, but that CRL is out of "
            f"date (next update was due {instant(next_update)})",
            warning=True,
        )
    return Check.passed(
        name,
        f"{where_vi} không bị thu hồi (CRL ngày {issued})",
        f"{where_en} is not revoked (CRL of {issued})",
    )


def _revoked(
    name: str,
    where_vi: str,
    where_en: str,
    entry: x509.RevokedCertificate,
    signed_at: datetime,
) -> Check:
    reason = _reason(entry)
    reason_vi, reason_en = REASONS_VI.get(reason, reason.value), reason.value
    on = instant(entry.revocation_date_utc)
    invalid_since = _invalidity(entry)
    if entry.revocation_date_utc <= signed_at:
        return Check.failed(
            name,
            f"{where_vi} đã bị thu hồi ngày {on} ({reason_vi}), trước khi ký",
            f"{where_en} was revoked on {on} ({reason_en}), before the signing time",
        )
    if invalid_since is not None and invalid_since <= signed_at:
        since = instant(invalid_since)
        return Check.failed(
            name,
            f"{where_vi} bị thu hồi ngày {on} ({reason_vi}) và đã mất hiệu lực từ {since}, "
            f"trước khi ký",
            f"{where_en} was revoked on {on} ({reason_en}) and was invalid from {since}, "
            f"before the signing time",
        )
    if reason in COMPROMISE:
        return Check.failed(
            name,
            f"{where_vi} bị thu hồi ngày {on} ({reason_vi}) sau khi ký, nhưng khóa bị lộ nên "
            f"chữ ký trước đó cũng không tin được",
            f"{where_en} was revoked on {on} ({reason_en}) after the signing time; a "
            f"compromised key makes earlier signatures untrustworthy too",
        )
    return Check.passed(
        name,
        f"{where_vi} bị thu hồi ngày {on} ({reason_vi}), sau thời điểm ký: chữ ký vẫn có giá trị",
        f"{where_en} was revoked on {on} ({reason_en}), after the signing time: the signature "
        f"stands",
        warning=True,
    )


def _reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags:
    try:
        reason = _extension(entry, x509.CRLReason)
    except ValueError:  # a malformed entry extension: the revocation itself still counts
        return x509.ReasonFlags.unspecified
    return reason.reason if reason is not None else x509.ReasonFlags.unspecified


def _invalidity(entry: x509.RevokedCertificate) -> datetime | None:
    """When the key is known to have been unfit, which may be before the revocation."""
    try:
        invalidity = _extension(entry, x509.InvalidityDate)
    except ValueError:
        return None
    return invalidity.invalidity_date_utc if invalidity is not None else None


# ---------------------------------------------------------------- the signature itself


def _certificate(header: Mapping[str, Any], leaf: x509.Certificate) -> Check:
    name = "certificate"
    kid = header.get("kid")
    if kid is None:
        return Check.passed(
            name,
            "không có kid; chứng thư gắn với chữ ký qua x5c",
            "no kid: the certificate is bound to the signature by x5c alone",
        )
    if kid != thumbprint(leaf):
        return Check.failed(
            name,
            "chứng thư ký trong x5c không phải chứng thư đã ký (kid khác): chứng thư đã bị thay",
            "the signer's certificate in x5c is not the one that signed (kid differs): "
            "the certificate was swapped",
        )
    return Check.passed(name, "kid khớp với chứng thư ký", "the kid names the signer's certificate")


class _Registry(jws.JWSRegistry):
    # joserfc's defaults (512-byte header, 128 kB payload) are for tokens: a header carries a
    # whole certificate chain and a document can be large.
    max_header_length = 64 * 1024
    max_payload_length = 64 * 1024 * 1024
    max_signature_length = 2048


_JOSE: Final = _Registry(
    header_registry={
        "sigT": HeaderParameter("Claimed signing time (ETSI JAdES)", "str"),
        "srCms": HeaderParameter("Signer commitments (ETSI JAdES)", lambda _: None),
    },
    algorithms=list(ALGORITHMS),
    strict_check_header=False,  # RFC 7515 §4: other header parameters are ignored
)
_JOSE_KEYS: Final[Mapping[str, Callable[[Any], ECKey | RSAKey]]] = {
    "ES256": lambda key: ECKey(key, key),
    "RS256": lambda key: RSAKey(key, key),
}


def _content(bundle: Mapping[str, Any], parsed: _Jws, *, bound: bool) -> Check:
    name = "content"
    try:
        content = canonical(bundle)
    except SigningError as error:
        return Check(name, False, str(error))
    alg: Algorithm = parsed.header["alg"]
    key = _JOSE_KEYS[alg](parsed.leaf_key)
    try:
        jws.deserialize_compact(parsed.compact, key, registry=_JOSE, payload=content)
    except BadSignatureError:
        if not bound:
            return Check.failed(
                name,
                "chữ ký không được tạo bằng khóa của chứng thư trong x5c",
                "the signature was not made with the key of the certificate in x5c",
            )
        return Check.failed(
            name, "nội dung đã bị thay đổi", "the content was changed since it was signed"
        )
    except (JoseError, ValueError, TypeError) as error:  # e.g. a crit parameter that is missing
        return Check.failed(
            name, f"không kiểm tra được JWS: {error}", f"the JWS cannot be checked: {error}"
        )
    return Check.passed(
        name, "nội dung không thay đổi kể từ khi ký", "the content is unchanged since it was signed"
    )


def _signature_type(element: Mapping[str, Any], header: Mapping[str, Any]) -> Check:
    name = "signature-type"
    stated = _stated_types(element.get("type"))
    signed = _committed_types(header.get("srCms"))
    if signed is None:
        return Check.passed(
            name,
            "loại chữ ký không nằm trong phần được ký (không có srCms)",
            "the signature type is not covered by the signature (no srCms)",
            warning=True,
        )
    if stated != signed:
        shown = ", ".join(sorted(stated)) or "—"
        return Check.failed(
            name,
            f"Bundle.signature.type ({shown}) khác loại đã ký ({', '.join(sorted(signed))})",
            f"Bundle.signature.type ({shown}) differs from the signed commitment "
            f"({', '.join(sorted(signed))})",
        )
    return Check.passed(
        name,
        f"loại chữ ký {', '.join(sorted(signed))}",
        f"signature type {', '.join(sorted(signed))}",
    )


def _stated_types(codings: Any) -> set[str]:
    if not isinstance(codings, list):
        return set()
    return {
        coding["code"]
        for coding in codings
        if isinstance(coding, Mapping)
        and coding.get("system") == SIGNATURE_TYPE_SYSTEM
        and isinstance(coding.get("code"), str)
    }


def _committed_types(commitments: Any) -> set[str] | None:
    if not isinstance(commitments, list):
        return None
    ids = set()
    for commitment in commitments:
        comm_id = commitment.get("commId") if isinstance(commitment, Mapping) else None
        value = comm_id.get("id") if isinstance(comm_id, Mapping) else None
        if isinstance(value, str):
            ids.add(value.removeprefix(OID_URN))
    return ids


def _signer(element: Mapping[str, Any], leaf: x509.Certificate, expected: ExpectedSigner) -> Check:
    name = "signer"
    who = element.get("who")
    reference = who.get("reference") if isinstance(who, Mapping) else None
    if reference != expected.who:
        return Check.failed(
            name,
            f"người ký ghi trong Bundle.signature.who ({reference}) không phải {expected.who}",
            f"Bundle.signature.who ({reference}) is not {expected.who}",
        )
    if leaf not in expected.certificates:
        return Check.failed(
            name,
            f"chứng thư ký ('{_common_name(leaf)}') không phải chứng thư đã "
            f"đăng ký của {expected.who}",
            f"the signing certificate ('{_common_name(leaf)}') is not one registered "
            f"for {expected.who}",
        )
    return Check.passed(
        name,
        f"do {expected.who} ký bằng chứng thư đã đăng ký",
        f"signed by {expected.who} with a registered certificate",
    )
