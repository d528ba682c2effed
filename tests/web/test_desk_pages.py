"""The registration desk: search as you type, create or update a person, the card, the number."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from benhan.emr.model import QUEUE_NUMBER, local_now
from benhan.fhir import systems as sy
from benhan.store.database import Store
from benhan.store.schema import resource
from benhan.store.unit import unit
from tests.access.world import actor
from tests.emr.world import KHAM_NHI, KHAM_NOI, Place, person, place
from tests.web.conftest import SignedIn, SignIn, audit_events

QR = "027187000123|125678901|Nguyễn Thị Hương|12031987|Nữ|Từ Sơn, Bắc Ninh|15062021"
NEW = {
    "name": "Trần Văn Nam",
    "birth_date": "1986-09-05",
    "sex": "male",
    "cccd": "027086000111",
    "cmnd": "",
    "phone": "0912345678",
    "address": "12 Lý Thái Tổ, Từ Sơn",
}


def count(store: Store, rtype: str) -> int:
    q = sa.select(sa.func.count()).where(resource.c.rtype == rtype, resource.c.deleted.is_(False))
    with store.read() as conn:
        return int(conn.scalar(q) or 0)


def versions(store: Store) -> int:
    """Every stored version of every resource: nothing written means this does not move."""
    q = sa.select(sa.func.sum(resource.c.version_id)).where(resource.c.rtype != "AuditEvent")
    with store.read() as conn:
        return int(conn.scalar(q) or 0)


def search(anon: TestClient, me: SignedIn, q: str) -> Any:
    return anon.post("/desk/search", data={"csrf": me.csrf, "q": q})


def read(store: Store, rtype: str, rid: str) -> dict[str, Any]:
    with unit(store, actor("registrar"), write=False) as repo:
        return repo.read(rtype, rid).resource


@pytest.fixture
def here(web_store: Store, anon: TestClient) -> Place:
    return place(web_store)


@pytest.fixture
def registrar(sign_in: SignIn, here: Place) -> SignedIn:
    return sign_in("tiep.don", "registrar", display_name="Quầy tiếp đón 1")


@pytest.fixture
def huong(web_store: Store, here: Place) -> str:
    pid = person(web_store)
    with unit(web_store, actor("registrar"), write=True) as repo:
        p = repo.read("Patient", pid).resource
        p["identifier"] += [
            {"system": sy.CMND, "value": "125678901"},
            {"system": sy.BHYT, "value": "DN4270123456789"},
        ]
        repo.update("Patient", pid, p)
    return pid


# ---- search --------------------------------------------------------------------------------


def test_the_desk_has_one_search_box_that_answers_as_you_type(
    anon: TestClient, registrar: SignedIn
) -> None:
    r = anon.get("/desk")
    assert r.status_code == 200
    assert 'hx-post="/desk/search"' in r.text
    assert 'hx-trigger="input changed delay:250ms, search"' in r.text
    assert "<script>" not in r.text and "style=" not in r.text
    # a name or a CCCD never goes into a URL: the search is POSTed
    assert '<form class="desk-search" method="post" action="/desk"' in r.text


@pytest.mark.parametrize(
    "q", [QR, "027187000123", "125678901", "DN4270123456789", "nguyen thi huong 1987"]
)
def test_search_by_each_kind_finds_her(
    anon: TestClient, registrar: SignedIn, huong: str, q: str
) -> None:
    # htmx sends the session's token in a header
    r = anon.post("/desk/search", data={"q": q}, headers={"X-CSRF-Token": registrar.csrf})
    assert r.status_code == 200
    assert "<html" not in r.text  # a fragment for htmx
    assert f'href="/desk/patient/{huong}"' in r.text
    assert "Nguyễn Thị Hương" in r.text and "1987-03-12" in r.text
    full = anon.post("/desk", data={"csrf": registrar.csrf, "q": q})  # and without JavaScript
    assert "<html" in full.text and f'href="/desk/patient/{huong}"' in full.text


def test_the_last_visit_is_listed(
    anon: TestClient, registrar: SignedIn, huong: str, here: Place, web_store: Store
) -> None:
    from tests.emr.world import visit

    when = local_now().replace(hour=8, minute=5, second=0, microsecond=0) - timedelta(days=3)
    visit(web_store, here, huong, arrived=when, status="finished")
    r = search(anon, registrar, "027187000123")
    assert when.strftime("08:05 %d/%m/%Y") in r.text


def test_a_qr_of_someone_new_offers_to_register_them_prefilled(
    anon: TestClient, registrar: SignedIn
) -> None:
    r = search(anon, registrar, QR)
    assert "Không tìm thấy ai." in r.text
    assert 'action="/desk/patient/prefill"' in r.text
    r = anon.post("/desk/patient/prefill", data={"csrf": registrar.csrf, "qr": QR})
    assert r.status_code == 200
    assert 'value="Nguyễn Thị Hương"' in r.text
    assert 'value="1987-03-12"' in r.text and 'value="027187000123"' in r.text
    assert 'value="125678901"' in r.text and 'value="Từ Sơn, Bắc Ninh"' in r.text
    assert '<option value="female" selected>' in r.text


def test_a_qr_that_does_not_read_says_which_field(anon: TestClient, registrar: SignedIn) -> None:
    r = search(anon, registrar, QR.replace("12031987", "31021987"))
    assert r.status_code == 200
    assert "Mã QR không đọc được:" in r.text
    assert "Ngày sinh: ngày không có thật: 31021987" in r.text


def test_a_cccd_nobody_has_offers_a_new_person_with_it(
    anon: TestClient, registrar: SignedIn
) -> None:
    r = search(anon, registrar, "027086000111")
    assert '<input type="hidden" name="cccd" value="027086000111">' in r.text
    r = anon.post("/desk/patient/prefill", data={"csrf": registrar.csrf, "cccd": "027086000111"})
    assert 'name="cccd" type="text" value="027086000111"' in r.text


# ---- the person ------------------------------------------------------------------------------


def test_create_a_person(anon: TestClient, registrar: SignedIn, web_store: Store) -> None:
    r = anon.post("/desk/patient", data={"csrf": registrar.csrf, **NEW}, follow_redirects=False)
    assert r.status_code == 303
    m = re.fullmatch(r"/desk/patient/([^?]+)\?saved=1", r.headers["location"])
    assert m is not None
    pid = m[1]
    p = read(web_store, "Patient", pid)
    ids = {i["system"]: i["value"] for i in p["identifier"]}
    assert ids[sy.CCCD] == "027086000111" and ids[sy.ma_bn("27001")].endswith("000001")
    assert p["birthDate"] == "1986-09-05" and p["gender"] == "male"
    page = anon.get(r.headers["location"])
    assert "Đã lưu thông tin người bệnh." in page.text
    assert f"Mã người bệnh: {ids[sy.ma_bn('27001')]}" in page.text


def test_the_same_cccd_updates_the_person_never_a_second_one(
    anon: TestClient, registrar: SignedIn, huong: str, web_store: Store
) -> None:
    form = {**NEW, "name": "Nguyễn Thị Hương", "birth_date": "12/03/1987", "sex": "female"}
    form |= {"cccd": "027187000123", "phone": "0987654321"}
    r = anon.post("/desk/patient", data={"csrf": registrar.csrf, **form}, follow_redirects=False)
    assert r.headers["location"] == f"/desk/patient/{huong}?saved=1"
    assert count(web_store, "Patient") == 1
    p = read(web_store, "Patient", huong)
    assert p["telecom"] == [{"system": "phone", "value": "0987654321", "use": "mobile"}]
    kept = {i["system"] for i in p["identifier"]}
    assert {sy.BHYT, sy.CCCD, sy.ma_bn("27001")} <= kept
    assert sy.CMND not in kept  # the form said the old ID is now empty


def test_update_a_person(
    anon: TestClient, registrar: SignedIn, huong: str, web_store: Store
) -> None:
    form = {**NEW, "name": "Nguyễn Thị Hường", "birth_date": "1987-03-12", "sex": "female"}
    form |= {"cccd": "027187000123", "cmnd": "125678901"}
    r = anon.post(
        f"/desk/patient/{huong}", data={"csrf": registrar.csrf, **form}, follow_redirects=False
    )
    assert r.status_code == 303
    assert read(web_store, "Patient", huong)["name"][0]["text"] == "Nguyễn Thị Hường"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "Họ và tên: hãy nhập họ tên"),
        ({"birth_date": "2999-01-01", "cccd": ""}, "Ngày sinh: ngày sinh ở tương lai"),
        ({"birth_date": "31/02/1986"}, "Ngày sinh: ngày sinh không có thật"),
        ({"cccd": "12345"}, "Số định danh (CCCD): CCCD phải gồm đúng 12 chữ số"),
        ({"sex": "?"}, "Giới tính: hãy chọn giới tính"),
        ({"phone": "12"}, "Điện thoại: số điện thoại không hợp lệ"),
    ],
)
def test_bad_input_keeps_what_was_typed_and_saves_nothing(
    anon: TestClient, registrar: SignedIn, web_store: Store, changes: dict[str, str], message: str
) -> None:
    before = versions(web_store)
    form = {**NEW, **changes}
    r = anon.post("/desk/patient", data={"csrf": registrar.csrf, **form})
    assert r.status_code == 400
    assert message in r.text
    assert 'aria-invalid="true"' in r.text
    assert 'value="12 Lý Thái Tổ, Từ Sơn"' in r.text  # what was typed is kept
    assert versions(web_store) == before


def test_a_cccd_of_another_person_is_refused(
    anon: TestClient, registrar: SignedIn, huong: str, web_store: Store
) -> None:
    nam = person(web_store, "Trần Văn Nam", "027086000111", "1986-09-05", "male")
    before = versions(web_store)
    form = {**NEW, "cccd": "027187000123", "birth_date": "1987-03-12", "sex": "female"}
    r = anon.post(f"/desk/patient/{nam}", data={"csrf": registrar.csrf, **form})
    assert r.status_code == 400
    assert "số định danh này là của người bệnh khác" in r.text
    assert versions(web_store) == before


def test_unknown_and_malformed_ids_are_404(anon: TestClient, registrar: SignedIn) -> None:
    assert anon.get("/desk/patient/no-such-person").status_code == 404
    assert anon.get("/desk/patient/bad%20id!").status_code == 404
    r = anon.post("/desk/patient/no-such-person", data={"csrf": registrar.csrf, **NEW})
    assert r.status_code == 404
    assert anon.get("/desk/ticket/no-such-visit").status_code == 404


def test_another_facilitys_patient_is_404(
    anon: TestClient, registrar: SignedIn, web_store: Store
) -> None:
    theirs = person(web_store, facility="27002")
    assert anon.get(f"/desk/patient/{theirs}").status_code == 404


# ---- the insurance card ------------------------------------------------------------------------


def card(valid_from: int, valid_to: int, number: str = "DN4270123456789") -> dict[str, str]:
    today = local_now().date()
    return {
        "number": number,
        "valid_from": (today + timedelta(days=valid_from)).isoformat(),
        "valid_to": (today + timedelta(days=valid_to)).isoformat(),
    }


def test_a_good_card_is_recorded_and_expiry_is_shown(
    anon: TestClient, registrar: SignedIn, huong: str, web_store: Store
) -> None:
    r = anon.post(
        f"/desk/patient/{huong}/insurance",
        data={"csrf": registrar.csrf, **card(-300, 12)},
        follow_redirects=False,
    )
    assert (r.status_code, r.headers["location"]) == (303, f"/desk/patient/{huong}?insured=1")
    assert count(web_store, "Coverage") == 1
    page = anon.get(r.headers["location"])
    assert "Đã ghi nhận thẻ BHYT." in page.text
    assert "Mức 4: quỹ trả 80%" in page.text
    assert "Còn 12 ngày" in page.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (card(-400, -1), "Giá trị đến ngày: thẻ đã hết hạn ngày"),
        (card(-10, 300, "DN427012345"), "Số thẻ BHYT: phải là mã 15 ký tự"),
        (card(5, 300), "Giá trị từ ngày: thẻ chưa có hiệu lực"),
        ({**card(-10, 300), "valid_to": "31/02/2025"}, "Giá trị đến ngày: ngày không hợp lệ"),
        (card(-10, 300, "DN1270123456789"), "Số thẻ BHYT: DN hưởng mức 4, không phải 1"),
    ],
)
def test_a_card_that_cannot_be_used_is_not_recorded(
    anon: TestClient,
    registrar: SignedIn,
    huong: str,
    web_store: Store,
    fields: dict[str, str],
    message: str,
) -> None:
    before = versions(web_store)
    r = anon.post(f"/desk/patient/{huong}/insurance", data={"csrf": registrar.csrf, **fields})
    assert r.status_code == 400
    assert "Thẻ BHYT chưa dùng được" in r.text
    assert message in r.text
    assert f'value="{fields["number"]}"' in r.text
    assert versions(web_store) == before and count(web_store, "Coverage") == 0


def test_the_card_is_checked_as_it_is_typed_without_saving(
    anon: TestClient, registrar: SignedIn, web_store: Store
) -> None:
    before = versions(web_store)
    r = anon.post("/desk/insurance/check", data={"csrf": registrar.csrf, **card(-10, 20)})
    assert r.status_code == 200 and "<html" not in r.text
    assert "Đối tượng DN, mức hưởng 4: quỹ BHYT trả 80%." in r.text
    assert "thẻ hết hạn ngày" in r.text  # expires within 30 days
    r = anon.post("/desk/insurance/check", data={"csrf": registrar.csrf, **card(-10, -2)})
    assert "Thẻ chưa dùng được:" in r.text
    assert versions(web_store) == before


# ---- the visit --------------------------------------------------------------------------------


def register(anon: TestClient, who: SignedIn, pid: str, clinic: str) -> Any:
    return anon.post(
        f"/desk/patient/{pid}/visit",
        data={"csrf": who.csrf, "clinic": clinic},
        follow_redirects=False,
    )


def test_numbers_one_then_two_in_a_clinic_and_one_in_another(
    anon: TestClient, registrar: SignedIn, huong: str, here: Place, web_store: Store
) -> None:
    nam = person(web_store, "Trần Văn Nam", "027086000111", "1986-09-05", "male")
    page = anon.get(f"/desk/patient/{huong}")
    assert f'value="{here.clinics[KHAM_NOI]}"' in page.text and "0 người đang chờ" in page.text
    tickets = []
    for pid, service in ((huong, KHAM_NOI), (nam, KHAM_NOI), (huong, KHAM_NHI)):
        r = register(anon, registrar, pid, here.clinics[service])
        assert r.status_code == 303
        tickets.append(r.headers["location"])
    eids = [t.rsplit("/", 1)[1] for t in tickets]
    labels = [read(web_store, "Encounter", e)["identifier"][0]["value"] for e in eids]
    day = local_now().date().isoformat()
    assert labels == [
        f"{day}/{here.clinics[KHAM_NOI]}/1",
        f"{day}/{here.clinics[KHAM_NOI]}/2",
        f"{day}/{here.clinics[KHAM_NHI]}/1",
    ]
    second = anon.get(tickets[1])
    assert second.status_code == 200
    assert '<p class="ticket-number"' in second.text and ">002</p>" in second.text
    assert "Phòng khám Nội 1" in second.text and "Bệnh viện Đa khoa A" in second.text
    assert "Trước bạn còn 1 người" in second.text
    assert "@page" not in second.text and "ticket.js" in second.text  # print rules live in CSS
    assert "Trần Văn Nam" not in second.text  # the ticket carries no name
    page = anon.get(f"/desk/patient/{nam}")
    assert "2 người đang chờ" in page.text  # Khám Nội now has two waiting


def test_a_second_registration_is_refused_with_the_number(
    anon: TestClient, registrar: SignedIn, huong: str, here: Place, web_store: Store
) -> None:
    register(anon, registrar, huong, here.clinics[KHAM_NOI])
    before = versions(web_store)
    r = register(anon, registrar, huong, here.clinics[KHAM_NOI])
    assert r.status_code == 409
    assert "Người này đã có số 001 tại Phòng khám Nội 1 hôm nay" in r.text
    assert versions(web_store) == before and count(web_store, "Encounter") == 1


@pytest.mark.parametrize("clinic", ["", "no-such-room", "bad id!"])
def test_an_unknown_clinic_is_refused(
    anon: TestClient, registrar: SignedIn, huong: str, web_store: Store, clinic: str
) -> None:
    r = register(anon, registrar, huong, clinic)
    assert r.status_code == 400
    assert "Hãy chọn một phòng khám trong danh sách." in r.text
    assert count(web_store, "Encounter") == 0


def test_another_facilitys_clinic_is_refused(
    anon: TestClient, registrar: SignedIn, huong: str, web_store: Store
) -> None:
    there = place(web_store, "27002", "Trạm y tế B")
    r = register(anon, registrar, huong, there.clinics[KHAM_NOI])
    assert r.status_code == 400
    assert count(web_store, "Encounter") == 0


def test_the_encounter_written_is_the_visit_of_the_model(
    anon: TestClient, registrar: SignedIn, huong: str, here: Place, web_store: Store
) -> None:
    r = register(anon, registrar, huong, here.clinics[KHAM_NHI])
    e = read(web_store, "Encounter", r.headers["location"].rsplit("/", 1)[1])
    assert e["status"] == "arrived"
    assert e["identifier"][0]["system"] == QUEUE_NUMBER
    assert e["subject"] == {"reference": f"Patient/{huong}"}
    assert e["location"] == [
        {"location": {"reference": f"Location/{here.clinics[KHAM_NHI]}"}, "status": "active"}
    ]
    assert e["type"][0]["coding"][0] == {
        "system": sy.SERVICES,
        "code": KHAM_NHI,
        "display": "Khám Nhi",
    }
    assert e["serviceProvider"] == {"reference": here.organization}
    assert str(e["period"]["start"]).endswith("+07:00")


# ---- who may ------------------------------------------------------------------------------------


def test_a_nurse_may_look_but_not_change_people(
    anon: TestClient, sign_in: SignIn, huong: str, web_store: Store, here: Place
) -> None:
    nurse = sign_in("dd.lan", "nurse")
    assert anon.get("/desk").status_code == 200
    page = anon.get(f"/desk/patient/{huong}")
    assert page.status_code == 200 and '<fieldset class="plain" disabled>' in page.text
    before = versions(web_store)
    assert anon.post("/desk/patient", data={"csrf": nurse.csrf, **NEW}).status_code == 403
    r = anon.post(f"/desk/patient/{huong}/insurance", data={"csrf": nurse.csrf, **card(-1, 100)})
    assert r.status_code == 403
    assert versions(web_store) == before
    # a nurse may give a number: Encounter is hers to create
    assert register(anon, nurse, huong, here.clinics[KHAM_NOI]).status_code == 303


@pytest.mark.parametrize("role", ["lab-technician", "pharmacist", "facility-admin", "doctor"])
def test_other_roles_get_403(anon: TestClient, sign_in: SignIn, huong: str, role: str) -> None:
    me = sign_in("x.user", role)
    assert anon.get("/desk").status_code == 403
    assert anon.get(f"/desk/patient/{huong}").status_code == 403
    assert anon.post("/desk/patient", data={"csrf": me.csrf, **NEW}).status_code == 403


def test_signed_out_goes_to_sign_in(anon: TestClient, here: Place) -> None:
    r = anon.get("/desk", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/desk")


def test_posts_without_the_csrf_token_are_refused(
    anon: TestClient, registrar: SignedIn, huong: str, here: Place, web_store: Store
) -> None:
    before = versions(web_store)
    assert anon.post("/desk/search", data={"q": "027187000123"}).status_code == 403
    assert anon.post("/desk", data={"q": "027187000123"}).status_code == 403
    assert anon.post("/desk/patient", data=NEW).status_code == 403
    assert anon.post("/desk/patient", data={"csrf": "forged", **NEW}).status_code == 403
    r = anon.post(f"/desk/patient/{huong}/visit", data={"clinic": here.clinics[KHAM_NOI]})
    assert r.status_code == 403
    r = anon.post(f"/desk/patient/{huong}/insurance", data=card(-1, 100))
    assert r.status_code == 403
    assert versions(web_store) == before


def test_a_patient_out_of_reach_is_a_404_page_audited_as_refused_not_failed(
    here: Place, web_store: Store, anon: TestClient, sign_in: SignIn
) -> None:
    me = sign_in("tiepdon", "registrar")
    before = versions(web_store)
    for pid in ("0190c0de-0000-7000-8000-000000000000", "bad id!"):
        r = anon.post(f"/desk/patient/{pid}/visit", data={"csrf": me.csrf, "clinic": "x"})
        assert r.status_code == 404 and "text/html" in r.headers["content-type"], pid
    assert versions(web_store) == before
    # The unknown id was looked for and refused ("4": the unit's other steps with it), not
    # failed ("8"); the malformed one was never looked for, so it leaves no event.
    events = [e for e in audit_events(web_store) if e["subtype"][0]["code"] != "110122"]
    assert {e["outcome"] for e in events} == {"4"}
    assert [e["subtype"][0]["code"] for e in events].count("read") == 1


def test_a_broad_name_search_is_paged(
    here: Place, web_store: Store, anon: TestClient, sign_in: SignIn
) -> None:
    me = sign_in("tiepdon", "registrar")
    for i in range(23):
        person(web_store, name=f"Nguyễn Văn Nam{i:02d}", cccd=f"0270800{i:05d}", birth="1980-01-01")
    first = anon.post("/desk/search", data={"csrf": me.csrf, "q": "nguyen van"})
    assert first.status_code == 200
    assert first.text.count("/desk/patient/") == 20 and "Người 1–20" in first.text
    assert 'name="offset" value="20"' in first.text
    second = anon.post("/desk/search", data={"csrf": me.csrf, "q": "nguyen van", "offset": "20"})
    assert second.text.count("/desk/patient/") == 3 and "Người 21–23" in second.text
    assert 'name="offset" value="0"' in second.text and 'value="40"' not in second.text
    names = set(re.findall(r"Nam\d\d", first.text)) | set(re.findall(r"Nam\d\d", second.text))
    assert len(names) == 23  # every person once, none on both pages
    # A page start that is not a small whole number is the first page, not an error.
    odd = anon.post("/desk/search", data={"csrf": me.csrf, "q": "nguyen van", "offset": "-5"})
    assert odd.status_code == 200 and "Người 1–20" in odd.text
