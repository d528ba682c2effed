"""Who signs which document on the pages: a lab technician signs lab and imaging reports (and
sees only those), never a visit summary, a prescription or a discharge summary."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from benhan.store.database import Store
from tests.emr.world import person, place, visit
from tests.signing.test_documents import document, practitioner
from tests.web.conftest import SignedIn, SignIn
from tests.web.test_document_pages import Visit, certify, link, reports, sign, signed_id


@pytest.fixture
def lab_visit(web_store: Store, app: Any) -> Visit:
    """A documented visit with a lab and an X-ray report; a technician's certified Practitioner."""
    enc = visit(web_store, place(web_store), person(web_store), status="in-progress")
    lab, _xray = document(web_store, enc)
    technician = practitioner(web_store)
    certify(web_store, technician)
    return Visit(enc, lab, technician)


@pytest.fixture
def technician(sign_in: SignIn, web_store: Store, lab_visit: Visit) -> SignedIn:
    me = sign_in("ktv.binh", "lab-technician", display_name="KTV Trần Bình")
    link(web_store, "ktv.binh", lab_visit.author)
    return me


def test_a_technician_is_offered_the_reports_only(
    anon: TestClient, technician: SignedIn, lab_visit: Visit
) -> None:
    r = anon.get(f"/visit/{lab_visit.enc}/documents")
    assert r.status_code == 200, r.text
    assert r.text.count("kind=report&amp;report=") == 2  # the lab and the X-ray reports
    assert "kind=visit-summary" not in r.text and "kind=prescription" not in r.text
    assert f'href="/visit/{lab_visit.enc}"' not in r.text  # the visit page is not theirs


def test_a_technician_signs_a_report_and_sees_it_verified(
    anon: TestClient, technician: SignedIn, lab_visit: Visit, web_store: Store
) -> None:
    rid = reports(web_store, lab_visit.enc)[0]["id"]
    review = anon.get(
        f"/visit/{lab_visit.enc}/documents/review", params={"kind": "report", "report": rid}
    )
    assert review.status_code == 200 and "Ký số" in review.text
    cid = signed_id(sign(anon, technician, lab_visit.enc, kind="report", report=rid))
    r = anon.get(f"/documents/{cid}")
    assert r.status_code == 200
    assert "Chữ ký số hợp lệ" in r.text and 'class="check fail"' not in r.text
    assert f"replaces={cid}" in r.text  # may amend their own kind
    assert "Bệnh nhân xác nhận đã nhận" not in r.text  # a report needs no receipt
    assert f"/documents/{cid}" in anon.get(f"/visit/{lab_visit.enc}/documents").text


@pytest.mark.parametrize("kind", ["visit-summary", "prescription", "discharge"])
def test_a_technician_cannot_sign_other_kinds(
    anon: TestClient, technician: SignedIn, lab_visit: Visit, kind: str
) -> None:
    review = anon.get(f"/visit/{lab_visit.enc}/documents/review", params={"kind": kind})
    assert review.status_code == 403 and "không ký" in review.text
    posted = sign(anon, technician, lab_visit.enc, kind=kind)
    assert posted.status_code == 403 and "không ký" in posted.text


def test_a_technician_does_not_read_the_doctors_documents(
    anon: TestClient, sign_in: SignIn, lab_visit: Visit, web_store: Store
) -> None:
    doctor = sign_in("bs.an", "doctor")
    link(web_store, "bs.an", lab_visit.author)
    cid = signed_id(sign(anon, doctor, lab_visit.enc, kind="prescription"))
    assert anon.get(f"/documents/{cid}").status_code == 200
    sign_in("ktv.binh", "lab-technician")
    assert anon.get(f"/documents/{cid}").status_code == 404
    listed = anon.get(f"/visit/{lab_visit.enc}/documents").text
    assert f"/documents/{cid}" not in listed


@pytest.mark.parametrize("role", ["pharmacist", "registrar"])
def test_roles_that_sign_nothing_see_nothing(
    anon: TestClient, sign_in: SignIn, lab_visit: Visit, role: str
) -> None:
    sign_in("x", role)
    assert anon.get(f"/visit/{lab_visit.enc}/documents").status_code == 403
