"""Verifying a signed document: every way it can be wrong is caught and named."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from benhan.signing.jws import (
    AUTHOR,
    CONSENT,
    b64url,
    b64url_decode,
    canonical,
    compact_jws,
    protected_header,
    sign_document,
    signature_element,
    x5c_entry,
)
from benhan.signing.signers import KeySigner, Signer
from benhan.signing.verify import ExpectedSigner, Verification, verify
from tests.signing.certs import NOW, Chain, Issued, issue, make_chain
from tests.signing.test_jws import document

ORDER = [
    "signature", "jws", "algorithm", "signing-time", "chain", "trust", "validity", "key-usage",
    "revocation", "revocation", "certificate", "content", "signature-type",
]  # fmt: skip
CHANGED = "nội dung đã bị thay đổi / the content was changed since it was signed"
LATER = NOW + timedelta(days=10)  # when the verifier looks


@pytest.fixture(scope="module")
def chain() -> Chain:
    return make_chain()


@pytest.fixture(scope="module")
def rsa_chain() -> Chain:
    return make_chain(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def signed(chain: Chain) -> dict[str, Any]:
    return sign_document(document(), chain.signer(), who="Practitioner/d1", when=NOW)


def check(result: Verification, name: str) -> tuple[bool, str]:
    """(ok, message) of the one check called `name`."""
    [found] = result.named(name)
    return found.ok, found.message


def failed(result: Verification) -> list[str]:
    return [c.name for c in result.failures]


def forge(
    signer: Signer,
    *,
    header: dict[str, Any] | None = None,
    when: datetime = NOW,
    bundle: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A document signed with a header of our choosing (sign_document would refuse some)."""
    doc = bundle or document()
    fields = protected_header(signer.algorithm, signer.chain, when, AUTHOR) | (header or {})
    compact = compact_jws(
        {k: v for k, v in fields.items() if v is not None}, canonical(doc), signer
    )
    element = signature_element(
        compact, who="Practitioner/d1", on_behalf_of=None, signature_type=AUTHOR, when=when
    )
    return doc | {"signature": element}


def with_compact(signed: dict[str, Any], compact: str) -> dict[str, Any]:
    changed = copy.deepcopy(signed)
    changed["signature"]["data"] = base64.b64encode(compact.encode()).decode()
    return changed


def compact_of(signed: dict[str, Any]) -> str:
    return base64.b64decode(signed["signature"]["data"]).decode()


# ---------------------------------------------------------------- good signatures


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_sign_then_verify_passes(algorithm: str, chain: Chain, rsa_chain: Chain) -> None:
    use = chain if algorithm == "ES256" else rsa_chain
    signed = sign_document(document(), use.signer(), who="Practitioner/d1", when=NOW)
    result = verify(signed, anchors=[use.root.cert], at=LATER)
    assert result.ok, result.report()
    assert [c.name for c in result.checks] == ORDER
    assert check(result, "algorithm") == (True, f"thuật toán {algorithm} / algorithm {algorithm}")
    assert check(result, "content")[1] == (
        "nội dung không thay đổi kể từ khi ký / the content is unchanged since it was signed"
    )
    assert result.signer == use.leaf.cert and result.signed_at == NOW


def test_without_crls_revocation_is_a_warning(signed: dict[str, Any], chain: Chain) -> None:
    result = verify(signed, anchors=[chain.root.cert], at=LATER)
    assert result.ok
    assert [c.name for c in result.warnings] == ["revocation", "revocation"]
    assert result.warnings[0].message == (
        "không có CRL của 'Provincial test CA': chưa kiểm tra thu hồi chứng thư ở vị trí 1 "
        "(BS. Nguyễn Văn An) / no CRL from 'Provincial test CA': revocation of the certificate "
        "at position 1 (BS. Nguyễn Văn An) was not checked"
    )


def test_with_crls_that_do_not_list_the_certificates_nothing_is_left(
    signed: dict[str, Any], chain: Chain
) -> None:
    crls = [crl(chain.intermediate), crl(chain.root)]
    result = verify(signed, anchors=[chain.root.cert], crls=crls, at=LATER)
    assert result.ok and result.warnings == []
    assert [c.message.split(" / ")[1] for c in result.named("revocation")] == [
        "the certificate at position 1 (BS. Nguyễn Văn An) is not revoked (CRL of "
        "2026-11-29T10:00:00+07:00)",
        "the certificate at position 2 (Provincial test CA) is not revoked (CRL of "
        "2026-11-29T10:00:00+07:00)",
    ]


