"""The printed document (reportlab, DejaVu Sans) and its PAdES signature (pyHanko)."""

from __future__ import annotations

import copy
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader

from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.signing.pdf import PdfError, register_fonts, render_pdf, sign_pdf
from benhan.signing.signers import Algorithm, KeySigner
from tests.signing.certs import NOW, Chain, make_chain

# ---------------------------------------------------------------- a discharge paper


def entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}


def ref(rid: str) -> dict[str, str]:
    return {"reference": f"urn:uuid:{rid}"}


PATIENT: Resource = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [{"system": sy.BHYT, "value": "GD4272722123456"}],
    "name": [{"family": "Nguyễn", "given": ["Thị", "Hoa"]}],
    "gender": "female",
    "birthDate": "1980-03-05",
    "address": [{"line": ["Số 12 Lý Thái Tổ"], "city": "Phường Kinh Bắc", "state": "Bắc Ninh"}],
}
HOSPITAL: Resource = {
    "resourceType": "Organization",
    "id": "o1",
    "name": "Bệnh viện Đa khoa tỉnh Bắc Ninh",
    "identifier": [{"system": sy.MA_CSKCB, "value": "27001"}],
}
DOCTOR: Resource = {
    "resourceType": "Practitioner",
    "id": "d1",
    "name": [{"family": "Nguyễn", "given": ["Văn", "An"]}],
    "qualification": [{"code": {"text": "Bác sĩ điều trị"}}],
}
WARD: Resource = {"resourceType": "Location", "id": "l1", "name": "Khoa Nội tổng hợp"}
STAY: Resource = {
    "resourceType": "Encounter",
    "id": "e1",
    "status": "finished",
    "class": {"system": sy.V3_ACT_CODE, "code": "IMP", "display": "Nội trú"},
    "subject": ref("p1"),
    "period": {"start": "2026-11-12T08:30:00+07:00", "end": "2026-11-19T16:00:00+07:00"},
    "location": [{"location": ref("l1")}],
}
PNEUMONIA: Resource = {
    "resourceType": "Condition",
    "id": "c1",
    "subject": ref("p1"),
    "code": {
        "coding": [{"system": sy.ICD10_VN, "code": "J18.9", "display": "Viêm phổi, không đặc hiệu"}]
    },
}
WBC: Resource = {
    "resourceType": "Observation",
    "id": "ob1",
    "status": "final",
    "code": {"text": "Bạch cầu (WBC)"},
    "valueQuantity": {"value": 14.20, "unit": "G/L"},
    "referenceRange": [{"low": {"value": 4}, "high": {"value": 10}}],
}
PRESSURE: Resource = {
    "resourceType": "Observation",
    "id": "ob2",
    "status": "final",
    "code": {"text": "Huyết áp"},
    "component": [
        {"code": {"text": "Tâm thu"}, "valueQuantity": {"value": 120, "unit": "mmHg"}},
        {"code": {"text": "Tâm trương"}, "valueQuantity": {"value": 80, "unit": "mmHg"}},
    ],
}
XRAY: Resource = {
    "resourceType": "DiagnosticReport",
    "id": "r1",
    "status": "final",
    "code": {"text": "X-quang ngực thẳng"},
    "effectiveDateTime": "2026-11-12T03:00:00Z",
    "conclusion": "Đám mờ thùy dưới phổi phải.",
}
AMOXICILLIN: Resource = {
    "resourceType": "MedicationRequest",
    "id": "m1",
    "status": "active",
    "intent": "order",
    "subject": ref("p1"),
    "medicationCodeableConcept": {"text": "Amoxicilin 500mg"},
    "dosageInstruction": [
        {
            "text": "1 Viên/lần * 3 lần/ngày * 5 ngày",
            "timing": {
                "repeat": {
                    "frequency": 3,
                    "period": 1,
                    "periodUnit": "d",
                    "boundsDuration": {"value": 5, "unit": "d"},
                }
            },
            "route": {"text": "Uống"},
            "patientInstruction": "sau ăn",
            "doseAndRate": [{"doseQuantity": {"value": 1.0, "unit": "Viên"}}],
        }
    ],
    "dispenseRequest": {"quantity": {"value": 15.0, "unit": "Viên"}},
}
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ADVICE = (
    '<div xmlns="http://www.w3.org/1999/xhtml"><p>Tái khám sau 7 ngày.</p>'
    "<p>Uống nhiều nước &amp; nghỉ ngơi, <b>không</b> tự ý dùng &lt;font size=40&gt;.</p></div>"
)


