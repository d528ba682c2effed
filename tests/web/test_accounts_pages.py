"""The facility administrator's accounts page: create, change role, disable, reset a password."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from benhan.auth.accounts import Account, find_account
from benhan.store.database import Store
from benhan.store.schema import web_session
from tests.web.conftest import (
    OTHER_FACILITY,
    SignedIn,
    SignIn,
    add_practitioner,
    audit_events,
    make_account,
    post_login,
    sign_in_as,
)

ROLES_CHANGED = "110137"
TEMP = "tam-thoi-2025-xyz"


@pytest.fixture
def admin(sign_in: SignIn) -> SignedIn:
    return sign_in("qt.hung", "facility-admin", display_name="Quản trị Hùng")


@pytest.fixture
def other(app: FastAPI) -> Iterator[TestClient]:
    """A second browser, for the person whose account is changed."""
    with TestClient(app) as c:
        yield c


def account(store: Store, username: str) -> Account:
    with store.read() as conn:
        found = find_account(conn, username)
    assert found is not None
    return found


def sessions_of(store: Store, acc: Account) -> int:
    with store.read() as conn:
        q = sa.select(sa.func.count()).where(web_session.c.account_id == acc.id)
        return int(conn.scalar(q) or 0)


def new_account(csrf: str, **fields: str) -> dict[str, Any]:
    form = {
        "csrf": csrf,
        "username": "dd.lan",
        "display_name": "Điều dưỡng Vũ Lan",
        "role": "nurse",
        "practitioner": "",
        "password": TEMP,
    }
    return {**form, **fields}


def test_the_page_lists_the_facility_accounts_only(
    anon: TestClient, admin: SignedIn, web_store: Store
) -> None:
    make_account(web_store, "bs.an", "doctor", display_name="Bác sĩ Nguyễn An")
    make_account(web_store, "bs.khac", "doctor", OTHER_FACILITY)
    r = anon.get("/accounts")
    assert r.status_code == 200
    assert "Tài khoản của cơ sở 27001" in r.text
    assert 'id="account-bs.an"' in r.text and "Bác sĩ Nguyễn An" in r.text
    assert 'id="account-qt.hung"' in r.text
    assert "bs.khac" not in r.text
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("role", ["doctor", "registrar", "privacy-officer"])
def test_other_roles_get_a_403_page(anon: TestClient, sign_in: SignIn, role: str) -> None:
    me = sign_in("user.x", role)
    r = anon.get("/accounts")
    assert r.status_code == 403
    assert "Không có quyền truy cập" in r.text
    r = anon.post("/accounts", data=new_account(me.csrf), follow_redirects=False)
    assert r.status_code == 403


def test_without_a_session_the_page_asks_to_sign_in(anon: TestClient) -> None:
    r = anon.get("/accounts", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login?next=/accounts")


def test_create_an_account(
    anon: TestClient, admin: SignedIn, web_store: Store, other: TestClient
) -> None:
    pid = add_practitioner(web_store)
    form = new_account(admin.csrf, username="DD.Lan", practitioner=f"Practitioner/{pid}")
    r = anon.post("/accounts", data=form, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/accounts?done=created")
    assert "Đã tạo tài khoản." in anon.get(r.headers["location"]).text
    acc = account(web_store, "dd.lan")
    assert (acc.role, acc.facility, acc.display_name, acc.practitioner, acc.active) == (
        "nurse",
        "27001",
        "Điều dưỡng Vũ Lan",
        pid,
        True,
    )
    [event] = audit_events(web_store, ROLES_CHANGED)
    assert event["agent"][0]["altId"] == "qt.hung"
    assert event["outcomeDesc"] == "account dd.lan: created, role nurse"
    assert event["entity"][0]["what"]["reference"] == f"Practitioner/{pid}"
    assert TEMP not in str(event)
    assert post_login(other, "dd.lan", TEMP).status_code == 303  # the new person can sign in


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"password": "short"}, "Mật khẩu cần ít nhất 10 ký tự"),
        ({"password": "dd.lan-1234567"}, "không được chứa tên đăng nhập"),
        ({"username": "Lan Vũ"}, "Tên đăng nhập gồm 3–64 ký tự"),
        ({"username": "qt.hung"}, "Tên đăng nhập này đã có người dùng"),
        ({"role": "doh-analyst"}, "Hãy chọn một vai trò trong danh sách."),
        ({"role": "system-integrator"}, "Hãy chọn một vai trò trong danh sách."),
        ({"role": "patient"}, "Hãy chọn một vai trò trong danh sách."),
        ({"display_name": "   "}, "Họ tên hiển thị cần từ 1 đến 128 ký tự."),
        ({"practitioner": "no-such-practitioner"}, "Không có nhân viên y tế (Practitioner)"),
    ],
)
def test_bad_input_shows_the_page_again_and_changes_nothing(
    anon: TestClient, admin: SignedIn, web_store: Store, fields: dict[str, str], message: str
) -> None:
    r = anon.post("/accounts", data=new_account(admin.csrf, **fields), follow_redirects=False)
    assert r.status_code == 400
    assert message in r.text
    assert 'value="Điều dưỡng Vũ Lan"' in r.text or fields.get("display_name")  # kept
    with web_store.read() as conn:
        assert find_account(conn, "dd.lan") is None
    assert audit_events(web_store, ROLES_CHANGED) == []


@pytest.mark.parametrize("csrf", ["", "not-the-token"])
def test_forms_without_the_csrf_token_are_refused(
    anon: TestClient, admin: SignedIn, web_store: Store, csrf: str
) -> None:
    target = make_account(web_store, "bs.an", "doctor")
    posts = [
        ("/accounts", new_account(csrf)),
        (f"/accounts/{target.id}/role", {"csrf": csrf, "role": "nurse"}),
        (f"/accounts/{target.id}/active", {"csrf": csrf, "active": "0"}),
        (f"/accounts/{target.id}/password", {"csrf": csrf, "password": TEMP}),
    ]
    for path, data in posts:
        assert anon.post(path, data=data, follow_redirects=False).status_code == 403, path
    assert account(web_store, "bs.an") == target
    with web_store.read() as conn:
        assert find_account(conn, "dd.lan") is None
    assert audit_events(web_store, ROLES_CHANGED) == []


def test_change_a_role_signs_the_person_out(
    anon: TestClient, admin: SignedIn, web_store: Store, other: TestClient
) -> None:
    target = make_account(web_store, "bs.an", "doctor")
    sign_in_as(other, web_store, target)
    r = anon.post(
        f"/accounts/{target.id}/role",
        data={"csrf": admin.csrf, "role": "pharmacist"},
        follow_redirects=False,
    )
    assert (r.status_code, r.headers["location"]) == (303, "/accounts?done=role")
    assert account(web_store, "bs.an").role == "pharmacist"
    assert sessions_of(web_store, target) == 0
    assert other.get("/", follow_redirects=False).status_code == 303
    [event] = audit_events(web_store, ROLES_CHANGED)
    assert event["outcomeDesc"] == "account bs.an: role doctor -> pharmacist"
    assert event["type"]["code"] == "110136"


def test_a_province_role_cannot_be_given(
    anon: TestClient, admin: SignedIn, web_store: Store
) -> None:
    target = make_account(web_store, "bs.an", "doctor")
    r = anon.post(f"/accounts/{target.id}/role", data={"csrf": admin.csrf, "role": "doh-analyst"})
    assert r.status_code == 400
    assert account(web_store, "bs.an").role == "doctor"
    assert audit_events(web_store, ROLES_CHANGED) == []


def test_disable_and_enable(
    anon: TestClient, admin: SignedIn, web_store: Store, other: TestClient
) -> None:
    target = make_account(web_store, "bs.an", "doctor")
    sign_in_as(other, web_store, target)
    path = f"/accounts/{target.id}/active"
    r = anon.post(path, data={"csrf": admin.csrf, "active": "0"}, follow_redirects=False)
    assert r.headers["location"] == "/accounts?done=disabled"
    assert account(web_store, "bs.an").active is False
    assert other.get("/", follow_redirects=False).status_code == 303
    assert post_login(other, "bs.an").status_code == 400
    html = anon.get("/accounts").text
    assert '<tr id="account-bs.an" class="disabled">' in html

    r = anon.post(path, data={"csrf": admin.csrf, "active": "1"}, follow_redirects=False)
    assert r.headers["location"] == "/accounts?done=enabled"
    assert account(web_store, "bs.an").active is True
    details = [e["outcomeDesc"] for e in audit_events(web_store, ROLES_CHANGED)]
    assert details == ["account bs.an: disabled", "account bs.an: enabled"]


def test_reset_a_password(
    anon: TestClient, admin: SignedIn, web_store: Store, other: TestClient
) -> None:
    target = make_account(web_store, "bs.an", "doctor")
    sign_in_as(other, web_store, target)
    path = f"/accounts/{target.id}/password"
    assert anon.post(path, data={"csrf": admin.csrf, "password": "short"}).status_code == 400
    assert sessions_of(web_store, target) == 1  # a refused change changes nothing
    r = anon.post(path, data={"csrf": admin.csrf, "password": TEMP}, follow_redirects=False)
    assert r.headers["location"] == "/accounts?done=password"
    assert sessions_of(web_store, target) == 0
    other.cookies.clear()
    assert post_login(other, "bs.an", TEMP).status_code == 303
    [event] = audit_events(web_store, ROLES_CHANGED)
    assert event["outcomeDesc"] == "account bs.an: temporary password set"


def test_another_facilitys_account_does_not_exist_here(
    anon: TestClient, admin: SignedIn, web_store: Store
) -> None:
    target = make_account(web_store, "bs.khac", "doctor", OTHER_FACILITY)
    for path, data in [
        (f"/accounts/{target.id}/role", {"role": "nurse"}),
        (f"/accounts/{target.id}/active", {"active": "0"}),
        (f"/accounts/{target.id}/password", {"password": TEMP}),
        ("/accounts/no-such-id/active", {"active": "0"}),
    ]:
        r = anon.post(path, data={"csrf": admin.csrf, **data}, follow_redirects=False)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html")
    assert account(web_store, "bs.khac") == target
    assert audit_events(web_store, ROLES_CHANGED) == []


def test_an_admin_cannot_demote_or_disable_themself(
    anon: TestClient, admin: SignedIn, web_store: Store
) -> None:
    me = admin.account.id
    r = anon.post(f"/accounts/{me}/role", data={"csrf": admin.csrf, "role": "doctor"})
    assert r.status_code == 400
    assert "Bạn không thể đổi vai trò hoặc khoá chính tài khoản của mình." in r.text
    r = anon.post(f"/accounts/{me}/active", data={"csrf": admin.csrf, "active": "0"})
    assert r.status_code == 400
    assert account(web_store, "qt.hung") == admin.account


def test_names_are_shown_escaped(anon: TestClient, admin: SignedIn, web_store: Store) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    form = new_account(admin.csrf, display_name=evil)
    assert anon.post("/accounts", data=form, follow_redirects=False).status_code == 303
    html = anon.get("/accounts").text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_the_page_speaks_english(anon: TestClient, admin: SignedIn) -> None:
    anon.cookies.set("lang", "en")
    html = anon.get("/accounts").text
    assert "Accounts of facility 27001" in html
    assert '<span class="user-role">Facility administrator · facility 27001</span>' in html
    assert '<option value="lab-technician">Lab technician</option>' in html
