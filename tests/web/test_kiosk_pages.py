"""The self-service kiosk: QR → confirm → clinic → ticket, plain errors, and no one else's data."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from benhan.fhir import systems as sy
from benhan.store.database import Store
from benhan.store.unit import unit
from tests.access.world import actor
from tests.emr.world import KHAM_NHI, KHAM_NOI, Place, person, place
from tests.web.conftest import SignedIn, SignIn
from tests.web.test_desk_pages import QR, count, versions


@pytest.fixture
def here(web_store: Store, anon: TestClient) -> Place:
    return place(web_store)


@pytest.fixture
def kiosk(sign_in: SignIn, here: Place) -> SignedIn:
    return sign_in("kiosk.1", "kiosk", display_name="Kiosk sảnh A")


def step(anon: TestClient, me: SignedIn, path: str, **fields: str) -> Any:
    return anon.post(path, data={"csrf": me.csrf, **fields}, follow_redirects=False)


def test_from_a_qr_text_to_the_ticket(
    anon: TestClient, kiosk: SignedIn, here: Place, web_store: Store
) -> None:
    start = anon.get("/kiosk")
    assert start.status_code == 200 and 'name="code"' in start.text and "autofocus" in start.text
    r = step(anon, kiosk, "/kiosk", code=QR + "\n")
    assert r.status_code == 200
    text = r.text
    assert "Đây có phải là bạn?" in text and "Nguyễn Thị Hương" in text and "12/03/1987" in text
    r = step(anon, kiosk, "/kiosk/clinic", code=QR)
    text = r.text
    assert "Phòng khám Nội 1" in text and "Phòng khám Nhi" in text
    assert f'name="clinic" value="{here.clinics[KHAM_NHI]}"' in text
    assert count(web_store, "Patient") == 0  # nothing is written before the ticket
    r = step(anon, kiosk, "/kiosk/ticket", code=QR, clinic=here.clinics[KHAM_NHI])
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("/desk/ticket/") and location.endswith("?kiosk=1")
    ticket = anon.get(location)
    assert ticket.status_code == 200
    assert ">001</p>" in ticket.text and "Phòng khám Nhi" in ticket.text
    assert '<meta http-equiv="refresh" content="30;url=/kiosk">' in ticket.text
    assert 'data-autoprint="1"' in ticket.text
    assert "Nguyễn Thị Hương" not in ticket.text
    with unit(web_store, actor("registrar"), write=False) as repo:
        e = repo.read("Encounter", location.split("/")[-1].split("?")[0]).resource
        p = repo.read("Patient", e["subject"]["reference"].split("/")[1]).resource
    assert {i["system"] for i in p["identifier"]} == {sy.CCCD, sy.CMND, sy.ma_bn("27001")}
    assert count(web_store, "Patient") == 1 and count(web_store, "Encounter") == 1


def test_a_person_already_known_by_the_card_is_not_duplicated(
    anon: TestClient, kiosk: SignedIn, here: Place, web_store: Store
) -> None:
    pid = person(web_store)
    r = step(anon, kiosk, "/kiosk/ticket", code=QR, clinic=here.clinics[KHAM_NOI])
    assert r.status_code == 303
    assert count(web_store, "Patient") == 1
    with unit(web_store, actor("registrar"), write=False) as repo:
        assert sy.ma_bn("27001") in {
            i["system"] for i in repo.read("Patient", pid).resource["identifier"]
        }


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (QR.replace("12031987", "31021987"), "Mã QR không đọc được: ngày sinh không hợp lệ"),
        (QR.replace("|Nữ|", "|X|"), "Mã QR không đọc được: giới tính không hợp lệ"),
        ("027187000123|Nguyễn", "Mã QR không đọc được: thiếu thông tin, hãy quét lại"),
        ("hello", "Hãy quét mã QR trên thẻ căn cước, hoặc nhập đủ 12 số định danh."),
        ("12345", "Hãy quét mã QR trên thẻ căn cước, hoặc nhập đủ 12 số định danh."),
        ("999187000123", "Số định danh không đúng: hãy kiểm tra lại 12 số trên thẻ."),
    ],
)
def test_bad_codes_are_explained_plainly(
    anon: TestClient, kiosk: SignedIn, web_store: Store, code: str, message: str
) -> None:
    before = versions(web_store)
    for path in ("/kiosk", "/kiosk/clinic", "/kiosk/ticket"):
        r = step(anon, kiosk, path, code=code, clinic="x")
        assert r.status_code == 400, path
        assert message in r.text
        assert 'name="code"' in r.text  # back at step 1
    assert versions(web_store) == before


def test_an_unknown_cccd_is_sent_to_scan_or_to_the_desk(
    anon: TestClient, kiosk: SignedIn, web_store: Store
) -> None:
    person(web_store)
    r = step(anon, kiosk, "/kiosk", code="027086000111")
    assert r.status_code == 404
    assert "Chưa có hồ sơ với số này." in r.text
    assert "Nguyễn Thị Hương" not in r.text
    before = versions(web_store)
    r = step(anon, kiosk, "/kiosk/ticket", code="027086000111", clinic="x")
    assert r.status_code == 404
    assert versions(web_store) == before


def test_a_known_cccd_shows_only_that_persons_name_and_birth_year(
    anon: TestClient, kiosk: SignedIn, here: Place, web_store: Store
) -> None:
    person(web_store)  # Nguyễn Thị Hương, 1987-03-12
    person(web_store, "Nguyễn Thị Hà", "027190000456", "1990-07-01")  # a namesake
    r = step(anon, kiosk, "/kiosk", code="0271 8700 0123")
    text = r.text
    assert r.status_code == 200
    assert "Nguyễn Thị Hương" in text and "<dd>1987</dd>" in text
    assert "12/03/1987" not in text and "1987-03-12" not in text  # the year, not the date
    assert "Nguyễn Thị Hà" not in text and "027190000456" not in text
    r = step(anon, kiosk, "/kiosk/ticket", code="027187000123", clinic=here.clinics[KHAM_NOI])
    assert r.status_code == 303
    assert count(web_store, "Patient") == 2


def test_a_second_ticket_at_the_same_clinic_is_refused_with_the_number(
    anon: TestClient, kiosk: SignedIn, here: Place, web_store: Store
) -> None:
    step(anon, kiosk, "/kiosk/ticket", code=QR, clinic=here.clinics[KHAM_NOI])
    before = count(web_store, "Encounter")
    r = step(anon, kiosk, "/kiosk/ticket", code=QR, clinic=here.clinics[KHAM_NOI])
    assert r.status_code == 409
    assert "Bạn đã có số 001 tại Phòng khám Nội 1 hôm nay." in r.text
    assert count(web_store, "Encounter") == before == 1


@pytest.mark.parametrize("clinic", ["", "bad id!", "no-such-room"])
def test_an_unknown_clinic_goes_back_to_the_choice(
    anon: TestClient, kiosk: SignedIn, web_store: Store, clinic: str
) -> None:
    r = step(anon, kiosk, "/kiosk/ticket", code=QR, clinic=clinic)
    assert r.status_code == 400
    assert "Hãy chọn một phòng khám." in r.text
    assert count(web_store, "Patient") == 0 and count(web_store, "Encounter") == 0


@pytest.mark.parametrize("role", ["registrar", "nurse", "doctor", "lab-technician"])
def test_only_a_kiosk_account_runs_the_kiosk(
    anon: TestClient, sign_in: SignIn, here: Place, role: str, web_store: Store
) -> None:
    me = sign_in("x.user", role)
    assert anon.get("/kiosk").status_code == 403
    r = step(anon, me, "/kiosk/ticket", code=QR, clinic=here.clinics[KHAM_NOI])
    assert r.status_code == 403
    assert count(web_store, "Patient") == 0


def test_the_csrf_token_is_required(
    anon: TestClient, kiosk: SignedIn, here: Place, web_store: Store
) -> None:
    r = anon.post("/kiosk/ticket", data={"code": QR, "clinic": here.clinics[KHAM_NOI]})
    assert r.status_code == 403
    assert count(web_store, "Patient") == 0


def test_the_kiosk_account_has_no_desk_to_list_people_from(
    anon: TestClient, kiosk: SignedIn, here: Place, web_store: Store
) -> None:
    """A passer-by at the kiosk who types another address finds nobody's details."""
    person(web_store)
    assert anon.get("/desk").status_code == 403
    r = anon.post("/desk/search", data={"csrf": kiosk.csrf, "q": "nguyen"})
    assert r.status_code == 403 and "Nguyễn" not in r.text
    for path in ("/worklist", "/results", "/privacy", "/accounts"):
        assert anon.get(path).status_code == 403, path
