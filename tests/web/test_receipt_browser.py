"""The patient signs for a prescription on the tablet, in a real browser: the signature pad
(static/receipt.js under the pages' CSP) draws, sends a PNG, and the page shows it recorded.

Debian's chromium, driven by Playwright, against a real uvicorn. Console errors (a CSP refusal
among them) fail the test; screenshots are kept in var/test-artifacts/documents/.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from benhan.access import Actor
from benhan.emr.model import search_all
from benhan.store.database import Store
from benhan.store.repository import Repo
from tests.emr.world import FACILITY, person, place, visit
from tests.signing.test_documents import document, practitioner
from tests.web.test_browser import as_user, browser, live
from tests.web.test_document_browser import shot
from tests.web.test_document_pages import certify, link

pytestmark = [pytest.mark.browser, pytest.mark.live]

from playwright.sync_api import Browser, expect  # noqa: E402

__all__ = ["browser", "live"]  # fixtures, imported for this module


def test_the_patient_draws_a_signature_for_the_prescription(
    live: str, browser: Browser, web_store: Store, app: Any
) -> None:
    enc = visit(web_store, place(web_store), person(web_store), status="in-progress")
    document(web_store, enc)
    author = practitioner(web_store)
    certify(web_store, author)
    errors: list[str] = []
    page = as_user(browser, live, web_store, "bs.an", "doctor", errors)
    link(web_store, "bs.an", author)
    page.goto(f"{live}/visit/{enc}/documents/review?kind=prescription")
    page.get_by_role("button", name="Ký số").click()
    expect(page.locator(".just-signed")).to_be_visible()
    expect(page.locator(".receipt .notice.warn")).to_contain_text("chưa xác nhận")
    pad = page.locator("canvas.signature-pad")
    pad.scroll_into_view_if_needed()  # the mouse works in the viewport's coordinates
    box = pad.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 20, box["y"] + 100)
    page.mouse.down()
    for x, y in ((80, 40), (140, 120), (200, 50), (260, 110)):
        page.mouse.move(box["x"] + x, box["y"] + y, steps=5)
    page.mouse.up()
    page.get_by_label("Kiểm tra danh tính", exact=True).select_option("cccd")
    shot(page, "05-receipt-drawn")
    page.get_by_role("button", name="Ghi nhận xác nhận").click()
    expect(page.locator(".just-received")).to_be_visible()
    expect(page.locator("img.receipt-drawing")).to_be_visible()
    shot(page, "06-receipt-recorded")
    with web_store.read() as conn:
        repo = Repo(conn, Actor.job(FACILITY, "test"))
        rcv = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType|RCV"
        [receipt] = search_all(repo, "Provenance", [("agent-type", rcv)])
    drawing = base64.b64decode(receipt["signature"][0]["data"])
    assert drawing.startswith(b"\x89PNG") and len(drawing) > 500  # strokes, not a blank pad
    assert errors == []
