"""Checking a signed PDF offline (pyHanko's validator), by `benhan verify` too, and the same files
through an independent tool (poppler's pdfsig)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from typer.testing import CliRunner

from benhan.cli import app
from benhan.signing.pdf import render_pdf, sign_pdf
from benhan.signing.pdf_verify import verify_pdf
from benhan.signing.verify import Verification
from tests.signing.certs import NOW, Chain, Issued, make_chain
from tests.signing.test_pdf import discharge_paper

LATER = NOW + timedelta(days=3)  # the verifier's clock: after signing and after the CRLs
_SUPERSEDED = x509.ReasonFlags.superseded


@pytest.fixture(scope="module")
def chain() -> Chain:
    return make_chain()


@pytest.fixture(scope="module")
def signed(chain: Chain) -> bytes:
    return sign(chain)


def sign(chain: Chain, pdf: bytes | None = None, when: datetime = NOW) -> bytes:
    return sign_pdf(
        pdf if pdf is not None else render_pdf(discharge_paper()),
        chain.signer(),
        reason="Ký giấy ra viện",
        location="Bắc Ninh",
        name="Nguyễn Văn An",
        when=when,
    )


def crl(
    issuer: Issued,
    revoked: tuple[tuple[x509.Certificate, datetime, x509.ReasonFlags], ...] = (),
    at: datetime = NOW + timedelta(days=2),
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(at)
        .next_update(at + timedelta(days=7))
    )
    for cert, when, reason in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
        entry = entry.revocation_date(when).add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(issuer.key, hashes.SHA256())


def crls(
    chain: Chain, *revoked: tuple[datetime, x509.ReasonFlags]
) -> list[x509.CertificateRevocationList]:
    """The issuing CA's CRL (revoking the signer as asked) and the root's."""
    entries = tuple((chain.leaf.cert, when, reason) for when, reason in revoked)
    return [crl(chain.intermediate, entries), crl(chain.root)]


def check(
    pdf: bytes, chain: Chain, crls: list[x509.CertificateRevocationList] | None = None
) -> Verification:
    return verify_pdf(pdf, anchors=[chain.root.cert], crls=crls or [], at=LATER)


def failed(result: Verification) -> list[str]:
    return [c.name for c in result.failures]


def one_byte_changed(pdf: bytes) -> bytes:
    """A byte of the producer string, inside the first signed range, changed."""
    out = bytearray(pdf)
    at = out.index(b"ReportLab PDF Library") + 5
    out[at : at + 1] = b"x"
    return bytes(out)


def updated(pdf: bytes) -> bytes:
    """An incremental update after signing that adds text to the first page."""
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    text = writer.add_object(generic.StreamObject(stream_data=b"BT 100 100 Td (FORGED) Tj ET"))
    page[generic.NameObject("/Contents")] = generic.ArrayObject([page["/Contents"], text])
    writer.update_container(page)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


# ---------------------------------------------------------------- verify_pdf


def test_a_signed_pdf_passes_every_check(signed: bytes, chain: Chain) -> None:
    result = check(signed, chain, crls=crls(chain))
    assert result.ok and not result.warnings, result.report()
    names = [c.name for c in result.checks]
    assert names == ["signature", "content", "coverage", "signing-time", "trust", "validity",
                     "revocation"]  # fmt: skip
    assert result.signer == chain.leaf.cert and result.signed_at == NOW
    assert "Provincial test root" in result.named("trust")[0].message


def test_without_crls_revocation_is_a_warning(signed: bytes, chain: Chain) -> None:
    result = check(signed, chain)
    assert result.ok and [c.name for c in result.warnings] == ["revocation"]
    partial = check(signed, chain, crls=crls(chain)[:1])  # no CRL for the issuing CA itself
    assert partial.ok and [c.name for c in partial.warnings] == ["revocation"]


def test_one_changed_byte_fails_the_content(signed: bytes, chain: Chain) -> None:
    result = check(one_byte_changed(signed), chain, crls=crls(chain))
    assert failed(result) == ["content"]
    assert "nội dung đã bị thay đổi" in result.failures[0].message


def test_an_incremental_update_after_signing_is_reported(signed: bytes, chain: Chain) -> None:
    result = check(updated(signed), chain)
    assert failed(result) == ["coverage"]
    assert "changed after signing" in result.failures[0].message
    assert result.named("content")[0].ok  # the signed revision itself is intact


def test_a_countersignature_leaves_the_first_standing(signed: bytes, chain: Chain) -> None:
    twice = sign(chain, signed)
    result = check(twice, chain, crls=crls(chain))
    assert result.ok, result.report()
    [extended] = result.warnings
    assert extended.name == "coverage" and extended.message.startswith("ChuKy1: ")
    assert len(result.named("content")) == 2


def test_an_untrusted_signer_fails(signed: bytes) -> None:
    # Another CA of the same name: the chain is found, its signatures do not hold.
    result = verify_pdf(signed, anchors=[make_chain().root.cert], at=LATER)
    assert failed(result) == ["trust"]
    # No anchor at all: no chain is found.
    result = verify_pdf(signed, anchors=[], at=LATER)
    assert failed(result) == ["trust"] and "BS. Nguyễn Văn An" in result.failures[0].message
    assert "does not lead to a trusted root" in result.failures[0].message


def test_a_signer_revoked_before_signing_fails(signed: bytes, chain: Chain) -> None:
    result = check(signed, chain, crls=crls(chain, (NOW - timedelta(days=1), _SUPERSEDED)))
    assert failed(result) == ["revocation"]
    assert "before the signing time" in result.failures[0].message


def test_a_revocation_after_signing_is_a_note_unless_the_key_leaked(
    signed: bytes, chain: Chain
) -> None:
    later = check(signed, chain, crls=crls(chain, (NOW + timedelta(days=1), _SUPERSEDED)))
    assert later.ok and [c.name for c in later.warnings] == ["revocation"]
    assert "the signature stands" in later.warnings[0].message
    leaked = (NOW + timedelta(days=1), x509.ReasonFlags.key_compromise)
    result = check(signed, chain, crls=crls(chain, leaked))
    assert failed(result) == ["revocation"] and "compromised" in result.failures[0].message


def test_a_certificate_expired_at_the_signing_time_fails(chain: Chain) -> None:
    late = NOW + timedelta(days=400)  # the leaf is valid for 365 days from NOW - 30
    result = verify_pdf(sign(chain, when=late), anchors=[chain.root.cert], at=late)
    assert failed(result) == ["validity"] and "BS. Nguyễn Văn An" in result.failures[0].message


def test_a_signing_time_in_the_future_fails(signed: bytes, chain: Chain) -> None:
    result = verify_pdf(signed, anchors=[chain.root.cert], at=NOW - timedelta(hours=1))
    assert "signing-time" in failed(result)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a PDF"),
        (b'{"resourceType": "Bundle"}', "not a PDF"),
        (b"%PDF-1.4\ngarbage", "unreadable PDF"),
    ],
)
def test_what_is_no_signed_pdf_fails_without_raising(
    chain: Chain, data: bytes, message: str
) -> None:
    result = verify_pdf(data, anchors=[chain.root.cert])
    assert failed(result) == ["signature"] and message in result.failures[0].message


def test_an_unsigned_pdf_fails(chain: Chain) -> None:
    result = verify_pdf(render_pdf(discharge_paper()), anchors=[chain.root.cert])
    assert failed(result) == ["signature"] and "no signature" in result.failures[0].message


# ---------------------------------------------------------------- benhan verify


def test_benhan_verify_checks_a_pdf_and_says_what_failed(
    signed: bytes, chain: Chain, tmp_path: Path
) -> None:
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(chain.root.cert.public_bytes(Encoding.PEM))
    revocations = []
    for i, c in enumerate(crls(chain)):
        revocations += ["--crl", str(tmp_path / f"{i}.crl")]
        (tmp_path / f"{i}.crl").write_bytes(c.public_bytes(Encoding.DER))
    runner = CliRunner()

    def run(name: str, data: bytes) -> tuple[int, str]:
        (tmp_path / name).write_bytes(data)
        out = runner.invoke(app, ["verify", str(tmp_path / name), "--trust", str(anchors),
                                  *revocations])  # fmt: skip
        return out.exit_code, " ".join(out.output.split())

    code, output = run("good.pdf", signed)
    assert code == 0 and "HỢP LỆ / VALID" in output and "✗" not in output
    code, output = run("bad.pdf", one_byte_changed(signed))
    assert code == 1 and "content" in output and "KHÔNG HỢP LỆ" in output
    code, output = run("updated.pdf", updated(signed))
    assert code == 1 and "coverage" in output
    code, output = run("junk.pdf", b"%PDF-1.7 not really")
    assert code == 1 and "unreadable PDF" in output


# ---------------------------------------------------------------- an independent tool


def pdfsig(pdf: bytes, tmp_path: Path) -> str:
    tool = shutil.which("pdfsig")
    if tool is None:
        pytest.skip("pdfsig is absent: install the Debian package poppler-utils")
    path = tmp_path / "checked.pdf"
    path.write_bytes(pdf)
    # -nocert: poppler trusts NSS's roots, not ours; the certificates are pyHanko's to judge.
    out = subprocess.run([tool, "-nocert", str(path)], capture_output=True, check=True)
    return out.stdout.decode("utf-8")


def test_poppler_agrees(signed: bytes, chain: Chain, tmp_path: Path) -> None:
    good = pdfsig(signed, tmp_path)
    assert "Signature is Valid." in good and "- Total document signed" in good
    assert "BS. Nguyễn Văn An" in good
    assert "Digest Mismatch." in pdfsig(one_byte_changed(signed), tmp_path)
    assert check(one_byte_changed(signed), chain).failures  # and so do we
    later = pdfsig(updated(signed), tmp_path)
    assert "Signature is Valid." in later and "Not total document signed" in later
