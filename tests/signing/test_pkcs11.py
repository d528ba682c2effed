"""Signing with keys that stay in a PKCS#11 token (signing/pkcs11.py), against SoftHSM2."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from benhan.signing import pki
from benhan.signing.pkcs11 import Pkcs11Signer, parse_uri, signer_from_uri
from benhan.store.database import Store
from tests.signing.certs import NOW, Chain, make_chain, name, usage
from tests.signing.test_pki import pem, verify_jose

LIBRARY = os.environ.get("BENHAN_TEST_SOFTHSM", "/usr/lib/softhsm/libsofthsm2.so")
PIN, SO_PIN = "1234", "5678"
TOKEN, FRESH_TOKEN = "benhan-test", "benhan-fresh"


def _softhsm_missing() -> str | None:
    if shutil.which("softhsm2-util") is None:
        return "SoftHSM2 is not installed (Debian: apt-get install softhsm2): no softhsm2-util"
    if not Path(LIBRARY).exists():
        return f"SoftHSM2 library missing at {LIBRARY} (set BENHAN_TEST_SOFTHSM)"
    return None


@dataclass(frozen=True)
class Hsm:
    chain: Chain  # a CA whose intermediate certifies the token's keys
    ec_cert: x509.Certificate
    rsa_cert: x509.Certificate
    stranger_cert: x509.Certificate  # a certificate for a key that is not on the token


def _certify(
    public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey, chain: Chain
) -> x509.Certificate:
    """A leaf for a key whose private half we never see, issued by the test intermediate."""
    return (
        x509.CertificateBuilder()
        .subject_name(name("Token key"))
        .issuer_name(chain.intermediate.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(False), critical=True)
        .sign(chain.intermediate.key, hashes.SHA256())
    )


def _init_token(label: str) -> None:
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN,
         "--so-pin", SO_PIN],
        check=True, capture_output=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hsm]:
    missing = _softhsm_missing()
    if missing:
        pytest.skip(missing)
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass
    from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
    from pkcs11.util.rsa import encode_rsa_public_key

    home = tmp_path_factory.mktemp("softhsm")
    (home / "tokens").mkdir()
    conf = home / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))
        _init_token(TOKEN)
        _init_token(FRESH_TOKEN)
        token = pkcs11.lib(LIBRARY).get_token(token_label=TOKEN)
        with token.open(rw=True, user_pin=PIN) as session:
            curve = {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}
            params = session.create_domain_parameters(KeyType.EC, curve, local=True)
            ec_public, _ = params.generate_keypair(store=True, label="ec-key")
            rsa_public, _ = session.generate_keypair(KeyType.RSA, 2048, store=True, label="rsa-key")
            assert session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="ec-key")
            ec_key = serialization.load_der_public_key(encode_ec_public_key(ec_public))
            rsa_key = serialization.load_der_public_key(encode_rsa_public_key(rsa_public))
        assert isinstance(ec_key, ec.EllipticCurvePublicKey)
        assert isinstance(rsa_key, rsa.RSAPublicKey)
        chain = make_chain()
        stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
        yield Hsm(chain, _certify(ec_key, chain), _certify(rsa_key, chain),
                  _certify(stranger, chain))  # fmt: skip


def full_chain(hsm: Hsm, leaf: x509.Certificate) -> list[x509.Certificate]:
    return [leaf, hsm.chain.intermediate.cert, hsm.chain.root.cert]


def test_es256_on_the_token_gives_raw_r_s_the_certificate_verifies(hsm: Hsm) -> None:
    signer = Pkcs11Signer(LIBRARY, TOKEN, PIN, "ec-key", full_chain(hsm, hsm.ec_cert))
    assert signer.algorithm == "ES256" and signer.chain[0] == hsm.ec_cert
    data = b'{"resourceType":"Bundle","type":"document"}'
    signature = signer.sign(data)
    assert len(signature) == 64
    verify_jose(hsm.ec_cert, data, signature)
    with pytest.raises(InvalidSignature):
        verify_jose(hsm.ec_cert, data + b" ", signature)


def test_rs256_on_the_token_is_pkcs1_v15_over_sha256(hsm: Hsm) -> None:
    signer = Pkcs11Signer(LIBRARY, TOKEN, PIN, "rsa-key", full_chain(hsm, hsm.rsa_cert))
    assert signer.algorithm == "RS256"
    signature = signer.sign(b"abc")
    assert len(signature) == 256
    verify_jose(hsm.rsa_cert, b"abc", signature)
    with pytest.raises(InvalidSignature):
        verify_jose(hsm.rsa_cert, b"abd", signature)


def test_a_wrong_pin_is_refused_before_and_after_a_login(hsm: Hsm) -> None:
    chain = full_chain(hsm, hsm.ec_cert)
    with pytest.raises(pki.PkiError, match="wrong token PIN"):
        Pkcs11Signer(LIBRARY, FRESH_TOKEN, "0000", "ec-key", chain)  # the token says no
    Pkcs11Signer(LIBRARY, TOKEN, PIN, "ec-key", chain)
    with pytest.raises(pki.PkiError, match="wrong token PIN"):
        Pkcs11Signer(LIBRARY, TOKEN, "0000", "ec-key", chain)  # this process checks it


def test_a_missing_key_token_or_library_is_named(hsm: Hsm) -> None:
    chain = full_chain(hsm, hsm.ec_cert)
    with pytest.raises(pki.PkiError, match="no private key 'nope' on token 'benhan-test'"):
        Pkcs11Signer(LIBRARY, TOKEN, PIN, "nope", chain)
    with pytest.raises(pki.PkiError, match="no token 'absent'"):
        Pkcs11Signer(LIBRARY, "absent", PIN, "ec-key", chain)
    with pytest.raises(pki.PkiError, match="cannot load the PKCS#11 library"):
        Pkcs11Signer("/nonexistent/libp11.so", TOKEN, PIN, "ec-key", chain)
    with pytest.raises(pki.PkiError, match="chain is empty"):
        Pkcs11Signer(LIBRARY, TOKEN, PIN, "ec-key", [])


def test_a_token_key_that_is_not_the_certificates_is_refused(hsm: Hsm) -> None:
    with pytest.raises(pki.PkiError, match="does not match the certificate"):
        Pkcs11Signer(LIBRARY, TOKEN, PIN, "ec-key", full_chain(hsm, hsm.stranger_cert))


def test_signer_for_signs_with_an_imported_certificate_whose_key_is_on_the_token(
    hsm: Hsm, store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BENHAN_VAR", str(tmp_path))
    monkeypatch.setenv("BENHAN_PKCS11_PIN", PIN)
    uri = f"pkcs11:token={TOKEN};object=ec-key?module-path={LIBRARY}"
    with store.begin() as conn:
        record = pki.import_certificate(
            conn, pem(*full_chain(hsm, hsm.ec_cert)), owner="Practitioner/token-doctor",
            facility="27001", key=uri, at=NOW,
        )  # fmt: skip
        assert record.key_held == "pkcs11" and record.encrypted_key is None
    with store.read() as conn:
        signer = pki.signer_for(conn, "Practitioner/token-doctor", at=NOW)
    assert isinstance(signer, Pkcs11Signer)
    verify_jose(hsm.ec_cert, b"visit summary", signer.sign(b"visit summary"))


def test_the_pin_comes_from_the_environment_or_a_pin_source_file(
    hsm: Hsm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chain = full_chain(hsm, hsm.ec_cert)
    uri = f"pkcs11:token={TOKEN};object=ec-key?module-path={LIBRARY}"
    monkeypatch.delenv("BENHAN_PKCS11_PIN", raising=False)
    with pytest.raises(pki.PkiError, match="BENHAN_PKCS11_PIN is not set"):
        signer_from_uri(uri, chain)
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    assert signer_from_uri(f"{uri}&pin-source=file:{pin_file}", chain).algorithm == "ES256"


# ---------------------------------------------------------------- key URIs (no token needed)


def test_pkcs11_uris_are_read_per_rfc_7512() -> None:
    path, query = parse_uri("pkcs11:token=BV%20T%E1%BB%89nh;object=bs-an;type=private"
                            "?module-path=/usr/lib/x.so&pin-source=file:/run/pin")  # fmt: skip
    assert path == {"token": "BV Tỉnh", "object": "bs-an", "type": "private"}
    assert query == {"module-path": "/usr/lib/x.so", "pin-source": "file:/run/pin"}


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("https://sign.example/keys/1", "not a PKCS#11 URI"),
        ("pkcs11:object=k?module-path=/x.so", "lacks ['token']"),
        ("pkcs11:token=t", "lacks ['object', 'module-path']"),
    ],
)
def test_incomplete_pkcs11_uris_are_refused(
    uri: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BENHAN_PKCS11_MODULE", raising=False)
    with pytest.raises(pki.PkiError) as caught:
        signer_from_uri(uri, make_chain().signer().chain)
    assert says in caught.value.message