def test_moving_the_document_between_servers_keeps_it_valid(
    signed: dict[str, Any], chain: Chain
) -> None:
    moved = copy.deepcopy(signed) | {"id": "hub-123", "meta": {"versionId": "7"}}
    assert verify(moved, anchors=[chain.root.cert], at=LATER).ok


def test_chain_ending_at_the_anchor_itself(chain: Chain) -> None:
    short = KeySigner(chain.leaf.key, [chain.leaf.cert, chain.intermediate.cert])
    signed = sign_document(document(), short, who="Practitioner/d1", when=NOW)
    by_root = verify(signed, anchors=[chain.root.cert], at=LATER)
    assert by_root.ok and check(by_root, "trust")[1].endswith("'Provincial test root'")
    by_ca = verify(signed, anchors=[chain.intermediate.cert], at=LATER)
    assert by_ca.ok and len(by_ca.named("revocation")) == 1  # an anchor is not revocation-checked


def test_a_signature_made_by_another_tool_verifies(chain: Chain) -> None:
    """A JAdES-style signature built with cryptography and rfc8785 alone, as another vendor's
    system would, with its own header layout, crit and a UTC `when`."""
    doc = document()
    leaf = chain.leaf.key
    assert isinstance(leaf, ec.EllipticCurvePrivateKey)
    header = {
        "crit": ["sigT"],
        "sigT": "2026-11-20T03:00:00Z",
        "x5c": [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in
                (chain.leaf.cert, chain.intermediate.cert)],
        "alg": "ES256",
        "typ": "jose",
    }  # fmt: skip
    header_part = base64.urlsafe_b64encode(json.dumps(header, indent=1).encode()).rstrip(b"=")
    unsigned = {k: v for k, v in doc.items() if k not in ("id", "meta")}
    payload = base64.urlsafe_b64encode(rfc8785.dumps(unsigned)).rstrip(b"=")
    der = leaf.sign(header_part + b"." + payload, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = base64.urlsafe_b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).rstrip(b"=")
    doc["signature"] = {
        "type": [{"system": "urn:iso-astm:E1762-95:2013", "code": AUTHOR}],
        "when": "2026-11-20T03:00:00Z",
        "who": {"reference": "Practitioner/d1"},
        "data": base64.b64encode(header_part + b".." + signature).decode(),
    }
    result = verify(doc, anchors=[chain.root.cert], at=LATER)
    assert result.ok, result.report()
    assert [c.name for c in result.warnings] == ["revocation", "revocation", "signature-type"]
    assert check(result, "certificate")[1].endswith("bound to the signature by x5c alone")


def test_expected_signer(signed: dict[str, Any], chain: Chain) -> None:
    anchors = [chain.root.cert]
    doctor = ExpectedSigner("Practitioner/d1", [chain.leaf.cert])
    assert check(verify(signed, anchors=anchors, at=LATER, expected_signer=doctor), "signer") == (
        True,
        "do Practitioner/d1 ký bằng chứng thư đã đăng ký / signed by Practitioner/d1 with a "
        "registered certificate",
    )
    other = ExpectedSigner("Practitioner/d2", [chain.leaf.cert])
    result = verify(signed, anchors=anchors, at=LATER, expected_signer=other)
    assert failed(result) == ["signer"]
    assert (
        "Bundle.signature.who (Practitioner/d1) is not Practitioner/d2"
        in result.failures[0].message
    )
    unregistered = ExpectedSigner("Practitioner/d1", [make_chain().leaf.cert])
    result = verify(signed, anchors=anchors, at=LATER, expected_signer=unregistered)
    assert failed(result) == ["signer"]
    assert "is not one registered for Practitioner/d1" in result.failures[0].message


# ---------------------------------------------------------------- changed content


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["entry"][0]["resource"].update(title="Tóm tắt khám bệnh."),
        lambda d: d["entry"][0]["resource"].update(title="Tóm tắt khám bềnh"),  # one diacritic
        lambda d: d["entry"][3]["resource"]["valueQuantity"].update(value=39.5),
        lambda d: d["entry"][1]["resource"]["name"][0]["given"].reverse(),
        lambda d: d["entry"][2].update(fullUrl="urn:uuid:d2"),
        lambda d: d.update(timestamp="2026-11-20T10:00:01+07:00"),
        lambda d: d["entry"].pop(),
        lambda d: d["entry"][0]["resource"].update(extra=None),
    ],
)
def test_one_changed_character_fails_with_the_content_message(
    change: Any, signed: dict[str, Any], chain: Chain
) -> None:
    tampered = copy.deepcopy(signed)
    change(tampered)
    result = verify(tampered, anchors=[chain.root.cert], at=LATER)
    assert not result.ok
    assert failed(result) == ["content"]
    assert check(result, "content") == (False, CHANGED)


