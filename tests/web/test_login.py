"""Signing in and out of the pages: messages, throttling, cookies, login CSRF, the audit trail."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from benhan.store.database import Store
from benhan.store.schema import login_failure, web_session
from tests.web.conftest import (
    PASSWORD,
    SignIn,
    audit_events,
    login_form,
    make_account,
    post_login,
)

LOGIN, LOGOUT = "110122", "110123"
WRONG = "Sai tên đăng nhập hoặc mật khẩu."


def session_rows(store: Store) -> list[sa.Row[tuple[str, str]]]:
    with store.read() as conn:
        return list(conn.execute(sa.select(web_session.c.id_hash, web_session.c.account_id)))


def test_sign_in_goes_where_the_person_was_going(anon: TestClient, web_store: Store) -> None:
    acc = make_account(web_store, "bs.an", "doctor")
    r = post_login(anon, "bs.an", next_="/fragments/counts?x=1")
    assert (r.status_code, r.headers["location"]) == (303, "/fragments/counts?x=1")
    value = anon.cookies["benhan_session"]
    # Only the hash of the cookie value is stored: a stolen table opens no session.
    [row] = session_rows(web_store)
    assert row.id_hash == hashlib.sha256(value.encode()).hexdigest() != value
    assert row.account_id == acc.id
    assert anon.get("/").status_code == 200


def test_the_session_cookie_is_httponly_lax_and_dies_with_the_browser(
    anon: TestClient, web_store: Store
) -> None:
    make_account(web_store, "bs.an", "doctor")
    cookies = post_login(anon, "bs.an").headers.get_list("set-cookie")
    [cookie] = [c for c in cookies if c.startswith("benhan_session=")]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here: a Secure cookie would never come back
    assert "Max-Age" not in cookie and "expires" not in cookie.lower()


def test_over_https_the_cookies_are_secure(app: FastAPI, web_store: Store) -> None:
    make_account(web_store, "bs.an", "doctor")
    with TestClient(app, base_url="https://testserver") as c:
        assert "Secure" in c.get("/login").headers["set-cookie"]
        r = post_login(c, "bs.an")
        assert r.status_code == 303
        assert "Secure" in r.headers["set-cookie"]


@pytest.mark.parametrize("username", ["bs.an", "no.such.user"])
def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(
    anon: TestClient, web_store: Store, username: str
) -> None:
    make_account(web_store, "bs.an", "doctor")
    r = post_login(anon, username, "not-the-password")
    assert r.status_code == 400
    assert WRONG in r.text
    assert "benhan_session" not in anon.cookies
    assert session_rows(web_store) == []
    assert f'value="{username}"' in r.text  # the name is kept, the password is not
    assert "not-the-password" not in r.text
    [event] = audit_events(web_store, LOGIN)
    assert event["outcome"] == "4" and event["outcomeDesc"] == "invalid"
    assert event["agent"][0]["altId"] == username
    assert event["agent"][0]["role"][0]["coding"][0]["code"] == "anonymous"


def test_a_disabled_account_cannot_sign_in_and_is_not_told_why(
    anon: TestClient, web_store: Store
) -> None:
    make_account(web_store, "bs.cu", "doctor", active=False)
    r = post_login(anon, "bs.cu")
    assert (r.status_code, WRONG in r.text) == (400, True)
    assert session_rows(web_store) == []


def test_five_failures_lock_the_name_even_with_the_right_password(
    anon: TestClient, web_store: Store
) -> None:
    make_account(web_store, "bs.an", "doctor")
    for _ in range(5):
        assert post_login(anon, "bs.an", "guess-guess-guess").status_code == 400
    r = post_login(anon, "bs.an")
    assert r.status_code == 429
    assert "Đăng nhập sai quá nhiều lần. Hãy thử lại sau 15 phút." in r.text
    assert session_rows(web_store) == []
    outcomes = [(e["outcome"], e.get("outcomeDesc")) for e in audit_events(web_store, LOGIN)]
    assert outcomes == [("4", "invalid")] * 5 + [("4", "throttled")]
    anon.cookies.set("lang", "en")
    assert "Too many failed sign-ins" in post_login(anon, "bs.an").text


def test_a_successful_sign_in_is_audited(anon: TestClient, web_store: Store) -> None:
    acc = make_account(web_store, "bs.an", "doctor")
    post_login(anon, "BS.An ")  # names are not case-sensitive
    [event] = audit_events(web_store, LOGIN)
    assert event["outcome"] == "0"
    agent = event["agent"][0]
    assert agent["altId"] == "bs.an"
    assert agent["who"]["identifier"]["value"] == acc.id
    assert agent["network"]["address"] == "testclient"
    assert agent["policy"][0].startswith("urn:benhan:session:")
    assert anon.cookies["benhan_session"] not in str(event)  # never the secret itself
    assert PASSWORD not in str(event)


@pytest.mark.parametrize("token", ["", "forged-token-not-the-cookie", "mã-giả"])
def test_a_sign_in_form_from_elsewhere_is_refused(
    anon: TestClient, web_store: Store, token: str
) -> None:
    """Login CSRF: a forged form cannot know the cookie's value, so it cannot sign anyone in."""
    make_account(web_store, "attacker", "doctor")
    login_form(anon)
    form = {"username": "attacker", "password": PASSWORD, "token": token, "next": "/"}
    r = anon.post("/login", data=form, follow_redirects=False)
    assert r.status_code == 403
    assert "Biểu mẫu đăng nhập đã hết hạn" in r.text
    assert session_rows(web_store) == []
    with web_store.read() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(login_failure)) == 0


