"""The pages clinicians sign on: a visit's documents, review then sign, a signed document with
its verification in words, its signed PDF; and every refusal as a readable 4xx."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import FastAPI
from fastapi.testclient import TestClient

from benhan.access import Actor
from benhan.emr.model import search_all
from benhan.signing import pki
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.store.schema import account
from benhan.web.document_pages import half
from benhan.web.i18n import COOKIE
from tests.emr.world import OTHER_FACILITY, person, place, visit
from tests.signing.test_documents import document, practitioner
from tests.web.conftest import SignedIn, SignIn

FACILITY = "27001"


@dataclass(frozen=True)
class Visit:
    enc: str
    lab: str  # the lab order's id (its report is found by the encounter)
    author: str  # "Practitioner/…"


def link(store: Store, username: str, author: str) -> None:
    """The account signs as `author` (accounts keep the Practitioner's bare id)."""
    with store.begin() as conn:
        conn.execute(
            sa.update(account)
            .where(account.c.username == username)
            .values(practitioner=author.split("/", 1)[1])
        )


def certify(store: Store, author: str) -> None:
    with store.begin() as conn:
        pki.issue(conn, kind="practitioner", owner=author, common_name="BS. Trần An",
                  facility=FACILITY)  # fmt: skip


@pytest.fixture
def seen(web_store: Store, app: FastAPI) -> Visit:
    """A documented, closed visit, and a Practitioner holding a certificate of the CA."""
    enc = visit(web_store, place(web_store), person(web_store), status="in-progress")
    lab, _xray = document(web_store, enc)
    author = practitioner(web_store)
    certify(web_store, author)
    return Visit(enc, lab, author)


@pytest.fixture
def doctor(sign_in: SignIn, web_store: Store, seen: Visit) -> SignedIn:
    me = sign_in("bs.an", "doctor", display_name="BS. Trần An")
    link(web_store, "bs.an", seen.author)
    return me


def reports(store: Store, enc: str) -> list[dict[str, Any]]:
    with store.read() as conn:
        repo = Repo(conn, Actor.job(FACILITY, "test"))
        return search_all(repo, "DiagnosticReport", [("encounter", f"Encounter/{enc}")])


def sign(client: TestClient, me: SignedIn, enc: str, **form: str) -> Any:
    data = {"csrf": me.csrf, "kind": "visit-summary", **form}
    return client.post(f"/visit/{enc}/documents/sign", data=data, follow_redirects=False)


def signed_id(response: Any) -> str:
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/documents/([A-Za-z0-9\-.]+)\?signed=1", response.headers["location"])
    assert found, response.headers["location"]
    return found[1]


# ---------------------------------------------------------------- list, review, sign, view


def test_the_list_offers_each_document_the_visit_can_have(
    anon: TestClient, doctor: SignedIn, seen: Visit
) -> None:
    r = anon.get(f"/visit/{seen.enc}/documents")
    assert r.status_code == 200, r.text
    assert "Lượt khám chưa có văn bản nào." in r.text
    assert "kind=visit-summary" in r.text and "kind=prescription" in r.text
    assert "kind=discharge" not in r.text  # an outpatient visit has no discharge summary
    assert r.text.count("kind=report&amp;report=") == 2  # the lab and the X-ray reports
    assert "Xem trước" in r.text


def test_the_visit_page_links_to_its_documents(
    anon: TestClient, doctor: SignedIn, seen: Visit
) -> None:
    r = anon.get(f"/visit/{seen.enc}")
    assert r.status_code == 200
    assert f'href="/visit/{seen.enc}/documents"' in r.text


def test_review_shows_the_unsigned_document_and_a_sign_form(
    anon: TestClient, doctor: SignedIn, seen: Visit
) -> None:
    r = anon.get(f"/visit/{seen.enc}/documents/review", params={"kind": "visit-summary"})
    assert r.status_code == 200, r.text
    assert "Tóm tắt lần khám bệnh" in r.text and "Nguyễn Thị Hương" in r.text
    assert "BS. Trần An" in r.text  # the author who will sign
    assert "Sốt, ho 3 ngày" in r.text and "J18.9" in r.text  # sections' narratives
    assert "Bản xem trước, chưa ký" in r.text
    assert f'name="csrf" value="{doctor.csrf}"' in r.text
    assert 'name="kind" value="visit-summary"' in r.text
    # Markup a user wrote is shown as text, never as markup.
    assert "&lt;hoặc khi sốt cao&gt;" in r.text and "<hoặc" not in r.text


def test_signing_stores_the_document_and_shows_it_verified(
    anon: TestClient, doctor: SignedIn, seen: Visit
) -> None:
    cid = signed_id(sign(anon, doctor, seen.enc))
    r = anon.get(f"/documents/{cid}?signed=1")
    assert r.status_code == 200, r.text
    assert "Đã ký số văn bản." in r.text
    assert "✓ Đã ký" in r.text
    assert "Chữ ký số hợp lệ" in r.text and "KHÔNG hợp lệ" not in r.text
    assert r.text.count('class="check pass"') >= 3 and 'class="check fail"' not in r.text
    assert f"/documents/{cid}/pdf" in r.text
    assert "kind=visit-summary" in r.text and f"replaces={cid}" in r.text  # amend
    listed = anon.get(f"/visit/{seen.enc}/documents")
    assert f"/documents/{cid}" in listed.text and "Đã ký" in listed.text


def test_the_page_speaks_english_too(anon: TestClient, doctor: SignedIn, seen: Visit) -> None:
    cid = signed_id(sign(anon, doctor, seen.enc))
    anon.cookies.set(COOKIE, "en")
    r = anon.get(f"/documents/{cid}")
    assert r.status_code == 200
    assert "Signed" in r.text and "Digital signature valid" in r.text


def test_the_signed_pdf_is_signed_by_the_same_certificate(
    anon: TestClient, doctor: SignedIn, seen: Visit, web_store: Store
) -> None:
    cid = signed_id(sign(anon, doctor, seen.enc, kind="prescription"))
    r = anon.get(f"/documents/{cid}/pdf")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith(f'attachment; filename="{cid}.pdf"')
    pdf = r.content
    assert pdf.startswith(b"%PDF") and b"/ByteRange" in pdf
    status = validate(pdf, web_store)
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    with web_store.read() as conn:
        [record] = pki.certificates(conn, owner=seen.author)
    assert status.signing_cert.dump() == record.certificate.public_bytes(Encoding.DER)


def validate(pdf: bytes, store: Store) -> Any:
    """pyHanko's verdict, trusting the province's root only."""
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    with store.read() as conn:
        roots = [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER))
                 for c in pki.trust_anchors(conn)]  # fmt: skip
    signature = PdfFileReader(BytesIO(pdf)).embedded_signatures[0]
    return validate_pdf_signature(signature, ValidationContext(trust_roots=roots))