def test_changed_signature_time_or_type_fail(signed: dict[str, Any], chain: Chain) -> None:
    later = copy.deepcopy(signed)
    later["signature"]["when"] = "2026-11-20T10:05:00+07:00"
    result = verify(later, anchors=[chain.root.cert], at=LATER)
    assert failed(result) == ["signing-time"]
    assert check(result, "signing-time")[1] == (
        "Bundle.signature.when (2026-11-20T10:05:00+07:00) khác thời điểm đã ký "
        "(2026-11-20T10:00:00+07:00) / Bundle.signature.when (2026-11-20T10:05:00+07:00) differs "
        "from the signed time (2026-11-20T10:00:00+07:00)"
    )
    consent = copy.deepcopy(signed)
    consent["signature"]["type"][0]["code"] = CONSENT
    result = verify(consent, anchors=[chain.root.cert], at=LATER)
    assert failed(result) == ["signature-type"]
    assert f"differs from the signed commitment ({AUTHOR})" in check(result, "signature-type")[1]


def test_same_time_written_in_another_offset_is_the_same_time(
    signed: dict[str, Any], chain: Chain
) -> None:
    utc = copy.deepcopy(signed)
    utc["signature"]["when"] = "2026-11-20T03:00:00Z"
    assert verify(utc, anchors=[chain.root.cert], at=LATER).ok


def test_signing_time_in_the_future_fails(signed: dict[str, Any], chain: Chain) -> None:
    result = verify(signed, anchors=[chain.root.cert], at=NOW - timedelta(hours=1))
    assert failed(result) == ["signing-time"]
    assert (
        "the signing time 2026-11-20T10:00:00+07:00 is in the future" in result.failures[0].message
    )
    assert verify(signed, anchors=[chain.root.cert], at=NOW - timedelta(minutes=4)).ok  # skew


# ---------------------------------------------------------------- certificates


def test_swapped_certificate_fails(signed: dict[str, Any], chain: Chain) -> None:
    """Another doctor's certificate from the same CA, put in place of the signer's."""
    impostor = issue("BS. Trần Thị Bình", chain.intermediate, ca=False)
    header_segment, _, signature = compact_of(signed).split(".")
    header = json.loads(b64url_decode(header_segment))
    header["x5c"][0] = x5c_entry(impostor.cert)
    swapped = with_compact(signed, f"{b64url(json.dumps(header).encode()).decode()}..{signature}")
    result = verify(swapped, anchors=[chain.root.cert], at=LATER)
    assert failed(result) == ["certificate", "content"]
    assert check(result, "certificate")[1].endswith(
        "the signer's certificate in x5c is not the one that signed (kid differs): the "
        "certificate was swapped"
    )
    assert check(result, "content")[1].endswith(
        "the signature was not made with the key of the certificate in x5c"
    )


def test_swapped_certificate_with_its_kid_fails_the_content(
    signed: dict[str, Any], chain: Chain
) -> None:
    impostor = issue("BS. Trần Thị Bình", chain.intermediate, ca=False)
    header_segment, _, signature = compact_of(signed).split(".")
    header = json.loads(b64url_decode(header_segment))
    header["x5c"][0] = x5c_entry(impostor.cert)
    header["kid"] = b64url(impostor.cert.fingerprint(hashes.SHA256())).decode()
    swapped = with_compact(signed, f"{b64url(json.dumps(header).encode()).decode()}..{signature}")
    result = verify(swapped, anchors=[chain.root.cert], at=LATER)
    assert failed(result) == ["content"] and check(result, "content")[1] == CHANGED


def test_resigned_by_someone_outside_the_province_fails_trust(chain: Chain) -> None:
    outsider = make_chain("Kẻ mạo danh")
    resigned = sign_document(document(), outsider.signer(), who="Practitioner/d1", when=NOW)
    result = verify(resigned, anchors=[chain.root.cert], at=LATER)
    assert failed(result) == ["trust"]
    assert check(result, "trust")[1] == (
        "chuỗi không dẫn tới chứng thư gốc tin cậy nào ('Provincial test root'); 'Provincial "
        "test root' là chứng thư gốc tự ký không nằm trong danh sách tin cậy / the chain does not "
        "lead to a trusted root ('Provincial test root'); 'Provincial test root' is a self-signed "
        "root that is not a trust anchor"
    )  # the same names, other keys: names alone are never trusted
    chain_only = KeySigner(outsider.leaf.key, [outsider.leaf.cert, outsider.intermediate.cert])
    result = verify(forge(chain_only), anchors=[chain.root.cert], at=LATER)
    assert failed(result) == ["trust"]
    assert check(result, "trust")[1].endswith(
        "'Provincial test CA' was issued by 'Provincial test root'"
    )