def discharge_paper() -> dict[str, Any]:
    """A discharge paper (giấy ra viện) as a FHIR document, signed off by Dr Nguyễn Văn An."""
    composition = {
        "resourceType": "Composition",
        "id": "comp1",
        "status": "final",
        "type": {"coding": [{"system": sy.LOINC, "code": "18842-5"}], "text": "Giấy ra viện"},
        "subject": ref("p1"),
        "date": "2026-11-19T20:00:00Z",  # already 20 November in Vietnam
        "author": [ref("d1")],
        "title": "Giấy ra viện",
        "custodian": ref("o1"),
        "section": [
            {"title": "Thông tin điều trị", "entry": [ref("e1")]},
            {"title": "Chẩn đoán", "entry": [ref("c1")]},
            {"title": "Kết quả cận lâm sàng", "entry": [ref("ob1"), ref("ob2"), ref("r1")]},
            {"title": "Đơn thuốc ra viện", "entry": [ref("m1")]},
            {"title": "Lời dặn", "text": {"status": "generated", "div": ADVICE}},
        ],
    }
    resources = [composition, PATIENT, HOSPITAL, DOCTOR, WARD, STAY, PNEUMONIA, WBC, PRESSURE]
    return {
        "resourceType": "Bundle",
        "id": "b1",
        "type": "document",
        "timestamp": "2026-11-20T09:15:00+07:00",
        "entry": [entry(copy.deepcopy(r)) for r in [*resources, XRAY, AMOXICILLIN]],
    }


