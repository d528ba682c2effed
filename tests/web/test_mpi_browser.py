"""The identity steward in a real browser: the queue, a pair side by side, a link with a reason.

Debian's chromium, driven by Playwright, against a real uvicorn on the indexed small province of
test_mpi_pages. Console errors (a CSP refusal among them) fail the test; a screenshot of each
step is kept in var/test-artifacts/mpi/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benhan.store.database import Store
from tests.web.test_browser import as_user, browser, live
from tests.web.test_mpi_pages import NAM, in_review, pair_of, province_file, state, web_store

pytestmark = [pytest.mark.browser, pytest.mark.live]

from playwright.sync_api import Browser, Page, expect  # noqa: E402

__all__ = ["browser", "live", "province_file", "web_store"]  # fixtures, imported for this module

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "mpi"


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def steward_page(browser: Browser, live: str, store: Store, errors: list[str]) -> Page:
    return as_user(browser, live, store, "qldd.hanh", "mpi-steward", errors, facility="")


def test_a_steward_links_a_pair_from_the_queue(
    live: str, browser: Browser, web_store: Store, app: Any
) -> None:
    a, b = in_review(web_store, *pair_of(web_store, NAM))
    errors: list[str] = []
    page = steward_page(browser, live, web_store, errors)
    page.goto(f"{live}/")
    page.get_by_role("link", name="Đối chiếu định danh").click()
    expect(page.locator("h2")).to_have_text("1 cặp đang chờ xem xét")
    shot(page, "01-queue")
    page.get_by_role("link", name="So sánh và quyết định").click()
    expect(page.locator("h1")).to_have_text("So sánh hai hồ sơ")
    expect(page.locator("table.side-by-side")).to_contain_text("1975-03-30")
    expect(page.locator("svg.weight-bar rect.for").first).to_be_visible()
    shot(page, "02-pair")
    form = page.locator("form.decision").filter(has=page.locator("input[value=link]"))
    form.get_by_label("Lý do (bắt buộc)").fill("Đã gọi điện cho người bệnh xác minh")
    form.get_by_role("button", name="Liên kết").click()
    expect(page.locator(".notice.ok")).to_contain_text("Đã liên kết hai hồ sơ vào một người.")
    expect(page.locator("h2")).to_have_text("0 cặp đang chờ xem xét")
    shot(page, "03-linked")
    assert state(web_store, a, b)[:2] == ("link", True)
    assert errors == []
