"""The identity steward's pages: the review queue, a pair side by side with the model's weights,
link / keep apart / unlink / withdraw / undo with a reason, and who may use them."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from benhan.fhir import systems as sy
from benhan.identity import online, review
from benhan.identity.persons import relink
from benhan.store.database import Store, open_store
from benhan.synth.output import to_store
from benhan.synth.province import Province, generate
from benhan.web import mpi_pages
from tests.identity.conftest import SMALL
from tests.web.conftest import (
    FACILITY,
    OTHER_FACILITY,
    SignedIn,
    SignIn,
    add_resource,
    audit_events,
)

# Pairs the model trained on the SMALL province puts in the review band (0.80 ≤ p < 0.99), and
# one it links by itself; the tests check that before relying on it.
LAN = (("Lê Thị Lan", "1992-07-07", "female"), ("Lê Thị Lan", "1992-07-17", "female"))
MAI = (("Hà Thị Mai", "1990-01-15", "female"), ("Hà Thị Mây", "1990", "female"))
NAM = (("Trần Văn Nam", "1975-03-03", "male"), ("Trần Văn Nam", "1975-03-30", "male"))
KHOA = (("Đinh Văn Khoa", "1972-04-10", "male"), ("Đinh Văn Khoa", "1972-10-04", "male"))
CCCD_OF_NAM = "027075000123"
BHYT_OF_NAM = "2798765432"
OTHER_ORG = {
    "resourceType": "Organization",
    "name": "Trạm Y tế Đông Ngàn",
    "identifier": [{"system": sy.MA_CSKCB, "value": OTHER_FACILITY}],
}
HX = {"HX-Request": "true", "HX-Target": "mpi-queue"}
Pair = tuple[str, str]


@pytest.fixture(scope="module")
def province_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small province's Patients, indexed once by relink (which trains the model)."""
    path = tmp_path_factory.mktemp("mpi") / "province.sqlite3"
    store = open_store(f"sqlite:///{path}")
    store.create_schema()
    found = generate(SMALL, Province(SMALL, []))
    to_store(store, ((code, res) for code, res in found if res["resourceType"] == "Patient"))
    relink(store, FACILITY)
    store.dispose()
    return path


@pytest.fixture
def web_store(province_file: Path, tmp_path: Path) -> Iterator[Store]:
    """A fresh copy of the indexed province for each test (building it is the slow part)."""
    copy = tmp_path / "db.sqlite3"
    with sqlite3.connect(province_file) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    store = open_store(f"sqlite:///{copy}")
    yield store
    store.dispose()


@pytest.fixture
def steward(sign_in: SignIn) -> SignedIn:
    return sign_in("qldd.hanh", "mpi-steward", "", display_name="Cán bộ Hạnh")


def patient(name: str, birth: str, gender: str, **extra: Any) -> dict[str, Any]:
    family, *given = name.split()
    return {
        "resourceType": "Patient",
        "name": [{"use": "official", "text": name, "family": family, "given": given}],
        "gender": gender,
        "birthDate": birth,
        **extra,
    }


def pair_of(store: Store, people: tuple[tuple[str, str, str], ...], **first: Any) -> Pair:
    """The two records written at two facilities and matched as the hub matches arrivals."""
    a = add_resource(store, patient(*people[0], **first), FACILITY)
    b = add_resource(store, patient(*people[1]), OTHER_FACILITY)
    online.drain(store, FACILITY)
    return a, b


def in_review(store: Store, a: str, b: str) -> Pair:
    with store.read() as conn:
        found = review.pair(conn, a, b)
    assert found is not None and found.state == "review", "the model no longer queues this pair"
    return a, b


@pytest.fixture
def nam(web_store: Store, app: Any) -> Pair:
    first = {
        "identifier": [{"system": sy.CCCD, "value": CCCD_OF_NAM}],
        "telecom": [{"system": "phone", "value": "0912000111"}],
        "address": [{"use": "home", "text": "Thôn Đông, Xã Tiên Du", "city": "Xã Tiên Du"}],
    }
    a, b = pair_of(web_store, NAM, **first)
    return in_review(web_store, a, b)


def state(store: Store, a: str, b: str) -> tuple[str | None, bool, list[review.Decided]]:
    """What a decision changes: the pair's state, whether one Person holds both, the log."""
    with store.read() as conn:
        found = review.pair(conn, a, b)
        return found.state if found else None, review.linked(conn, a, b), review.history(conn, a, b)


def decide(client: TestClient, me: SignedIn, a: str, b: str, decision: str, reason: str) -> Any:
    form = {"csrf": me.csrf, "decision": decision, "reason": reason}
    return client.post(f"/mpi/review/{a}/{b}", data=form, follow_redirects=False)


