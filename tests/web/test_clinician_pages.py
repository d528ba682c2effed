"""The worklist, the chart and the printed pages, through the browser's door."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from benhan.access import Actor
from benhan.emr import model
from benhan.emr.chart import PAGE, Point
from benhan.emr.model import ref, stamp
from benhan.fhir import systems as sy
from benhan.identity.persons import relink
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.web.clinician_pages import day, sparkline
from tests.conftest import FROZEN
from tests.emr import test_chart as tc
from tests.emr.world import OTHER_FACILITY, Place, create, person, place, visit
from tests.web.conftest import SignIn

pytestmark = pytest.mark.usefixtures("frozen")


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "now", lambda: FROZEN)


@pytest.fixture
def world(web_store: Store, anon: TestClient) -> tuple[Place, str, str]:
    """A facility, a patient with a penicillin allergy and a visit of today, waiting 30 min."""
    where = place(web_store)
    pid = person(web_store)
    tc.allergy(web_store, pid, "Penicillin", "active")
    eid = visit(web_store, where, pid, arrived=FROZEN - timedelta(minutes=30))
    return where, pid, eid


def test_worklist_lists_todays_visits_with_links_and_refresh(
    anon: TestClient, sign_in: SignIn, web_store: Store, world: tuple[Place, str, str]
) -> None:
    where, pid, eid = world
    other = place(web_store, OTHER_FACILITY, "Trạm Y tế B")
    stranger = person(web_store, name="Đỗ Văn Lạ", cccd="027187009999", facility=OTHER_FACILITY)
    visit(web_store, other, stranger, arrived=FROZEN - timedelta(minutes=5))
    yesterday = person(web_store, name="Hoàng Hôm Qua", cccd="027187008888")
    visit(web_store, where, yesterday, arrived=FROZEN - timedelta(days=1))
    sign_in("bs.an", "doctor")
    r = anon.get("/worklist")
    assert r.status_code == 200, r.text
    assert "Nguyễn Thị Hương" in r.text and f'href="/visit/{eid}"' in r.text
    assert f'href="/chart/{pid}"' in r.text
    assert re.search(r'data-minutes="30"', r.text)
    assert "Đỗ Văn Lạ" not in r.text and "Hoàng Hôm Qua" not in r.text
    assert 'hx-trigger="every 30s"' in r.text and "/worklist/rows?" in r.text
    rows = anon.get("/worklist/rows", params={"tab": "waiting"})
    assert rows.status_code == 200 and "<html" not in rows.text and "Nguyễn Thị Hương" in rows.text
    done = anon.get("/worklist", params={"tab": "done"})
    assert "Nguyễn Thị Hương" not in done.text
    nhi = anon.get("/worklist", params={"clinic": where.clinics["03.9002"]})
    assert nhi.status_code == 200 and "Nguyễn Thị Hương" not in nhi.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"clinic": "../etc"}, "Phòng khám không hợp lệ"),
        ({"offset": "-1"}, "Số trang không hợp lệ"),
        ({"offset": "abc"}, "Số trang không hợp lệ"),
    ],
)
def test_worklist_bad_filters_are_400(
    anon: TestClient,
    sign_in: SignIn,
    world: tuple[Place, str, str],
    params: dict[str, str],
    message: str,
) -> None:
    sign_in("dd.binh", "nurse")
    r = anon.get("/worklist", params=params)
    assert r.status_code == 400 and message in r.text


def test_chart_shows_allergy_band_flags_and_sparkline(
    anon: TestClient, sign_in: SignIn, web_store: Store, world: tuple[Place, str, str]
) -> None:
    _where, pid, eid = world
    high = float(tc.LAB.ref_high or 0) * 2
    tc.lab(web_store, pid, eid, stamp(FROZEN - timedelta(days=20)), high / 3, "N")
    tc.lab(web_store, pid, eid, stamp(FROZEN), high, "H")
    tc.condition(web_store, pid, eid, "I10", "active", stamp(FROZEN))
    imaging = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [{"coding": [{"system": sy.DIAG_SECTION, "code": "RAD"}]}],
        "code": {"text": "Chụp X-quang ngực thẳng"},
        "subject": {"reference": f"Patient/{pid}"},
        "issued": stamp(FROZEN),
        "conclusion": "Bóng tim không to <b>",
    }
    create(web_store, imaging)
    sign_in("dd.binh", "nurse")
    r = anon.get(f"/chart/{pid}")
    assert r.status_code == 200, r.text
    band = r.text.split('class="allergy-band"', 1)[1].split("</section>", 1)[0]
    assert "Penicillin" in band and "Phát ban" in band
    assert 'class="abnormal"' in r.text and "flag-H" in r.text
    assert '<svg class="spark"' in r.text and "<polyline points=" in r.text
    assert f"/print/visit/{eid}" in r.text and f"/print/prescription/{eid}" in r.text
    assert "I10" in r.text
    assert "Chụp X-quang ngực thẳng</strong>: Bóng tim không to &lt;b&gt;" in r.text
    assert "style=" not in r.text and "<script>" not in r.text  # the CSP forbids both


def test_chart_marks_another_facilitys_entries_with_its_name_in_date_order(
    anon: TestClient, sign_in: SignIn, web_store: Store, world: tuple[Place, str, str]
) -> None:
    where, pid, today = world  # she is waiting at A (Bệnh viện Đa khoa A) today
    there = place(web_store, OTHER_FACILITY, "Trạm Y tế xã Phù Chẩn")
    elsewhere = person(web_store, name="Nguyen Thi Huong", facility=OTHER_FACILITY)  # same CCCD
    old_here = visit(web_store, where, pid, arrived=FROZEN - timedelta(days=30), status="finished")
    at = FROZEN - timedelta(days=10)
    old_there = visit(web_store, there, elsewhere, arrived=at, status="finished")
    tc.condition(web_store, elsewhere, old_there, "J45", "active", stamp(at), OTHER_FACILITY)
    tc.medication(
        web_store, elsewhere, old_there, "Salbutamol 2mg", "active", stamp(at), OTHER_FACILITY
    )
    tc.lab(web_store, elsewhere, old_there, stamp(at), 6.0, "N", OTHER_FACILITY)
    tc.condition(web_store, pid, old_here, "I10", "active", stamp(FROZEN - timedelta(days=30)))
    relink(web_store, "27000")  # the provincial index links her two records
    sign_in("bs.an", "doctor")
    r = anon.get(f"/chart/{pid}")
    assert r.status_code == 200, r.text
    body = r.text.split('id="visits"', 1)[1].split("</tbody>", 1)[0]
    rows = {
        eid: row
        for row in body.split("<tr")[1:]
        for eid in re.findall(r"/print/visit/([\w-]+)", row)
    }
    assert list(rows) == [today, old_there, old_here]  # newest first, across facilities
    badge = 'class="badge origin"><span class="visually-hidden">Ghi nhận tại cơ sở khác: </span>'
    assert f"{badge}Trạm Y tế xã Phù Chẩn</span>" in rows[old_there]
    for mine in (today, old_here):
        assert "Bệnh viện Đa khoa A" in rows[mine] and "badge origin" not in rows[mine]
    problems = r.text.split('id="h-problems"', 1)[1].split("</section>", 1)[0]
    j45, i10 = (problems.split(code, 1)[1].split("</li>", 1)[0] for code in ("J45", "I10"))
    assert "Trạm Y tế xã Phù Chẩn" in j45 and "badge origin" not in i10
    meds = r.text.split('id="h-meds"', 1)[1].split("</section>", 1)[0]
    assert "Salbutamol 2mg" in meds and f"{badge}Trạm Y tế xã Phù Chẩn" in meds
    results = r.text.split('id="h-results"', 1)[1].split("</section>", 1)[0]
    assert f"{badge}Trạm Y tế xã Phù Chẩn" in results
    anon.cookies.set("lang", "en")
    assert (
        "Recorded at another facility: </span>Trạm Y tế xã Phù Chẩn"
        in anon.get(f"/chart/{pid}").text
    )


def test_chart_timeline_pages_with_xem_them(
    anon: TestClient, sign_in: SignIn, web_store: Store, world: tuple[Place, str, str]
) -> None:
    where, pid, _eid = world
    for d in range(1, PAGE + 3):
        visit(web_store, where, pid, arrived=FROZEN - timedelta(days=d), status="finished")
    sign_in("bs.an", "doctor")
    r = anon.get(f"/chart/{pid}")
    assert r.text.count("/print/visit/") == PAGE and "Xem thêm" in r.text
    more = anon.get(f"/chart/{pid}/visits", params={"offset": PAGE})
    assert more.status_code == 200 and "<html" not in more.text
    assert more.text.count("/print/visit/") == 3 and "Xem thêm" not in more.text
    plain = anon.get(f"/chart/{pid}", params={"offset": PAGE})  # the same page without htmx
    assert plain.text.count("/print/visit/") == 3
    assert anon.get(f"/chart/{pid}/visits", params={"offset": "x"}).status_code == 404
    assert anon.get("/chart/nobody/visits").status_code == 404


def test_print_prescription(
    anon: TestClient, sign_in: SignIn, web_store: Store, world: tuple[Place, str, str]
) -> None:
    _where, pid, eid = world
    tc.coverage(web_store, pid, "DN4270123456789", "2025-01-01", "2025-12-31")
    tc.condition(web_store, pid, eid, "I10", "active", stamp(FROZEN))
    tc.medication(web_store, pid, eid, "Amlodipin 5mg", "active", stamp(FROZEN))
    sign_in("bs.an", "doctor")
    r = anon.get(f"/print/prescription/{eid}")
    assert r.status_code == 200, r.text
    for text in (
        "ĐƠN THUỐC",
        "BỆNH VIỆN ĐA KHOA A",
        "Mã cơ sở: 27001",
        "NGUYỄN THỊ HƯƠNG",
        "027187000123",
        "DN4270123456789",
        "(I10) Bệnh I10",
        "Amlodipin 5mg",
        "SL: 14 Viên",
        "Ngày 2 lần, mỗi lần 1 Viên",
        "dùng 7 ngày",
        "Ngày 01 tháng 03 năm 2025",
        "BS. Trần Minh",
        "Khám lại xin mang theo đơn này.",
    ):
        assert text in r.text, text
    assert "site-header" not in r.text and "print.css" in r.text


def test_print_visit_summary(
    anon: TestClient, sign_in: SignIn, web_store: Store, world: tuple[Place, str, str]
) -> None:
    _where, pid, eid = world
    tc.bp(web_store, pid, eid, stamp(FROZEN), 150, 95)
    tc.condition(web_store, pid, eid, "I10", "active", stamp(FROZEN))
    order = create(
        web_store,
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "code": {"text": "Định lượng Glucose"},
            "subject": ref(f"Patient/{pid}"),
            "encounter": ref(f"Encounter/{eid}"),
        },
    )
    assert order
    with web_store.begin() as conn:
        repo = Repo(conn, Actor.job("27001", "test"))
        enc = repo.read("Encounter", eid).resource
        code = {"system": sy.DISCHARGE_DISPOSITION, "code": "other-hcf"}
        enc["hospitalization"] = {"dischargeDisposition": {"coding": [code]}}
        repo.update("Encounter", eid, enc)
    sign_in("dd.binh", "nurse")
    r = anon.get(f"/print/visit/{eid}")
    assert r.status_code == 200, r.text
    for text in (
        "TÓM TẮT LẦN KHÁM",
        "150/95 mmHg",
        "Định lượng Glucose",
        "chưa có kết quả",
        "I10",
        "Chuyển cơ sở khám chữa bệnh khác",
    ):
        assert text in r.text, text


@pytest.mark.parametrize(
    "path", ["/worklist", "/chart/{pid}", "/print/prescription/{eid}", "/print/visit/{eid}"]
)
@pytest.mark.parametrize("role", ["registrar", "lab-technician", "facility-admin"])
def test_other_roles_get_the_403_page(
    anon: TestClient, sign_in: SignIn, world: tuple[Place, str, str], path: str, role: str
) -> None:
    _where, pid, eid = world
    sign_in(f"u.{role}", role)
    r = anon.get(path.format(pid=pid, eid=eid))
    assert r.status_code == 403 and "<html" in r.text


def test_signed_out_goes_to_sign_in(anon: TestClient, world: tuple[Place, str, str]) -> None:
    r = anon.get("/worklist", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


@pytest.mark.parametrize(
    "path",
    [
        "/chart/unknown",
        "/chart/bad%20id!",
        "/print/prescription/unknown",
        "/print/visit/bad$id",
        "/print/visit/{pid}",
    ],
)
def test_unknown_or_malformed_ids_are_404(
    anon: TestClient, sign_in: SignIn, world: tuple[Place, str, str], path: str
) -> None:
    _where, pid, _eid = world
    sign_in("bs.an", "doctor")
    r = anon.get(path.format(pid=pid))
    assert r.status_code == 404 and "Không tìm thấy" in r.text


def test_another_facilitys_patient_is_404(
    anon: TestClient, sign_in: SignIn, web_store: Store, world: tuple[Place, str, str]
) -> None:
    other = place(web_store, OTHER_FACILITY, "Trạm Y tế B")
    stranger = person(web_store, name="Đỗ Văn Lạ", cccd="027187009999", facility=OTHER_FACILITY)
    eid = visit(web_store, other, stranger, status="finished")
    sign_in("bs.an", "doctor")
    assert anon.get(f"/chart/{stranger}").status_code == 404
    assert anon.get(f"/print/visit/{eid}").status_code == 404


def test_sparkline_marks_the_abnormal_points() -> None:
    pts = (Point("d1", 5.0, "", "N"), Point("d2", 9.0, "", "H"), Point("d3", None, "+", ""))
    spark = sparkline(pts)
    assert spark is not None and len(spark.line.split()) == 2
    assert [f for _x, _y, f in spark.dots] == ["H"]
    assert sparkline(pts[:1]) is None


def test_dates_are_written_the_vietnamese_way() -> None:
    assert day("1987-03-12") == "12/03/1987"
    assert day("2025-03-01T06:30:00+07:00") == "01/03/2025"
    assert day("1950") == "1950" and day("") == ""
