"""Patients confirming receipt of a signed document: drawn, witnessed aloud, or with their own
digital signature; and every receipt the rules refuse, refused with nothing stored."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from benhan.access import Actor, role
from benhan.fhir.outcome import FhirError
from benhan.fhir.primitives import now
from benhan.signing import jws, pki, receipt
from benhan.signing.documents import build_document, store_document
from benhan.signing.signers import KeySigner
from benhan.signing.verify import verify
from benhan.store.database import Store
from benhan.store.schema import resource
from benhan.store.unit import unit
from tests.emr.test_visit import doctor
from tests.emr.world import OTHER_FACILITY
from tests.signing.certs import make_chain
from tests.signing.test_service import sign, signed_visit, signing_doctor, stored

CCCD = "027187000123"  # the patient's, as tests/emr/world.py registers her


def png(width: int = 40, height: int = 12) -> bytes:
    """A real PNG (a grey box), as a signature pad's canvas.toDataURL() gives one."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        receipt.PNG_MAGIC
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def signed(store: Store) -> tuple[str, str]:
    """A prescription signed by a doctor of the facility: (its id, the doctor)."""
    enc, author = signed_visit(store)
    return sign(store, author, kind="prescription", encounter=enc).id, author


def confirm(store: Store, author: str, bundle_id: str, **kw: Any) -> Any:
    with unit(store, signing_doctor(author), write=True) as repo:
        return receipt.confirm_receipt(repo, bundle_id, **kw)


def state(store: Store, author: str, bundle_id: str) -> receipt.ReceiptState:
    with unit(store, signing_doctor(author), write=False) as repo:
        return receipt.receipt_state(repo, bundle_id)


def provenances(store: Store) -> list[dict[str, Any]]:
    with store.read() as conn:
        q = sa.select(sa.cast(resource.c.content, sa.Text)).where(resource.c.rtype == "Provenance")
        return [json.loads(text) for text in conn.execute(q).scalars()]


def receipts(store: Store) -> list[dict[str, Any]]:
    return [
        p for p in provenances(store) if p["activity"]["coding"][0]["code"] == receipt.RECEIPT_CODE
    ]


def refused(store: Store, author: str, bundle_id: str, **kw: Any) -> receipt.ReceiptError:
    before = len(provenances(store))
    with pytest.raises(receipt.ReceiptError) as err:
        confirm(store, author, bundle_id, **kw)
    assert len(provenances(store)) == before, "a refused receipt stored something"
    return err.value


# ---------------------------------------------------------------- the three ways


def test_a_drawn_signature_confirms_a_prescription(store: Store, signed: tuple[str, str]) -> None:
    bid, author = signed
    assert state(store, author, bid).status == "needed"
    drawing = png()
    saved = confirm(store, author, bid, method="drawn", drawing=drawing, identity_check="cccd")
    found = state(store, author, bid)
    assert found.status == "confirmed" and found.kind == "prescription"
    [c] = found.confirmations
    patient = stored(store, author, "Composition", bid)["subject"]["reference"]
    assert (c.method, c.patient, c.recorded_by, c.identity_check) == (
        "drawn", patient, author, "cccd",
    )  # fmt: skip
    assert c.drawing == drawing and c.verification is None
    [p] = receipts(store)
    assert p["id"] == saved.id
    assert p["target"] == [{"reference": f"Bundle/{bid}/_history/1"},
                           {"reference": f"Composition/{bid}"}]  # fmt: skip
    sig = p["signature"][0]
    assert sig["type"][0]["code"] == jws.CONSENT and sig["who"] == {"reference": patient}
    assert sig["sigFormat"] == "image/png" and base64.b64decode(sig["data"]) == drawing
    assert [a["who"]["reference"] for a in p["agent"]] == [patient, author]
    assert p["agent"][0]["type"]["coding"][0]["code"] == "informant"
    assert p["agent"][1]["onBehalfOf"]["reference"].startswith("Organization/")
    with store.read() as conn:  # in the patient's compartment, though it targets a Bundle
        key = conn.execute(
            sa.select(resource.c.patient_key).where(resource.c.id == saved.id)
        ).scalar_one()
    assert f"Patient/{key}" == patient