def test_untrusted_root_fails(signed: dict[str, Any], chain: Chain) -> None:
    other_root = issue("Another province root", None, ca=True, days=3650)
    result = verify(signed, anchors=[other_root.cert], at=LATER)
    assert failed(result) == ["trust"]
    assert "does not lead to a trusted root ('Another province root')" in result.failures[0].message
    assert failed(verify(signed, anchors=[], at=LATER)) == ["trust"]


@pytest.mark.parametrize(
    ("order", "position"),
    [
        ((0, 2, 1), "the certificate at position 1 (BS. Nguyễn Văn An) was issued by "
                    "'Provincial test CA', not by the certificate at position 2 (Provincial test "
                    "root): the chain is out of order"),
        ((1, 0, 2), "the certificate at position 1 (Provincial test CA) was issued by "
                    "'Provincial test root', not by the certificate at position 2 (BS. Nguyễn Văn "
                    "An): the chain is out of order"),
    ],
)  # fmt: skip
def test_reordered_chain_fails_naming_the_position(
    order: Sequence[int], position: str, chain: Chain
) -> None:
    certs = [chain.leaf.cert, chain.intermediate.cert, chain.root.cert]
    signer = KeySigner(chain.leaf.key, [certs[i] for i in order])
    result = verify(forge(signer), anchors=[chain.root.cert], at=LATER)
    assert "chain" in failed(result)
    assert position in check(result, "chain")[1]
    assert "chứng thư ở vị trí" in check(result, "chain")[1]


def test_a_chain_through_a_non_ca_fails(chain: Chain) -> None:
    leaf = chain.leaf
    under_leaf = issue("Phụ tá", leaf, ca=False)
    signer = KeySigner(under_leaf.key, [under_leaf.cert, leaf.cert, chain.intermediate.cert])
    result = verify(forge(signer), anchors=[chain.root.cert], at=LATER)
    assert failed(result) == ["chain"]
    assert "the certificate at position 2 (BS. Nguyễn Văn An) is not a CA certificate" in (
        result.failures[0].message
    )


def test_a_forged_issuer_signature_fails(chain: Chain) -> None:
    """Same issuer name, signed by another key: the link's signature is checked, not the names."""
    fake_ca = Issued(ec.generate_private_key(ec.SECP256R1()), chain.intermediate.cert)
    leaf = issue("BS. Giả mạo", fake_ca, ca=False)
    signer = KeySigner(leaf.key, [leaf.cert, chain.intermediate.cert, chain.root.cert])
    result = verify(forge(signer), anchors=[chain.root.cert], at=LATER)
    assert failed(result) == ["chain"]
    assert (
        "the signature on the certificate at position 1 (BS. Giả mạo) does not verify with the "
        "key of the certificate at position 2 (Provincial test CA)"
    ) in result.failures[0].message


@pytest.mark.parametrize(
    ("start", "days", "message"),
    [
        (NOW - timedelta(days=400), 365, "expired on 2026-10-16T10:00:00+07:00, before the "
                                         "signing time"),
        (NOW + timedelta(days=1), 365, "was not yet valid at the signing time (valid from "
                                       "2026-11-21T10:00:00+07:00)"),
    ],
)  # fmt: skip
def test_leaf_not_valid_at_signing_time_fails(start: datetime, days: int, message: str) -> None:
    chain = make_chain(start=start, days=days)
    result = verify(forge(chain.signer()), anchors=[chain.root.cert], at=LATER)
    assert failed(result) == ["validity"]
    assert check(result, "validity")[1].endswith(
        f"the certificate at position 1 (BS. Nguyễn Văn An) {message}"
    )
    assert "chứng thư ở vị trí 1 (BS. Nguyễn Văn An)" in check(result, "validity")[1]