def composition(bundle: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = bundle["entry"][0]["resource"]
    return first


# ---------------------------------------------------------------- reading PDFs back


def needs(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is absent: install the Debian package poppler-utils")
    return path


def text_of(pdf: bytes, tmp_path: Path) -> str:
    """The PDF's text as poppler extracts it, whitespace folded."""
    source = tmp_path / "doc.pdf"
    source.write_bytes(pdf)
    out = subprocess.run(
        [needs("pdftotext"), "-enc", "UTF-8", str(source), "-"], capture_output=True, check=True
    )
    return " ".join(out.stdout.decode("utf-8").split())


def page_count(pdf: bytes) -> int:
    count: int = PdfFileReader(BytesIO(pdf)).root["/Pages"]["/Count"]
    return count


# ---------------------------------------------------------------- rendering


def test_renders_an_a4_pdf_with_dejavu_embedded() -> None:
    pdf = render_pdf(discharge_paper())
    reader = PdfFileReader(BytesIO(pdf))
    page = reader.root["/Pages"]["/Kids"][0]
    width, height = float(page["/MediaBox"][2]), float(page["/MediaBox"][3])
    fonts = {str(f.get_object()["/BaseFont"]) for f in page["/Resources"]["/Font"].values()}
    assert pdf.startswith(b"%PDF-")
    assert (round(width), round(height)) == (595, 842)  # A4 in points
    assert fonts and all("DejaVuSans" in f for f in fonts), fonts
    assert page_count(pdf) == 1


def test_the_same_document_prints_to_the_same_bytes() -> None:
    # reportlab's invariant mode: no creation date or random file id, so a reprint matches.
    assert render_pdf(discharge_paper()) == render_pdf(discharge_paper())


def test_the_text_extracts_back_in_vietnamese(tmp_path: Path) -> None:
    text = text_of(render_pdf(discharge_paper()), tmp_path)
    for expected in [
        "SỞ Y TẾ BẮC NINH",
        "BỆNH VIỆN ĐA KHOA TỈNH BẮC",
        "Mã cơ sở: 27001",
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "GIẤY RA VIỆN",
        "Họ và tên: NGUYỄN THỊ HOA",
        "Ngày sinh: 05/03/1980",
        "Giới tính: Nữ",
        "Địa chỉ: Số 12 Lý Thái Tổ, Phường Kinh Bắc, Bắc Ninh",
        "Số thẻ BHYT: GD4272722123456",
        "I. Thông tin điều trị",
        "Thời gian: từ 08:30 ngày 12/11/2026 đến 16:00 ngày 19/11/2026",
        "Khoa/phòng: Khoa Nội tổng hợp",
        "Hình thức: Nội trú",
        "II. Chẩn đoán",
        "(J18.9) Viêm phổi, không đặc hiệu",
        "Bạch cầu (WBC) 14.2 G/L 4 – 10 Cao",
        "Tâm thu: 120 mmHg",
        "X-quang ngực thẳng (10:00 ngày 12/11/2026)",  # 03:00Z read in Vietnam time
        "Kết luận: Đám mờ thùy dưới phổi phải.",
        "1. Amoxicilin 500mg — SL: 15 Viên",
        "Ngày 3 lần, mỗi lần 1 Viên, dùng 5 ngày (Uống; sau ăn)",
        "V. Lời dặn",
        "Tái khám sau 7 ngày.",
        "Bắc Ninh, ngày 20 tháng 11 năm 2026",
        "BÁC SĨ ĐIỀU TRỊ",
        "(Ký, ghi rõ họ tên)",
        "Nguyễn Văn An",
        "Trang 1",
    ]:
        assert expected in text


def test_narrative_is_printed_as_text_never_as_markup(tmp_path: Path) -> None:
    text = text_of(render_pdf(discharge_paper()), tmp_path)
    assert "Uống nhiều nước & nghỉ ngơi, không tự ý dùng <font size=40>." in text


def test_decomposed_letters_are_printed_composed(tmp_path: Path) -> None:
    bundle = discharge_paper()
    patient = bundle["entry"][1]["resource"]
    patient["name"] = [{"text": unicodedata.normalize("NFD", "Trần Thị Ngọc Ánh")}]
    text = text_of(render_pdf(bundle), tmp_path)
    assert "TRẦN THỊ NGỌC ÁNH" in unicodedata.normalize("NFC", text)
    assert unicodedata.normalize("NFD", "TRẦN") not in text


def test_title_vi_overrides_the_composition_title(tmp_path: Path) -> None:
    text = text_of(render_pdf(discharge_paper(), title_vi="Tóm tắt hồ sơ bệnh án"), tmp_path)
    assert "TÓM TẮT HỒ SƠ BỆNH ÁN" in text
    assert "GIẤY RA VIỆN" not in text


def test_the_signer_is_the_legal_attester_with_its_role_and_the_signature_time(
    tmp_path: Path,
) -> None:
    bundle = discharge_paper()
    head = composition(bundle)
    director = {"resourceType": "Practitioner", "id": "d2", "name": [{"text": "Trần Quốc Bảo"}]}
    role = {
        "resourceType": "PractitionerRole",
        "id": "pr2",
        "practitioner": ref("d2"),
        "code": [{"text": "Giám đốc"}],
    }
    bundle["entry"] += [entry(director), entry(role)]
    head["attester"] = [
        {"mode": "professional", "party": ref("d1")},
        {"mode": "legal", "time": "2026-11-21T08:00:00+07:00", "party": ref("pr2")},
    ]
    bundle["signature"] = {"when": "2026-11-22T01:00:00Z", "data": "x"}
    text = text_of(render_pdf(bundle), tmp_path)
    assert "Bắc Ninh, ngày 22 tháng 11 năm 2026 GIÁM ĐỐC (Đã ký số) Trần Quốc Bảo" in text


def test_an_author_without_qualification_signs_as_nguoi_ky(tmp_path: Path) -> None:
    bundle = discharge_paper()
    del bundle["entry"][3]["resource"]["qualification"]
    text = text_of(render_pdf(bundle), tmp_path)
    assert "NGƯỜI KÝ" in text
    assert "BÁC SĨ ĐIỀU TRỊ" not in text


def test_other_resources_print_their_narrative_or_their_code(tmp_path: Path) -> None:
    bundle = discharge_paper()
    surgery = {
        "resourceType": "Procedure",
        "id": "x1",
        "text": {"status": "generated", "div": "<div>Nội soi phế quản <i>ngày 13/11</i></div>"},
    }
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "x2",
        "code": {"text": "Dị ứng penicilin"},
    }
    bundle["entry"] += [entry(surgery), entry(allergy)]
    composition(bundle)["section"].append(
        {"title": "Thủ thuật và dị ứng", "entry": [ref("x1"), ref("x2")]}
    )
    composition(bundle)["section"].append({"title": "Ghi chú"})
    text = text_of(render_pdf(bundle), tmp_path)
    assert "VI. Thủ thuật và dị ứng Nội soi phế quản ngày 13/11 Dị ứng penicilin" in text
    assert "VII. Ghi chú Không có." in text


def test_observation_values_of_every_kind_and_their_flags(tmp_path: Path) -> None:
    bundle = discharge_paper()
    low = dict(
        WBC,
        id="v1",
        code={"text": "Natri"},
        valueQuantity={"value": 128, "unit": "mmol/L"},
        referenceRange=[{"low": {"value": 135}, "high": {"value": 145}}],
    )
    marked = dict(
        WBC,
        id="v2",
        code={"text": "Kali"},
        valueQuantity={"value": 3.9, "unit": "mmol/L"},
        interpretation=[{"coding": [{"system": INTERPRETATION, "code": "HH"}]}],
    )
    culture = {
        "resourceType": "Observation",
        "id": "v3",
        "status": "final",
        "code": {"text": "Cấy máu"},
        "valueCodeableConcept": {"text": "Không mọc vi khuẩn"},
    }
    hbsag = {
        "resourceType": "Observation",
        "id": "v4",
        "status": "final",
        "code": {"text": "HBsAg"},
        "valueString": "Âm tính",
        "referenceRange": [{"text": "Âm tính"}],
    }
    smoker = {
        "resourceType": "Observation",
        "id": "v5",
        "status": "final",
        "code": {"text": "Hút thuốc"},
        "valueBoolean": False,
    }
    found = [low, marked, culture, hbsag, smoker]
    bundle["entry"] += [entry(o) for o in found]
    composition(bundle)["section"][2]["entry"] = [ref(str(o["id"])) for o in found]
    text = text_of(render_pdf(bundle), tmp_path)
    assert "Natri 128 mmol/L 135 – 145 Thấp" in text
    assert "Kali 3.9 mmol/L 4 – 10 Rất cao" in text  # the interpretation wins over the range
    assert "Cấy máu Không mọc vi khuẩn" in text
    assert "HBsAg Âm tính" in text
    assert text.count("Âm tính") == 2  # the value and its reference range
    assert "Hút thuốc Không" in text


def test_nested_sections_are_numbered_under_their_parent(tmp_path: Path) -> None:
    bundle = discharge_paper()
    composition(bundle)["section"][4]["section"] = [
        {"title": "Chế độ ăn", "text": {"div": "<div>Ăn lỏng, ít muối.</div>"}},
        {"title": "Vận động", "text": {"div": "<div>Đi lại nhẹ nhàng.</div>"}},
    ]
    text = text_of(render_pdf(bundle), tmp_path)
    assert "V.1. Chế độ ăn Ăn lỏng, ít muối. V.2. Vận động Đi lại nhẹ nhàng." in text


def test_a_narrative_table_prints_one_row_per_line(tmp_path: Path) -> None:
    bundle = discharge_paper()
    div = (
        "<div><table><tr><th>Ngày</th><th>Nhiệt độ</th></tr>"
        "<tr><td>13/11</td><td>38,5 °C</td></tr></table></div>"
    )
    composition(bundle)["section"].append({"title": "Theo dõi", "text": {"div": div}})
    text = text_of(render_pdf(bundle), tmp_path)
    assert "VI. Theo dõi Ngày | Nhiệt độ 13/11 | 38,5 °C" in text


def test_a_section_that_only_holds_sections_is_not_empty(tmp_path: Path) -> None:
    bundle = discharge_paper()
    inner = {"title": "Chế độ ăn", "text": {"div": "<div>Ăn lỏng.</div>"}}
    composition(bundle)["section"].append({"title": "Hướng dẫn", "section": [inner]})
    text = text_of(render_pdf(bundle), tmp_path)
    assert "VI. Hướng dẫn VI.1. Chế độ ăn Ăn lỏng." in text
    assert "Không có." not in text


def test_the_insurance_card_may_come_from_a_coverage(tmp_path: Path) -> None:
    bundle = discharge_paper()
    del bundle["entry"][1]["resource"]["identifier"]
    coverage = {
        "resourceType": "Coverage",
        "id": "cv1",
        "status": "active",
        "subscriberId": "HT3272799000111",
        "beneficiary": ref("p1"),
        "payor": [ref("o1")],
    }
    bundle["entry"].append(entry(coverage))
    text = text_of(render_pdf(bundle), tmp_path)
    assert "Số thẻ BHYT: HT3272799000111" in text


def test_markup_characters_in_a_title_print_as_themselves(tmp_path: Path) -> None:
    text = text_of(render_pdf(discharge_paper(), title_vi="Kết quả X-quang & <CT>"), tmp_path)
    assert "KẾT QUẢ X-QUANG & <CT>" in text


def test_a_partial_signing_date_leaves_the_day_blank(tmp_path: Path) -> None:
    bundle = discharge_paper()
    composition(bundle)["date"] = "2026-11"
    text = text_of(render_pdf(bundle), tmp_path)
    assert "Bắc Ninh, ngày … tháng 11 năm 2026" in text


def test_a_signing_date_that_is_no_date_is_refused() -> None:
    bundle = discharge_paper()
    composition(bundle)["date"] = "hôm qua"
    with pytest.raises(PdfError, match="invalid signing date"):
        render_pdf(bundle)


def test_a_long_document_runs_onto_numbered_pages(tmp_path: Path) -> None:
    bundle = discharge_paper()
    results = [dict(WBC, id=f"lab{i}", code={"text": f"Xét nghiệm {i}"}) for i in range(80)]
    bundle["entry"] += [entry(r) for r in results]
    composition(bundle)["section"][2]["entry"] += [ref(r["id"]) for r in results]
    pdf = render_pdf(bundle)
    text = text_of(pdf, tmp_path)
    assert page_count(pdf) >= 2
    assert "Trang 2" in text
    assert "Xét nghiệm 79" in text
    assert text.count("Chỉ số Kết quả") >= 2  # the table head repeats on the next page


def test_relative_and_absolute_references_resolve_by_type_and_id(tmp_path: Path) -> None:
    bundle = discharge_paper()
    head = composition(bundle)
    head["subject"] = {"reference": "Patient/p1"}
    head["custodian"] = {"reference": "https://hub.benhan.vn/fhir/Organization/o1"}
    head["section"][1]["entry"] = [{"reference": "Condition/c1/_history/2"}]
    text = text_of(render_pdf(bundle), tmp_path)
    assert "NGUYỄN THỊ HOA" in text
    assert "BỆNH VIỆN ĐA KHOA TỈNH BẮC" in text
    assert "(J18.9) Viêm phổi" in text


def broken(change: str) -> dict[str, Any]:
    bundle = discharge_paper()
    if change == "collection":
        bundle["type"] = "collection"
    elif change == "no-entries":
        bundle["entry"] = []
    elif change == "patient-first":
        bundle["entry"].insert(0, bundle["entry"].pop(1))
    elif change == "not-a-bundle":
        bundle["resourceType"] = "Composition"
    return bundle


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("collection", "Bundle.type must be 'document'"),
        ("no-entries", "the first entry of a document must be a Composition"),
        ("patient-first", "the first entry of a document must be a Composition"),
        ("not-a-bundle", "not a FHIR Bundle"),
    ],
)
def test_what_is_not_a_document_is_refused(change: str, message: str) -> None:
    with pytest.raises(PdfError, match=message):
        render_pdf(broken(change))