def test_a_verbal_confirmation_is_witnessed_by_the_staff_member(
    store: Store, signed: tuple[str, str]
) -> None:
    bid, author = signed
    confirm(store, author, bid, method="verbal", identity_check="cccd-chip")
    [c] = state(store, author, bid).confirmations
    assert (c.method, c.identity_check, c.drawing) == ("verbal", "cccd-chip", b"")
    [p] = receipts(store)
    sig = p["signature"][0]
    assert sig["type"][0]["code"] == receipt.WITNESS
    assert sig["who"] == {"reference": author} and "data" not in sig
    assert p["extension"][0]["valueCoding"]["code"] == "cccd-chip"


def patient_signer(store: Store, uid: str = f"CCCD:{CCCD}") -> KeySigner:
    """A personal certificate for the patient from the province's CA, naming her CCCD as
    Vietnamese CAs do (UID=CCCD:…)."""
    key = ec.generate_private_key(ec.SECP256R1())
    with store.begin() as conn:
        ca = pki.ensure_ca(conn)
        issuing, root = ca.issuing.certificate, ca.root.certificate
        subject = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Nguyễn Thị Hương"),
            x509.NameAttribute(NameOID.USER_ID, uid),
        ])  # fmt: skip
        start = now() - timedelta(days=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuing.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(pki.private_key(ca.issuing), hashes.SHA256())
        )
    return KeySigner(key, [cert, issuing, root])


def test_the_patients_own_digital_signature_verifies(store: Store, signed: tuple[str, str]) -> None:
    bid, author = signed
    bundle = stored(store, author, "Bundle", bid)
    compact = receipt.patient_jws(bundle, patient_signer(store), now())
    confirm(store, author, bid, method="digital", signature=compact)
    [c] = state(store, author, bid).confirmations
    assert c.method == "digital" and c.verification is not None and c.verification.ok
    [p] = receipts(store)
    sig = p["signature"][0]
    assert sig["who"] == {"reference": c.patient} and sig["sigFormat"] == jws.SIG_FORMAT
    # The same checks as the document's own signature, over the same bytes, from the store.
    with store.read() as conn:
        anchors, crls = pki.trust_anchors(conn), pki.crls(conn)
    assert verify({**bundle, "signature": sig}, anchors=anchors, crls=crls).ok
    changed = {**bundle, "signature": sig, "timestamp": "2020-01-01T00:00:00+07:00"}
    failed = verify(changed, anchors=anchors, crls=crls)
    assert [f.name for f in failed.failures] == ["content"]


def test_a_patient_signature_that_does_not_hold_is_refused(
    store: Store, signed: tuple[str, str]
) -> None:
    bid, author = signed
    bundle = stored(store, author, "Bundle", bid)
    other = {**bundle, "timestamp": "2020-01-01T00:00:00+07:00"}
    err = refused(store, author, bid, method="digital",
                  signature=receipt.patient_jws(other, patient_signer(store), now()))  # fmt: skip
    assert err.rule == "signature-invalid" and err.status == 422
    assert any("nội dung đã bị thay đổi" in i.text for i in err.issues)
    stranger = make_chain("Nguyễn Thị Hương").signer()  # a CA the province does not trust
    err = refused(store, author, bid, method="digital",
                  signature=receipt.patient_jws(bundle, stranger, now()))  # fmt: skip
    assert err.rule == "signature-invalid"
    assert any("trusted root" in i.text for i in err.issues)
    someone = patient_signer(store, uid="CCCD:001099000001")
    err = refused(store, author, bid, method="digital",
                  signature=receipt.patient_jws(bundle, someone, now()))  # fmt: skip
    assert err.rule == "certificate-not-the-patient"
    for garbage in ("", "not-a-jws", "e30..c2ln"):  # e30 is "{}": no sigT
        rule = refused(store, author, bid, method="digital", signature=garbage).rule
        assert rule == ("no-jws" if not garbage else "bad-jws")


# ---------------------------------------------------------------- what the rules refuse