def test_expired_intermediate_and_anchor_fail(chain: Chain) -> None:
    old_ca = issue("Old CA", chain.root, ca=True, start=NOW - timedelta(days=200), days=100)
    leaf = issue("BS. Lê Văn Cường", old_ca, ca=False, start=NOW - timedelta(days=150), days=365)
    signer = KeySigner(leaf.key, [leaf.cert, old_ca.cert])
    result = verify(forge(signer), anchors=[chain.root.cert], at=LATER)
    assert failed(result) == ["validity"]
    assert "the certificate at position 2 (Old CA) expired on" in result.failures[0].message
    old_root = issue("Old root", None, ca=True, start=NOW - timedelta(days=900), days=800)
    ca = issue("CA under old root", old_root, ca=True, start=NOW - timedelta(days=300), days=900)
    leaf = issue("BS. Phạm Thu", ca, ca=False)
    result = verify(
        forge(KeySigner(leaf.key, [leaf.cert, ca.cert])), anchors=[old_root.cert], at=LATER
    )
    assert failed(result) == ["validity"]
    assert "the trust anchor (Old root) expired on" in result.failures[0].message


def test_a_ca_certificate_cannot_sign_documents(chain: Chain) -> None:
    sub_ca = issue("Sub CA", chain.intermediate, ca=True)
    signer = KeySigner(sub_ca.key, [sub_ca.cert, chain.intermediate.cert, chain.root.cert])
    result = verify(forge(signer), anchors=[chain.root.cert], at=LATER)
    assert failed(result) == ["key-usage"]
    assert "the signer's certificate is a CA certificate" in result.failures[0].message


# ---------------------------------------------------------------- revocation


@dataclass(frozen=True)
class Revoked:
    cert: x509.Certificate
    on: datetime
    reason: x509.ReasonFlags | None = None
    invalid_since: datetime | None = None


def crl(
    issuer: Issued,
    *revoked: Revoked,
    key: Any = None,
    last_update: datetime = NOW + timedelta(days=9),
    next_update: datetime = NOW + timedelta(days=16),
) -> x509.CertificateRevocationList:
    """A CRL built with cryptography, signed by `issuer` (or by `key`, to forge one)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(last_update)
        .next_update(next_update)
    )
    for item in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(item.cert.serial_number)
            .revocation_date(item.on)
        )
        if item.reason is not None:
            entry = entry.add_extension(x509.CRLReason(item.reason), critical=False)
        if item.invalid_since is not None:
            entry = entry.add_extension(x509.InvalidityDate(item.invalid_since), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(key or issuer.key, hashes.SHA256())


def test_revoked_before_signing_fails(signed: dict[str, Any], chain: Chain) -> None:
    revoked = Revoked(chain.leaf.cert, NOW - timedelta(days=1), x509.ReasonFlags.key_compromise)
    crls = [crl(chain.intermediate, revoked), crl(chain.root)]
    result = verify(signed, anchors=[chain.root.cert], crls=crls, at=LATER)
    assert failed(result) == ["revocation"]
    assert result.failures[0].message == (
        "chứng thư ở vị trí 1 (BS. Nguyễn Văn An) đã bị thu hồi ngày 2026-11-19T10:00:00+07:00 "
        "(khóa bị lộ), trước khi ký / the certificate at position 1 (BS. Nguyễn Văn An) was "
        "revoked on 2026-11-19T10:00:00+07:00 (keyCompromise), before the signing time"
    )


def test_revoked_at_the_signing_time_fails(signed: dict[str, Any], chain: Chain) -> None:
    crls = [crl(chain.intermediate, Revoked(chain.leaf.cert, NOW))]
    result = verify(signed, anchors=[chain.root.cert], crls=crls, at=LATER)
    assert failed(result) == ["revocation"]
    assert "(unspecified), before the signing time" in result.failures[0].message


def test_revoked_after_signing_passes_with_a_note(signed: dict[str, Any], chain: Chain) -> None:
    revoked = Revoked(chain.leaf.cert, NOW + timedelta(days=5), x509.ReasonFlags.superseded)
    result = verify(
        signed, anchors=[chain.root.cert], crls=[crl(chain.intermediate, revoked)], at=LATER
    )
    assert result.ok
    note = result.named("revocation")[0]
    assert note.warning and note.message.endswith(
        "was revoked on 2026-11-25T10:00:00+07:00 (superseded), after the signing time: the "
        "signature stands"
    )


def test_key_compromised_after_signing_still_fails(signed: dict[str, Any], chain: Chain) -> None:
    revoked = Revoked(chain.leaf.cert, NOW + timedelta(days=5), x509.ReasonFlags.key_compromise)
    result = verify(
        signed, anchors=[chain.root.cert], crls=[crl(chain.intermediate, revoked)], at=LATER
    )
    assert failed(result) == ["revocation"]
    assert (
        "a compromised key makes earlier signatures untrustworthy too" in result.failures[0].message
    )


def test_invalidity_date_before_signing_fails(signed: dict[str, Any], chain: Chain) -> None:
    revoked = Revoked(
        chain.leaf.cert,
        NOW + timedelta(days=5),
        x509.ReasonFlags.affiliation_changed,
        invalid_since=NOW - timedelta(days=2),
    )
    result = verify(
        signed, anchors=[chain.root.cert], crls=[crl(chain.intermediate, revoked)], at=LATER
    )
    assert failed(result) == ["revocation"]
    assert "was invalid from 2026-11-18T10:00:00+07:00, before the signing time" in (
        result.failures[0].message
    )


def test_revoked_intermediate_fails_at_position_2(signed: dict[str, Any], chain: Chain) -> None:
    revoked = Revoked(
        chain.intermediate.cert, NOW - timedelta(hours=1), x509.ReasonFlags.ca_compromise
    )
    crls = [crl(chain.intermediate), crl(chain.root, revoked)]
    result = verify(signed, anchors=[chain.root.cert], crls=crls, at=LATER)
    assert failed(result) == ["revocation"]
    assert "the certificate at position 2 (Provincial test CA) was revoked on" in (
        result.failures[0].message
    )


def test_a_crl_not_signed_by_its_issuer_fails(signed: dict[str, Any], chain: Chain) -> None:
    forged = crl(chain.intermediate, key=ec.generate_private_key(ec.SECP256R1()))
    result = verify(signed, anchors=[chain.root.cert], crls=[forged], at=LATER)
    assert failed(result) == ["revocation"]
    assert result.failures[0].message == (
        "CRL của 'Provincial test CA' không do chính nhà phát hành đó ký / the CRL for "
        "'Provincial test CA' is not signed by that issuer"
    )


def test_a_forged_crl_next_to_the_real_one_is_ignored(signed: dict[str, Any], chain: Chain) -> None:
    """Someone's CRL that "un-revokes" cannot hide the real revocation."""
    revoked = Revoked(chain.leaf.cert, NOW - timedelta(days=1))
    real = crl(chain.intermediate, revoked)
    forged = crl(chain.intermediate, key=ec.generate_private_key(ec.SECP256R1()),
                 last_update=NOW + timedelta(days=9, hours=1))  # fmt: skip
    result = verify(signed, anchors=[chain.root.cert], crls=[forged, real], at=LATER)
    assert failed(result) == ["revocation"]


