"""The provincial CA and key custody (signing/pki.py), checked with `cryptography` directly."""

from __future__ import annotations

import itertools
import stat
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from benhan.fhir.primitives import now as clock
from benhan.signing import pki
from benhan.signing.pki_commands import pki_app
from benhan.signing.signers import Signer
from benhan.store.database import Store
from benhan.store.schema import pki_certificate, resource
from tests.signing.certs import NOW, Chain, make_chain
from tests.signing.certs import issue as issue_cert

DOCTOR = "Practitioner/bs-an"


@pytest.fixture(autouse=True)
def var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own var directory, and no passphrase in the environment."""
    monkeypatch.setenv("BENHAN_VAR", str(tmp_path / "var"))
    monkeypatch.delenv(pki.PASSPHRASE_ENV, raising=False)
    return tmp_path / "var"


def issue_doctor(store: Store, **options: Any) -> pki.CertificateRecord:
    values: dict[str, Any] = {
        "kind": "practitioner",
        "owner": DOCTOR,
        "common_name": "BS. Nguyễn Văn An",
        "facility": "27001",
        "organization": "Bệnh viện Đa khoa tỉnh Bắc Ninh",
    }
    with store.begin() as conn:
        return pki.issue(conn, **{**values, **options})


def signer(store: Store, owner: str = DOCTOR, at: datetime | None = None) -> Signer:
    with store.read() as conn:
        return pki.signer_for(conn, owner, at=at)


def refusal(
    store: Store, owner: str = DOCTOR, at: datetime | None = None
) -> pki.NoUsableCertificate:
    with pytest.raises(pki.NoUsableCertificate) as caught:
        signer(store, owner, at)
    return caught.value


def verify_jose(certificate: x509.Certificate, data: bytes, signature: bytes) -> None:
    """Raises InvalidSignature unless `signature` is the JOSE signature of `data`."""
    public = certificate.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        assert len(signature) == 64
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        public.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def ec_key(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    public = certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return public


def audit_details(store: Store) -> list[str]:
    with store.read() as conn:
        rows = conn.execute(sa.select(resource.c.content).where(resource.c.rtype == "AuditEvent"))
        events = [c if isinstance(c, dict) else orjson.loads(c) for (c,) in rows]
    return [e.get("outcomeDesc", "") for e in events if e["subtype"][0]["code"] == "110137"]


# ---------------------------------------------------------------- the CA and what it issues


def test_issued_certificate_chains_to_the_trust_anchor(store: Store) -> None:
    record = issue_doctor(store)
    leaf = record.certificate
    chain = signer(store).chain
    with store.read() as conn:
        anchors = pki.trust_anchors(conn)
    assert chain[0] == leaf and len(chain) == 3 and chain[-1] in anchors
    for child, parent in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)  # raises if not
        child_aki = child.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        parent_ski = parent.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert child_aki.key_identifier == parent_ski.digest
        assert parent.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    chain[-1].verify_directly_issued_by(chain[-1])  # the root is self-signed
    assert len(anchors) == 1


def test_issued_certificate_is_a_vietnamese_document_signing_certificate(store: Store) -> None:
    leaf = issue_doctor(store).certificate
    subject = {a.oid: a for a in leaf.subject}
    assert subject[NameOID.COUNTRY_NAME].value == "VN"
    assert subject[NameOID.ORGANIZATION_NAME].value == "Bệnh viện Đa khoa tỉnh Bắc Ninh"
    assert subject[NameOID.COMMON_NAME].value == "BS. Nguyễn Văn An"
    assert subject[NameOID.USER_ID].value == DOCTOR
    assert subject[NameOID.COMMON_NAME]._type == x509.name._ASN1Type.UTF8String
    assert leaf.version == x509.Version.v3
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_cert_sign and not usage.value.key_encipherment
    purposes = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert pki.DOCUMENT_SIGNING in purposes and ExtendedKeyUsageOID.SERVER_AUTH not in purposes
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= timedelta(days=730, minutes=1)


def test_ca_is_created_once(store: Store) -> None:
    with store.begin() as conn:
        first = pki.ensure_ca(conn, name="Sở Y tế Bắc Ninh")
    with store.begin() as conn:
        again = pki.ensure_ca(conn, name="another name")
        roots = conn.scalar(sa.select(sa.func.count()).where(pki_certificate.c.kind == "root"))
    assert (again.root.fingerprint, again.issuing.fingerprint) == (
        first.root.fingerprint,
        first.issuing.fingerprint,
    )
    assert roots == 1 and first.root.trust_anchor and not first.issuing.trust_anchor
    assert first.root.algorithm == first.issuing.algorithm == "ES256"
    assert first.root.not_after - first.root.not_before > timedelta(days=365 * 19)
    constraints = first.issuing.certificate.extensions.get_extension_for_class(
        x509.BasicConstraints
    )
    assert constraints.value.path_length == 0


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_both_algorithms_sign_what_the_public_key_verifies(store: Store, algorithm: str) -> None:
    record = issue_doctor(store, algorithm=algorithm)
    s = signer(store)
    assert s.algorithm == algorithm == record.algorithm
    data = b'{"resourceType":"Bundle","type":"document"}'
    signature = s.sign(data)
    verify_jose(record.certificate, data, signature)
    with pytest.raises(InvalidSignature):
        verify_jose(record.certificate, data.replace(b"document", b"documenT"), signature)
    expected = ec.EllipticCurvePublicKey if algorithm == "ES256" else rsa.RSAPublicKey
    assert isinstance(record.certificate.public_key(), expected)


def test_newest_usable_certificate_signs(store: Store) -> None:
    older = issue_doctor(store, now=clock() - timedelta(days=10))
    newer = issue_doctor(store)
    assert signer(store).chain[0] == newer.certificate
    with store.begin() as conn:
        pki.revoke(conn, newer.serial_hex, reason="superseded")
    assert signer(store).chain[0] == older.certificate  # the older one is still good


# ---------------------------------------------------------------- refusals: expiry, revocation


def test_expired_and_not_yet_valid_certificates_are_refused(store: Store) -> None:
    start = clock() - timedelta(days=40)
    with store.begin() as conn:
        pki.ensure_ca(conn, now=start - timedelta(days=1))
    record = issue_doctor(store, now=start, days=30)
    expired = refusal(store)
    assert expired.why == "expired" and record.serial_hex in expired.message
    assert "hết hạn" in expired.message and "expired on" in expired.message
    early = refusal(store, at=start - timedelta(hours=1))
    assert early.why == "not-yet-valid" and "valid only from" in early.message
    assert signer(store, at=start + timedelta(days=29)).chain[0] == record.certificate


def test_revoked_certificate_is_refused_and_listed_in_the_crl(store: Store) -> None:
    record = issue_doctor(store)
    kept = issue_doctor(store, owner="Practitioner/bs-binh", common_name="BS. Trần Thị Bình")
    with store.begin() as conn:
        revoked = pki.revoke(conn, record.serial_hex, reason="keyCompromise")
    assert revoked.revocation is not None
    assert revoked.revocation.reason is x509.ReasonFlags.key_compromise
    refused = refusal(store)
    assert refused.why == "revoked" and "thu hồi" in refused.message
    assert "keyCompromise" in refused.message
    with store.read() as conn:
        crl = pki.crl(conn)
        ca = pki.current_ca(conn)
    assert ca is not None
    assert crl.issuer == ca.issuing.certificate.subject
    assert crl.is_signature_valid(ec_key(ca.issuing.certificate))
    assert not crl.is_signature_valid(ec_key(ca.root.certificate))
    entry = crl.get_revoked_certificate_by_serial_number(record.serial)
    assert entry is not None and len(crl) == 1
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value == (
        "keyCompromise"
    )
    assert crl.get_revoked_certificate_by_serial_number(kept.serial) is None
    assert crl.next_update_utc is not None and crl.next_update_utc > crl.last_update_utc
    assert signer(store, "Practitioner/bs-binh").chain[0] == kept.certificate


def test_crls_cover_the_issuing_ca_too(store: Store) -> None:
    issue_doctor(store)
    with store.read() as conn:
        issuing_crl, root_crl = pki.crls(conn)
        ca = pki.current_ca(conn)
    assert ca is not None
    assert root_crl.issuer == ca.root.certificate.subject and len(root_crl) == 0
    assert root_crl.is_signature_valid(ec_key(ca.root.certificate))
    assert issuing_crl.is_signature_valid(ec_key(ca.issuing.certificate))


def test_never_issued_owner_is_refused(store: Store) -> None:
    issue_doctor(store)
    refused = refusal(store, "Practitioner/nobody")
    assert refused.why == "never-issued" and "Practitioner/nobody" in refused.message


@pytest.mark.parametrize(
    ("serial", "reason", "says"),
    [
        ("ZZ12", "keyCompromise", "hex"),
        ("ABCDEF0123", "keyCompromise", "not found"),
        (None, "certificateHold", "reason must be one of"),
        (None, "lost it", "reason must be one of"),
    ],
)
def test_revoke_refuses_bad_input(store: Store, serial: str | None, reason: str, says: str) -> None:
    record = issue_doctor(store)
    with pytest.raises(pki.PkiError) as caught, store.begin() as conn:
        pki.revoke(conn, serial or record.serial_hex, reason=reason)
    assert says in caught.value.message
    assert signer(store).chain[0] == record.certificate  # nothing changed


def test_revoke_refuses_twice_ca_certificates_and_the_future(store: Store) -> None:
    record = issue_doctor(store)
    with store.begin() as conn:
        pki.revoke(conn, f"0x{record.serial:x}", reason="key_compromise")  # as people type it
        ca = pki.current_ca(conn)
    assert ca is not None
    cases: list[tuple[str, dict[str, Any], str]] = [
        (record.serial_hex, {}, "already revoked"),
        (ca.issuing.serial_hex, {}, "CA certificate"),
        (record.serial_hex, {"at": clock() + timedelta(days=1)}, "future"),
    ]
    for serial, extra, says in cases:
        with pytest.raises(pki.PkiError) as caught, store.begin() as conn:
            pki.revoke(conn, serial, reason="superseded", **extra)
        assert says in caught.value.message
    with store.read() as conn:
        assert len(pki.crl(conn)) == 1


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"kind": "nurse"}, "unknown kind"),
        ({"owner": "Patient/p1"}, "owner must be"),
        ({"owner": "Organization/27001"}, "owner type mismatch"),
        ({"kind": "facility", "owner": "Organization/27002"}, "owner is not facility 27001"),
        ({"facility": "2700"}, "5 digits"),
        ({"common_name": "  "}, "common_name must have"),
        ({"common_name": "x" * 65}, "common_name must have"),
        ({"days": 0}, "days must be"),
        ({"days": 9000}, "days must be"),
        ({"algorithm": "HS256"}, "ES256 or RS256"),
        ({"now": datetime(2026, 1, 1)}, "offset"),
    ],
)
def test_issue_refuses_bad_input(store: Store, options: dict[str, Any], says: str) -> None:
    with pytest.raises(pki.PkiError) as caught:
        issue_doctor(store, **options)
    assert says in caught.value.message
    with store.read() as conn:
        assert pki.certificates(conn) == []  # nothing stored, not even the CA


def test_issue_before_the_ca_existed_is_refused(store: Store) -> None:
    with store.begin() as conn:
        pki.ensure_ca(conn)
    with pytest.raises(pki.PkiError, match="not valid then"):
        issue_doctor(store, now=clock() - timedelta(days=3))


# ---------------------------------------------------------------- the key passphrase


def test_keys_are_stored_encrypted_under_a_private_passphrase_file(store: Store, var: Path) -> None:
    record = issue_doctor(store)
    path = var / pki.PASSPHRASE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    passphrase = path.read_bytes().strip()
    assert len(passphrase) >= 32 and pki.key_passphrase() == passphrase  # made once, kept
    with store.read() as conn:
        stored = conn.scalars(sa.select(pki_certificate.c.private_key)).all()
    assert len(stored) == 3 and all("BEGIN ENCRYPTED PRIVATE KEY" in k for k in stored)
    assert record.encrypted_key is not None and record.encrypted_key not in repr(record)
    with pytest.raises(TypeError):  # no key opens without the passphrase
        serialization.load_pem_private_key(record.encrypted_key.encode(), None)
    key = serialization.load_pem_private_key(record.encrypted_key.encode(), passphrase)
    assert key.public_key() == record.certificate.public_key()
    assert not any(passphrase.decode() in d for d in audit_details(store))


def test_a_passphrase_file_others_can_read_is_refused(store: Store, var: Path) -> None:
    issue_doctor(store)
    (var / pki.PASSPHRASE_FILE).chmod(0o644)
    with pytest.raises(pki.KeyPassphraseError) as caught:
        signer(store)
    assert "chmod 600" in caught.value.message


def test_the_environment_passphrase_is_used_and_a_wrong_one_fails_clearly(
    store: Store, var: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(pki.PASSPHRASE_ENV, "đúng-mật-khẩu-1")
    record = issue_doctor(store)
    assert not (var / pki.PASSPHRASE_FILE).exists()
    assert signer(store).sign(b"x")
    monkeypatch.setenv(pki.PASSPHRASE_ENV, "sai-mật-khẩu-2")
    with pytest.raises(pki.KeyPassphraseError) as caught:
        signer(store)
    message = caught.value.message
    assert "sai mật khẩu khóa" in message and "wrong key passphrase" in message
    assert record.serial_hex in message and "mật-khẩu" not in message


# ---------------------------------------------------------------- certificates from a licensed CA


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, password: bytes = b"") -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)  # fmt: skip


def test_import_of_a_licensed_chain_signs_and_trusts_its_root_only_when_asked(
    store: Store,
) -> None:
    chain = make_chain("BS. Lê Văn Cường")
    full = pem(chain.leaf.cert, chain.intermediate.cert, chain.root.cert)
    with store.begin() as conn:
        record = pki.import_certificate(
            conn, full, owner="Practitioner/bs-cuong", facility="27001",
            key=key_pem(chain.leaf.key, b"from-the-ca"), key_password=b"from-the-ca", at=NOW,
        )  # fmt: skip
        assert chain.root.cert not in pki.trust_anchors(conn)
    s = signer(store, "Practitioner/bs-cuong", at=NOW)
    assert s.chain == [chain.leaf.cert, chain.intermediate.cert, chain.root.cert]
    verify_jose(chain.leaf.cert, b"abc", s.sign(b"abc"))
    assert record.encrypted_key and "ENCRYPTED" in record.encrypted_key
    second = make_chain("Bệnh viện Đa khoa tỉnh")
    with store.begin() as conn:
        pki.import_certificate(
            conn, pem(second.leaf.cert, second.intermediate.cert, second.root.cert),
            owner="Organization/27002", facility="27002", key=key_pem(second.leaf.key),
            trust_root=True, at=NOW,
        )  # fmt: skip
        anchors = pki.trust_anchors(conn)
    assert second.root.cert in anchors and chain.root.cert not in anchors
    assert len([d for d in audit_details(store) if "imported" in d]) == 2


def test_import_below_a_stored_issuer_and_with_a_token_key(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENHAN_PKCS11_PIN", "1234")
    chain = make_chain()
    with store.begin() as conn:
        full = pem(chain.leaf.cert, chain.intermediate.cert, chain.root.cert)
        pki.import_certificate(conn, full, owner="Practitioner/a", facility="27001", at=NOW)
    sibling = issue_cert("BS. Phạm Thu", chain.intermediate, ca=False)
    uri = "pkcs11:token=BV;object=bs-thu?module-path=/nonexistent/libp11.so"
    with store.begin() as conn:
        record = pki.import_certificate(conn, pem(sibling.cert), owner="Practitioner/b",
                                        facility="27001", key=uri, at=NOW)  # fmt: skip
    assert record.key_held == "pkcs11" and record.issuer is not None
    no_key = refusal(store, "Practitioner/a", at=NOW)
    assert no_key.why == "no-key" and "no private key" in no_key.message
    with pytest.raises(pki.PkiError, match="libp11"):  # tries the token the URI names
        signer(store, "Practitioner/b", at=NOW)


def _broken(a: Chain, b: Chain) -> dict[str, tuple[dict[str, Any], str]]:
    """Imports of chain `a` spoilt one way each (`b` is an unrelated chain): option, message."""
    leaf, mid, root = a.leaf.cert, a.intermediate.cert, a.root.cert
    selfie = issue_cert("BS. Tự Ký", None, ca=False)
    return {
        "not pem": ({"chain_pem": b"-----BEGIN CERTIFICATE-----\nnope\n"}, "no PEM"),
        "wrong issuer": ({"chain_pem": pem(leaf, b.intermediate.cert, b.root.cert)},
                         "certificate 1 is not signed by certificate 2"),
        "re-ordered": ({"chain_pem": pem(mid, leaf, root)}, "is not signed by"),
        "no root": ({"chain_pem": pem(leaf, mid)}, "does not reach a root"),
        "trust, no root": ({"chain_pem": pem(leaf, mid), "trust_root": True}, "no root in the"),
        "CA as signer": ({"chain_pem": pem(mid, root)}, "must not be a CA"),
        "other key": ({"key": key_pem(b.leaf.key)}, "does not match"),
        "key password": ({"key": key_pem(a.leaf.key, b"x"), "key_password": b"y"}, "password"),
        "pin in uri": ({"key": "pkcs11:token=t;object=k?pin-value=1234"}, "without a PIN"),
        "bad owner": ({"owner": "Patient/1"}, "owner must be"),
        "expired": ({"at": NOW + timedelta(days=400)}, "not valid now"),
        "self-signed": ({"chain_pem": pem(selfie.cert), "key": key_pem(selfie.key)},
                        "self-signed certificate has no CA"),
    }  # fmt: skip


BROKEN = ["not pem", "wrong issuer", "re-ordered", "no root", "trust, no root", "CA as signer",
          "other key", "key password", "pin in uri", "bad owner", "expired",
          "self-signed"]  # fmt: skip


@pytest.mark.parametrize("case", BROKEN)
def test_import_refuses_broken_chains_and_keys(store: Store, case: str) -> None:
    a = make_chain("BS. A")
    options, says = _broken(a, make_chain("BS. B"))[case]
    values: dict[str, Any] = {
        "chain_pem": pem(a.leaf.cert, a.intermediate.cert, a.root.cert),
        "owner": "Practitioner/a", "facility": "27001", "key": key_pem(a.leaf.key), "at": NOW,
        **options,
    }  # fmt: skip
    chain_pem = values.pop("chain_pem")
    with pytest.raises(pki.PkiError) as caught, store.begin() as conn:
        pki.import_certificate(conn, chain_pem, **values)
    assert says in caught.value.message
    with store.read() as conn:
        assert pki.certificates(conn) == []


def test_importing_the_same_certificate_twice_is_refused(store: Store) -> None:
    a = make_chain()
    chain_pem = pem(a.leaf.cert, a.intermediate.cert, a.root.cert)
    with store.begin() as conn:
        pki.import_certificate(conn, chain_pem, owner="Practitioner/a", facility="27001", at=NOW)
    with pytest.raises(pki.PkiError, match="already imported"), store.begin() as conn:
        pki.import_certificate(conn, chain_pem, owner="Practitioner/a", facility="27001", at=NOW)


# ---------------------------------------------------------------- audit


def test_issue_revoke_and_ca_creation_are_security_events(store: Store) -> None:
    record = issue_doctor(store)
    with store.begin() as conn:
        pki.revoke(conn, record.serial_hex, reason="affiliationChanged")
    details = audit_details(store)
    assert any(d.startswith("provincial CA created") for d in details)
    assert any(f"{record.serial_hex} issued to {DOCTOR}" in d for d in details)
    assert any(f"{record.serial_hex} of {DOCTOR} revoked: affiliationChanged" in d for d in details)


# ---------------------------------------------------------------- benhan pki …


@pytest.fixture
def cli(store: Store, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BENHAN_DATABASE_URL", store.engine.url.render_as_string(False))
    monkeypatch.setenv("BENHAN_FACILITY", "27001")
    return CliRunner()


def test_cli_init_issue_list_revoke_crl_anchors(
    cli: CliRunner, store: Store, tmp_path: Path
) -> None:
    assert cli.invoke(pki_app, ["init", "--name", "Sở Y tế Bắc Ninh"]).exit_code == 0
    again = cli.invoke(pki_app, ["init"])
    assert again.exit_code == 0 and "already existed" in again.output
    issued = cli.invoke(pki_app, ["issue", "--kind", "practitioner", "--owner", DOCTOR,
                                  "--name", "BS. Nguyễn Văn An", "--facility", "27001",
                                  "--algorithm", "RS256", "--days", "365"])  # fmt: skip
    assert issued.exit_code == 0, issued.output
    with store.read() as conn:
        (record,) = pki.certificates(conn, owner=DOCTOR)
    assert record.algorithm == "RS256"
    listed = cli.invoke(pki_app, ["list"])
    assert listed.exit_code == 0 and record.serial_hex in listed.output
    revoked = cli.invoke(pki_app, ["revoke", record.serial_hex, "--reason", "keyCompromise"])
    assert revoked.exit_code == 0, revoked.output
    der, as_pem = tmp_path / "ca.crl", tmp_path / "ca-crl.pem"
    assert cli.invoke(pki_app, ["crl", "--output", str(der)]).exit_code == 0
    assert cli.invoke(pki_app, ["crl", "--output", str(as_pem)]).exit_code == 0
    for crl in (
        x509.load_der_x509_crl(der.read_bytes()),
        x509.load_pem_x509_crl(as_pem.read_bytes()),
    ):
        assert crl.get_revoked_certificate_by_serial_number(record.serial) is not None
    anchors = tmp_path / "anchors.pem"
    assert cli.invoke(pki_app, ["anchors", "--output", str(anchors)]).exit_code == 0
    (root,) = x509.load_pem_x509_certificates(anchors.read_bytes())
    assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "Sở Y tế Bắc Ninh"
    )


def test_cli_import_with_a_key_file(cli: CliRunner, store: Store, tmp_path: Path) -> None:
    a = make_chain()
    chain_file, key_file = tmp_path / "chain.pem", tmp_path / "key.pem"
    chain_file.write_bytes(pem(a.leaf.cert, a.intermediate.cert, a.root.cert))
    key_file.write_bytes(key_pem(a.leaf.key))
    args = ["import", str(chain_file), "--owner", "Practitioner/a", "--facility", "27001",
            "--key", str(key_file), "--trust-root"]  # fmt: skip
    result = cli.invoke(pki_app, args)
    assert result.exit_code == 0, result.output
    with store.read() as conn:
        assert a.root.cert in pki.trust_anchors(conn)
        assert pki.certificates(conn, owner="Practitioner/a")[0].key_held == "benhan"


def test_cli_refuses_bad_input_with_exit_code_2(
    cli: CliRunner, store: Store, tmp_path: Path
) -> None:
    no_ca = cli.invoke(pki_app, ["crl", "--output", str(tmp_path / "x.crl")])
    assert no_ca.exit_code == 2 and "pki init" in no_ca.output
    assert not (tmp_path / "x.crl").exists()
    assert cli.invoke(pki_app, ["anchors", "--output", str(tmp_path / "a.pem")]).exit_code == 2
    bad = [
        ["issue", "--kind", "nurse", "--owner", DOCTOR, "--name", "X", "--facility", "27001"],
        ["issue", "--kind", "practitioner", "--owner", DOCTOR, "--name", "X",
         "--facility", "27001", "--days", "-5"],
        ["revoke", "ABC123", "--reason", "keyCompromise"],
        ["revoke", "not-hex", "--reason", "keyCompromise"],
        ["import", str(tmp_path / "missing.pem"), "--owner", DOCTOR, "--facility", "27001"],
        ["crl", "--output", str(tmp_path / "x.crl"), "--format", "json"],
    ]  # fmt: skip
    for args in bad:
        result = cli.invoke(pki_app, args)
        assert result.exit_code == 2, (args, result.output)
    refused = cli.invoke(pki_app, bad[0])
    assert "unknown kind" in refused.output
    with store.read() as conn:
        assert pki.certificates(conn) == []  # nothing changed, not even a CA
    assert cli.invoke(pki_app, ["init"]).exit_code == 0
    unwritable = tmp_path / "no-such-dir" / "ca.crl"
    result = cli.invoke(pki_app, ["crl", "--output", str(unwritable)])
    assert result.exit_code == 2 and "cannot write" in result.output


@pytest.mark.parametrize(
    ("text", "value"), [("0A:1B", 0x0A1B), ("0x0a1b", 0xA1B), ("a1 b2", 0xA1B2), (12, 12)]
)
def test_serials_are_read_as_people_copy_them(text: str | int, value: int) -> None:
    assert pki.parse_serial(text) == value


@pytest.mark.parametrize("text", ["", "g1", "0x", "1" * 41])
def test_serials_that_are_not_hex_are_refused(text: str) -> None:
    with pytest.raises(pki.PkiError, match="hexadecimal"):
        pki.parse_serial(text)
