"""The break-glass page: who may use it, what it refuses, what it records."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from benhan.store.database import Store
from benhan.store.schema import break_glass
from tests.web.conftest import (
    OTHER_FACILITY,
    SignedIn,
    SignIn,
    add_patient,
    audit_events,
)

BREAK_GLASS = "110127"
REASON = "Người bệnh ngừng thở tại phòng cấp cứu, cần tiền sử dị ứng thuốc."


@pytest.fixture
def doctor(sign_in: SignIn) -> SignedIn:
    return sign_in("bs.an", "doctor", display_name="Bác sĩ Nguyễn An")


def grants(store: Store) -> list[sa.Row[Any]]:
    with store.read() as conn:
        return list(conn.execute(sa.select(break_glass)))


def form(csrf: str, patient: str, **fields: str) -> dict[str, str]:
    values = {
        "csrf": csrf,
        "patient": patient,
        "reason_code": "emergency",
        "reason": REASON,
        "minutes": "30",
    }
    return {**values, **fields}


def test_the_page_warns_that_it_is_audited(anon: TestClient, doctor: SignedIn) -> None:
    r = anon.get("/break-glass")
    assert r.status_code == 200
    assert "Mỗi lần mở khẩn cấp được ghi lại cùng lý do của bạn" in r.text
    assert '<option value="unconscious">Người bệnh bất tỉnh, không hỏi được</option>' in r.text
    assert "Bạn không mở hồ sơ nào." in r.text


@pytest.mark.parametrize("role", ["registrar", "pharmacist", "lab-technician", "facility-admin"])
def test_roles_without_break_glass_get_403(
    anon: TestClient, sign_in: SignIn, web_store: Store, role: str
) -> None:
    me = sign_in("user.x", role)
    pid = add_patient(web_store, OTHER_FACILITY)
    assert anon.get("/break-glass").status_code == 403
    r = anon.post("/break-glass", data=form(me.csrf, pid), follow_redirects=False)
    assert r.status_code == 403
    assert grants(web_store) == []


def test_open_a_record_of_another_facility(
    anon: TestClient, doctor: SignedIn, web_store: Store
) -> None:
    pid = add_patient(web_store, OTHER_FACILITY)
    r = anon.post("/break-glass", data=form(doctor.csrf, pid), follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/break-glass?opened=1")
    [grant] = grants(web_store)
    assert (grant.account_id, grant.facility, grant.patient_key, grant.owner_facility) == (
        doctor.account.id,
        "27001",
        pid,
        OTHER_FACILITY,
    )
    assert (grant.reason_code, grant.reason) == ("emergency", REASON)
    assert grant.expires - grant.started == 30 * 60 * 1_000_000
    page = anon.get(r.headers["location"]).text
    assert "Đã mở hồ sơ. Lượt truy cập này được ghi lại và sẽ được xem xét." in page
    assert f"<code>Patient/{pid}</code>" in page and REASON in page
    [event] = audit_events(web_store, BREAK_GLASS)
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
    assert event["entity"][0]["what"]["reference"] == f"Patient/{pid}"
    assert event["agent"][0]["altId"] == "bs.an"
    assert REASON not in str(event)  # the clinician's words stay with the grant


def test_a_nurse_may_break_the_glass_too(
    anon: TestClient, sign_in: SignIn, web_store: Store
) -> None:
    me = sign_in("dd.hoa", "nurse")
    pid = add_patient(web_store)
    assert anon.post("/break-glass", data=form(me.csrf, f"Patient/{pid}")).status_code == 200
    assert [g.patient_key for g in grants(web_store)] == [pid]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reason": "cấp cứu"}, "Hãy ghi rõ lý do, từ 10 đến 500 ký tự."),
        ({"reason": "x" * 501}, "Hãy ghi rõ lý do, từ 10 đến 500 ký tự."),
        ({"minutes": "4"}, "Thời hạn từ 5 đến 240 phút."),
        ({"minutes": "241"}, "Thời hạn từ 5 đến 240 phút."),
        ({"minutes": "một giờ"}, "Thời hạn từ 5 đến 240 phút."),
        ({"reason_code": "curiosity"}, "Hãy chọn một lý do trong danh sách."),
        ({"patient": "no-such-patient"}, "Không tìm thấy người bệnh với mã này."),
    ],
)
def test_bad_input_opens_nothing(
    anon: TestClient, doctor: SignedIn, web_store: Store, fields: dict[str, str], message: str
) -> None:
    pid = add_patient(web_store, OTHER_FACILITY)
    r = anon.post("/break-glass", data={**form(doctor.csrf, pid), **fields})
    assert r.status_code == 400
    assert message in r.text
    assert grants(web_store) == []
    assert audit_events(web_store, BREAK_GLASS) == []


@pytest.mark.parametrize("csrf", ["", "wrong"])
def test_without_the_csrf_token_nothing_opens(
    anon: TestClient, doctor: SignedIn, web_store: Store, csrf: str
) -> None:
    pid = add_patient(web_store, OTHER_FACILITY)
    r = anon.post("/break-glass", data=form(csrf, pid), follow_redirects=False)
    assert r.status_code == 403
    assert grants(web_store) == []
    assert audit_events(web_store, BREAK_GLASS) == []


def test_the_reason_is_shown_escaped(anon: TestClient, doctor: SignedIn, web_store: Store) -> None:
    pid = add_patient(web_store, OTHER_FACILITY)
    evil = "<script>alert(1)</script> cấp cứu ngay"
    anon.post("/break-glass", data=form(doctor.csrf, pid, reason=evil))
    html = anon.get("/break-glass").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; cấp cứu ngay" in html


def test_the_page_speaks_english(anon: TestClient, doctor: SignedIn, web_store: Store) -> None:
    anon.cookies.set("lang", "en")
    r = anon.post("/break-glass", data=form(doctor.csrf, "nope", minutes="1000"))
    assert "The duration is 5 to 240 minutes." in r.text
    assert "<h1>Emergency access</h1>" in r.text
