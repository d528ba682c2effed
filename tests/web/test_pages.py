"""The home page, the counts fragment, the language switch and the page headers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import benhan.web
from benhan.access import Actor
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.web.rendering import SECURITY_HEADERS
from tests.web.conftest import SignIn, make_account, sign_in_as

CSP = "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:"
AddResources = Callable[..., list[str]]


def patient(family: str = "Nguyễn", given: str = "Văn An") -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family, "given": [given]}]}


def organization(name: str = "Bệnh viện Đa khoa tỉnh Bắc Ninh") -> dict[str, Any]:
    return {"resourceType": "Organization", "name": name}


def rows(html: str) -> dict[str, str]:
    """{resource type: count} as the counts table shows them."""
    found = re.findall(
        r'<th scope="row" class="rtype">(\w+)</th><td>[^<]*</td><td class="num">([\d.,]+)</td>',
        html,
    )
    return dict(found)


def test_home_is_vietnamese_by_default(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"  # the page carries a CSRF token
    assert r.headers["content-type"].startswith("text/html")
    assert '<html lang="vi">' in r.text
    assert "benhan</strong> — Bệnh án điện tử" in r.text
    assert "<h1>Tổng quan kho dữ liệu</h1>" in r.text
    assert r.headers["content-language"] == "vi"


def test_home_in_english_with_the_cookie(client: TestClient) -> None:
    client.cookies.set("lang", "en")
    r = client.get("/")
    assert '<html lang="en">' in r.text
    assert "<h1>Repository overview</h1>" in r.text
    assert "Electronic medical record" in r.text
    assert "Tổng quan kho dữ liệu" not in r.text


@pytest.mark.parametrize(
    ("accept", "lang"),
    [
        ("en-US,en;q=0.9", "en"),
        ("fr-FR, en;q=0.5", "en"),
        ("vi-VN,vi;q=0.9,en;q=0.8", "vi"),
        ("en;q=0.3, vi;q=0.7", "vi"),
        ("fr, de", "vi"),  # nothing we speak: the default
    ],
)
def test_home_honours_accept_language(client: TestClient, accept: str, lang: str) -> None:
    r = client.get("/", headers={"Accept-Language": accept})
    assert f'<html lang="{lang}">' in r.text


def test_the_cookie_beats_accept_language(client: TestClient) -> None:
    client.cookies.set("lang", "vi")
    r = client.get("/", headers={"Accept-Language": "en"})
    assert "<h1>Tổng quan kho dữ liệu</h1>" in r.text


def test_an_unknown_cookie_falls_back_to_accept_language(client: TestClient) -> None:
    client.cookies.set("lang", "xx")
    r = client.get("/", headers={"Accept-Language": "en"})
    assert "<h1>Repository overview</h1>" in r.text


def test_counts_reflect_the_repository(client: TestClient, add: AddResources) -> None:
    add(patient(), patient("Trần", "Thị Bình"), organization())
    r = client.get("/")
    assert rows(r.text) == {"Patient": "2", "Organization": "1", "Provenance": "3"}  # one per write
    assert list(rows(r.text)) == ["Provenance", "Patient", "Organization"]  # most first
    assert '<span class="total-number">6</span>' in r.text
    assert "<title>Patient: 2</title>" in r.text  # the chart has a bar per type


def test_counts_use_the_locale_thousands_separator(client: TestClient, add: AddResources) -> None:
    add(*(patient(given=f"Số {i}") for i in range(1001)))
    assert rows(client.get("/").text) == {"Patient": "1.001", "Provenance": "1.001"}
    client.cookies.set("lang", "en")
    assert rows(client.get("/").text) == {"Patient": "1,001", "Provenance": "1,001"}


def test_deleted_resources_are_not_counted(
    client: TestClient, add: AddResources, web_store: Store
) -> None:
    _, oid = add(patient(), organization())
    with web_store.begin() as conn:
        Repo(conn, Actor.job("27001", "test")).delete("Organization", oid)
    # The Provenances of the two creates and of the deletion stay: they are the record.
    assert rows(client.get("/").text) == {"Patient": "1", "Provenance": "3"}


def test_counts_on_each_backend(store: Store, make_app: Callable[[Store], FastAPI]) -> None:
    """The root `store` fixture: SQLite, and PostgreSQL when one is reachable (else skipped)."""
    app = make_app(store)
    with store.begin() as conn:
        repo = Repo(conn, Actor.job("27001", "test"))
        for res in (patient(), patient("Phạm", "Thu"), organization()):
            repo.create(res)
    with TestClient(app) as client:
        sign_in_as(client, store, make_account(store, "dd.binh", "nurse"))
        assert rows(client.get("/").text) == {
            "Patient": "2",
            "Organization": "1",
            "Provenance": "3",
        }


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("vi", "Kho dữ liệu chưa có tài nguyên nào"),
        ("en", "The repository holds no resources yet"),
    ],
)
def test_empty_repository_says_how_to_load_data(client: TestClient, lang: str, text: str) -> None:
    client.cookies.set("lang", lang)
    r = client.get("/")
    assert text in r.text
    assert "<code>benhan import …</code>" in r.text
    assert "<code>make demo</code>" in r.text
    assert '<table class="counts">' not in r.text


def test_lang_switch_sets_the_cookie_and_redirects(anon: TestClient) -> None:
    r = anon.get("/lang/en", params={"next": "/"}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("lang=en;")
    assert "Path=/" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert '<html lang="en">' in anon.get("/login").text  # the client kept the cookie


def test_lang_switch_keeps_a_local_path_and_query(anon: TestClient) -> None:
    r = anon.get("/lang/vi", params={"next": "/fragments/counts?x=1"}, follow_redirects=False)
    assert r.headers["location"] == "/fragments/counts?x=1"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "//evil.example/path",
        "/\\evil.example",
        "https://evil.example/",
        "evil.example",
        "javascript:alert(1)",
        "",
        "/\r\nSet-Cookie: x=1",
    ],
)
def test_lang_switch_never_redirects_off_site(anon: TestClient, target: str) -> None:
    r = anon.get("/lang/en", params={"next": target}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/"


def test_lang_switch_without_next_goes_home(anon: TestClient) -> None:
    r = anon.get("/lang/en", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/")


@pytest.mark.parametrize("code", ["xx", "EN", "vi-VN", "<b>fr"])
def test_unknown_language_is_a_readable_400_page(anon: TestClient, code: str) -> None:
    r = anon.get(f"/lang/{code}", params={"next": "/"}, follow_redirects=False)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/html")
    assert "Yêu cầu không hợp lệ" in r.text
    assert "set-cookie" not in r.headers
    assert "<b>" not in r.text  # the code is shown escaped
    assert r.headers["content-security-policy"] == CSP


def test_the_400_page_speaks_english_too(anon: TestClient) -> None:
    anon.cookies.set("lang", "en")
    r = anon.get("/lang/xx")
    assert "There is no language “xx”" in r.text


def test_fragment_is_only_the_partial(client: TestClient, add: AddResources) -> None:
    add(patient(), patient(), organization())
    r = client.get("/fragments/counts")
    assert r.status_code == 200
    assert rows(r.text) == {"Patient": "2", "Organization": "1", "Provenance": "3"}
    assert "<html" not in r.text and "<header" not in r.text and "<footer" not in r.text
    assert r.headers["content-security-policy"] == CSP


def test_refresh_button_targets_the_fragment(client: TestClient) -> None:
    html = client.get("/").text
    assert 'hx-get="/fragments/counts"' in html
    assert 'hx-target="#counts"' in html
    assert '<script src="/static/htmx.min.js" defer></script>' in html


def test_page_links_are_local_paths(client: TestClient) -> None:
    html = client.get("/").text
    assert 'href="/fhir/metadata"' in html
    assert 'href="/api/docs"' in html
    assert 'href="/lang/en?next=/"' in html
    assert "http://testserver" not in html  # never absolute: see rendering._url_for


@pytest.mark.parametrize("path", ["/", "/fragments/counts", "/lang/xx", "/login", "/accounts"])
def test_page_responses_carry_the_security_headers(client: TestClient, path: str) -> None:
    r = client.get(path, follow_redirects=False)
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    for name, value in SECURITY_HEADERS.items():
        assert r.headers[name] == value


def test_pages_have_no_inline_script_or_style(client: TestClient, add: AddResources) -> None:
    add(patient())
    html = client.get("/").text
    assert "style=" not in html and "<style" not in html
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/htmx.min.js" defer>']


def test_fhir_responses_do_not_get_the_page_policy(client: TestClient) -> None:
    r = client.get("/fhir/metadata")
    assert r.status_code == 200
    assert "content-security-policy" not in r.headers


@pytest.mark.parametrize(
    ("path", "kind"),
    [("htmx.min.js", "javascript"), ("benhan.css", "text/css"), ("favicon.svg", "image/svg+xml")],
)
def test_static_files_are_served(anon: TestClient, path: str, kind: str) -> None:
    r = anon.get(f"/static/{path}")
    assert r.status_code == 200
    assert kind in r.headers["content-type"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_the_package_exports_mount_only() -> None:
    assert benhan.web.__all__ == ["mount"]


def test_unknown_page_is_a_readable_page_not_json(anon: TestClient) -> None:
    r = anon.get("/no-such-page")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "Không tìm thấy trang này." in r.text
    api = anon.get("/fhir/Nope/1")  # the API keeps answering with OperationOutcomes
    assert api.headers["content-type"].startswith("application/fhir+json")


@pytest.mark.parametrize(
    ("path", "location"),
    [("/", "/login?next=/"), ("/fragments/counts?x=1", "/login?next=/fragments/counts%3Fx%3D1")],
)
def test_pages_need_a_sign_in(
    anon: TestClient, add: AddResources, path: str, location: str
) -> None:
    add(patient())
    r = anon.get(path, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, location)
    assert "Patient" not in r.text


def test_an_htmx_refresh_without_a_session_sends_the_whole_page_to_sign_in(
    anon: TestClient,
) -> None:
    """Swapping the sign-in form into the counts box would be wrong: htmx must navigate."""
    headers = {"HX-Request": "true", "HX-Current-URL": "http://testserver/?tab=1"}
    r = anon.get("/fragments/counts", headers=headers, follow_redirects=False)
    assert r.status_code == 401
    assert r.headers["hx-redirect"] == "/login?next=/%3Ftab%3D1"


def test_an_expired_or_forged_session_cookie_is_not_a_session(anon: TestClient) -> None:
    anon.cookies.set("benhan_session", "forged-value")
    r = anon.get("/", follow_redirects=False)
    assert r.status_code == 303


def test_the_header_shows_who_is_signed_in(anon: TestClient, sign_in: SignIn) -> None:
    me = sign_in("dd.hoa", "nurse", display_name="Điều dưỡng Lê Thị Hoa")
    html = anon.get("/").text
    assert '<span class="user-name">Điều dưỡng Lê Thị Hoa</span>' in html
    assert "Điều dưỡng · cơ sở 27001" in html
    # Sign-out is a POST with the CSRF token; htmx sends the token as a header.
    assert f'<input type="hidden" name="csrf" value="{me.csrf}">' in html
    assert f"""hx-headers='{{"X-CSRF-Token": "{me.csrf}"}}'""" in html
    assert 'href="/break-glass"' in html  # a nurse may break the glass
    assert 'href="/accounts"' not in html and 'href="/privacy"' not in html
    anon.cookies.set("lang", "en")
    assert "Nurse · facility 27001" in anon.get("/").text


@pytest.mark.parametrize(
    ("role", "links"),
    [
        ("registrar", set()),
        ("doctor", {"/break-glass"}),
        ("facility-admin", {"/accounts"}),
        ("privacy-officer", {"/privacy"}),
    ],
)
def test_the_menu_offers_what_the_role_may_use(
    anon: TestClient, sign_in: SignIn, role: str, links: set[str]
) -> None:
    sign_in("user.1", role)
    html = anon.get("/").text
    offered = {p for p in ("/break-glass", "/accounts", "/privacy") if f'href="{p}"' in html}
    assert offered == links
