"""The visit page: who may write what, each form's refusals, the prescribing warnings, closing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from benhan.access import Actor
from benhan.emr.model import search_all
from benhan.emr.prescribing import drug_key, drugs_by_key
from benhan.fhir import systems as sy
from benhan.fhir.validation import check
from benhan.store.database import Store
from benhan.store.repository import Repo
from tests.emr.world import OTHER_FACILITY, create, person, place, visit
from tests.web.conftest import SignedIn, SignIn

HX = {"HX-Request": "true"}


def drug(name: str, strength: str) -> str:
    return next(k for k, d in drugs_by_key().items() if (d.name, d.strength) == (name, strength))


AMOXICILLIN = drug("Amoxicilin", "500mg")
PARACETAMOL_500 = drug("Paracetamol", "500mg")
PARACETAMOL_325 = drug("Paracetamol", "325mg")


@pytest.fixture
def enc(web_store: Store, app: FastAPI) -> str:
    where = place(web_store)
    return visit(web_store, where, person(web_store))


@pytest.fixture
def doctor(sign_in: SignIn) -> SignedIn:
    return sign_in("bs.an", "doctor", display_name="BS. Nguyễn An")


def stored(store: Store, rtype: str, params: list[tuple[str, str]] | None = None) -> list[Any]:
    with store.read() as conn:
        return search_all(
            Repo(conn, Actor.job("27001", "test")), rtype, params or [("_count", "100")]
        )


def one(store: Store, rtype: str, rid: str) -> dict[str, Any]:
    with store.read() as conn:
        return Repo(conn, Actor.job("27001", "test")).read(rtype, rid).resource


def post(client: TestClient, me: SignedIn, enc: str, section: str, **data: str) -> Any:
    return client.post(
        f"/visit/{enc}/{section}", data={"csrf": me.csrf, **data}, follow_redirects=False
    )


def rx(drug_key_: str, **more: str) -> dict[str, str]:
    return {"drug": drug_key_, "dose": "1", "per_day": "3", "days": "5", **more}


# ---------------------------------------------------------------- the page and its roles


def test_a_doctor_opening_the_visit_starts_it_once(
    anon: TestClient, doctor: SignedIn, web_store: Store, enc: str
) -> None:
    r = anon.get(f"/visit/{enc}")
    assert r.status_code == 200, r.text
    assert "Nguyễn Thị Hương" in r.text and "001" in r.text
    assert "Chưa ghi nhận dị ứng." in r.text
    first = one(web_store, "Encounter", enc)
    assert first["status"] == "in-progress"
    anon.get(f"/visit/{enc}")
    assert one(web_store, "Encounter", enc)["meta"]["versionId"] == first["meta"]["versionId"]


def test_a_nurse_records_vitals_and_allergies_only(
    anon: TestClient, sign_in: SignIn, web_store: Store, enc: str
) -> None:
    nurse = sign_in("dd.lan", "nurse")
    r = anon.get(f"/visit/{enc}")
    assert r.status_code == 200
    assert one(web_store, "Encounter", enc)["status"] == "arrived"  # only a doctor starts it
    assert 'name="temperature"' in r.text and 'name="substance"' in r.text
    assert 'name="reason"' not in r.text and 'name="dose"' not in r.text
    assert post(anon, nurse, enc, "vitals", temperature="37.2").status_code == 303
    assert post(anon, nurse, enc, "allergies", substance="Tôm").status_code == 303
    assert post(anon, nurse, enc, "prescriptions", **rx(PARACETAMOL_500)).status_code == 403
    assert post(anon, nurse, enc, "diagnoses", code="J18.9").status_code == 403
    assert stored(web_store, "MedicationRequest") == []
    assert stored(web_store, "Condition") == []
    assert len(stored(web_store, "Observation")) == 1


@pytest.mark.parametrize("role", ["registrar", "lab-technician", "pharmacist"])
def test_other_roles_get_403(anon: TestClient, sign_in: SignIn, enc: str, role: str) -> None:
    me = sign_in("user.x", role)
    assert anon.get(f"/visit/{enc}").status_code == 403
    assert post(anon, me, enc, "vitals", temperature="37").status_code == 403
    assert anon.get(f"/visit/{enc}/search/icd10", params={"dx_q": "sot"}).status_code == 403


def test_unknown_and_malformed_visits_are_404(
    anon: TestClient, doctor: SignedIn, web_store: Store, app: FastAPI
) -> None:
    assert anon.get("/visit/khong-co").status_code == 404
    assert anon.get("/visit/bad$id").status_code == 404
    assert post(anon, doctor, "khong-co", "vitals", temperature="37").status_code == 404
    where = place(web_store, OTHER_FACILITY)
    theirs = visit(web_store, where, person(web_store, facility=OTHER_FACILITY))
    assert anon.get(f"/visit/{theirs}").status_code == 404  # hidden, not forbidden


def test_a_post_without_the_csrf_token_is_refused(
    anon: TestClient, doctor: SignedIn, web_store: Store, enc: str
) -> None:
    r = anon.post(f"/visit/{enc}/vitals", data={"temperature": "37"}, follow_redirects=False)
    assert r.status_code == 403
    assert stored(web_store, "Observation") == []


# ---------------------------------------------------------------- each form


def test_notes_vitals_diagnosis_order_are_saved_and_shown(
    anon: TestClient, doctor: SignedIn, web_store: Store, enc: str
) -> None:
    r = post(anon, doctor, enc, "notes", reason="Sốt <cao> 3 ngày", exam="Phổi ran nổ")
    assert (r.status_code, r.headers["location"]) == (303, f"/visit/{enc}#visit-notes")
    assert post(anon, doctor, enc, "vitals", systolic="120", diastolic="80").status_code == 303
    assert post(anon, doctor, enc, "diagnoses", code="J18.9", main="1").status_code == 303
    assert post(anon, doctor, enc, "orders", service="22.9028.9028").status_code == 303
    page = anon.get(f"/visit/{enc}").text
    assert "Sốt &lt;cao&gt; 3 ngày" in page  # escaped, as typed
    assert "120/80" in page and "J18.9" in page and "Định lượng huyết sắc tố (Hb)" in page
    e = one(web_store, "Encounter", enc)
    [cond] = stored(web_store, "Condition")
    [order] = stored(web_store, "ServiceRequest")
    assert e["diagnosis"][0]["condition"] == {"reference": f"Condition/{cond['id']}"}
    assert cond["recorder"] == {"display": "BS. Nguyễn An"}
    assert order["encounter"] == cond["encounter"] == {"reference": f"Encounter/{enc}"}
    assert all(check(x) == [] for x in (e, cond, order))


@pytest.mark.parametrize(
    ("section", "data", "message", "kept"),
    [
        ("vitals", {"temperature": "60"}, "Giá trị không hợp lý: từ 30 đến 45.", 'value="60"'),
        ("vitals", {"pulse": "nhanh", "spo2": "98"}, "Hãy nhập một con số.", 'value="98"'),
        ("notes", {"reason": "", "exam": "Bụng mềm"}, "Hãy nhập mục này.", ">Bụng mềm<"),
        ("diagnoses", {"code": "Z99.999"}, "Mã ICD-10 Z99.999 không có trong danh mục.", ""),
        ("orders", {"service": "99.9999.9999"}, "Không có dịch vụ xét nghiệm hay chẩn đoán", ""),
        ("prescriptions", rx(AMOXICILLIN, dose="-1"), "Liều mỗi lần phải lớn hơn 0", 'value="-1"'),
        (
            "prescriptions",
            rx(AMOXICILLIN, days="0"),
            "Số ngày là số nguyên từ 1 đến 90.",
            'value="0"',
        ),
        (
            "prescriptions",
            rx(AMOXICILLIN, quantity="100000"),
            "Số lượng phải lớn hơn 0 và không quá 30.",
            'value="100000"',
        ),
        ("prescriptions", rx("40.9999|1mg|x|1.01"), "Thuốc này không có trong danh mục.", ""),
        (
            "allergies",
            {"substance": "", "reaction": "Khó thở"},
            "Hãy nhập mục này.",
            'value="Khó thở"',
        ),
        (
            "close",
            {"disposition": "other-hcf", "referral_to": "khong-co", "advice": "Uống nhiều nước"},
            "Không tìm thấy cơ sở nhận chuyển tuyến này.",
            ">Uống nhiều nước<",
        ),
        ("close", {"disposition": "bay-di"}, "Hãy chọn một mục trong danh sách.", ""),
    ],
)
def test_bad_input_is_refused_kept_and_nothing_written(
    anon: TestClient,
    doctor: SignedIn,
    web_store: Store,
    enc: str,
    section: str,
    data: dict[str, str],
    message: str,
    kept: str,
) -> None:
    if section == "close":
        post(anon, doctor, enc, "diagnoses", code="J18.9")
    kinds = ("Observation", "ServiceRequest", "MedicationRequest", "Condition", "Composition")
    before = {t: len(stored(web_store, t)) for t in kinds}
    r = post(anon, doctor, enc, section, **data)
    assert r.status_code == 400, r.text
    assert message in r.text
    assert 'class="field-error"' in r.text  # said next to the field
    assert kept in r.text  # what was typed is still there
    assert {t: len(stored(web_store, t)) for t in kinds} == before
    assert one(web_store, "Encounter", enc)["status"] in ("arrived", "in-progress")


def test_htmx_gets_just_the_section(
    anon: TestClient, doctor: SignedIn, web_store: Store, enc: str
) -> None:
    bad = anon.post(
        f"/visit/{enc}/vitals",
        data={"temperature": "60"},
        headers={**HX, "X-CSRF-Token": doctor.csrf},
    )
    assert bad.status_code == 400
    assert bad.text.lstrip().startswith('<section class="card visit-section" id="visit-vitals"')
    assert 'value="60"' in bad.text and "<html" not in bad.text
    good = anon.post(
        f"/visit/{enc}/allergies",
        data={"substance": "Penicilin"},
        headers={**HX, "X-CSRF-Token": doctor.csrf},
    )
    assert good.status_code == 200
    assert "Đã ghi dị ứng." in good.text
    assert 'id="allergy-band"' in good.text and 'hx-swap-oob="true"' in good.text


# ---------------------------------------------------------------- prescribing warnings


def test_penicillin_allergy_blocks_amoxicillin_until_overridden(
    anon: TestClient, doctor: SignedIn, web_store: Store, enc: str
) -> None:
    assert (
        post(anon, doctor, enc, "allergies", substance="penicillin", reaction="Phù").status_code
        == 303
    )
    page = anon.get(f"/visit/{enc}").text
    assert 'class="allergy-band"' in page and "penicillin" in page
    r = post(anon, doctor, enc, "prescriptions", **rx(AMOXICILLIN))
    assert r.status_code == 409
    assert "người bệnh dị ứng “penicillin”" in r.text and 'name="override"' in r.text
    assert stored(web_store, "MedicationRequest") == []
    r = post(
        anon, doctor, enc, "prescriptions", **rx(AMOXICILLIN, override="1", override_reason="")
    )
    assert r.status_code == 400 and "Hãy ghi lý do vẫn kê đơn" in r.text
    assert stored(web_store, "MedicationRequest") == stored(web_store, "DetectedIssue") == []
    why = "Đã thử test da âm tính, người bệnh đồng ý"
    r = post(
        anon, doctor, enc, "prescriptions", **rx(AMOXICILLIN, override="1", override_reason=why)
    )
    assert r.status_code == 303
    [mr] = stored(web_store, "MedicationRequest")
    [issue] = stored(web_store, "DetectedIssue")
    [allergy] = stored(web_store, "AllergyIntolerance")
    assert mr["detectedIssue"] == [{"reference": f"DetectedIssue/{issue['id']}"}]
    assert issue["code"]["coding"][0]["code"] == "ALGY"
    assert issue["implicated"] == [{"reference": f"AllergyIntolerance/{allergy['id']}"}]
    assert issue["mitigation"][0]["action"]["text"] == why
    assert issue["patient"] == mr["subject"]
    assert all(check(x) == [] for x in (mr, issue, allergy))
    assert "Kê dù có cảnh báo" in anon.get(f"/visit/{enc}").text


def test_two_paracetamol_products_warn_of_a_duplicate(
    anon: TestClient, doctor: SignedIn, web_store: Store, enc: str
) -> None:
    assert post(anon, doctor, enc, "prescriptions", **rx(PARACETAMOL_500)).status_code == 303
    r = post(anon, doctor, enc, "prescriptions", **rx(PARACETAMOL_325))
    assert r.status_code == 409 and "Trùng hoạt chất:" in r.text and "paracetamol" in r.text
    assert len(stored(web_store, "MedicationRequest")) == 1
    why = "Liều tách cho trẻ, đã dặn kỹ"
    r = post(
        anon, doctor, enc, "prescriptions", **rx(PARACETAMOL_325, override="1", override_reason=why)
    )
    assert r.status_code == 303
    first, second = sorted(
        stored(web_store, "MedicationRequest"), key=lambda m: "detectedIssue" in m
    )
    [issue] = stored(web_store, "DetectedIssue")
    assert issue["code"]["coding"][0]["code"] == "DUPTHPY"
    assert issue["implicated"] == [{"reference": f"MedicationRequest/{first['id']}"}]
    assert second["dosageInstruction"][0]["text"] == "1 Viên/lần * 3 lần/ngày * 5 ngày"
    assert second["dispenseRequest"]["quantity"] == {"value": 15.0, "unit": "Viên"}


def test_a_prescription_is_the_catalogue_drug_with_its_dosage(
    anon: TestClient, doctor: SignedIn, web_store: Store, enc: str
) -> None:
    page = anon.get(f"/visit/{enc}", params={"drug": AMOXICILLIN}).text
    assert 'name="dose"' in page and 'value="1"' in page and 'value="7"' in page  # defaults
    r = post(anon, doctor, enc, "prescriptions", **rx(AMOXICILLIN, days="7", quantity="20"))
    assert r.status_code == 303
    [mr] = stored(web_store, "MedicationRequest")
    coding = mr["medicationCodeableConcept"]["coding"]
    assert coding == [
        {"system": sy.DRUGS, "code": "40.9023", "display": "Amoxicilin"},
        {"system": sy.ATC, "code": "J01CA04"},
    ]
    assert mr["status"] == "active" and mr["intent"] == "order"
    d = mr["dosageInstruction"][0]
    assert d["timing"]["repeat"]["frequency"] == 3 and d["timing"]["repeat"]["periodUnit"] == "d"
    assert d["doseAndRate"][0]["doseQuantity"] == {"value": 1.0, "unit": "Viên"}
    assert d["route"]["coding"][0]["code"] == "26643006"
    assert mr["dispenseRequest"]["quantity"]["value"] == 20.0
    assert mr["dispenseRequest"]["expectedSupplyDuration"]["value"] == 7
    assert mr["requester"] == {"display": "BS. Nguyễn An"}
    assert check(mr) == []


# ---------------------------------------------------------------- searches


@pytest.mark.parametrize(
    ("kind", "q", "expect"),
    [
        ("icd10", "viem phoi", "J18"),
        ("icd10", "pneumonia", "J18"),
        ("icd10", "j18.9", "J18.9"),
        ("service", "huyet sac to", "22.9028.9028"),
        ("drug", "amoxi", "Amoxicilin"),
    ],
)
def test_searches_answer_as_you_type(
    anon: TestClient, doctor: SignedIn, enc: str, kind: str, q: str, expect: str
) -> None:
    param = {"icd10": "dx_q", "service": "sv_q", "drug": "rx_q"}[kind]
    r = anon.get(f"/visit/{enc}/search/{kind}", params={param: q})
    assert r.status_code == 200 and expect in r.text and "<html" not in r.text
    empty = anon.get(f"/visit/{enc}/search/{kind}", params={param: "zzzqqq"})
    assert "Không tìm thấy" in empty.text
    full = anon.get(f"/visit/{enc}", params={param: q})  # the same without JavaScript
    assert expect in full.text


# ---------------------------------------------------------------- closing and referral


def test_referral_closes_the_visit_for_good(
    anon: TestClient, doctor: SignedIn, web_store: Store, enc: str
) -> None:
    ident = [{"system": sy.MA_CSKCB, "value": OTHER_FACILITY}]
    org = create(
        web_store,
        {"resourceType": "Organization", "identifier": ident, "name": "Bệnh viện Tỉnh Bắc Ninh"},
        OTHER_FACILITY,
    )
    found = anon.get(f"/visit/{enc}/search/org", params={"org_q": "tinh bac"})
    assert f'value="{org}"' in found.text and OTHER_FACILITY in found.text
    r = post(anon, doctor, enc, "close", disposition="home")
    assert r.status_code == 400 and "Hãy ghi chẩn đoán trước khi kết thúc" in r.text
    post(anon, doctor, enc, "diagnoses", code="J18.9", main="1")
    r = post(anon, doctor, enc, "close", disposition="other-hcf", referral_to=org, advice="Đi ngay")
    assert r.status_code == 303
    e = one(web_store, "Encounter", enc)
    assert e["status"] == "finished"
    [referral] = stored(web_store, "ServiceRequest")
    assert referral["performer"][0]["reference"] == f"Organization/{org}"
    assert referral["category"][0]["coding"][0]["code"] == "3457005"
    page = anon.get(f"/visit/{enc}")
    assert "Lượt khám đã kết thúc" in page.text and "Bệnh viện Tỉnh Bắc Ninh" in page.text
    assert 'name="reason"' not in page.text and 'name="temperature"' not in page.text
    assert f"/print/visit/{enc}" in page.text
    r = post(anon, doctor, enc, "notes", reason="Sửa sau khi đóng")
    assert r.status_code == 409 and "không sửa được nữa" in r.text
    assert one(web_store, "Encounter", enc)["meta"]["versionId"] == e["meta"]["versionId"]
    [note] = stored(web_store, "Composition")
    assert note["status"] == "final"


def test_drug_keys_are_unique() -> None:
    assert len(drugs_by_key()) == len({drug_key(d) for d in drugs_by_key().values()})
