"""A doctor signs a visit summary in a real browser: from the visit to its documents, the review,
the signature, then the signed badge and the verification verdict.

Debian's chromium, driven by Playwright, against a real uvicorn. Console errors (a CSP refusal
among them) fail the test; a screenshot of each step is kept in var/test-artifacts/documents/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benhan.store.database import Store
from tests.emr.world import person, place, visit
from tests.signing.test_documents import document, practitioner
from tests.web.test_browser import as_user, browser, live
from tests.web.test_document_pages import certify, link

pytestmark = [pytest.mark.browser, pytest.mark.live]

from playwright.sync_api import Browser, Page, expect  # noqa: E402

__all__ = ["browser", "live"]  # fixtures, imported for this module

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "documents"


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_doctor_reviews_and_signs_a_visit_summary(
    live: str, browser: Browser, web_store: Store, app: Any
) -> None:
    enc = visit(web_store, place(web_store), person(web_store), status="in-progress")
    document(web_store, enc)
    author = practitioner(web_store)
    certify(web_store, author)
    errors: list[str] = []
    page = as_user(browser, live, web_store, "bs.an", "doctor", errors)
    link(web_store, "bs.an", author)
    page.goto(f"{live}/visit/{enc}")
    page.get_by_role("link", name="Văn bản ký số").click()
    expect(page.locator("h1")).to_have_text("Văn bản ký số")
    expect(page.get_by_text("Lượt khám chưa có văn bản nào.")).to_be_visible()
    shot(page, "01-list")
    row = page.locator(".signables li").filter(has_text="Tóm tắt lần khám")
    row.get_by_role("link", name="Xem trước").click()
    expect(page.locator("h1")).to_have_text("Tóm tắt lần khám bệnh")
    expect(page.locator(".document-paper")).to_contain_text("Sốt, ho 3 ngày")
    expect(page.locator(".badge.unsigned")).to_have_text("Bản xem trước, chưa ký")
    shot(page, "02-review")
    page.get_by_role("button", name="Ký số").click()
    expect(page.locator(".just-signed")).to_have_text("Đã ký số văn bản.")
    expect(page.locator(".documents-head .badge.signed")).to_contain_text("Đã ký")
    expect(page.locator(".verdict")).to_contain_text("Chữ ký số hợp lệ")
    expect(page.locator(".check.fail")).to_have_count(0)
    expect(page.get_by_role("link", name="Tải PDF đã ký")).to_be_visible()
    shot(page, "03-signed")
    page.get_by_role("link", name="Văn bản của lượt khám").click()
    expect(page.locator("table.documents .badge.signed")).to_have_count(1)
    shot(page, "04-listed")
    assert errors == []
