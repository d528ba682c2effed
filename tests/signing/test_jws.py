"""The signed bytes of a FHIR document (canonical) and the Bundle.signature (sign_document)."""

from __future__ import annotations

import base64
import copy
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from benhan.signing.jws import (
    AUTHOR,
    CONSENT,
    SIGNATURE_TYPE_SYSTEM,
    VERIFICATION,
    SigningError,
    b64url_decode,
    canonical,
    sign_document,
)
from benhan.signing.signers import Algorithm, KeySigner
from tests.signing.certs import NOW, make_chain

UTC_MINUS_5 = timezone(timedelta(hours=-5))

# ---------------------------------------------------------------- a visit summary


def document(bundle_id: str = "visit-1") -> dict[str, Any]:
    """A small FHIR document: a Composition, the patient, the doctor and two results."""
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"lastUpdated": "2026-11-20T10:00:00+07:00", "versionId": "1"},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
        "type": "document",
        "timestamp": "2026-11-20T10:00:00+07:00",
        "entry": [
            {
                "fullUrl": "urn:uuid:c1",
                "resource": {
                    "resourceType": "Composition",
                    "id": "c1",
                    "meta": {"versionId": "3"},
                    "status": "final",
                    "type": {"text": "Tóm tắt khám bệnh"},
                    "subject": {"reference": "urn:uuid:p1"},
                    "date": "2026-11-20T10:00:00+07:00",
                    "author": [{"reference": "urn:uuid:d1"}],
                    "title": "Tóm tắt khám bệnh",
                    "section": [{"title": "Chẩn đoán", "text": {"status": "generated",
                                 "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
                                        "Viêm họng cấp (J02.9)</div>"}}],
                },
            },
            {
                "fullUrl": "urn:uuid:p1",
                "resource": {"resourceType": "Patient", "id": "p1",
                             "name": [{"family": "Nguyễn", "given": ["Thị", "Hoa"]}]},
            },
            {
                "fullUrl": "urn:uuid:d1",
                "resource": {"resourceType": "Practitioner", "id": "d1",
                             "name": [{"family": "Nguyễn", "given": ["Văn", "An"]}]},
            },
            {
                "fullUrl": "urn:uuid:o1",
                "resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                             "code": {"text": "Nhiệt độ"},
                             "valueQuantity": {"value": 38.5, "unit": "Cel"}},
            },
        ],
    }  # fmt: skip


def signed_document(
    algorithm: Algorithm = "ES256", **options: Any
) -> tuple[dict[str, Any], KeySigner]:
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else None
    )
    chain = make_chain(key=key) if key else make_chain()
    signer = chain.signer()
    arguments: dict[str, Any] = {"who": "Practitioner/d1", "when": NOW} | options
    return sign_document(document(), signer, **arguments), signer


def jws_parts(signed: dict[str, Any]) -> tuple[dict[str, Any], str, bytes]:
    """(protected header, payload segment, signature) of a signed document's JWS."""
    compact = base64.b64decode(signed["signature"]["data"], validate=True).decode("ascii")
    header, payload, signature = compact.split(".")
    return json.loads(b64url_decode(header)), payload, b64url_decode(signature)


# ---------------------------------------------------------------- canonical


def test_canonical_is_rfc8785_without_root_signature_id_and_meta() -> None:
    bundle = document()
    expected = {k: v for k, v in bundle.items() if k not in ("id", "meta")}
    assert canonical(bundle) == rfc8785.dumps(expected)
    text = canonical(bundle).decode("utf-8")
    assert '"id":"visit-1"' not in text and '"lastUpdated"' not in text
    assert '"id":"c1"' in text and '"versionId":"3"' in text  # only the root's are left out
    assert "Viêm họng cấp" in text  # UTF-8, not \u escapes
    assert text.startswith('{"entry":[')  # keys sorted, no whitespace


def test_canonical_ignores_root_id_meta_and_signature_but_not_content() -> None:
    moved = document("other-server-id") | {"meta": {"versionId": "9"}, "signature": {"x": 1}}
    moved["identifier"] = document()["identifier"]
    assert canonical(moved) == canonical(document())
    changed = document()
    changed["entry"][3]["resource"]["valueQuantity"]["value"] = 38.6
    assert canonical(changed) != canonical(document())