def test_a_list_is_not_a_bundle() -> None:
    with pytest.raises(PdfError, match="not a FHIR Bundle"):
        render_pdf([])  # type: ignore[arg-type]


def test_references_missing_from_the_bundle_are_all_named() -> None:
    bundle = discharge_paper()
    composition(bundle)["section"][2]["entry"].append(ref("gone"))
    composition(bundle)["custodian"] = {"reference": "Organization/elsewhere"}
    with pytest.raises(PdfError) as raised:
        render_pdf(bundle)
    assert "urn:uuid:gone" in str(raised.value)
    assert "Organization/elsewhere" in str(raised.value)
    assert "tài liệu thiếu tài nguyên" in str(raised.value)


def test_a_display_only_reference_is_printed_not_refused(tmp_path: Path) -> None:
    bundle = discharge_paper()
    composition(bundle)["custodian"] = {"display": "Trạm Y tế xã Tam Giang"}
    text = text_of(render_pdf(bundle), tmp_path)
    assert "TRẠM Y TẾ XÃ TAM GIANG" in text


def test_an_invalid_date_is_refused_with_its_value() -> None:
    bundle = discharge_paper()
    bundle["entry"][5]["resource"]["period"]["start"] = "2026-13-45T99:00"
    with pytest.raises(PdfError, match="2026-13-45T99:00"):
        render_pdf(bundle)


