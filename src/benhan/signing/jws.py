"""Document signatures: the bytes of a FHIR document that are signed, and the `Bundle.signature`
that carries a JWS over them.

What is signed is the R4 "document" canonical form (http://hl7.org/fhir/R4/json.html#canonical,
http://hl7.org/fhir/R4/signatures.html): the Bundle without `signature`, `id` and `meta` (so a
document can move between servers), serialised with RFC 8785 (JCS). The JWS is in compact
serialisation with a detached payload (RFC 7515 Appendix F): `header..signature`; the verifier
rebuilds the payload from the Bundle it holds, so any changed character breaks the signature.

The protected header carries `alg`, `kid` (the x5t#S256 of the signer's certificate), `x5c` (the
chain, leaf first), and from ETSI JAdES (TS 119 182-1) `sigT`, the signing time, and `srCms`, the
commitment type (the FHIR signature type), so that neither `when` nor `type` of the unsigned
`Bundle.signature` element can be changed unnoticed.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from benhan.fhir.primitives import VIETNAM
from benhan.signing.signers import Algorithm, Signer

# http://hl7.org/fhir/R4/valueset-signature-type.html (ASTM E1762-95, 2013)
SIGNATURE_TYPE_SYSTEM: Final = "urn:iso-astm:E1762-95:2013"
SIGNATURE_TYPES: Final[Mapping[str, str]] = {
    "1.2.840.10065.1.12.1.1": "Author's Signature",
    "1.2.840.10065.1.12.1.2": "Coauthor's Signature",
    "1.2.840.10065.1.12.1.3": "Co-participant's Signature",
    "1.2.840.10065.1.12.1.4": "Transcriptionist/Recorder Signature",
    "1.2.840.10065.1.12.1.5": "Verification Signature",
    "1.2.840.10065.1.12.1.6": "Validation Signature",
    "1.2.840.10065.1.12.1.7": "Consent Signature",
    "1.2.840.10065.1.12.1.8": "Signature Witness Signature",
    "1.2.840.10065.1.12.1.9": "Event Witness Signature",
    "1.2.840.10065.1.12.1.10": "Identity Witness Signature",
    "1.2.840.10065.1.12.1.11": "Consent Witness Signature",
    "1.2.840.10065.1.12.1.12": "Interpreter Signature",
    "1.2.840.10065.1.12.1.13": "Review Signature",
    "1.2.840.10065.1.12.1.14": "Source Signature",
    "1.2.840.10065.1.12.1.15": "Addendum Signature",
    "1.2.840.10065.1.12.1.16": "Modification Signature",
    "1.2.840.10065.1.12.1.17": "Administrative (Error/Edit) Signature",
    "1.2.840.10065.1.12.1.18": "Timestamp Signature",
}
AUTHOR: Final = "1.2.840.10065.1.12.1.1"  # the clinician who wrote the document
VERIFICATION: Final = "1.2.840.10065.1.12.1.5"  # e.g. a head of department countersigning
CONSENT: Final = "1.2.840.10065.1.12.1.7"  # a patient's consent or confirmation of receipt

TARGET_FORMAT: Final = "application/fhir+json"
SIG_FORMAT: Final = "application/jose"
ALGORITHMS: Final[tuple[Algorithm, ...]] = ("ES256", "RS256")
OID_URN: Final = "urn:oid:"

# Root elements left out of the signed bytes (R4 canonicalization/json#document).
UNSIGNED_ELEMENTS: Final = frozenset({"signature", "id", "meta"})

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")


class SigningError(ValueError):
    """A document that cannot be signed as asked; the message is Vietnamese, then English."""


# ---------------------------------------------------------------- canonical form


def canonical(bundle: Mapping[str, Any] | str | bytes) -> bytes:
    """The bytes that are signed: RFC 8785 JSON of the Bundle without signature, id and meta.

    `bundle` is a parsed resource or its JSON text: key order and whitespace never matter.
    """
    parsed = _parse_json(bundle) if isinstance(bundle, str | bytes) else bundle
    if not isinstance(parsed, Mapping):
        raise SigningError(
            "tài liệu không phải một đối tượng JSON / the document is not a JSON object"
        )
    signed = {key: value for key, value in parsed.items() if key not in UNSIGNED_ELEMENTS}
    try:
        try:
            ready = _numbers_as_es6(signed) if _has_floats(signed) else signed
            return orjson.dumps(ready, option=orjson.OPT_SORT_KEYS)
        except (_Unusual, orjson.JSONEncodeError):  # e.g. a lone surrogate
            return rfc8785.dumps(signed)  # the reference encoder decides (or refuses)
    except rfc8785.CanonicalizationError as error:
        raise SigningError(
            f"không chuẩn hoá được tài liệu (RFC 8785) / cannot canonicalise the document "
            f"(RFC 8785): {error}"
        ) from error
    except RecursionError as error:
        raise SigningError(
            "tài liệu lồng nhau quá sâu / the document is nested too deeply"
        ) from error


class _Unusual(Exception):
    """A value the fast path leaves to the reference encoder."""


_MAX_EXACT_INT = 2**53  # I-JSON: integers beyond it are not numbers RFC 8785 can write


def _has_floats(value: Any) -> bool:
    """Whether orjson alone would write something RFC 8785 writes otherwise (a float, or
    what the reference encoder must judge); most documents have no float and are not copied."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(k, str) and k.isascii() for k in item):
                raise _Unusual
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            return True
        elif not _plain_scalar(item):
            raise _Unusual
    return False