def undo(client: TestClient, me: SignedIn, a: str, b: str, decision_id: str, reason: str) -> Any:
    form = {"csrf": me.csrf, "decision_id": decision_id, "reason": reason}
    return client.post(f"/mpi/review/{a}/{b}/undo", data=form, follow_redirects=False)


def stewards_events(store: Store, subtype: str) -> list[dict[str, Any]]:
    return [e for e in audit_events(store, subtype) if e["agent"][0]["altId"] == "qldd.hanh"]


def no_inline_code(html: str) -> None:
    assert " style=" not in html and re.search(r"<script(?![^>]*\bsrc=)", html) is None
    assert not re.search(r"\son[a-z]+=", html)


# ---- the queue ------------------------------------------------------------------------------


def test_the_queue_lists_pairs_most_probable_first(
    anon: TestClient, steward: SignedIn, web_store: Store, nam: Pair
) -> None:
    lan = in_review(web_store, *pair_of(web_store, LAN))
    mai = in_review(web_store, *pair_of(web_store, MAI))
    add_resource(web_store, OTHER_ORG)
    r = anon.get("/mpi/review")
    assert r.status_code == 200
    assert "3 cặp đang chờ xem xét" in r.text
    with web_store.read() as conn:
        pairs, _ = review.queue(conn)
    order = [r.text.index(f"/mpi/review/{p.patient_a}/{p.patient_b}") for p in pairs]
    assert order == sorted(order) and len(order) == 3
    assert {frozenset((p.patient_a, p.patient_b)) for p in pairs} == {
        frozenset(x) for x in (lan, mai, nam)
    }
    percent = f"{pairs[0].probability * 100:.1f}".replace(".", ",") + "%"
    assert percent in r.text  # the probability as a Vietnamese percentage
    for text in ("Lê Thị Lan", "1992-07-17", "Hà Thị Mây", "Trần Văn Nam", "1975-03-30", "Nam"):
        assert text in r.text
    assert f"Trạm Y tế Đông Ngàn ({OTHER_FACILITY})" in r.text and FACILITY in r.text
    assert 'href="/mpi/review"' in r.text and "Đối chiếu định danh" in r.text  # the nav
    no_inline_code(r.text)