def test_missing_fonts_name_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fonts-dejavu-core"):
        register_fonts(tmp_path)


# ---------------------------------------------------------------- signing


def rsa_chain() -> Chain:
    return make_chain(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def chains() -> dict[Algorithm, Chain]:
    return {"ES256": make_chain(), "RS256": rsa_chain()}


def asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def validate(pdf: bytes, root: x509.Certificate, index: int = 0) -> Any:
    """pyHanko's own verdict on one signature, trusting only `root`, at the test clock."""
    # Imported here: benhan.signing.pdf imports pyHanko's signers first, quieting the DSA
    # deprecation warning they raise on import (tests turn warnings into errors).
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    context = ValidationContext(trust_roots=[asn1(root)], moment=NOW + timedelta(hours=1))
    signature = PdfFileReader(BytesIO(pdf)).embedded_signatures[index]
    return validate_pdf_signature(signature, context)


def signed(chain: Chain, pdf: bytes | None = None, **options: Any) -> bytes:
    return sign_pdf(
        pdf if pdf is not None else render_pdf(discharge_paper()),
        options.pop("signer", chain.signer()),
        reason=options.pop("reason", "Ký giấy ra viện"),
        location=options.pop("location", "Bắc Ninh"),
        name=options.pop("name", "Nguyễn Văn An"),
        when=options.pop("when", NOW),
    )


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_a_signed_pdf_is_intact_valid_and_trusted(
    chains: dict[Algorithm, Chain], algorithm: Algorithm
) -> None:
    chain = chains[algorithm]
    status = validate(signed(chain), chain.root.cert)
    assert (status.intact, status.valid, status.trusted, status.bottom_line) == (True,) * 4
    assert status.coverage.name == "ENTIRE_FILE"
    assert status.signer_reported_dt == NOW
    mechanism = "sha256_ecdsa" if algorithm == "ES256" else "sha256_rsa"
    assert status.md_algorithm == "sha256"
    assert status.pkcs7_signature_mechanism == mechanism


def test_the_signature_is_pades_with_who_where_why_and_the_whole_chain(
    chains: dict[Algorithm, Chain],
) -> None:
    chain = chains["ES256"]
    pdf = signed(chain, when=datetime.fromisoformat("2026-11-20T10:00:00+07:00"))
    signature = PdfFileReader(BytesIO(pdf)).embedded_signatures[0]
    sig = signature.sig_object
    assert sig["/SubFilter"] == "/ETSI.CAdES.detached"
    assert (sig["/Reason"], sig["/Location"], sig["/Name"]) == (
        "Ký giấy ra viện",
        "Bắc Ninh",
        "Nguyễn Văn An",
    )
    assert str(sig["/M"]).startswith("D:20261120100000+07")
    embedded = {c.chosen.sha256 for c in signature.signed_data["certificates"]}
    expected = {asn1(c.cert).sha256 for c in (chain.leaf, chain.intermediate, chain.root)}
    assert embedded == expected
    signed_attributes = signature.signer_info["signed_attrs"].native
    names = {a["type"] for a in signed_attributes}
    assert "signing_certificate_v2" in names
    assert "signing_time" not in names  # PAdES keeps the time in /M only


def test_changing_one_signed_byte_breaks_integrity(chains: dict[Algorithm, Chain]) -> None:
    chain = chains["ES256"]
    pdf = bytearray(signed(chain))
    at = pdf.index(b"ReportLab PDF Library") + len("ReportLab PDF Librar")
    first_range_end = PdfFileReader(BytesIO(bytes(pdf))).embedded_signatures[0].byte_range[1]
    assert at < first_range_end  # the byte is inside what the signature covers
    pdf[at : at + 1] = b"x"
    status = validate(bytes(pdf), chain.root.cert)
    assert not status.intact
    assert not status.bottom_line


def test_another_root_is_not_trusted(chains: dict[Algorithm, Chain]) -> None:
    pdf = signed(chains["ES256"])
    status = validate(pdf, make_chain().root.cert)
    assert status.intact and status.valid
    assert not status.trusted
    assert not status.bottom_line


def test_a_second_signature_keeps_the_first_valid(chains: dict[Algorithm, Chain]) -> None:
    es, rs = chains["ES256"], chains["RS256"]
    twice = signed(rs, signed(es), name="Bệnh viện Đa khoa tỉnh Bắc Ninh")
    names = [s.field_name for s in PdfFileReader(BytesIO(twice)).embedded_signatures]
    assert names == ["ChuKy1", "ChuKy2"]
    first, second = validate(twice, es.root.cert, 0), validate(twice, rs.root.cert, 1)
    assert first.intact and first.valid and first.trusted
    assert first.coverage.name == "ENTIRE_REVISION"
    assert second.bottom_line


@dataclass
class CountingToken:
    """A stand-in for a PKCS#11 token: only `sign` touches the key, and we count the calls."""

    inner: KeySigner
    calls: list[bytes] = field(default_factory=list)

    @property
    def algorithm(self) -> Algorithm:
        return self.inner.algorithm

    @property
    def chain(self) -> list[x509.Certificate]:
        return self.inner.chain

    def sign(self, data: bytes) -> bytes:
        self.calls.append(data)
        return self.inner.sign(data)


def test_the_key_is_used_once_through_the_signer_protocol(chains: dict[Algorithm, Chain]) -> None:
    chain = chains["ES256"]
    token = CountingToken(chain.signer())
    pdf = signed(chain, signer=token)
    assert len(token.calls) == 1  # the size estimate does not cost a token operation
    assert validate(pdf, chain.root.cert).bottom_line


@dataclass
class BrokenToken(CountingToken):
    reply: bytes = b""

    def sign(self, data: bytes) -> bytes:
        return self.reply


def test_a_signer_whose_key_is_not_its_certificate_s_is_refused(
    chains: dict[Algorithm, Chain],
) -> None:
    chain = chains["ES256"]
    impostor = KeySigner(ec.generate_private_key(ec.SECP256R1()), chain.signer().chain)
    with pytest.raises(PdfError, match="does not match the signer's certificate"):
        signed(chain, signer=impostor)


def test_an_es256_signature_that_is_not_64_bytes_is_refused(
    chains: dict[Algorithm, Chain],
) -> None:
    chain = chains["ES256"]
    token = BrokenToken(chain.signer(), reply=b"\x01" * 63)
    with pytest.raises(PdfError, match="64 bytes"):
        signed(chain, signer=token)


def test_an_algorithm_that_does_not_fit_the_certificate_is_refused(
    chains: dict[Algorithm, Chain],
) -> None:
    rsa_signer = chains["RS256"].signer()
    mismatched = KeySigner(rsa_signer.key, chains["ES256"].signer().chain)
    with pytest.raises(PdfError, match="does not match the signer's algorithm RS256"):
        signed(chains["ES256"], signer=mismatched)


def test_a_signer_without_a_chain_is_refused(chains: dict[Algorithm, Chain]) -> None:
    chain = chains["ES256"]
    with pytest.raises(PdfError, match="no certificate chain"):
        signed(chain, signer=KeySigner(chain.leaf.key, []))


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "not a PDF file"), (b"<html></html>", "not a PDF file"), (b"%PDF-1.4\n", "unreadable")],
)
def test_what_is_not_a_pdf_is_refused(
    chains: dict[Algorithm, Chain], data: bytes, message: str
) -> None:
    with pytest.raises(PdfError, match=message):
        signed(chains["ES256"], data)