def _plain_scalar(item: Any) -> bool:
    """None, a string, a bool, or an integer RFC 8785 can write."""
    if isinstance(item, int) and not isinstance(item, bool):
        return abs(item) <= _MAX_EXACT_INT
    return item is None or isinstance(item, str | bool)


def _numbers_as_es6(value: Any) -> Any:
    """`value` ready for orjson to write RFC 8785 bytes (10× faster than the pure-Python
    encoder, and property-tested against it): orjson already escapes strings exactly as
    ECMAScript does and sorts ASCII keys as RFC 8785 does; floats become their ECMAScript text
    (7.0 → 7). Non-ASCII keys (sorted by UTF-16 there), out-of-range integers and any other
    type go to the reference encoder."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise _Unusual
            out[key] = _numbers_as_es6(item)
        return out
    if isinstance(value, list):
        return [_numbers_as_es6(item) for item in value]
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        if abs(value) > _MAX_EXACT_INT:
            raise _Unusual
        return value
    if isinstance(value, float):
        return orjson.Fragment(rfc8785.dumps(value))
    raise _Unusual


def _parse_json(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise SigningError(f"JSON không hợp lệ / invalid JSON: {error}") from error


# ---------------------------------------------------------------- encodings


def b64url(data: bytes) -> bytes:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding; ValueError on any other character."""
    if not _B64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64_decode(text: str) -> bytes:
    """Strict standard base64 (x5c, base64Binary); ValueError on anything else."""
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise ValueError("not base64") from error


def thumbprint(certificate: x509.Certificate) -> str:
    """x5t#S256: base64url of the SHA-256 of the certificate's DER (RFC 7515 §4.1.8)."""
    return b64url(certificate.fingerprint(hashes.SHA256())).decode("ascii")


def x5c_entry(certificate: x509.Certificate) -> str:
    """Standard base64 (not base64url) of the DER (RFC 7515 §4.1.6)."""
    return base64.b64encode(certificate.public_bytes(Encoding.DER)).decode("ascii")


def signing_input(header_segment: str, content: bytes) -> bytes:
    """What the JWS signature covers: ASCII(BASE64URL(header)) '.' BASE64URL(payload)."""
    return header_segment.encode("ascii") + b"." + b64url(content)


def signing_time(moment: datetime) -> str:
    """JAdES sigT: UTC to the second, e.g. 2026-11-20T03:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    """An ISO 8601 date-time with an offset; ValueError when it has none."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("no offset")
    return moment


def instant(moment: datetime) -> str:
    """An R4 instant to the second in Vietnam's offset, e.g. 2026-11-20T10:00:00+07:00."""
    return moment.astimezone(VIETNAM).replace(microsecond=0).isoformat()


# ---------------------------------------------------------------- signing


def sign_document(
    bundle: Mapping[str, Any],
    signer: Signer,
    *,
    who: str,
    on_behalf_of: str | None = None,
    signature_type: str = AUTHOR,
    when: datetime,
) -> dict[str, Any]:
    """A copy of the document `bundle` with `Bundle.signature` made by `signer`.

    `who` and `on_behalf_of` are references (e.g. "Practitioner/…", "Organization/…");
    `signature_type` is a code of http://hl7.org/fhir/ValueSet/signature-type. A Bundle that is
    already signed is refused: a signed document never changes, an amendment is a new Bundle.
    """
    _check_signable(bundle)
    _check_request(who, on_behalf_of, signature_type, when)
    algorithm, chain = _check_signer(signer, when)
    signed = _deep_copy(bundle)
    content = canonical(signed)
    header = protected_header(algorithm, chain, when, signature_type)
    compact = compact_jws(header, content, signer)
    _check_own_signature(chain[0], algorithm, compact, content)
    signed["signature"] = signature_element(
        compact, who=who, on_behalf_of=on_behalf_of, signature_type=signature_type, when=when
    )
    return signed


def protected_header(
    algorithm: str, chain: Sequence[x509.Certificate], when: datetime, signature_type: str
) -> dict[str, Any]:
    """The JWS protected header of a document signature."""
    return {
        "alg": algorithm,
        "kid": thumbprint(chain[0]),
        "x5c": [
            base64.b64encode(cert.public_bytes(Encoding.DER)).decode("ascii") for cert in chain
        ],
        "sigT": signing_time(when),
        "srCms": [{"commId": {"id": OID_URN + signature_type}}],
    }