def test_the_pdf_is_kept_as_a_document_reference_of_the_composition(
    anon: TestClient, doctor: SignedIn, seen: Visit, web_store: Store
) -> None:
    cid = signed_id(sign(anon, doctor, seen.enc))
    with web_store.read() as conn:
        repo = Repo(conn, Actor.job(FACILITY, "test"))
        [ref] = search_all(repo, "DocumentReference", [("related", f"Composition/{cid}")])
        head = repo.read("Composition", cid).resource
    assert (ref["status"], ref["docStatus"]) == ("current", "final")
    assert ref["type"] == head["type"]
    assert ref["subject"] == head["subject"]
    assert ref["context"]["encounter"] == [{"reference": f"Encounter/{seen.enc}"}]
    attachment = ref["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    assert base64.b64decode(attachment["data"]).startswith(b"%PDF")


def test_a_report_and_its_amendment(
    anon: TestClient, doctor: SignedIn, seen: Visit, web_store: Store
) -> None:
    rid = reports(web_store, seen.enc)[0]["id"]
    first = signed_id(sign(anon, doctor, seen.enc, kind="report", report=rid))
    page = anon.get(f"/documents/{first}").text
    assert f"report={rid}" in page and f"replaces={first}" in page
    review = anon.get(
        f"/visit/{seen.enc}/documents/review",
        params={"kind": "report", "report": rid, "replaces": first},
    )
    assert review.status_code == 200 and f'name="replaces" value="{first}"' in review.text
    second = signed_id(sign(anon, doctor, seen.enc, kind="report", report=rid, replaces=first))
    old = anon.get(f"/documents/{first}").text
    assert f"/documents/{second}" in old and f"replaces={first}" not in old  # amend the latest
    new = anon.get(f"/documents/{second}").text
    assert f"/documents/{first}" in new and "Văn bản này thay thế" in new
    listed = anon.get(f"/visit/{seen.enc}/documents").text
    assert "thay thế bản trước" in listed and "đã có bản thay thế" in listed


def test_a_tampered_document_shows_what_failed(
    anon: TestClient, doctor: SignedIn, seen: Visit, web_store: Store
) -> None:
    cid = signed_id(sign(anon, doctor, seen.enc))
    with web_store.begin() as conn:
        [record] = pki.certificates(conn, owner=seen.author)
        pki.revoke(conn, record.serial, reason="keyCompromise")
    r = anon.get(f"/documents/{cid}")
    assert r.status_code == 200
    assert "Chữ ký số KHÔNG hợp lệ" in r.text and 'class="check fail"' in r.text
    assert "✗" in r.text


# ---------------------------------------------------------------- refusals


def test_an_unknown_kind_is_a_readable_400(anon: TestClient, doctor: SignedIn, seen: Visit) -> None:
    r = anon.get(f"/visit/{seen.enc}/documents/review", params={"kind": "love-letter"})
    assert r.status_code == 400 and "loại văn bản không hợp lệ" in r.text
    posted = sign(anon, doctor, seen.enc, kind="love-letter")
    assert posted.status_code == 400 and "loại văn bản không hợp lệ" in posted.text


def test_an_unknown_encounter_is_404(anon: TestClient, doctor: SignedIn) -> None:
    assert anon.get("/visit/no-such-visit/documents").status_code == 404
    r = anon.get("/visit/no-such-visit/documents/review", params={"kind": "visit-summary"})
    assert r.status_code == 404 and "không tìm thấy lần khám" in r.text
    assert sign(anon, doctor, "no-such-visit").status_code == 404
    assert anon.get("/visit/bad id!/documents").status_code == 404


def test_another_facilitys_visit_is_not_found(
    anon: TestClient, doctor: SignedIn, web_store: Store
) -> None:
    theirs = visit(
        web_store,
        place(web_store, OTHER_FACILITY, "Bệnh viện B"),
        person(web_store, facility=OTHER_FACILITY),
        status="in-progress",
    )
    assert anon.get(f"/visit/{theirs}/documents").status_code == 404
    r = anon.get(f"/visit/{theirs}/documents/review", params={"kind": "visit-summary"})
    assert r.status_code == 404


def test_a_bad_report_or_replaced_id_is_refused(
    anon: TestClient, doctor: SignedIn, seen: Visit
) -> None:
    r = sign(anon, doctor, seen.enc, kind="report", report="nope")
    assert r.status_code == 404 and "không tìm thấy phiếu kết quả" in r.text
    r = sign(anon, doctor, seen.enc, replaces="../etc")
    assert r.status_code == 404 and "văn bản cần thay thế" in r.text


def test_signing_without_the_csrf_token_is_refused(
    anon: TestClient, doctor: SignedIn, seen: Visit, web_store: Store
) -> None:
    r = anon.post(
        f"/visit/{seen.enc}/documents/sign",
        data={"kind": "visit-summary"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    with web_store.read() as conn:
        repo = Repo(conn, Actor.job(FACILITY, "test"))
        assert search_all(repo, "Bundle", [("type", "document")]) == []


def test_a_doctor_without_a_certificate_is_told_so(
    anon: TestClient, sign_in: SignIn, seen: Visit, web_store: Store
) -> None:
    me = sign_in("bs.moi", "doctor")
    link(web_store, "bs.moi", practitioner(web_store))
    r = sign(anon, me, seen.enc)
    assert r.status_code == 409
    assert "chưa được cấp chứng thư nào" in r.text


def test_a_revoked_certificate_cannot_sign(
    anon: TestClient, doctor: SignedIn, seen: Visit, web_store: Store
) -> None:
    with web_store.begin() as conn:
        [record] = pki.certificates(conn, owner=seen.author)
        pki.revoke(conn, record.serial, reason="keyCompromise")
    r = sign(anon, doctor, seen.enc)
    assert r.status_code == 409 and "đã bị thu hồi" in r.text


def test_an_account_without_a_practitioner_cannot_sign(
    anon: TestClient, sign_in: SignIn, seen: Visit
) -> None:
    me = sign_in("bs.khach", "doctor")
    r = anon.get(f"/visit/{seen.enc}/documents/review", params={"kind": "visit-summary"})
    assert r.status_code == 403 and "chưa gắn với người hành nghề" in r.text
    r = sign(anon, me, seen.enc)
    assert r.status_code == 403 and "chưa gắn với người hành nghề" in r.text


def test_a_prescription_of_a_visit_without_medicines_is_refused(
    anon: TestClient, doctor: SignedIn, web_store: Store
) -> None:
    empty = visit(web_store, place(web_store, name="Trạm Y tế"), person(web_store))
    r = sign(anon, doctor, empty, kind="prescription")
    assert r.status_code == 422 and "chưa kê đơn thuốc" in r.text


def test_the_pdf_of_an_unknown_document_is_404(anon: TestClient, doctor: SignedIn) -> None:
    assert anon.get("/documents/nothing-here/pdf").status_code == 404
    assert anon.get("/documents/nothing-here").status_code == 404


def test_a_nurse_reads_but_does_not_sign(anon: TestClient, sign_in: SignIn, seen: Visit) -> None:
    me = sign_in("dd.binh", "nurse")
    r = anon.get(f"/visit/{seen.enc}/documents")
    assert r.status_code == 200 and "Xem trước" not in r.text
    assert anon.get(f"/visit/{seen.enc}/documents/review?kind=visit-summary").status_code == 403
    assert sign(anon, me, seen.enc).status_code == 403


def test_signed_out_users_go_to_sign_in(anon: TestClient, seen: Visit) -> None:
    r = anon.get(f"/visit/{seen.enc}/documents", follow_redirects=False)
    assert r.status_code in (302, 303) and "/login" in r.headers["location"]


@pytest.mark.parametrize(
    ("text", "vi", "en"),
    [
        ("không tìm thấy / not found", "không tìm thấy", "not found"),
        (
            "CA 'CA gốc / Root CA' hết hạn / CA 'CA gốc / Root CA' expired",
            "CA 'CA gốc / Root CA' hết hạn",
            "CA 'CA gốc / Root CA' expired",
        ),
        ("chỉ tiếng Việt", "chỉ tiếng Việt", "chỉ tiếng Việt"),
        ("a / b / c", "a / b / c", "a / b / c"),  # no middle: shown whole
    ],
)
def test_a_message_is_shown_in_the_pages_language(text: str, vi: str, en: str) -> None:
    assert (half(text, "vi"), half(text, "en")) == (vi, en)