def test_a_signing_time_without_a_zone_is_refused(chains: dict[Algorithm, Chain]) -> None:
    with pytest.raises(PdfError, match="timezone-aware"):
        signed(chains["ES256"], when=datetime(2026, 11, 20, 10, 0))


def test_the_signed_pdf_still_reads_as_text(chains: dict[Algorithm, Chain], tmp_path: Path) -> None:
    text = text_of(signed(chains["ES256"]), tmp_path)
    assert "Họ và tên: NGUYỄN THỊ HOA" in text
    assert "Nguyễn Văn An" in text


def test_the_signed_pdf_renders_to_a_non_blank_page(
    chains: dict[Algorithm, Chain], tmp_path: Path
) -> None:
    source = tmp_path / "signed.pdf"
    source.write_bytes(signed(chains["RS256"]))
    out = subprocess.run(
        [needs("pdftoppm"), "-png", "-r", "50", "-singlefile", str(source), str(tmp_path / "p")],
        capture_output=True,
        check=True,
    )
    assert out.stderr == b""  # poppler says nothing about a well-formed file
    with Image.open(tmp_path / "p.png") as image:
        gray = image.convert("L")
        dark = sum(gray.histogram()[:128])
        assert abs(gray.size[0] - 413) <= 1 and abs(gray.size[1] - 585) <= 1  # A4 at 50 dpi
        assert dark > 0.005 * gray.size[0] * gray.size[1]