def test_an_out_of_date_crl_is_a_warning(signed: dict[str, Any], chain: Chain) -> None:
    result = verify(
        signed,
        anchors=[chain.root.cert],
        crls=[crl(chain.intermediate)],
        at=NOW + timedelta(days=60),
    )
    assert result.ok
    assert "but that CRL is out of date (next update was due 2026-12-06T10:00:00+07:00)" in (
        result.warnings[0].message
    )


# ---------------------------------------------------------------- refused and malformed


def test_stripped_signature_fails(signed: dict[str, Any], chain: Chain) -> None:
    stripped = {k: v for k, v in signed.items() if k != "signature"}
    result = verify(stripped, anchors=[chain.root.cert], at=LATER)
    assert not result.ok and [c.name for c in result.checks] == ["signature"]
    assert result.checks[0].message == (
        "tài liệu không có chữ ký / no signature: the document is unsigned"
    )
    assert result.signer is None and result.signed_at is None


class RawSigner:
    """Signs with whatever `alg` says: a forger's tool, for the refused algorithms."""

    def __init__(self, chain: Chain, algorithm: str, sign: Any) -> None:
        self.algorithm = algorithm
        self.chain = [chain.leaf.cert, chain.intermediate.cert, chain.root.cert]
        self.sign = sign


@pytest.mark.parametrize(
    ("algorithm", "sign"),
    [
        ("none", lambda data: b""),
        ("HS256", lambda data: hmac.new(b"shared secret", data, hashlib.sha256).digest()),
        ("ES384", lambda data: b"\x01" * 96),
        ("PS256", lambda data: b"\x01" * 256),
        ("es256", lambda data: b"\x01" * 64),
    ],
)
def test_other_algorithms_are_refused(algorithm: str, sign: Any, chain: Chain) -> None:
    signer = RawSigner(chain, algorithm, sign)
    result = verify(forge(signer), anchors=[chain.root.cert], at=LATER)  # type: ignore[arg-type]
    assert [c.name for c in result.checks] == ["signature", "jws", "algorithm"]
    assert result.checks[2].message == (
        f"thuật toán {algorithm!r} bị từ chối (chỉ chấp nhận ES256, RS256) / algorithm "
        f"{algorithm!r} is refused (only ES256 and RS256 are accepted)"
    )


