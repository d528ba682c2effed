"""The results pages: who may use them, the work list as one types, entering and correcting."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from benhan.access import Actor
from benhan.emr.results import PAGE_SIZE
from benhan.store.database import Store
from benhan.store.repository import Repo
from tests.emr.test_results import GLUCOSE, HBSAG, XRAY, Ward, count, order
from tests.emr.world import OTHER_FACILITY, person, place, visit
from tests.signing.test_documents import practitioner
from tests.web.conftest import FACILITY, SignedIn, SignIn
from tests.web.test_document_pages import link

HX = {"HX-Request": "true", "HX-Target": "results-worklist"}


@pytest.fixture
def ward(web_store: Store, app: FastAPI) -> Ward:
    where = place(web_store)
    pid = person(web_store)
    return Ward(where, pid, visit(web_store, where, pid, status="in-progress", number=7))


@pytest.fixture
def tech(sign_in: SignIn) -> SignedIn:
    return sign_in("ktv.binh", "lab-technician", display_name="KTV Trần Bình")


def read(store: Store, rtype: str, rid: str) -> dict[str, Any]:
    with store.read() as conn:
        return Repo(conn, Actor.job(FACILITY, "test")).read(rtype, rid).resource


def written(store: Store) -> tuple[int, int, str]:
    """What a refused form must leave unchanged."""
    return count(store, "Observation"), count(store, "DiagnosticReport"), versions(store)


def versions(store: Store) -> str:
    with store.read() as conn:
        rows = conn.exec_driver_sql(
            "select id, version_id from resource where rtype = 'ServiceRequest' order by id"
        )
        return repr(list(rows))


def post(client: TestClient, path: str, me: SignedIn, **fields: str) -> Any:
    return client.post(path, data={"csrf": me.csrf, **fields}, follow_redirects=False)


def no_inline_code(html: str) -> None:
    assert " style=" not in html and re.search(r"<script(?![^>]*\bsrc=)", html) is None
    assert not re.search(r"\son[a-z]+=", html)


# ---- who may use the pages --------------------------------------------------------------


def test_the_worklist_for_a_technician(
    anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward
) -> None:
    sr = order(web_store, ward, GLUCOSE)
    r = anon.get("/results")
    assert r.status_code == 200
    assert "Nguyễn Thị Hương" in r.text and "Định lượng Glucose máu" in r.text
    assert f'href="/results/{sr}"' in r.text
    assert 'id="results-worklist"' in r.text and "<html" in r.text
    assert "results.css" in r.text
    no_inline_code(r.text)


@pytest.mark.parametrize("role", ["registrar", "nurse", "pharmacist", "facility-admin", "patient"])
def test_other_roles_get_403(
    anon: TestClient, sign_in: SignIn, web_store: Store, ward: Ward, role: str
) -> None:
    me = sign_in("user.x", role)
    sr = order(web_store, ward)
    before = written(web_store)
    assert anon.get("/results").status_code == 403
    assert anon.get(f"/results/{sr}").status_code == 403
    assert post(anon, f"/results/{sr}", me, value="5").status_code == 403
    assert (
        post(anon, f"/results/{sr}/correct", me, value="5", reason="Nhập nhầm").status_code == 403
    )
    assert written(web_store) == before


def test_signed_out_goes_to_sign_in(anon: TestClient, web_store: Store, ward: Ward) -> None:
    r = anon.get("/results", follow_redirects=False)
    assert r.status_code in (302, 303) and "/login" in r.headers["location"]


def test_a_doctor_may_look_but_not_enter(
    anon: TestClient, sign_in: SignIn, web_store: Store, ward: Ward
) -> None:
    me = sign_in("bs.an", "doctor")
    sr = order(web_store, ward)
    assert anon.get("/results").status_code == 200
    r = anon.get(f"/results/{sr}")
    assert r.status_code == 200 and "Nguyễn Thị Hương" in r.text
    assert 'name="value"' not in r.text
    assert post(anon, f"/results/{sr}", me, value="5").status_code == 403
    assert read(web_store, "ServiceRequest", sr)["status"] == "active"


def test_a_wrong_csrf_token_is_refused(
    anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward
) -> None:
    sr = order(web_store, ward)
    before = written(web_store)
    r = anon.post(f"/results/{sr}", data={"csrf": "sai", "value": "5"}, follow_redirects=False)
    assert r.status_code == 403
    r = anon.post(f"/results/{sr}", data={"value": "5"}, follow_redirects=False)
    assert r.status_code == 403
    assert written(web_store) == before


# ---- the work list ----------------------------------------------------------------------


def test_search_as_you_type_answers_with_the_list_alone(
    anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward
) -> None:
    mine = order(web_store, ward, GLUCOSE)
    xray = order(web_store, ward, XRAY)
    other = person(web_store, "Phạm Minh Tuấn", "027190000789", gender="male")
    theirs = order(
        web_store, Ward(ward.place, other, visit(web_store, ward.place, other, number=8))
    )
    r = anon.get("/results", params={"q": "tuan"}, headers=HX)
    assert r.status_code == 200
    assert "<html" not in r.text and r.text.lstrip().startswith('<div id="results-worklist">')
    assert f"/results/{theirs}" in r.text and f"/results/{mine}" not in r.text
    r = anon.get("/results", params={"q": "7", "kind": "imaging"}, headers=HX)
    assert f"/results/{xray}" in r.text and f"/results/{mine}" not in r.text
    r = anon.get("/results", params={"q": "không ai", "kind": "bogus"}, headers=HX)
    assert "Không có chỉ định nào khớp" in r.text
    r = anon.get("/results", params={"q": "a\\,|$b", "page": "-1"}, headers=HX)
    assert r.status_code == 200


def test_the_list_is_paged(anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward) -> None:
    for i in range(PAGE_SIZE + 1):
        order(web_store, ward, minutes_ago=200 - i)
    last = order(web_store, ward, minutes_ago=1)
    first = anon.get("/results")
    assert "Trang sau" in first.text and f"/results/{last}" not in first.text
    second = anon.get("/results", params={"page": "1"}, headers=HX)
    assert f"/results/{last}" in second.text and "Trang trước" in second.text


def test_another_facilitys_orders_are_not_shown_nor_open(
    anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward
) -> None:
    there = place(web_store, OTHER_FACILITY, "Trạm Y tế B")
    theirs = order(
        web_store,
        Ward(there, ward.patient, visit(web_store, there, ward.patient)),
        facility=OTHER_FACILITY,
    )
    assert f"/results/{theirs}" not in anon.get("/results").text
    assert anon.get(f"/results/{theirs}").status_code == 404
    me = tech
    assert post(anon, f"/results/{theirs}", me, value="5").status_code == 404
    assert read(web_store, "ServiceRequest", theirs)["status"] == "active"


# ---- entering a result ------------------------------------------------------------------


def test_the_form_shows_patient_unit_and_range(
    anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward
) -> None:
    sr = order(web_store, ward, GLUCOSE)
    r = anon.get(f"/results/{sr}")
    assert r.status_code == 200
    assert "Nguyễn Thị Hương" in r.text and "Nữ" in r.text
    assert re.search(r"<dt>Tuổi</dt><dd>\d+</dd>", r.text)
    assert "3,9 – 6,4 mmol/L" in r.text
    assert 'name="value"' in r.text and 'inputmode="decimal"' in r.text
    no_inline_code(r.text)


def test_a_numeric_result_saved_then_shown_flagged(
    anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward
) -> None:
    sr = order(web_store, ward, GLUCOSE)
    r = post(anon, f"/results/{sr}", tech, value="12,5", comment="Lấy mẫu lúc đói")
    assert (r.status_code, r.headers["location"]) == (303, f"/results/{sr}?saved=1")
    page = anon.get(r.headers["location"])
    assert "Đã lưu kết quả." in page.text
    assert "12,5" in page.text and "Cao nguy hiểm (HH)" in page.text
    assert "Lấy mẫu lúc đói" in page.text and "KTV Trần Bình" in page.text
    assert read(web_store, "ServiceRequest", sr)["status"] == "completed"
    assert count(web_store, "Observation") == count(web_store, "DiagnosticReport") == 1
    assert f"/results/{sr}" not in anon.get("/results", headers=HX).text
    recent = anon.get("/results").text
    assert "Kết quả vừa trả" in recent and f'href="/results/{sr}"' in recent


def test_qualitative_and_imaging_results(
    anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward
) -> None:
    hbs = order(web_store, ward, HBSAG)
    assert 'list="rs-answers"' in anon.get(f"/results/{hbs}").text
    assert post(anon, f"/results/{hbs}", tech, value="dương tính").status_code == 303
    assert "Bất thường (A)" in anon.get(f"/results/{hbs}").text
    xray = order(web_store, ward, XRAY)
    form = anon.get(f"/results/{xray}").text
    assert 'name="findings"' in form and 'name="conclusion"' in form
    r = post(anon, f"/results/{xray}", tech, findings="Hai phổi sáng.", conclusion="Bình thường")
    assert r.status_code == 303
    shown = anon.get(f"/results/{xray}").text
    assert "Hai phổi sáng." in shown and "Bình thường" in shown


@pytest.mark.parametrize(
    ("typed", "message", "field"),
    [
        ({"value": "abc"}, "Kết quả phải là một số", "rs-value"),
        ({"value": ""}, "Hãy nhập kết quả.", "rs-value"),
        ({"value": "-3"}, "Kết quả này không thể là số âm.", "rs-value"),
        ({"value": "5", "comment": "x" * 1001}, "Ghi chú quá dài", "rs-comment"),
    ],
)
def test_bad_input_keeps_what_was_typed_and_saves_nothing(
    anon: TestClient,
    tech: SignedIn,
    web_store: Store,
    ward: Ward,
    typed: dict[str, str],
    message: str,
    field: str,
) -> None:
    sr = order(web_store, ward, GLUCOSE)
    before = written(web_store)
    r = post(anon, f"/results/{sr}", tech, **typed)
    assert r.status_code == 400
    assert message in r.text
    tag = re.search(rf'<(?:input|textarea) id="{field}"[^>]*>', r.text)
    assert tag is not None and 'aria-invalid="true"' in tag.group(0)
    if typed["value"]:
        assert f'value="{typed["value"]}"' in r.text
    assert written(web_store) == before


def test_imaging_without_conclusion(
    anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward
) -> None:
    sr = order(web_store, ward, XRAY)
    before = written(web_store)
    r = post(anon, f"/results/{sr}", tech, findings="Bóng tim to.", conclusion="")
    assert r.status_code == 400 and "Hãy nhập kết luận." in r.text
    assert "Bóng tim to." in r.text
    assert written(web_store) == before


def test_an_order_already_done_or_withdrawn(
    anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward
) -> None:
    sr = order(web_store, ward)
    assert post(anon, f"/results/{sr}", tech, value="5").status_code == 303
    revoked = order(web_store, ward, status="revoked")
    before = written(web_store)
    r = post(anon, f"/results/{sr}", tech, value="6")
    assert r.status_code == 400 and "Chỉ định này đã có kết quả" in r.text
    r = post(anon, f"/results/{revoked}", tech, value="6")
    assert r.status_code == 400 and "không còn hiệu lực" in r.text
    assert written(web_store) == before


@pytest.mark.parametrize("bad", ["khong-co-that", "a_b", "x" * 65, "%20"])
def test_unknown_or_malformed_ids_are_404(
    anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward, bad: str
) -> None:
    before = written(web_store)
    assert anon.get(f"/results/{bad}").status_code == 404
    assert post(anon, f"/results/{bad}", tech, value="5").status_code == 404
    assert (
        post(anon, f"/results/{bad}/correct", tech, value="5", reason="Nhập nhầm").status_code
        == 404
    )
    assert anon.get(f"/results/{ward.encounter}").status_code == 404
    assert written(web_store) == before


# ---- corrections ------------------------------------------------------------------------


def test_correct_a_result(anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward) -> None:
    sr = order(web_store, ward, GLUCOSE)
    post(anon, f"/results/{sr}", tech, value="72")
    form = anon.get(f"/results/{sr}").text
    assert "Sửa kết quả" in form and 'value="72"' in form
    before = written(web_store)
    r = post(anon, f"/results/{sr}/correct", tech, value="7,2", reason="ab")
    assert r.status_code == 400 and "Hãy ghi lý do sửa kết quả" in r.text
    assert 'value="7,2"' in r.text
    assert written(web_store) == before
    r = post(anon, f"/results/{sr}/correct", tech, value="7,2", reason="Nhập nhầm dấu phẩy")
    assert (r.status_code, r.headers["location"]) == (303, f"/results/{sr}?corrected=1")
    shown = anon.get(r.headers["location"]).text
    assert "(đã sửa)" in shown and "Cao (H)" in shown and "Nhập nhầm dấu phẩy" in shown
    assert count(web_store, "Observation") == 1


def test_nothing_to_correct_on_an_active_order(
    anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward
) -> None:
    sr = order(web_store, ward)
    r = post(anon, f"/results/{sr}/correct", tech, value="5", reason="Nhập nhầm")
    assert r.status_code == 400 and "chưa có kết quả để sửa" in r.text


def test_a_technician_with_a_practitioner_goes_from_the_result_to_signing_it(
    anon: TestClient, tech: SignedIn, web_store: Store, ward: Ward
) -> None:
    sr = order(web_store, ward, GLUCOSE)
    post(anon, f"/results/{sr}", tech, value="5,6")
    report = anon.get(f"/results/{sr}").text
    assert "Xem lại và ký phiếu kết quả" not in report  # no Practitioner: nothing to sign as
    link(web_store, "ktv.binh", practitioner(web_store))
    page = anon.get(f"/results/{sr}").text
    found = re.search(r'href="([^"]*/documents/review\?kind=report&amp;report=[^"]+)"', page)
    assert found and f"/visit/{ward.encounter}/" in found.group(1)
    assert anon.get(found.group(1).replace("&amp;", "&")).status_code == 200
