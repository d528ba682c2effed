"""Checking a signed PDF (PAdES B-B, as pdf.py signs it) offline with pyHanko's validator against
trust anchors and CRLs, and saying exactly what failed, in the checks verify.py reports for a
signed FHIR document.

For each signature of the file (its field name leads each message when there are several):

    signature     the file is a readable PDF with at least one signature (the gate)
    content       the signed bytes are unchanged and the CMS signature verifies with the signer's
                  certificate
    coverage      the signature covers the whole file; revisions added after it that only add
                  signatures or validation data are a warning, anything else fails
    signing-time  the signer's claimed time (/M) is there and not in the future
    trust         the signer's certificate chains to a trust anchor
    validity      every certificate of that chain was valid at the signing time
    revocation    with CRLs: no certificate below the anchor was revoked at the signing time
                  (every one must be covered by a CRL, else a warning); one revoked later is a
                  warning, or a failure when its key was compromised. Without CRLs: a warning.

A B-B signature has no timestamp: the signing time is the signer's claim, as sigT is in a JSON
document, and the certificates are judged at that time. Malformed input never raises.
pyHanko runs its own event loop: async code calls this from a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)
from pyhanko_certvalidator.path import ValidationPath

from benhan.signing.jws import instant
from benhan.signing.verify import CLOCK_SKEW, COMPROMISE, REASONS_VI, Check, Verification

# pyHanko's signers module warns on import about DSA (see pdf.py); the validator imports it.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "DSA is deprecated", CryptographyDeprecationWarning)
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

# pyHanko logs a suspicious revision with a traceback; the coverage check says it in words.
logging.getLogger("pyhanko").addHandler(logging.NullHandler())
# Revisions added after a signature that leave the signed content as it was.
HARMLESS = frozenset({ModificationLevel.NONE, ModificationLevel.LTA_UPDATES})
# asn1crypto names CRL reasons as cryptography's ReasonFlags members are named.
_REASONS = {flag.name: flag for flag in x509.ReasonFlags}


def _cn(cert: asn1_x509.Certificate) -> str:
    name = cert.subject.native
    return str(name.get("common_name") or cert.subject.human_friendly)


@dataclass(frozen=True)
class _Trust:
    """What the anchors and CRLs are, as pyHanko takes them."""

    anchors: list[asn1_x509.Certificate]
    crls: list[bytes]

    def context(self, moment: datetime, *, revocation: bool) -> ValidationContext:
        return ValidationContext(
            trust_roots=self.anchors,
            crls=self.crls if revocation else [],
            moment=moment,
            retroactive_revinfo=True,  # a CRL published after the signing time still speaks of it
            revocation_mode="require" if revocation else "soft-fail",
            allow_fetching=False,  # offline: the anchors and CRLs given are all there is
        )


# ---------------------------------------------------------------- entry point


def verify_pdf(
    data: bytes,
    *,
    anchors: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList] = (),
    at: datetime | None = None,
) -> Verification:
    """Check every signature of a PDF; `at` is the verifier's "now" (default: now)."""
    now = at or datetime.now(UTC)
    signatures, gate = _signatures(data)
    if not signatures:
        return Verification((gate,))
    trust = _Trust(
        [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in anchors],
        [c.public_bytes(Encoding.DER) for c in crls],
    )
    fields = {s.field_name for s in signatures}
    checks = [gate]
    for sig in signatures:
        prefix = f"{sig.field_name}: " if len(signatures) > 1 else ""
        found = _checks(sig, trust, fields, now)
        checks += [Check(c.name, c.ok, prefix + c.message, c.warning) for c in found]
    last = signatures[-1]
    signer = x509.load_der_x509_certificate(last.signer_cert.dump())
    return Verification(tuple(checks), signer, last.self_reported_timestamp)


def _signatures(data: bytes) -> tuple[list[EmbeddedPdfSignature], Check]:
    name = "signature"
    if not data.startswith(b"%PDF-"):
        return [], Check.failed(name, "tệp không phải PDF", "not a PDF file")
    try:
        found = list(PdfFileReader(BytesIO(data), strict=False).embedded_signatures)
    except (PdfError, ValueError, KeyError, TypeError) as err:
        return [], Check.failed(name, f"không đọc được tệp PDF ({err})", f"unreadable PDF ({err})")
    if not found:
        return [], Check.failed(name, "tệp PDF không có chữ ký", "the PDF carries no signature")
    n = len(found)
    return found, Check.passed(name, f"tệp PDF có {n} chữ ký", f"the PDF carries {n} signature(s)")


