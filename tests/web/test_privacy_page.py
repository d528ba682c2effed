"""The privacy page: break-glass grants of both facilities, and who looked at a patient."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from benhan.auth.break_glass import open_break_glass
from benhan.store.database import Store
from tests.web.conftest import (
    OTHER_FACILITY,
    SignIn,
    add_patient,
    audit_events,
    make_account,
)

REASON = "Chuyển tuyến cấp cứu lúc 2 giờ sáng, cần kết quả xét nghiệm cũ."


def glass(store: Store, username: str, facility: str, patient: str, reason: str = REASON) -> str:
    """A clinician of `facility` breaks the glass on `patient`; the grant's id."""
    acc = make_account(store, username, "doctor", facility)
    with store.begin() as conn:
        return open_break_glass(conn, acc.actor(address="10.0.0.7"), patient, "transfer", reason)


def rows(html: str, table: str) -> list[list[str]]:
    """The cells of a table's body rows, tags stripped."""
    body = html.split(f'<table class="data {table}">', 1)[1].split("</table>", 1)[0]
    body = body.split("<tbody>", 1)[1]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S) for tr in body.split("</tr>")[:-1]]
    return [[" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in row] for row in cells]


def test_a_break_glass_from_another_facility_on_our_patient(
    anon: TestClient, sign_in: SignIn, web_store: Store
) -> None:
    """The officer of the patient's facility (27002) sees what a 27001 doctor did."""
    sign_in("bv.tam", "privacy-officer", OTHER_FACILITY)
    pid = add_patient(web_store, OTHER_FACILITY)
    glass(web_store, "bs.an", "27001", pid)
    r = anon.get("/privacy")
    assert r.status_code == 200
    [row] = rows(r.text, "grants")
    assert row[:4] == ["bs.an", "27001", f"Patient/{pid}", OTHER_FACILITY]
    assert row[4] == f"Chuyển tuyến, hồ sơ chưa đến {REASON}"
    assert "còn hiệu lực" in row[6]


@pytest.mark.parametrize(("facility", "seen"), [("27001", 1), (OTHER_FACILITY, 1), ("27003", 0)])
def test_officers_of_both_facilities_see_the_grant_and_no_one_else(
    anon: TestClient, sign_in: SignIn, web_store: Store, facility: str, seen: int
) -> None:
    sign_in("bv.tam", "privacy-officer", facility)
    glass(web_store, "bs.an", "27001", add_patient(web_store, OTHER_FACILITY))
    html = anon.get("/privacy").text
    assert html.count('<tr class="grant">') == seen


def test_who_looked_at_this_patient(anon: TestClient, sign_in: SignIn, web_store: Store) -> None:
    officer = sign_in("bv.tam", "privacy-officer", OTHER_FACILITY)
    pid = add_patient(web_store, OTHER_FACILITY)
    unrelated = add_patient(web_store, OTHER_FACILITY, family="Khác")
    glass(web_store, "bs.an", "27001", pid)
    glass(web_store, "bs.binh", "27001", unrelated)
    r = anon.get("/privacy", params={"patient": pid})
    assert r.status_code == 200
    [row] = rows(r.text, "audit")
    assert row[1:] == [
        "bs.an",
        "Bác sĩ",
        "27001",
        "Mở hồ sơ khẩn cấp",
        "Thành công",
        "Mở khẩn cấp",
        "10.0.0.7",
    ]
    assert '<tr class="event btg">' in r.text  # break-glass rows stand out
    # Looking is itself recorded: the next look shows the officer's own search too.
    [search] = [e for e in audit_events(web_store) if e["agent"][0]["altId"] == "bv.tam"]
    assert search["subtype"][0]["code"] == "search-type"
    assert search["entity"][0]["what"]["reference"] == f"Patient/{pid}"
    assert search["agent"][0]["who"]["identifier"]["value"] == officer.account.id
    again = rows(anon.get("/privacy", params={"patient": f"Patient/{pid}"}).text, "audit")
    assert [r[1] for r in again] == ["bv.tam", "bs.an"]  # newest first


@pytest.mark.parametrize("which", ["another facility's", "unknown", "malformed"])
def test_only_our_own_patients_can_be_looked_up(
    anon: TestClient, sign_in: SignIn, web_store: Store, which: str
) -> None:
    sign_in("bv.tam", "privacy-officer", OTHER_FACILITY)
    theirs = add_patient(web_store, "27001")
    glass(web_store, "bs.an", "27001", theirs)
    pid = {"another facility's": theirs, "unknown": "no-such-id", "malformed": "a,b|c"}[which]
    r = anon.get("/privacy", params={"patient": pid})
    assert r.status_code == 400
    assert "Người bệnh này không đăng ký tại cơ sở của bạn." in r.text
    assert '<table class="data audit">' not in r.text
    assert not [e for e in audit_events(web_store) if e["agent"][0]["altId"] == "bv.tam"]


def test_a_patient_nobody_looked_at(anon: TestClient, sign_in: SignIn, web_store: Store) -> None:
    sign_in("bv.tam", "privacy-officer")
    pid = add_patient(web_store)
    assert "Chưa có ai xem hồ sơ này." in anon.get("/privacy", params={"patient": pid}).text


def test_the_reason_is_shown_escaped(anon: TestClient, sign_in: SignIn, web_store: Store) -> None:
    sign_in("bv.tam", "privacy-officer", OTHER_FACILITY)
    evil = '<img src=x onerror="alert(1)"> bệnh nhân hôn mê'
    glass(web_store, "bs.an", "27001", add_patient(web_store, OTHER_FACILITY), reason=evil)
    html = anon.get("/privacy").text
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; bệnh nhân hôn mê" in html


@pytest.mark.parametrize("role", ["doctor", "facility-admin", "registrar"])
def test_other_roles_get_403(anon: TestClient, sign_in: SignIn, role: str) -> None:
    sign_in("user.x", role)
    r = anon.get("/privacy")
    assert r.status_code == 403
    assert "Không có quyền truy cập" in r.text


def test_the_page_speaks_english(anon: TestClient, sign_in: SignIn, web_store: Store) -> None:
    sign_in("bv.tam", "privacy-officer", OTHER_FACILITY)
    pid = add_patient(web_store, OTHER_FACILITY)
    glass(web_store, "bs.an", "27001", pid)
    anon.cookies.set("lang", "en")
    html = anon.get("/privacy", params={"patient": pid}).text
    assert "Transfer, records not yet received" in html
    assert rows(html, "audit")[0][2:] == [
        "Doctor",
        "27001",
        "Emergency access",
        "Success",
        "Emergency access",
        "10.0.0.7",
    ]