def test_canonical_accepts_json_text() -> None:
    text = json.dumps(document(), indent=2, ensure_ascii=True)
    assert canonical(text) == canonical(text.encode()) == canonical(document())


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("{not json", "JSON không hợp lệ / invalid JSON"),
        ("[1, 2]", "not a JSON object"),
        (b'"a string"', "not a JSON object"),
        ({"resourceType": "Bundle", "n": 2**60}, "RFC 8785"),  # beyond IEEE 754 integers
        ({"resourceType": "Bundle", "x": {1, 2}}, "RFC 8785"),  # not JSON at all
        ({"resourceType": "Bundle", "x": "\ud800"}, "RFC 8785"),  # a lone surrogate
    ],
)
def test_canonical_refuses_what_is_not_json(value: Any, problem: str) -> None:
    with pytest.raises(SigningError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        canonical(value)


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON with every object's keys inserted in another order."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {key: shuffled(value[key], rng) for key in keys}
    if isinstance(value, list):
        return [shuffled(item, rng) for item in value]
    return value


def as_floats(value: Any) -> Any:
    """JCS writes 1.0 as 1 and 7.2e16 as 72000000000000000: compare numbers as numbers."""
    if isinstance(value, dict):
        return {key: as_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_floats(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@settings(max_examples=150, deadline=None)
@given(
    body=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=6),
    seed=st.integers(0, 2**32),
    indent=st.sampled_from([None, 0, 1, 4, "\t"]),
    separators=st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :  ")]),
    ascii_only=st.booleans(),
)
def test_canonical_is_independent_of_key_order_and_whitespace(
    body: dict[str, Any],
    seed: int,
    indent: int | str | None,
    separators: tuple[str, str],
    ascii_only: bool,
) -> None:
    bundle = {"resourceType": "Bundle", "type": "document"} | body
    expected = canonical(bundle)
    rearranged = shuffled(bundle, random.Random(seed))
    text = json.dumps(rearranged, indent=indent, separators=separators, ensure_ascii=ascii_only)
    assert canonical(rearranged) == expected
    assert canonical(text) == expected
    unsigned = {k: v for k, v in bundle.items() if k not in ("id", "meta")}
    assert as_floats(json.loads(expected)) == as_floats(unsigned)  # nothing lost
    assert b"\n" not in expected.replace(b"\\n", b"")  # no whitespace outside strings


# ---------------------------------------------------------------- sign_document


def test_signature_element_follows_r4() -> None:
    signed, _ = signed_document(on_behalf_of="Organization/27001")
    signature = signed["signature"]
    assert list(signature) == [
        "type", "when", "who", "onBehalfOf", "targetFormat", "sigFormat", "data",
    ]  # fmt: skip
    assert signature["type"] == [
        {"system": SIGNATURE_TYPE_SYSTEM, "code": AUTHOR, "display": "Author's Signature"}
    ]
    assert signature["when"] == "2026-11-20T10:00:00+07:00"  # NOW (03:00Z) in Vietnam
    assert signature["who"] == {"reference": "Practitioner/d1"}
    assert signature["onBehalfOf"] == {"reference": "Organization/27001"}
    assert signature["targetFormat"] == "application/fhir+json"
    assert signature["sigFormat"] == "application/jose"


def test_data_is_a_detached_compact_jws_with_the_chain() -> None:
    signed, signer = signed_document()
    header, payload, signature = jws_parts(signed)
    assert payload == ""  # RFC 7515 Appendix F
    assert len(signature) == 64  # ES256: r‖s
    assert set(header) == {"alg", "kid", "x5c", "sigT", "srCms"}  # no crit: nothing critical
    assert header["alg"] == "ES256"
    assert header["sigT"] == "2026-11-20T03:00:00Z"
    assert header["srCms"] == [{"commId": {"id": f"urn:oid:{AUTHOR}"}}]
    ders = [base64.b64decode(entry, validate=True) for entry in header["x5c"]]  # standard base64
    assert ders == [cert.public_bytes(Encoding.DER) for cert in signer.chain]  # leaf first
    leaf = x509.load_der_x509_certificate(ders[0])
    kid = base64.urlsafe_b64encode(leaf.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
    assert header["kid"] == kid


def test_rs256_signature_is_pkcs1_over_the_canonical_content() -> None:
    signed, _ = signed_document("RS256")
    header, _, signature = jws_parts(signed)
    assert header["alg"] == "RS256" and len(signature) == 256
    assert signed["signature"]["type"][0]["code"] == AUTHOR


def test_signed_copy_is_independent_of_the_input() -> None:
    original = document()
    before = copy.deepcopy(original)
    signed = sign_document(original, make_chain().signer(), who="Practitioner/d1", when=NOW)
    assert original == before and "signature" not in original
    assert {k: v for k, v in signed.items() if k != "signature"} == original
    original["entry"][0]["resource"]["title"] = "changed after signing"
    assert signed["entry"][0]["resource"]["title"] == "Tóm tắt khám bệnh"


def test_signing_time_is_written_in_vietnam_to_the_second() -> None:
    when = datetime(2026, 11, 20, 16, 30, 5, 123456, tzinfo=UTC_MINUS_5)
    signed, _ = signed_document(when=when)
    assert signed["signature"]["when"] == "2026-11-21T04:30:05+07:00"
    assert jws_parts(signed)[0]["sigT"] == "2026-11-20T21:30:05Z"


@pytest.mark.parametrize("code", [VERIFICATION, CONSENT])
def test_signature_type_is_signed(code: str) -> None:
    signed, _ = signed_document(signature_type=code)
    assert signed["signature"]["type"][0]["code"] == code
    assert jws_parts(signed)[0]["srCms"] == [{"commId": {"id": f"urn:oid:{code}"}}]


@dataclass
class TokenSigner:
    """A signer that only exposes `sign`, as a PKCS#11 token does; it records what it signed."""

    key: ec.EllipticCurvePrivateKey
    chain: list[x509.Certificate]
    algorithm: Algorithm = "ES256"
    signed: list[bytes] = field(default_factory=list)

    def sign(self, data: bytes) -> bytes:
        self.signed.append(data)
        return KeySigner(self.key, self.chain).sign(data)


def test_signature_is_made_through_the_signer_protocol() -> None:
    chain = make_chain()
    token = TokenSigner(chain.leaf.key, chain.signer().chain)  # type: ignore[arg-type]
    signed = sign_document(document(), token, who="Practitioner/d1", when=NOW)
    compact = base64.b64decode(signed["signature"]["data"]).decode()
    header_segment = compact.split(".")[0]
    content = base64.urlsafe_b64encode(canonical(document())).rstrip(b"=")
    assert token.signed == [header_segment.encode() + b"." + content]


def test_a_token_whose_key_is_not_its_certificates_is_refused() -> None:
    chain = make_chain()
    other = ec.generate_private_key(ec.SECP256R1())
    token = TokenSigner(other, chain.signer().chain)
    with pytest.raises(SigningError, match="does not verify with the signer's certificate"):
        sign_document(document(), token, who="Practitioner/d1", when=NOW)


def test_an_already_signed_document_is_refused() -> None:
    signed, signer = signed_document()
    with pytest.raises(SigningError, match="already signed"):
        sign_document(signed, signer, who="Practitioner/d1", when=NOW)


def amend(bundle: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(bundle)
    changed.update(changes)
    return changed


@pytest.mark.parametrize(
    ("bundle", "problem"),
    [
        ({"resourceType": "Patient", "id": "p1"}, "only a Bundle"),
        (amend(document(), type="collection"), "only a Bundle of type document"),
        (amend(document(), entry=[]), "must begin with a Composition"),
        (amend(document(), entry=document()["entry"][1:]), "must begin with a Composition"),
        (amend(document(), entry="nonsense"), "must begin with a Composition"),
    ],
)
def test_only_fhir_documents_are_signed(bundle: dict[str, Any], problem: str) -> None:
    with pytest.raises(SigningError, match=problem):
        sign_document(bundle, make_chain().signer(), who="Practitioner/d1", when=NOW)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"signature_type": "1.2.840.10065.1.12.1.99"}, "unknown signature type"),
        ({"signature_type": "author"}, "unknown signature type"),
        ({"who": ""}, "invalid who reference"),
        ({"who": "Practitioner/ d1"}, "invalid who reference"),
        ({"on_behalf_of": ""}, "invalid onBehalfOf reference"),
        ({"when": NOW.replace(tzinfo=None)}, "needs a time zone"),
        ({"when": NOW + timedelta(days=400)}, "not valid at the signing time"),  # expired then
        ({"when": NOW - timedelta(days=40)}, "not valid at the signing time"),  # not yet valid
    ],
)
def test_bad_requests_are_refused(options: dict[str, Any], problem: str) -> None:
    arguments: dict[str, Any] = {"who": "Practitioner/d1", "when": NOW} | options
    with pytest.raises(SigningError, match=problem):
        sign_document(document(), make_chain().signer(), **arguments)