def _checks(
    sig: EmbeddedPdfSignature, trust: _Trust, fields: set[str], now: datetime
) -> list[Check]:
    signed_at = sig.self_reported_timestamp
    moment = signed_at or now
    try:
        status = validate_pdf_signature(sig, trust.context(moment, revocation=False))
    except (PdfError, ValueError, KeyError, TypeError) as err:
        return [
            Check.failed("content", f"không kiểm tra được chữ ký ({err})", f"cannot check ({err})")
        ]
    checks = [_content(status), _coverage(status, fields), _signing_time(signed_at, now)]
    return checks + _chain(sig, trust, moment, now, signed_at)


# ---------------------------------------------------------------- the signed bytes


def _content(status: Any) -> Check:
    name = "content"
    if not status.intact:
        return Check.failed(
            name, "nội dung đã bị thay đổi", "the content was changed since it was signed"
        )
    if not status.valid:
        return Check.failed(
            name,
            "chữ ký không khớp với chứng thư của người ký",
            "the signature does not verify with the signer's certificate",
        )
    return Check.passed(
        name, "nội dung không thay đổi kể từ khi ký", "the content is unchanged since it was signed"
    )


def _coverage(status: Any, fields: set[str]) -> Check:
    name = "coverage"
    if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return Check.passed(
            name, "chữ ký bao trùm toàn bộ tệp", "the signature covers the whole file"
        )
    level = status.modification_level
    signed_later = set(getattr(status.diff_result, "changed_form_fields", None) or ())
    if status.coverage == SignatureCoverageLevel.ENTIRE_REVISION and (
        level in HARMLESS or (level == ModificationLevel.FORM_FILLING and signed_later <= fields)
    ):
        return Check.passed(
            name,
            "tệp được bổ sung sau khi ký, chỉ thêm chữ ký hoặc dữ liệu kiểm tra, nội dung đã "
            "ký không đổi",
            "the file was extended after signing with signatures or validation data only; the "
            "signed content stands",
            warning=True,
        )
    what = level.name if level is not None else status.coverage.name
    return Check.failed(
        name,
        f"tệp đã bị sửa sau khi ký (bản cập nhật nối thêm: {what})",
        f"the file was changed after signing (an incremental update: {what})",
    )


def _signing_time(signed_at: datetime | None, now: datetime) -> Check:
    name = "signing-time"
    if signed_at is None:
        return Check.failed(
            name, "chữ ký không ghi thời điểm ký (/M)", "the signature has no time (/M)"
        )
    if signed_at > now + CLOCK_SKEW:
        return Check.failed(
            name,
            f"thời điểm ký {instant(signed_at)} ở trong tương lai",
            f"the signing time {instant(signed_at)} is in the future",
        )
    return Check.passed(
        name,
        f"thời điểm ký do người ký ghi: {instant(signed_at)}",
        f"signing time as the signer states it: {instant(signed_at)}",
    )


# ---------------------------------------------------------------- certificates


def _path(sig: EmbeddedPdfSignature, context: ValidationContext) -> ValidationPath:
    validator = CertificateValidator(
        sig.signer_cert, intermediate_certs=sig.other_embedded_certs, validation_context=context
    )
    return asyncio.run(validator.async_validate_path())


def _chain(
    sig: EmbeddedPdfSignature,
    trust: _Trust,
    moment: datetime,
    now: datetime,
    signed_at: datetime | None,
) -> list[Check]:
    """trust, validity and revocation, as pyHanko's path validation at the signing time finds
    them; then revocations published since."""
    revocation = bool(trust.crls)
    try:
        path = _path(sig, trust.context(moment, revocation=revocation))
    except InsufficientRevinfoError as err:
        return _chain_without_crl(sig, trust, moment, str(err))
    except (ValidationError, PathBuildingError, PathValidationError) as err:
        return _chain_failed(sig, moment, err)
    checks = [_trusted(path), _valid(moment)]
    if not revocation:
        return [*checks, _no_crl("không có CRL", "no CRL was given")]
    return [*checks, _revoked_since(sig, trust, now, signed_at or moment)]


def _trusted(path: ValidationPath) -> Check:
    anchor = path.trust_anchor.authority.name.native.get("common_name", "")
    return Check.passed(
        "trust",
        f"chuỗi chứng thư dẫn tới chứng thư gốc tin cậy '{anchor}'",
        f"the chain leads to the trust anchor '{anchor}'",
    )


def _valid(moment: datetime) -> Check:
    return Check.passed(
        "validity",
        f"mọi chứng thư còn hiệu lực lúc ký {instant(moment)}",
        f"every certificate was valid at the signing time {instant(moment)}",
    )