def test_an_algorithm_that_does_not_fit_the_key_is_refused(chain: Chain) -> None:
    signer = RawSigner(chain, "RS256", lambda data: b"\x01" * 256)
    result = verify(forge(signer), anchors=[chain.root.cert], at=LATER)  # type: ignore[arg-type]
    assert failed(result) == ["algorithm"]
    assert "cannot be used with RS256" in result.failures[0].message


def header_segment(header: Any) -> str:
    return b64url(json.dumps(header).encode()).decode()


def malformed(signed: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(label, Bundle.signature.data or a whole signature element, the expected message)."""
    header = json.loads(b64url_decode(compact_of(signed).split(".")[0]))
    good_sig = compact_of(signed).split(".")[2]
    urlsafe = header["x5c"][0].replace("+", "-").replace("/", "_")

    def data(compact: str) -> str:
        return base64.b64encode(compact.encode()).decode()

    def jws_with(**changes: Any) -> str:
        fields = {k: v for k, v in (header | changes).items() if v is not None}
        return data(f"{header_segment(fields)}..{good_sig}")

    return [
        ("not base64", "!!!not base64!!!", "is not the base64 of a JWS"),
        ("empty", "", "is missing or not a base64 string"),
        ("a number", 12345, "is missing or not a base64 string"),
        ("not ASCII", base64.b64encode("tiếng Việt".encode()).decode(), "not the base64 of a JWS"),
        ("two parts", data("abc.def"), "a compact JWS has 3 parts, this one has 2"),
        ("five parts (JWE)", data("a.b.c.d.e"), "this one has 5"),
        ("attached payload", data(f"{compact_of(signed).split('.')[0]}.e30.{good_sig}"),
         "the JWS payload must be detached"),
        ("header not base64url", data(f"h*e*a*d..{good_sig}"), "the JWS header is not base64url"),
        ("header not JSON", data(f"{b64url(b'{oops').decode()}..{good_sig}"), "not base64url JSON"),
        ("header a list", data(f"{header_segment([1, 2])}..{good_sig}"), "not base64url JSON"),
        ("signature not base64url", data(f"{header_segment(header)}..a+b/c"),
         "the JWS signature part is not base64url"),
        ("no alg", jws_with(alg=None), "the JWS header has no alg"),
        ("alg a number", jws_with(alg=256), "the JWS header has no alg"),
        ("no x5c", jws_with(x5c=None), "the JWS header has no x5c certificate chain"),
        ("x5c empty", jws_with(x5c=[]), "has no x5c certificate chain"),
        ("x5c a string", jws_with(x5c=header["x5c"][0]), "has no x5c certificate chain"),
        ("x5c base64url", jws_with(x5c=[urlsafe, *header["x5c"][1:]]),
         "x5c: the certificate at position 1 is not readable"),
        ("x5c not DER", jws_with(x5c=[header["x5c"][0], "AAAA"]),
         "the certificate at position 2 is not readable"),
        ("x5c a number", jws_with(x5c=[7]), "the certificate at position 1 is not readable"),
        ("no sigT", jws_with(sigT=None), "the JWS header has no valid sigT"),
        ("sigT not a time", jws_with(sigT="yesterday"), "has no valid sigT"),
        ("sigT without offset", jws_with(sigT="2026-11-20T03:00:00"), "has no valid sigT"),
        ("unknown crit", jws_with(crit=["exp"], exp=1), "critical parameters not understood: exp"),
        ("crit not a list", jws_with(crit="sigT"), "critical parameters not understood: crit"),
        ("crit of objects", jws_with(crit=[{"a": 1}]), "critical parameters not understood"),
        ("unencoded payload", jws_with(b64=False, crit=["b64"]), "not understood: b64"),
    ]  # fmt: skip


def test_malformed_signatures_fail_clearly_and_never_raise(
    signed: dict[str, Any], chain: Chain
) -> None:
    for label, data, message in malformed(signed):
        broken = copy.deepcopy(signed)
        broken["signature"]["data"] = data
        result = verify(broken, anchors=[chain.root.cert], at=LATER)
        assert not result.ok, label
        assert [c.name for c in result.checks] == ["signature", "jws"], label
        assert message in result.checks[1].message, (label, result.checks[1].message)


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        (None, "not a Bundle"),
        ([], "not a Bundle"),
        ("a string", "not a Bundle"),
        ({"resourceType": "Patient", "signature": {}}, "not a Bundle"),
        ({"resourceType": "Bundle", "signature": "abc"}, "Bundle.signature must be an object"),
        ({"resourceType": "Bundle", "signature": [{"data": "x"}]}, "must be an object"),
    ],
)
def test_what_is_not_a_signed_bundle_fails_clearly(bundle: Any, message: str, chain: Chain) -> None:
    result = verify(bundle, anchors=[chain.root.cert], at=LATER)
    assert [c.name for c in result.checks] == ["signature"] and not result.ok
    assert message in result.checks[0].message


def test_other_sig_formats_are_refused(signed: dict[str, Any], chain: Chain) -> None:
    xml = copy.deepcopy(signed)
    xml["signature"]["sigFormat"] = "application/signature+xml"
    result = verify(xml, anchors=[chain.root.cert], at=LATER)
    assert failed(result) == ["jws"]
    assert "unsupported sigFormat 'application/signature+xml'" in result.failures[0].message


def test_content_that_cannot_be_canonicalised_fails(signed: dict[str, Any], chain: Chain) -> None:
    huge = copy.deepcopy(signed)
    huge["entry"][3]["resource"]["valueQuantity"]["value"] = 2**60
    result = verify(huge, anchors=[chain.root.cert], at=LATER)
    assert failed(result) == ["content"]
    assert "cannot canonicalise the document (RFC 8785)" in result.failures[0].message


def test_a_critical_parameter_that_is_missing_fails_the_content(chain: Chain) -> None:
    result = verify(forge(chain.signer(), header={"crit": ["srCms"], "srCms": None}),
                    anchors=[chain.root.cert], at=LATER)  # fmt: skip
    assert (
        "content" in failed(result) and "the JWS cannot be checked" in check(result, "content")[1]
    )


def test_a_large_document_verifies(chain: Chain) -> None:
    """joserfc's token-sized limits (128 kB payload, 512-byte header) must not apply."""
    big = document()
    note = {"resourceType": "Observation", "id": "n", "status": "final",
            "code": {"text": "Ghi chú"}, "valueString": "Bệnh nhân ổn định. " * 20000}  # fmt: skip
    big["entry"].append({"fullUrl": "urn:uuid:n", "resource": note})
    signed = sign_document(big, chain.signer(), who="Practitioner/d1", when=NOW)
    assert len(canonical(big)) > 300_000
    assert verify(signed, anchors=[chain.root.cert], at=LATER).ok


ANCHOR = make_chain()
VALID_HEADER = protected_header("ES256", ANCHOR.signer().chain, NOW, AUTHOR)
HEADER_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.sampled_from(["ES256", "RS256"]),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(
    changes=st.dictionaries(st.sampled_from(sorted([*VALID_HEADER, "crit", "b64"])), HEADER_VALUES),
    dropped=st.sets(st.sampled_from(sorted(VALID_HEADER))),
    signature=st.text(alphabet="AZaz09-_+/=.", max_size=90),
)
def test_random_jws_never_raises(
    changes: dict[str, Any], dropped: set[str], signature: str
) -> None:
    """A valid header with random changes and a random signature: a failure, never an error."""
    header = {k: v for k, v in (VALID_HEADER | changes).items() if k not in dropped}
    forged = document() | {"signature": {
        "sigFormat": "application/jose",
        "when": "2026-11-20T10:00:00+07:00",
        "data": base64.b64encode(f"{header_segment(header)}..{signature}".encode()).decode(),
    }}  # fmt: skip
    result = verify(forged, anchors=[ANCHOR.root.cert], at=LATER)
    assert not result.ok and result.failures


def test_report_lists_every_check(signed: dict[str, Any], chain: Chain) -> None:
    lines = verify(signed, anchors=[chain.root.cert], at=LATER).report().splitlines()
    assert len(lines) == len(ORDER)
    assert lines[0] == "✓ signature: tài liệu có chữ ký / the document carries a signature"
    assert lines[8].startswith("! revocation: ")
    tampered = copy.deepcopy(signed)
    tampered["entry"][0]["resource"]["title"] = "x"
    assert f"✗ content: {CHANGED}" in verify(tampered, anchors=[chain.root.cert], at=LATER).report()


def test_at_must_have_an_offset(signed: dict[str, Any], chain: Chain) -> None:
    with pytest.raises(ValueError, match="offset"):
        verify(signed, anchors=[chain.root.cert], at=datetime(2026, 11, 30))