def test_the_rules_are_data_and_other_kinds_need_no_receipt(store: Store) -> None:
    assert {"discharge", "prescription"} == receipt.RECEIPT_KINDS
    enc, author = signed_visit(store)
    summary = sign(store, author, kind="visit-summary", encounter=enc).id
    assert state(store, author, summary).status == "not-needed"
    err = refused(store, author, summary, method="verbal", identity_check="cccd")
    assert (err.status, err.rule) == (422, "not-needed")


def test_an_unsigned_document_cannot_be_received(store: Store) -> None:
    enc, author = signed_visit(store)
    with unit(store, signing_doctor(author), write=True) as repo:
        draft = build_document(repo, "prescription", encounter=enc, author=author)
        bid = store_document(repo, draft).id
    assert state(store, author, bid).status == "not-needed"
    err = refused(store, author, bid, method="verbal", identity_check="cccd")
    assert (err.status, err.rule) == (409, "unsigned")


def test_a_replaced_document_sends_the_patient_to_its_amendment(
    store: Store, signed: tuple[str, str]
) -> None:
    bid, author = signed
    enc = stored(store, author, "Composition", bid)["encounter"]["reference"].split("/")[1]
    newer = sign(store, author, kind="prescription", encounter=enc, replaces=bid).id
    assert state(store, author, bid).status == "not-needed"
    err = refused(store, author, bid, method="verbal", identity_check="cccd")
    assert (err.status, err.rule) == (409, "superseded")
    assert state(store, author, newer).status == "needed"
    confirm(store, author, newer, method="verbal", identity_check="cccd")
    assert state(store, author, newer).status == "confirmed"


def test_one_receipt_per_document(store: Store, signed: tuple[str, str]) -> None:
    bid, author = signed
    confirm(store, author, bid, method="verbal", identity_check="vneid")
    err = refused(store, author, bid, method="drawn", drawing=png())
    assert (err.status, err.rule) == (409, "already-confirmed")


def test_another_patient_cannot_confirm(store: Store, signed: tuple[str, str]) -> None:
    bid, author = signed
    err = refused(store, author, bid, method="verbal", identity_check="cccd",
                  patient="Patient/someone-else")  # fmt: skip
    assert (err.status, err.rule) == (422, "not-the-patient")


@pytest.mark.parametrize(
    ("form", "rule"),
    [
        ({"method": "fax"}, "unknown-method"),
        ({"method": "verbal"}, "no-identity-check"),
        ({"method": "verbal", "identity_check": "looked-honest"}, "unknown-identity-check"),
        ({"method": "drawn"}, "no-drawing"),
        ({"method": "drawn", "drawing": b"GIF89a..."}, "bad-drawing"),
        ({"method": "drawn", "drawing": png()[:-12]}, "bad-drawing"),  # cut short
        ({"method": "drawn", "drawing": png(width=9000)}, "bad-drawing"),
        ({"method": "drawn", "drawing": png() + b"\0" * receipt.MAX_DRAWING}, "bad-drawing"),
    ],
)
def test_bad_input_is_a_400_naming_it(
    store: Store, signed: tuple[str, str], form: dict[str, Any], rule: str
) -> None:
    bid, author = signed
    err = refused(store, author, bid, **form)
    assert (err.status, err.rule) == (400, rule)
    assert " / " in err.issues[0].text  # Vietnamese, then English


def test_who_may_record_a_receipt(store: Store, signed: tuple[str, str]) -> None:
    bid, author = signed
    unseen = replace(signing_doctor(author), facility=OTHER_FACILITY)
    nurse = replace(signing_doctor(author), role=role("nurse"), scopes=role("nurse").scopes)
    cases: list[tuple[Actor, int]] = [(doctor(), 403), (unseen, 404), (nurse, 403)]
    for who, status in cases:
        with pytest.raises(FhirError) as err, unit(store, who, write=True) as repo:
            receipt.confirm_receipt(repo, bid, method="verbal", identity_check="cccd")
        assert err.value.status == status, who
    with pytest.raises(FhirError) as err, unit(store, signing_doctor(author), write=True) as repo:
        receipt.confirm_receipt(repo, "no-such-document", method="verbal", identity_check="cccd")
    assert err.value.status == 404
    assert receipts(store) == []