def test_a_sign_in_without_the_cookie_is_refused(anon: TestClient, web_store: Store) -> None:
    make_account(web_store, "bs.an", "doctor")
    token = login_form(anon)
    anon.cookies.clear()
    form = {"username": "bs.an", "password": PASSWORD, "token": token, "next": "/"}
    assert anon.post("/login", data=form, follow_redirects=False).status_code == 403
    assert session_rows(web_store) == []


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example/", "/\\evil.example"])
def test_sign_in_never_redirects_off_site(anon: TestClient, web_store: Store, target: str) -> None:
    make_account(web_store, "bs.an", "doctor")
    r = post_login(anon, "bs.an", next_=target)
    assert (r.status_code, r.headers["location"]) == (303, "/")


def test_the_login_page_passes_next_on(anon: TestClient) -> None:
    r = anon.get("/", follow_redirects=True)
    assert r.url.path == "/login"
    assert '<input type="hidden" name="next" value="/">' in r.text
    assert "Đăng nhập" in r.text
    cookie = r.headers["set-cookie"]
    assert "benhan_login=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_a_signed_in_person_skips_the_login_page(client: TestClient) -> None:
    r = client.get("/login", params={"next": "/accounts"}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/accounts")


def test_signing_in_again_replaces_the_old_session(anon: TestClient, web_store: Store) -> None:
    make_account(web_store, "bs.an", "doctor")
    post_login(anon, "bs.an")
    first = anon.cookies["benhan_session"]
    # Signing in again on the same browser (e.g. a second tab's form): a fresh id, and the old
    # one ends, so no value known before sign-in is ever a session (no session fixation).
    token = "t" * 43
    anon.cookies.set("benhan_login", token)
    form = {"username": "bs.an", "password": PASSWORD, "token": token, "next": "/"}
    assert anon.post("/login", data=form, follow_redirects=False).status_code == 303
    assert anon.cookies["benhan_session"] != first
    assert len(session_rows(web_store)) == 1


def test_sign_out_ends_the_session_and_is_audited(
    anon: TestClient, sign_in: SignIn, web_store: Store
) -> None:
    me = sign_in("bs.an", "doctor")
    r = anon.post("/logout", data={"csrf": me.csrf}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    assert any(c.startswith('benhan_session=""') for c in r.headers.get_list("set-cookie"))
    assert session_rows(web_store) == []
    [event] = audit_events(web_store, LOGOUT)
    assert event["agent"][0]["altId"] == "bs.an" and event["outcome"] == "0"
    assert anon.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("csrf", [None, "", "wrong-token", "mã-sai"])
def test_sign_out_needs_the_csrf_token(
    anon: TestClient, sign_in: SignIn, web_store: Store, csrf: str | None
) -> None:
    sign_in("bs.an", "doctor")
    data = {} if csrf is None else {"csrf": csrf}
    r = anon.post("/logout", data=data, follow_redirects=False)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/html")
    assert len(session_rows(web_store)) == 1
    assert audit_events(web_store, LOGOUT) == []
    assert anon.get("/", follow_redirects=False).status_code == 200


def test_the_csrf_token_may_come_as_the_htmx_header(anon: TestClient, sign_in: SignIn) -> None:
    me = sign_in("bs.an", "doctor")
    r = anon.post("/logout", headers={"X-CSRF-Token": me.csrf}, follow_redirects=False)
    assert r.status_code == 303


def test_the_login_page_speaks_english(anon: TestClient, web_store: Store) -> None:
    make_account(web_store, "bs.an", "doctor")
    anon.cookies.set("lang", "en")
    assert "<h1>Sign in</h1>" in anon.get("/login").text
    assert "Wrong username or password." in post_login(anon, "bs.an", "nope-nope-nope").text
