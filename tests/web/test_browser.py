"""The pages in a real browser: Debian's chromium, driven by Playwright, against a real uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from benhan.auth.sessions import create_session
from benhan.store.database import Store
from benhan.web.session import SESSION_COOKIE
from tests.web.conftest import FACILITY, PASSWORD, make_account

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.browser, pytest.mark.live]

if not CHROMIUM.exists():
    pytest.skip(
        "Debian chromium not installed at /usr/bin/chromium (make browser installs it)",
        allow_module_level=True,
    )

from playwright.sync_api import (  # noqa: E402
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

AddResources = Callable[..., list[str]]


def patient(given: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Lê", "given": [given]}]}


ORGANIZATION = {"resourceType": "Organization", "name": "Trạm Y tế xã Phù Chẩn"}


@pytest.fixture
def live(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn in a thread, on a free port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # the kernel picks a free port, and we keep it bound: no race
    port = sock.getsockname()[1]
    # ws="none": pages use no websockets, so no websocket library (and its warnings) is loaded.
    config = uvicorn.Config(app, log_level="warning", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Always Debian's chromium: Playwright must never download a browser of its own.
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def as_user(
    browser: Browser,
    live: str,
    store: Store,
    username: str,
    role: str,
    errors: list[str],
    facility: str = FACILITY,
) -> Page:
    """A browser window signed in as a new account of `role` (sign-in has its own tests); its
    console errors and uncaught exceptions go to `errors`."""
    acc = make_account(store, username, role, facility, display_name=f"{role} {username}")
    with store.begin() as conn:
        value, _ = create_session(conn, acc.id, "127.0.0.1")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    context.set_default_timeout(10_000)
    context.add_cookies([{"name": SESSION_COOKIE, "value": value, "url": live}])
    page = context.new_page()

    def on_console(m: ConsoleMessage) -> None:
        if m.type == "error":
            errors.append(f"{page.url}: {m.location['url']} {m.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    return page


def signed_in(context: BrowserContext, live: str, store: Store) -> None:
    """Give the browser a doctor's session cookie (the sign-in form has its own test)."""
    acc = make_account(store, "bs.lan", "doctor", display_name="Bác sĩ Trần Lan")
    with store.begin() as conn:
        value, _ = create_session(conn, acc.id, "127.0.0.1")
    context.add_cookies([{"name": SESSION_COOKIE, "value": value, "url": live}])


@pytest.fixture
def fresh_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page, not signed in, and the console errors and uncaught exceptions it collects."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="vi-VN")
    context.set_default_timeout(10_000)  # a local server answers in ms: fail fast, not in 30 s
    p = context.new_page()
    errors: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    p.on("console", on_console)
    p.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    yield p, errors
    context.close()


@pytest.fixture
def page(fresh_page: tuple[Page, list[str]], live: str, web_store: Store) -> tuple[Page, list[str]]:
    """`fresh_page`, signed in as a doctor."""
    signed_in(fresh_page[0].context, live, web_store)
    return fresh_page


def count_cell(p: Page, rtype: str) -> Any:
    return p.locator("table.counts tbody tr").filter(has_text=rtype).locator("td.num")


def test_home_language_and_htmx_refresh(
    live: str, page: tuple[Page, list[str]], add: AddResources, tmp_path: Path
) -> None:
    p, errors = page
    add(patient("Hoa"), patient("Minh"), ORGANIZATION)
    p.goto(f"{live}/")
    expect(p.locator("h1")).to_have_text("Tổng quan kho dữ liệu")
    expect(count_cell(p, "Patient")).to_have_text("2")
    expect(count_cell(p, "Organization")).to_have_text("1")
    expect(count_cell(p, "Provenance")).to_have_text("3")  # one per patient, one for the rest
    expect(p.locator("svg rect.bar")).to_have_count(3)

    p.get_by_role("link", name="English").click()
    expect(p.locator("h1")).to_have_text("Repository overview")
    expect(p.locator("html")).to_have_attribute("lang", "en")

    # A marker in the window survives an htmx swap but not a page load: proves htmx did it.
    p.evaluate("window.benhanMarker = 42")
    add(patient("Lan"))
    with p.expect_response(lambda r: r.url.endswith("/fragments/counts")) as response:
        p.get_by_role("button", name="Refresh").click()
    assert response.value.status == 200
    expect(count_cell(p, "Patient")).to_have_text("3")
    assert p.evaluate("window.benhanMarker") == 42

    shot = tmp_path / "home.png"
    p.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 1000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert errors == []


def test_empty_repository_page(live: str, page: tuple[Page, list[str]], tmp_path: Path) -> None:
    p, errors = page
    p.goto(f"{live}/")
    expect(p.locator(".notice.empty h2")).to_have_text("Kho dữ liệu chưa có tài nguyên nào")
    p.screenshot(path=str(tmp_path / "empty.png"), full_page=True)
    assert errors == []


def test_refresh_works_without_javascript(
    live: str, browser: Browser, add: AddResources, web_store: Store
) -> None:
    """On a PC where scripts are off, the same button reloads the whole page instead."""
    context = browser.new_context(java_script_enabled=False, locale="vi-VN")
    signed_in(context, live, web_store)
    p = context.new_page()
    p.goto(f"{live}/")
    expect(p.locator(".notice.empty")).to_be_visible()
    add(ORGANIZATION)
    p.get_by_role("button", name="Làm mới").click()
    expect(count_cell(p, "Organization")).to_have_text("1")
    context.close()


def test_sign_in_through_the_form_then_out(
    live: str, fresh_page: tuple[Page, list[str]], add: AddResources, web_store: Store
) -> None:
    p, errors = fresh_page
    make_account(web_store, "dd.mai", "nurse", display_name="Điều dưỡng Phạm Mai")
    add(patient("Hoa"))
    p.goto(f"{live}/")
    expect(p).to_have_url(f"{live}/login?next=/")
    expect(p.locator("h1")).to_have_text("Đăng nhập")

    p.get_by_label("Tên đăng nhập").fill("dd.mai")
    p.get_by_label("Mật khẩu").fill("not the password")
    p.get_by_role("button", name="Đăng nhập").click()
    expect(p.get_by_role("alert")).to_have_text("Sai tên đăng nhập hoặc mật khẩu.")

    p.get_by_label("Mật khẩu").fill(PASSWORD)
    p.get_by_role("button", name="Đăng nhập").click()
    expect(p).to_have_url(f"{live}/")
    expect(p.locator("h1")).to_have_text("Tổng quan kho dữ liệu")
    expect(p.locator(".user-name")).to_have_text("Điều dưỡng Phạm Mai")
    expect(count_cell(p, "Patient")).to_have_text("1")
    cookie = next(c for c in p.context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    p.get_by_role("button", name="Đăng xuất").click()
    expect(p.locator("h1")).to_have_text("Đăng nhập")
    p.goto(f"{live}/")
    expect(p).to_have_url(f"{live}/login?next=/")
    # The refused sign-in answered 400, which chromium reports; nothing else went wrong.
    assert errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