def test_the_queue_pages_forward_and_back(
    anon: TestClient,
    steward: SignedIn,
    web_store: Store,
    nam: Pair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_review(web_store, *pair_of(web_store, LAN))
    in_review(web_store, *pair_of(web_store, MAI))
    monkeypatch.setattr(mpi_pages, "PAGE_SIZE", 2)
    first = anon.get("/mpi/review")
    assert first.text.count("So sánh và quyết định") == 2
    assert 'href="/mpi/review?page=1"' in first.text and "page=-1" not in first.text
    second = anon.get("/mpi/review?page=1", headers=HX)
    assert second.text.count("So sánh và quyết định") == 1
    assert "<html" not in second.text and 'id="mpi-queue"' in second.text
    assert 'href="/mpi/review?page=0"' in second.text and "page=2" not in second.text
    assert "Trần Văn Nam" in second.text  # the least probable, last
    for odd in ("x", "-1", "99999999"):
        assert anon.get(f"/mpi/review?page={odd}").status_code == 200


def test_an_empty_queue_says_so(anon: TestClient, steward: SignedIn, app: Any) -> None:
    r = anon.get("/mpi/review")
    assert r.status_code == 200
    assert "Không có cặp hồ sơ nào đang chờ xem xét." in r.text
    assert "0 cặp đang chờ xem xét" in r.text


# ---- one pair -------------------------------------------------------------------------------


def test_the_pair_page_shows_both_records_the_weights_and_the_state(
    anon: TestClient, steward: SignedIn, web_store: Store, nam: Pair
) -> None:
    a, b = nam
    r = anon.get(f"/mpi/review/{a}/{b}")
    assert r.status_code == 200
    text = r.text
    for value in ("Trần Văn Nam", "1975-03-03", "1975-03-30", CCCD_OF_NAM, "0912000111",
                  "Xã Tiên Du", FACILITY, OTHER_FACILITY):  # fmt: skip
        assert value in text, value
    assert text.count('class="differs"') == 1  # only the birth dates differ where both are known
    with web_store.read() as conn:
        evidence = review.evidence(conn, a, b)
    assert f"{evidence.probability * 100:.1f}".replace(".", ",") + "%" in text
    assert "đưa vào hàng chờ để người xem xét" in text and "Đang chờ xem xét" in text
    assert "Chưa liên kết" in text
    name = next(f for f in evidence.fields if f.comparison == "name")
    birth = next(f for f in evidence.fields if f.comparison == "birth_date")
    assert f"+{name.weight:.1f}".replace(".", ",") in text
    assert "cùng năm và tháng" in text  # the birth dates' level, in Vietnamese
    bars = re.findall(r'<rect class="(for|against)"', text)
    assert len(bars) == sum(1 for f in evidence.fields if f.weight) and "for" in bars
    assert birth.weight > 0 and "Chưa có quyết định nào về cặp này." in text
    assert text.count('name="decision"') == 2  # link and keep apart; nothing to withdraw yet
    assert "Trả lại cho mô hình" not in text
    no_inline_code(text)
    reads = stewards_events(web_store, "read")
    seen = {x["what"]["reference"] for e in reads for x in e.get("entity", [])}
    assert {f"Patient/{a}", f"Patient/{b}"} <= seen  # read through the steward's access, audited


def test_the_pair_page_in_english(
    anon: TestClient, steward: SignedIn, web_store: Store, nam: Pair
) -> None:
    anon.cookies.set("lang", "en")
    r = anon.get(f"/mpi/review/{nam[0]}/{nam[1]}")
    assert r.status_code == 200
    assert "Keep apart" in r.text and "Link" in r.text and "same year and month" in r.text
    assert "Patient identity steward" in r.text


# ---- decisions -------------------------------------------------------------------------------


def test_link_puts_both_in_one_person_and_logs_who_and_why(
    anon: TestClient, steward: SignedIn, web_store: Store, nam: Pair
) -> None:
    a, b = nam
    r = decide(anon, steward, a, b, "link", "Đã gọi điện cho người bệnh xác minh")
    assert r.status_code == 303
    assert r.headers["location"] == f"/mpi/review?done=link&a={a}&b={b}"
    pair_state, linked, log = state(web_store, a, b)
    assert (pair_state, linked) == ("link", True)
    assert [(d.decision, d.actor, d.reason) for d in log] == [
        ("link", "qldd.hanh", "Đã gọi điện cho người bệnh xác minh")
    ]
    after = anon.get(r.headers["location"])
    assert "Đã liên kết hai hồ sơ vào một người." in after.text
    assert f"/mpi/review/{a}/{b}" in after.text  # the link back to the pair just decided
    assert "0 cặp đang chờ xem xét" in after.text  # it left the queue
    page = anon.get(f"/mpi/review/{a}/{b}").text
    assert "Đang liên kết: cùng một người" in page and "Đã gọi điện cho người bệnh xác minh" in page
    assert "Tách" in page and "Trả lại cho mô hình" in page
    updates = stewards_events(web_store, "update")
    assert any(e["outcome"] == "0" and "mpi link" in e.get("outcomeDesc", "") for e in updates)


def test_unlink_a_pair_the_model_linked(
    anon: TestClient, steward: SignedIn, web_store: Store, app: Any
) -> None:
    a, b = pair_of(web_store, KHOA)
    assert state(web_store, a, b)[1], "the model no longer links this pair by itself"
    page = anon.get(f"/mpi/review/{a}/{b}").text
    assert "Tách" in page and "Giữ riêng</button>" not in page
    r = decide(anon, steward, a, b, "apart", "Hai anh em, đã xác minh giấy khai sinh")
    assert r.status_code == 303 and "done=unlink" in r.headers["location"]
    assert state(web_store, a, b)[:2] == ("apart", False)
    assert "Đã tách hai hồ sơ" in anon.get(r.headers["location"]).text


def test_undo_puts_the_pair_back(
    anon: TestClient, steward: SignedIn, web_store: Store, nam: Pair
) -> None:
    a, b = nam
    decide(anon, steward, a, b, "link", "Trùng số điện thoại và địa chỉ")
    (linked,) = state(web_store, a, b)[2]
    page = anon.get(f"/mpi/review/{a}/{b}").text
    assert f'name="decision_id" value="{linked.id}"' in page
    r = undo(anon, steward, a, b, linked.id, "Nhầm: hai người khác nhau")
    assert r.status_code == 303 and r.headers["location"] == f"/mpi/review/{a}/{b}?done=undone"
    pair_state, is_linked, log = state(web_store, a, b)
    assert not is_linked and pair_state != "link"
    assert [(d.decision, d.previous, d.reason) for d in log] == [
        ("model", "link", "Nhầm: hai người khác nhau"),
        ("link", "model", "Trùng số điện thoại và địa chỉ"),
    ]
    after = anon.get(r.headers["location"]).text
    assert "Đã hoàn tác quyết định." in after
    assert after.count('name="decision_id"') == 1  # undoing the undo again is offered; not both


def test_withdraw_hands_the_pair_back_to_the_model(
    anon: TestClient, steward: SignedIn, web_store: Store, nam: Pair
) -> None:
    a, b = nam
    decide(anon, steward, a, b, "apart", "Khác cha mẹ theo giấy tờ")
    assert state(web_store, a, b)[0] == "apart"
    assert "Trả lại cho mô hình" in anon.get(f"/mpi/review/{a}/{b}").text
    r = decide(anon, steward, a, b, "model", "Cần xác minh thêm")
    assert r.status_code == 303 and "done=model" in r.headers["location"]
    pair_state, linked, log = state(web_store, a, b)
    assert (pair_state, linked) == ("review", False)  # the model queues it again
    assert [d.decision for d in log] == ["model", "apart"]


@pytest.mark.parametrize(
    ("decision", "reason", "message"),
    [
        ("link", "   ", "Cần ghi lý do"),
        ("link", "x" * 1001, "Lý do quá dài"),
        ("merge", "lý do", "Quyết định không hợp lệ"),
        ("model", "chưa có quyết định nào", "đã được quyết định như vậy"),
    ],
)
def test_a_refused_decision_says_why_and_changes_nothing(
    anon: TestClient,
    steward: SignedIn,
    web_store: Store,
    nam: Pair,
    decision: str,
    reason: str,
    message: str,
) -> None:
    a, b = nam
    before = state(web_store, a, b)
    r = decide(anon, steward, a, b, decision, reason)
    assert r.status_code == 400
    assert message in r.text and "Không có gì thay đổi." in r.text
    assert "Trần Văn Nam" in r.text  # the pair page, to try again
    assert state(web_store, a, b) == before
    refused = stewards_events(web_store, "update")
    assert [e["outcome"] for e in refused] == ["4"]  # the attempt is in the trail, as refused


def test_an_undo_needs_a_reason_and_a_decision_of_this_pair(
    anon: TestClient, steward: SignedIn, web_store: Store, nam: Pair
) -> None:
    a, b = nam
    decide(anon, steward, a, b, "link", "Trùng số điện thoại")
    (linked,) = state(web_store, a, b)[2]
    before = state(web_store, a, b)
    assert undo(anon, steward, a, b, linked.id, "").status_code == 400
    lan = pair_of(web_store, LAN)
    assert undo(anon, steward, *lan, linked.id, "nhầm cặp").status_code == 404
    assert undo(anon, steward, a, b, "no-such-decision", "nhầm").status_code == 404
    assert state(web_store, a, b) == before


# ---- who may use the pages -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "facility"),
    [
        ("doctor", FACILITY),
        ("registrar", FACILITY),
        ("privacy-officer", FACILITY),
        ("facility-admin", FACILITY),
        ("doh-analyst", ""),
        ("insurance-assessor", ""),
    ],
)
def test_other_roles_get_403(
    anon: TestClient, sign_in: SignIn, web_store: Store, nam: Pair, role: str, facility: str
) -> None:
    a, b = nam
    me = sign_in(f"u-{role}", role, facility)
    assert anon.get("/mpi/review").status_code == 403
    assert anon.get(f"/mpi/review/{a}/{b}").status_code == 403
    assert decide(anon, me, a, b, "link", "thử").status_code == 403
    assert 'href="/mpi/review"' not in anon.get("/").text
    assert state(web_store, a, b) == ("review", False, [])


def test_signed_out_goes_to_sign_in_and_a_form_needs_its_token(
    anon: TestClient, web_store: Store, nam: Pair, sign_in: SignIn
) -> None:
    a, b = nam
    r = anon.get(f"/mpi/review/{a}/{b}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    me = sign_in("qldd.tuan", "mpi-steward", "")
    forged = SignedIn(me.account, "not-the-token")
    assert decide(anon, forged, a, b, "link", "giả mạo").status_code == 403
    assert state(web_store, a, b) == ("review", False, [])


def test_unknown_records_get_the_404_page(
    anon: TestClient, steward: SignedIn, web_store: Store, nam: Pair
) -> None:
    a, b = nam
    for path in (f"/mpi/review/{a}/no-such-patient", f"/mpi/review/{a}/{a}", "/mpi/review/a/b%20c"):
        r = anon.get(path)
        assert r.status_code == 404 and "Không tìm thấy" in r.text
    assert decide(anon, steward, a, "no-such-patient", "link", "lý do").status_code == 404
    assert decide(anon, steward, a, a, "link", "lý do").status_code == 404
    assert state(web_store, a, b) == ("review", False, [])