def _no_crl(why_vi: str, why_en: str) -> Check:
    return Check.passed(
        "revocation",
        f"{why_vi}: chưa kiểm tra thu hồi đủ mọi chứng thư",
        f"{why_en}: revocation was not checked for every certificate",
        warning=True,
    )


def _chain_without_crl(
    sig: EmbeddedPdfSignature, trust: _Trust, moment: datetime, detail: str
) -> list[Check]:
    """Some certificate has no CRL among those given: judge the chain without revocation."""
    try:
        path = _path(sig, trust.context(moment, revocation=False))
    except (ValidationError, PathBuildingError, PathValidationError) as err:
        return _chain_failed(sig, moment, err)
    return [_trusted(path), _valid(moment), _no_crl("thiếu CRL", f"a CRL is missing ({detail})")]


def _chain_failed(sig: EmbeddedPdfSignature, moment: datetime, err: Exception) -> list[Check]:
    if isinstance(err, PathBuildingError):
        signer = _cn(sig.signer_cert)
        return [
            Check.failed(
                "trust",
                f"chứng thư của '{signer}' không dẫn tới chứng thư gốc tin cậy nào",
                f"the certificate of '{signer}' does not lead to a trusted root",
            )
        ]
    found = Check.passed("trust", "chuỗi chứng thư dẫn tới chứng thư gốc tin cậy",
                "the chain leads to a trust anchor")  # fmt: skip
    if isinstance(err, ExpiredError | NotYetValidError):
        return [found, _out_of_bounds(sig, moment)]
    if isinstance(err, RevokedError):
        return [found, _valid(moment), _revoked(err, before=True)]
    return [
        Check.failed(
            "trust",
            f"chuỗi chứng thư không hợp lệ hoặc không dẫn tới chứng thư gốc tin cậy ({err})",
            f"the chain is invalid or does not lead to a trusted root ({err})",
        )
    ]


def _out_of_bounds(sig: EmbeddedPdfSignature, moment: datetime) -> Check:
    """The first certificate of the signer's chain not valid at the signing time, named."""
    for cert in [sig.signer_cert, *sig.other_embedded_certs]:
        start, end = cert.not_valid_before, cert.not_valid_after
        if moment > end:
            return Check.failed(
                "validity",
                f"chứng thư '{_cn(cert)}' đã hết hạn ngày {instant(end)}, trước khi ký",
                f"the certificate '{_cn(cert)}' expired on {instant(end)}, before signing",
            )
        if moment < start:
            return Check.failed(
                "validity",
                f"chứng thư '{_cn(cert)}' chưa có hiệu lực khi ký (từ {instant(start)})",
                f"the certificate '{_cn(cert)}' was not yet valid at signing (from "
                f"{instant(start)})",
            )
    return Check.failed(
        "validity",
        "một chứng thư trong chuỗi không có hiệu lực lúc ký",
        "a certificate of the chain was not valid at the signing time",
    )


def _revoked(err: RevokedError, *, before: bool) -> Check:
    reason = _REASONS.get(str(err.reason.native), x509.ReasonFlags.unspecified)
    on = instant(err.revocation_dt)
    vi, en = REASONS_VI.get(reason, reason.value), reason.value
    if before:
        return Check.failed(
            "revocation",
            f"chứng thư đã bị thu hồi ngày {on} ({vi}), trước khi ký",
            f"a certificate was revoked on {on} ({en}), before the signing time",
        )
    if reason in COMPROMISE:
        return Check.failed(
            "revocation",
            f"chứng thư bị thu hồi ngày {on} ({vi}) sau khi ký, nhưng khóa bị lộ nên chữ ký "
            f"trước đó cũng không tin được",
            f"a certificate was revoked on {on} ({en}) after the signing time; a compromised "
            f"key makes earlier signatures untrustworthy too",
        )
    return Check.passed(
        "revocation",
        f"chứng thư bị thu hồi ngày {on} ({vi}), sau thời điểm ký: chữ ký vẫn có giá trị",
        f"a certificate was revoked on {on} ({en}), after the signing time: the signature stands",
        warning=True,
    )


def _revoked_since(
    sig: EmbeddedPdfSignature, trust: _Trust, now: datetime, signed_at: datetime
) -> Check:
    """The CRLs read again at the verifier's time: a revocation after signing is a note, or a
    failure for a compromised key. A chain that has expired since is no longer checked."""
    try:
        _path(sig, trust.context(now, revocation=True))
    except RevokedError as err:
        return _revoked(err, before=err.revocation_dt <= signed_at)
    except (ValidationError, PathBuildingError, PathValidationError):
        pass
    return Check.passed(
        "revocation",
        "không chứng thư nào bị thu hồi theo các CRL",
        "no certificate is revoked by the CRLs",
    )


__all__ = ["verify_pdf"]
