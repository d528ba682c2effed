"""A signed document checked by an independent tool: `cryptography` and `rfc8785` used directly,
without benhan's verifier, its canonical form, or joserfc. Anyone with those two libraries (or
their equivalents in another language) can check a benhan document the same way."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from benhan.signing.jws import sign_document
from tests.signing.certs import NOW, Chain, make_chain
from tests.signing.test_jws import document


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Checked:
    algorithm: str
    chain: list[x509.Certificate]
    signed_at: datetime


def check_independently(bundle: dict[str, Any], root: x509.Certificate) -> Checked:
    """Raises InvalidSignature (or ValueError) unless the document is intact and chains to root."""
    compact = base64.b64decode(bundle["signature"]["data"], validate=True).decode("ascii")
    header_segment, payload_segment, signature_segment = compact.split(".")
    assert payload_segment == "", "the payload is detached"
    header = json.loads(b64url_decode(header_segment))
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in header["x5c"]]
    signed_at = datetime.fromisoformat(header["sigT"])

    # The document form of http://hl7.org/fhir/R4/signatures.html: no signature, id or meta.
    unsigned = {k: v for k, v in bundle.items() if k not in ("signature", "id", "meta")}
    signing_input = f"{header_segment}.{b64url(rfc8785.dumps(unsigned))}".encode("ascii")
    signature = b64url_decode(signature_segment)
    leaf_key = chain[0].public_key()
    if header["alg"] == "ES256":
        assert isinstance(leaf_key, ec.EllipticCurvePublicKey)
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        leaf_key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
    elif header["alg"] == "RS256":
        assert isinstance(leaf_key, rsa.RSAPublicKey)
        leaf_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise ValueError(f"algorithm {header['alg']} not accepted")

    for child, parent in zip(chain, [*chain[1:], root], strict=True):
        if child != root:
            child.verify_directly_issued_by(parent)
    for cert in chain:
        assert cert.not_valid_before_utc <= signed_at <= cert.not_valid_after_utc
    return Checked(header["alg"], chain, signed_at)


@pytest.fixture(scope="module", params=["ES256", "RS256"])
def chain(request: pytest.FixtureRequest) -> Chain:
    if request.param == "RS256":
        return make_chain(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return make_chain()


def test_benhan_signature_verifies_with_cryptography_alone(chain: Chain) -> None:
    signed = sign_document(document(), chain.signer(), who="Practitioner/d1", when=NOW)
    # As a file handed to another system: pretty-printed, keys in another order.
    as_file = json.dumps(dict(reversed(list(signed.items()))), indent=2, ensure_ascii=False)
    checked = check_independently(json.loads(as_file), chain.root.cert)
    assert checked.algorithm == (
        "RS256" if isinstance(chain.leaf.key, rsa.RSAPrivateKey) else "ES256"
    )
    assert checked.chain == [chain.leaf.cert, chain.intermediate.cert, chain.root.cert]
    assert checked.signed_at == NOW


def test_cryptography_alone_catches_a_changed_character(chain: Chain) -> None:
    signed = sign_document(document(), chain.signer(), who="Practitioner/d1", when=NOW)
    tampered = copy.deepcopy(signed)
    tampered["entry"][1]["resource"]["name"][0]["family"] = "Nguyên"  # one diacritic
    with pytest.raises(InvalidSignature):
        check_independently(tampered, chain.root.cert)


def test_cryptography_alone_rejects_another_root(chain: Chain) -> None:
    signed = sign_document(document(), chain.signer(), who="Practitioner/d1", when=NOW)
    with pytest.raises(InvalidSignature):  # same names, another key
        check_independently(signed, make_chain().root.cert)