def compact_jws(header: Mapping[str, Any], content: bytes, signer: Signer) -> str:
    """A compact JWS with detached payload, `header..signature` (RFC 7515 Appendix F).

    The signature is made by `signer.sign` alone, so a key in a token never leaves it.
    """
    header_segment = b64url(orjson.dumps(header)).decode("ascii")
    signature = signer.sign(signing_input(header_segment, content))
    return f"{header_segment}..{b64url(signature).decode('ascii')}"


def signature_element(
    compact: str,
    *,
    who: str,
    on_behalf_of: str | None,
    signature_type: str,
    when: datetime,
) -> dict[str, Any]:
    """The R4 Signature datatype holding `compact` (base64 of its ASCII)."""
    element: dict[str, Any] = {
        "type": [
            {
                "system": SIGNATURE_TYPE_SYSTEM,
                "code": signature_type,
                "display": SIGNATURE_TYPES[signature_type],
            }
        ],
        "when": instant(when),
        "who": {"reference": who},
    }
    if on_behalf_of is not None:
        element["onBehalfOf"] = {"reference": on_behalf_of}
    element["targetFormat"] = TARGET_FORMAT
    element["sigFormat"] = SIG_FORMAT
    element["data"] = base64.b64encode(compact.encode("ascii")).decode("ascii")
    return element


def _check_signable(bundle: Mapping[str, Any]) -> None:
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        raise SigningError("chỉ ký được một Bundle / only a Bundle can be signed")
    if "signature" in bundle:
        raise SigningError(
            "tài liệu đã được ký và không được sửa; hãy tạo bản sửa đổi mới / the document is "
            "already signed and cannot change: make an amended document instead"
        )
    if bundle.get("type") != "document":
        raise SigningError(
            "chỉ ký được Bundle loại document / only a Bundle of type document can be signed"
        )
    entries = bundle.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else None
    resource = first.get("resource") if isinstance(first, Mapping) else None
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Composition":
        raise SigningError(
            "tài liệu phải bắt đầu bằng một Composition / a document must begin with a "
            "Composition (bdl-11)"
        )


def _check_request(who: str, on_behalf_of: str | None, signature_type: str, when: datetime) -> None:
    for label, reference in (("who", who), ("onBehalfOf", on_behalf_of)):
        if reference is not None and (not reference or any(c.isspace() for c in reference)):
            raise SigningError(
                f"tham chiếu {label} không hợp lệ: {reference!r} / invalid {label} reference"
            )
    if signature_type not in SIGNATURE_TYPES:
        raise SigningError(
            f"loại chữ ký không có trong {SIGNATURE_TYPE_SYSTEM}: {signature_type!r} / "
            f"unknown signature type"
        )
    if when.tzinfo is None:
        raise SigningError(
            "thời điểm ký phải có múi giờ / the signing time needs a time zone offset"
        )


def _check_signer(signer: Signer, when: datetime) -> tuple[Algorithm, list[x509.Certificate]]:
    algorithm = signer.algorithm
    if algorithm not in ALGORITHMS:
        raise SigningError(
            f"thuật toán {algorithm!r} không được hỗ trợ / unsupported algorithm "
            f"(only {', '.join(ALGORITHMS)})"
        )
    chain = list(signer.chain)
    if not chain:
        raise SigningError("người ký không có chứng thư / the signer has no certificate")
    leaf = chain[0]
    if not leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc:
        raise SigningError(
            f"chứng thư của người ký không có hiệu lực lúc {instant(when)} (hiệu lực "
            f"{instant(leaf.not_valid_before_utc)} – {instant(leaf.not_valid_after_utc)}) / "
            f"the signer's certificate is not valid at the signing time"
        )
    return algorithm, chain


def _check_own_signature(
    leaf: x509.Certificate, algorithm: Algorithm, compact: str, content: bytes
) -> None:
    """A token whose key is not its certificate's would make documents nobody can verify."""
    header_segment, _, signature_segment = compact.split(".")
    signature = b64url_decode(signature_segment)
    try:
        verify_raw(leaf.public_key(), algorithm, signing_input(header_segment, content), signature)
    except (InvalidSignature, ValueError, TypeError) as error:
        raise SigningError(
            "chữ ký vừa tạo không khớp với chứng thư của người ký / the new signature does not "
            "verify with the signer's certificate"
        ) from error


def verify_raw(public_key: Any, algorithm: Algorithm, data: bytes, signature: bytes) -> None:
    """Check a JOSE signature with `cryptography`; InvalidSignature when it does not match."""
    if algorithm == "ES256" and isinstance(public_key, ec.EllipticCurvePublicKey):
        if len(signature) != 64:
            raise InvalidSignature
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    elif algorithm == "RS256" and isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise TypeError(f"a {type(public_key).__name__} cannot verify {algorithm}")


def _deep_copy(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """An independent copy, so the caller's later edits never reach the signed document."""
    try:
        copied = orjson.loads(orjson.dumps(bundle))
    except TypeError:  # not plain JSON types (or integers beyond 64 bits): the slow way
        copied = copy.deepcopy(dict(bundle))
    assert isinstance(copied, dict)
    return copied
