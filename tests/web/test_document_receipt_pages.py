"""The document page's receipt: the patient confirms receiving a signed prescription (drawn on
the tablet, or aloud with their identity checked), and every refusal as a readable 4xx."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi.testclient import TestClient

from benhan.access import Actor
from benhan.emr.model import search_all
from benhan.store.database import Store
from benhan.store.repository import Repo
from tests.emr.world import person, place, visit
from tests.signing.test_documents import document, practitioner
from tests.signing.test_receipt import png
from tests.web.conftest import SignedIn, SignIn
from tests.web.test_document_pages import FACILITY, Visit, certify, link, sign, signed_id

PAD = "data:image/png;base64,"
V3 = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


@pytest.fixture
def prescription(anon: TestClient, doctor_in: SignedIn, seen_visit: Visit) -> str:
    """A prescription the doctor signed on the pages: its id."""
    return signed_id(sign(anon, doctor_in, seen_visit.enc, kind="prescription"))


@pytest.fixture
def seen_visit(web_store: Store, app: Any) -> Visit:
    """A documented visit, and a Practitioner holding a certificate of the CA."""
    enc = visit(web_store, place(web_store), person(web_store), status="in-progress")
    lab, _xray = document(web_store, enc)
    author = practitioner(web_store)
    certify(web_store, author)
    return Visit(enc, lab, author)


@pytest.fixture
def doctor_in(sign_in: SignIn, web_store: Store, seen_visit: Visit) -> SignedIn:
    me = sign_in("bs.an", "doctor", display_name="BS. Trần An")
    link(web_store, "bs.an", seen_visit.author)
    return me


def confirm(client: TestClient, me: SignedIn, cid: str, **form: str) -> Any:
    data = {"csrf": me.csrf, **form}
    return client.post(f"/documents/{cid}/receipt", data=data, follow_redirects=False)


def receipts(store: Store) -> list[dict[str, Any]]:
    with store.read() as conn:
        repo = Repo(conn, Actor.job(FACILITY, "test"))
        return [
            p
            for p in search_all(repo, "Provenance", [("agent-type", f"{V3}|RCV")])
            if p["activity"]["coding"][0]["code"] == "receipt-confirmed"
        ]


def test_a_signed_prescription_asks_for_the_patients_receipt(
    anon: TestClient, doctor_in: SignedIn, prescription: str
) -> None:
    r = anon.get(f"/documents/{prescription}")
    assert r.status_code == 200, r.text
    assert "Bệnh nhân xác nhận đã nhận" in r.text
    assert "Người bệnh chưa xác nhận đã nhận văn bản này." in r.text
    assert f'action="/documents/{prescription}/receipt"' in r.text
    assert f'name="csrf" value="{doctor_in.csrf}"' in r.text
    assert 'class="signature-pad"' in r.text and "/static/receipt.js" in r.text
    assert (
        'value="drawn"' in r.text and 'value="verbal"' in r.text and 'value="cccd-chip"' in r.text
    )
    assert "<script>" not in r.text  # the CSP refuses inline script


def test_a_visit_summary_asks_for_none(
    anon: TestClient, doctor_in: SignedIn, seen_visit: Visit
) -> None:
    cid = signed_id(sign(anon, doctor_in, seen_visit.enc))
    r = anon.get(f"/documents/{cid}")
    assert r.status_code == 200 and "Bệnh nhân xác nhận đã nhận" not in r.text


def test_the_patient_signs_on_the_tablet(
    anon: TestClient, doctor_in: SignedIn, prescription: str, web_store: Store
) -> None:
    drawing = png()
    pad = PAD + base64.b64encode(drawing).decode("ascii")
    r = confirm(anon, doctor_in, prescription, method="drawn", drawing=pad, identity_check="cccd")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/documents/{prescription}?received=1"
    [p] = receipts(web_store)
    assert base64.b64decode(p["signature"][0]["data"]) == drawing
    page = anon.get(r.headers["location"]).text
    assert "Đã ghi nhận người bệnh xác nhận đã nhận văn bản." in page
    assert "Người bệnh đã xác nhận đã nhận văn bản này." in page
    assert f'src="{pad}"' in page  # the drawing, as the img-src 'self' data: CSP allows
    assert "BS. Trần An" in page and "Đối chiếu ảnh trên thẻ căn cước" in page
    assert "receipt-form" not in page  # one receipt per document
    again = confirm(anon, doctor_in, prescription, method="verbal", identity_check="cccd")
    assert again.status_code == 409 and "đã xác nhận nhận văn bản này" in again.text
    assert len(receipts(web_store)) == 1


def test_a_verbal_confirmation_needs_the_identity_check(
    anon: TestClient, doctor_in: SignedIn, prescription: str, web_store: Store
) -> None:
    r = confirm(anon, doctor_in, prescription, method="verbal")
    assert r.status_code == 400 and "kiểm tra danh tính" in r.text
    assert receipts(web_store) == []
    r = confirm(anon, doctor_in, prescription, method="verbal", identity_check="cccd-chip")
    assert r.status_code == 303
    page = anon.get(f"/documents/{prescription}").text
    assert "Người bệnh xác nhận bằng lời, nhân viên đã kiểm tra danh tính" in page
    assert "Đọc chip thẻ căn cước" in page


@pytest.mark.parametrize(
    ("form", "status", "says"),
    [
        ({"method": "drawn", "drawing": ""}, 400, "chưa có chữ ký vẽ tay"),
        ({"method": "drawn", "drawing": "data:image/gif;base64,R0lG"}, 400, "PNG"),
        ({"method": "drawn", "drawing": PAD + "!!not base64!!"}, 400, "PNG"),
        ({"method": "drawn", "drawing": PAD + "aGVsbG8="}, 400, "PNG"),  # "hello"
        ({"method": "fax"}, 400, "cách xác nhận không hợp lệ"),
        ({"method": "verbal", "identity_check": "hunch"}, 400, "kiểm tra danh tính"),
    ],
)
def test_bad_input_is_a_readable_400(
    anon: TestClient,
    doctor_in: SignedIn,
    prescription: str,
    web_store: Store,
    form: dict[str, str],
    status: int,
    says: str,
) -> None:
    r = confirm(anon, doctor_in, prescription, **form)
    assert r.status_code == status and says in r.text
    assert receipts(web_store) == []


def test_a_replaced_prescription_is_confirmed_on_its_amendment(
    anon: TestClient, doctor_in: SignedIn, prescription: str, seen_visit: Visit
) -> None:
    newer = signed_id(
        sign(anon, doctor_in, seen_visit.enc, kind="prescription", replaces=prescription)
    )
    old = anon.get(f"/documents/{prescription}").text
    assert "Chưa cần xác nhận" in old and "receipt-form" not in old
    r = confirm(anon, doctor_in, prescription, method="verbal", identity_check="cccd")
    assert r.status_code == 409 and "xác nhận bản mới" in r.text
    assert "receipt-form" in anon.get(f"/documents/{newer}").text


def test_who_may_record_it(
    anon: TestClient, sign_in: SignIn, doctor_in: SignedIn, prescription: str, web_store: Store
) -> None:
    no_csrf = anon.post(
        f"/documents/{prescription}/receipt",
        data={"method": "verbal", "identity_check": "cccd"},
        follow_redirects=False,
    )
    assert no_csrf.status_code == 403
    nurse = sign_in("dd.binh", "nurse")  # reads the document, writes no Provenance
    assert "receipt-form" not in anon.get(f"/documents/{prescription}").text
    assert (
        confirm(anon, nurse, prescription, method="verbal", identity_check="cccd").status_code
        == 403
    )
    unlinked = sign_in("bs.khach", "doctor")
    r = confirm(anon, unlinked, prescription, method="verbal", identity_check="cccd")
    assert r.status_code == 403 and "chưa gắn với người hành nghề" in r.text
    gone = confirm(anon, unlinked, "no-such-doc", method="verbal", identity_check="cccd")
    assert gone.status_code == 404
    assert confirm(anon, unlinked, "bad.id!", method="verbal").status_code == 404
    assert receipts(web_store) == []