def test_an_unsupported_algorithm_is_refused() -> None:
    chain = make_chain()
    token = TokenSigner(chain.leaf.key, chain.signer().chain, algorithm="HS256")  # type: ignore[arg-type]
    with pytest.raises(SigningError, match="unsupported algorithm"):
        sign_document(document(), token, who="Practitioner/d1", when=NOW)
    empty = TokenSigner(chain.leaf.key, [])  # type: ignore[arg-type]
    with pytest.raises(SigningError, match="no certificate"):
        sign_document(document(), empty, who="Practitioner/d1", when=NOW)
    assert token.signed == [] and empty.signed == []  # refused before anything was signed


def test_signed_document_round_trips_through_json() -> None:
    signed, _ = signed_document()
    again = orjson.loads(orjson.dumps(signed))
    assert canonical(again) == canonical(signed) == canonical(document())


@settings(max_examples=300, deadline=None)
@given(
    body=st.dictionaries(
        st.one_of(st.text(alphabet=st.characters(max_codepoint=127), max_size=8), st.text()),
        st.recursive(
            st.none()
            | st.booleans()
            | st.text()
            | st.integers(-(2**60), 2**60)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.sampled_from([7.0, 1e-7, 1e21, 1e16, 0.1, -0.0, 5e-324, 123.456]),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=6), inner, max_size=4)
            ),
            max_leaves=12,
        ),
        max_size=6,
    )
)
def test_canonical_bytes_are_exactly_the_reference_encoders(body: dict[str, Any]) -> None:
    """The fast path (orjson) must write byte for byte what the RFC 8785 reference writes, or
    refuse what it refuses: signatures made here are checked by other tools."""
    bundle = {"resourceType": "Bundle", "type": "document"} | body
    try:
        expected: bytes | None = rfc8785.dumps(bundle)
    except rfc8785.CanonicalizationError:
        expected = None
    if expected is None:
        with pytest.raises(SigningError):
            canonical(bundle)
    else:
        assert canonical(bundle) == expected
