"""The documents clinicians sign, built from visits the EMR documented with its own functions."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
import rfc8785
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding

from benhan.access import Actor
from benhan.emr import closing as cl
from benhan.emr import prescribing as rx
from benhan.emr import results as rs
from benhan.emr import visit as v
from benhan.emr.model import local_now, search_all, stamp
from benhan.fhir import systems as sy
from benhan.fhir.validation import check
from benhan.signing import documents as d
from benhan.store.database import Store
from benhan.store.repository import references
from benhan.store.schema import resource
from benhan.store.unit import unit
from tests.emr.test_results import ANON, GLUCOSE, XRAY, enter, tech
from tests.emr.test_visit import doctor, write
from tests.emr.world import FACILITY, OTHER_FACILITY, Place, create, person, place, visit
from tests.signing.certs import make_chain

LOINC = "http://loinc.org"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def drug(name: str, strength: str) -> Any:
    return next(x for x in rx.drugs_by_key().values() if (x.name, x.strength) == (name, strength))


PARACETAMOL = drug("Paracetamol", "500mg")
ALPHACHYMOTRYPSIN = drug("Alphachymotrypsin", "4,2mg")


@dataclass(frozen=True)
class Seen:
    """A visit documented as a doctor and a technician would, and who signs its documents."""

    place: Place
    patient: str
    encounter: str
    author: str  # "Practitioner/…"
    lab: str  # the glucose order
    xray: str


def change(store: Store, rtype: str, rid: str, **values: Any) -> None:
    """Edit a stored resource as a trusted job (what the EMR has no page for)."""
    with unit(store, Actor.job(FACILITY, "test"), write=True) as repo:
        res = repo.read(rtype, rid).resource
        repo.update(rtype, rid, {**res, **values})


def practitioner(store: Store) -> str:
    ident = [{"system": sy.CCHN, "value": "000123/BN-CCHN"}]
    res = {"resourceType": "Practitioner", "identifier": ident, "name": [{"text": "BS. Trần An"}]}
    return f"Practitioner/{create(store, res)}"


def prescribe(store: Store, enc: str, medicine: Any) -> str:
    dosage = rx.parse_dosage({"dose": "1", "per_day": "3", "days": "5"})
    done: rx.Prescribed = write(
        store, enc, rx.prescribe, medicine, dosage, override=False, reason=""
    )
    return done.id


def document(store: Store, enc: str) -> tuple[str, str]:
    """Notes, vital signs, two diagnoses, an allergy, a lab and an X-ray with their results, two
    prescriptions (one cancelled), then the visit closed; the two orders."""
    texts = {"reason": "Sốt, ho 3 ngày", "history": "Ho đờm vàng", "exam": "Ran nổ đáy phổi phải"}
    write(store, enc, v.save_notes, v.parse_notes(texts))
    write(store, enc, v.record_vitals, v.parse_vitals({"systolic": "130", "diastolic": "85"}))
    write(store, enc, v.record_vitals, v.parse_vitals({"temperature": "38,5"}))
    write(store, enc, v.add_diagnosis, "J18.9", main=True, provisional=False)
    write(store, enc, v.add_diagnosis, "I10", main=False, provisional=True)
    allergy = v.parse_allergy({"substance": "Penicilin", "atc": "J01C", "criticality": "high"})
    write(store, enc, v.record_allergy, allergy)
    lab = write(store, enc, v.place_order, v.parse_service(GLUCOSE))
    xray = write(store, enc, v.place_order, v.parse_service(XRAY))
    enter(store, lab, value="7,2")
    enter(store, xray, findings="Đám mờ đáy phổi phải", conclusion="Viêm phổi thùy dưới phải")
    prescribe(store, enc, PARACETAMOL)
    change(store, "MedicationRequest", prescribe(store, enc, ALPHACHYMOTRYPSIN), status="cancelled")
    advice = "Tái khám sau 5 ngày <hoặc khi sốt cao>"
    write(store, enc, cl.close_visit, cl.parse_closing({"disposition": "home", "advice": advice}))
    return lab, xray


@pytest.fixture
def seen(store: Store) -> Seen:
    where = place(store)
    pid = person(store)
    enc = visit(store, where, pid, status="in-progress")
    lab, xray = document(store, enc)
    return Seen(where, pid, enc, practitioner(store), lab, xray)


def build(store: Store, kind: d.Kind, **kw: Any) -> dict[str, Any]:
    with unit(store, doctor(), write=False) as repo:
        return d.build_document(repo, kind, **kw)


def store_it(store: Store, bundle: dict[str, Any]) -> Any:
    with unit(store, doctor(), write=True) as repo:
        return d.store_document(repo, bundle)


def listing(store: Store, enc: str) -> list[d.Document]:
    with unit(store, doctor(), write=False) as repo:
        return d.documents_of(repo, enc)


def report_of(store: Store, order: str) -> str:
    with unit(store, doctor(), write=False) as repo:
        [dr] = search_all(repo, "DiagnosticReport", [("based-on", f"ServiceRequest/{order}")])
        return str(dr["id"])


def read_all(store: Store, rtype: str, enc: str) -> list[dict[str, Any]]:
    with unit(store, doctor(), write=False) as repo:
        return search_all(repo, rtype, [("encounter", f"Encounter/{enc}")])


def count(store: Store, rtype: str) -> int:
    with store.read() as conn:
        q = sa.select(sa.func.count()).where(resource.c.rtype == rtype)
        return int(conn.scalar(q) or 0)


# ---------------------------------------------------------------- checks every document passes


def entries(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """fullUrl → resource."""
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def composition(bundle: dict[str, Any]) -> dict[str, Any]:
    return dict(bundle["entry"][0]["resource"])


def by_type(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [r for r in entries(bundle).values() if r["resourceType"] == rtype]


def section(bundle: dict[str, Any], title: str) -> dict[str, Any]:
    [found] = [s for s in composition(bundle)["section"] if s["title"] == title]
    return dict(found)


def section_types(bundle: dict[str, Any], title: str) -> list[str]:
    """The resource types a section lists, in order."""
    urls = entries(bundle)
    return [urls[e["reference"]]["resourceType"] for e in section(bundle, title).get("entry", [])]


def assert_document(bundle: dict[str, Any], author: str) -> None:
    """A valid R4 document whose Composition's references all resolve inside it."""
    assert check(bundle) == []
    for e in bundle["entry"]:  # required bindings too: the validator checks them per resource
        assert check(e["resource"]) == [], e["fullUrl"]
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "document")
    assert bundle["identifier"]["system"] == "urn:ietf:rfc:3986"
    assert bundle["identifier"]["value"].startswith("urn:uuid:")
    assert bundle["timestamp"].endswith("+07:00")
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls)) and all(u.startswith("urn:uuid:") for u in urls)
    for url, res in entries(bundle).items():  # the resource's own urn:uuid when its id is one
        assert url == f"urn:uuid:{res['id']}" or not UUID.fullmatch(res["id"])
    comp = composition(bundle)
    assert comp["resourceType"] == "Composition" and bundle["id"] == comp["id"]
    assert comp["status"] == "final"
    outside = {r["targetReference"]["reference"] for r in comp.get("relatesTo", [])}
    for path, ref in references(comp, "Composition"):
        assert ref in entries(bundle) or ref in outside, f"{path} → {ref} is not in the document"
    for _path, ref in references(bundle, "Bundle"):
        assert not ref.startswith("urn:") or ref in entries(bundle)
    assert comp["attester"] == [{"mode": "legal", "party": comp["author"][0]}]  # no time yet
    who = entries(bundle)[comp["author"][0]["reference"]]
    assert f"{who['resourceType']}/{who['id']}" == author
    assert entries(bundle)[comp["subject"]["reference"]]["resourceType"] == "Patient"
    assert entries(bundle)[comp["custodian"]["reference"]]["name"] == "Bệnh viện Đa khoa A"
    for s in comp["section"]:
        assert s["text"]["status"] == "generated"
        assert s["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
        assert not ("entry" in s and "emptyReason" in s)  # cmp-2


def codes(concept: dict[str, Any]) -> list[str]:
    return [c["code"] for c in concept.get("coding", [])]


# ---------------------------------------------------------------- the four kinds


def test_visit_summary_holds_the_whole_visit(store: Store, seen: Seen) -> None:
    bundle = build(store, "visit-summary", encounter=seen.encounter, author=seen.author)
    assert_document(bundle, seen.author)
    comp = composition(bundle)
    assert codes(comp["type"]) == ["34133-9"]
    assert comp["title"] == "Tóm tắt lần khám bệnh"
    assert entries(bundle)[comp["encounter"]["reference"]]["id"] == seen.encounter
    assert [s["title"] for s in comp["section"]] == [
        "Lý do khám",
        "Dấu hiệu sinh tồn",
        "Chẩn đoán",
        "Kết quả cận lâm sàng",
        "Dị ứng",
        "Thuốc đã kê",
        "Thủ thuật, phẫu thuật",
        "Hướng xử trí và lời dặn",
    ]
    assert "Sốt, ho 3 ngày" in section(bundle, "Lý do khám")["text"]["div"]
    vitals = section(bundle, "Dấu hiệu sinh tồn")["text"]["div"]
    assert "Huyết áp: 130/85 mmHg" in vitals and "Nhiệt độ: 38.5 °C" in vitals
    diagnoses = section(bundle, "Chẩn đoán")["text"]["div"]
    assert "<li>Chẩn đoán chính: J18.9 – Viêm phổi" in diagnoses
    assert "Bệnh kèm theo: I10 – " in diagnoses and "(sơ bộ)" in diagnoses
    assert section_types(bundle, "Kết quả cận lâm sàng") == [
        "DiagnosticReport",
        "Observation",
        "DiagnosticReport",
        "Observation",
    ]
    results = section(bundle, "Kết quả cận lâm sàng")["text"]["div"]
    assert "<li>Định lượng Glucose máu: 7.2 mmol/L (H) [3.9–6.4]</li>" in results
    xray = "Chụp X-quang ngực thẳng: Đám mờ đáy phổi phải — Kết luận: Viêm phổi thùy dưới phải"
    assert f"<li>{xray}</li>" in results
    assert section_types(bundle, "Dị ứng") == ["AllergyIntolerance"]
    assert section_types(bundle, "Thuốc đã kê") == ["MedicationRequest"]  # not the cancelled one
    assert "Paracetamol 500mg: 1 Viên/lần * 3 lần/ngày * 5 ngày" in str(
        section(bundle, "Thuốc đã kê")
    )
    empty = section(bundle, "Thủ thuật, phẫu thuật")
    assert codes(empty["emptyReason"]) == ["nilknown"] and "entry" not in empty
    advice = section(bundle, "Hướng xử trí và lời dặn")["text"]["div"]
    assert "Hướng xử trí: Về nhà" in advice
    assert "Tái khám sau 5 ngày &lt;hoặc khi sốt cao&gt;" in advice  # escaped, never markup
    places = by_type(bundle, "Location")  # the clinic, and the facility it is part of
    assert {loc["name"] for loc in places} == {"Phòng khám Nội 1", "Bệnh viện Đa khoa A"}


def test_an_id_that_is_not_a_uuid_gets_a_name_based_full_url(store: Store, seen: Seen) -> None:
    with unit(store, Actor.job(FACILITY, "test"), write=True) as repo:
        doctor_an = {"resourceType": "Practitioner", "id": "bs-tran-an", "name": [{"text": "An"}]}
        repo.update("Practitioner", "bs-tran-an", doctor_an)
    bundle = build(store, "prescription", encounter=seen.encounter, author="bs-tran-an")
    assert_document(bundle, "Practitioner/bs-tran-an")
    url = composition(bundle)["author"][0]["reference"]
    assert UUID.fullmatch(url.removeprefix("urn:uuid:"))
    again = build(store, "prescription", encounter=seen.encounter, author="bs-tran-an")
    assert composition(again)["author"][0]["reference"] == url  # the same each time


def test_prescription_lists_the_active_medicines(store: Store, seen: Seen) -> None:
    bundle = build(
        store, "prescription", encounter=f"Encounter/{seen.encounter}", author=seen.author
    )
    assert_document(bundle, seen.author)
    comp = composition(bundle)
    assert (codes(comp["type"]), comp["title"]) == (["57833-6"], "Đơn thuốc")
    assert [s["title"] for s in comp["section"]] == ["Chẩn đoán", "Thuốc điều trị", "Lời dặn"]
    [med] = by_type(bundle, "MedicationRequest")
    assert (med["status"], med["medicationCodeableConcept"]["text"]) == (
        "active",
        "Paracetamol 500mg",
    )
    assert med["subject"] == comp["subject"]  # rewritten to the Patient's entry
    assert by_type(bundle, "Observation") == []
    assert "Lời dặn: Tái khám sau 5 ngày" in section(bundle, "Lời dặn")["text"]["div"]


@pytest.mark.parametrize(
    ("which", "code", "title", "shown"),
    [
        ("lab", "11502-2", "Kết quả xét nghiệm", "7.2 mmol/L (H)"),
        ("xray", "18748-4", "Kết quả chẩn đoán hình ảnh", "Đám mờ đáy phổi phải"),
    ],
)
def test_a_report_holds_its_diagnostic_report_and_results(
    store: Store, seen: Seen, which: str, code: str, title: str, shown: str
) -> None:
    report = report_of(store, getattr(seen, which))
    bundle = build(store, "report", report=report, author=seen.author)
    assert_document(bundle, seen.author)
    comp = composition(bundle)
    assert codes(comp["type"]) == [code]
    assert section_types(bundle, title) == ["DiagnosticReport", "Observation"]
    [dr] = by_type(bundle, "DiagnosticReport")
    assert dr["id"] == report and dr["result"][0]["reference"] in entries(bundle)
    assert shown in section(bundle, title)["text"]["div"]
    assert entries(bundle)[comp["encounter"]["reference"]]["id"] == seen.encounter
    same = build(store, "report", report=f"DiagnosticReport/{report}", encounter=seen.encounter,
                 author=seen.author)  # fmt: skip
    assert section_types(same, title) == ["DiagnosticReport", "Observation"]


def test_a_corrected_result_says_so(store: Store, seen: Seen) -> None:
    with unit(store, tech(), write=True) as repo:
        fixed = rs.Entry(value="5,1", reason="Nhầm mẫu của người bệnh khác")
        rs.correct(repo, seen.lab, fixed, ANON, local_now())
    bundle = build(store, "report", report=report_of(store, seen.lab), author=seen.author)
    assert_document(bundle, seen.author)
    text = section(bundle, "Kết quả xét nghiệm")["text"]["div"]
    assert "Định lượng Glucose máu: 5.1 mmol/L [3.9–6.4]" in text  # in range: no flag
    assert "Kết quả đã được sửa." in text
    assert by_type(bundle, "DiagnosticReport")[0]["status"] == "corrected"


def admitted(store: Store, where: Place, pid: str) -> str:
    """An inpatient stay: the registration's Encounter, admitted (class IMP)."""
    enc = visit(store, where, pid, status="in-progress")
    inpatient = {"system": sy.V3_ACT_CODE, "code": "IMP", "display": "inpatient encounter"}
    change(store, "Encounter", enc, **{"class": inpatient})
    return enc


def test_discharge_summary_of_an_inpatient_stay(store: Store) -> None:
    where = place(store)
    enc = admitted(store, where, person(store))
    document(store, enc)
    author = practitioner(store)
    bundle = build(store, "discharge", encounter=enc, author=author)
    assert_document(bundle, author)
    comp = composition(bundle)
    assert codes(comp["type"]) == ["18842-5"]
    assert [s["title"] for s in comp["section"]] == [
        "Lý do vào viện",
        "Quá trình điều trị",
        "Chẩn đoán ra viện",
        "Kết quả cận lâm sàng",
        "Thủ thuật, phẫu thuật",
        "Thuốc điều trị khi ra viện",
        "Dị ứng",
        "Hướng điều trị tiếp và lời dặn",
    ]
    course = section(bundle, "Quá trình điều trị")
    assert "Bệnh sử: Ho đờm vàng" in course["text"]["div"] and "entry" not in course
    assert codes(section(bundle, "Chẩn đoán ra viện")["code"]) == ["11535-2"]
    assert section_types(bundle, "Thuốc điều trị khi ra viện") == ["MedicationRequest"]


# ---------------------------------------------------------------- storing, signing, amending


def signed(bundle: dict[str, Any], author_url: str) -> dict[str, Any]:
    """The bundle with a JWS over its canonical JSON, as a signer would add it (the signing
    module's own tests check signatures; here only "signed or not" matters)."""
    signer = make_chain().signer()
    x5c = [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in signer.chain]
    header = json.dumps({"alg": signer.algorithm, "x5c": x5c}).encode()
    payload = rfc8785.dumps({k: x for k, x in bundle.items() if k != "signature"})
    part = b".".join(base64.urlsafe_b64encode(x).rstrip(b"=") for x in (header, payload))
    jws = part + b"." + base64.urlsafe_b64encode(signer.sign(part)).rstrip(b"=")
    author_sig = {"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1"}
    return {
        **bundle,
        "signature": {
            "type": [author_sig],
            "when": stamp(local_now()),
            "who": {"reference": author_url},
            "sigFormat": "application/jose",
            "data": base64.b64encode(jws).decode(),
        },
    }


def test_a_signed_document_is_stored_once_and_amended_by_a_new_one(
    store: Store, seen: Seen
) -> None:
    draft = build(store, "visit-summary", encounter=seen.encounter, author=seen.author)
    cid = composition(draft)["id"]
    assert store_it(store, draft).rtype == "Bundle"
    [listed] = listing(store, seen.encounter)
    assert (listed.id, listed.kind, listed.signed, listed.replaces) == (
        cid,
        "visit-summary",
        False,
        None,
    )
    with unit(store, doctor(), write=False) as repo:  # the Composition, found by its encounter
        stored = repo.read("Composition", cid).resource
    assert stored["subject"] == {"reference": f"Patient/{seen.patient}"}
    assert stored["encounter"] == {"reference": f"Encounter/{seen.encounter}"}
    assert stored["author"] == [{"reference": seen.author}]

    author_url = composition(draft)["author"][0]["reference"]
    first = signed(draft, author_url)
    saved = store_it(store, first)  # the draft, now signed
    assert saved.resource["signature"] == first["signature"] and saved.version_id == 2
    [listed] = listing(store, seen.encounter)
    assert listed.signed and listed.signed_at == first["signature"]["when"]
    for attempt in (first, draft, {**first, "entry": first["entry"][:1]}):
        with pytest.raises(d.DocumentError) as exc:
            store_it(store, attempt)
        assert (exc.value.status, exc.value.rule) == (409, "signed")
    assert count(store, "Bundle") == 1

    amended = build(
        store, "visit-summary", encounter=seen.encounter, author=seen.author, replaces=cid
    )
    assert_document(amended, seen.author)
    new = composition(amended)
    assert new["id"] != cid and amended["identifier"] != draft["identifier"]
    assert new["identifier"] == composition(draft)["identifier"]  # the same document, amended
    assert new["relatesTo"] == [
        {"code": "replaces", "targetReference": {"reference": f"Composition/{cid}"}}
    ]
    store_it(store, signed(amended, new["author"][0]["reference"]))
    newest, oldest = listing(store, seen.encounter)
    assert (newest.id, newest.replaces, newest.signed) == (new["id"], cid, True)
    assert (oldest.id, oldest.replaced_by, oldest.signed) == (cid, (new["id"],), True)
    with unit(store, doctor(), write=False) as repo:  # the old one stays as it was signed
        assert repo.read("Bundle", cid).resource["signature"] == first["signature"]
    with pytest.raises(d.DocumentError) as exc:  # amend the newest, not the old one again
        build(store, "visit-summary", encounter=seen.encounter, author=seen.author, replaces=cid)
    assert (exc.value.status, exc.value.rule) == (409, "already-replaced")


def test_documents_of_an_encounter_say_their_kind(store: Store, seen: Seen) -> None:
    assert listing(store, seen.encounter) == []
    for kind in ("visit-summary", "prescription"):
        store_it(store, build(store, kind, encounter=seen.encounter, author=seen.author))
    report = report_of(store, seen.lab)
    store_it(store, build(store, "report", report=report, author=seen.author))
    assert sorted(x.kind for x in listing(store, f"Encounter/{seen.encounter}")) == [
        "prescription",
        "report",
        "visit-summary",
    ]
    assert {x.title for x in listing(store, seen.encounter)} >= {"Đơn thuốc"}


# ---------------------------------------------------------------- bad input


def test_unknown_or_unseen_encounters_are_not_found(store: Store, seen: Seen) -> None:
    there = place(store, OTHER_FACILITY, "Trạm Y tế B")
    elsewhere = visit(store, there, person(store, facility=OTHER_FACILITY), status="in-progress")
    for enc in ("no-such-visit", elsewhere, "Patient/" + seen.patient):
        with pytest.raises(d.DocumentError) as exc:
            build(store, "visit-summary", encounter=enc, author=seen.author)
        assert (exc.value.status, exc.value.rule) == (404, "unknown-encounter")
        with pytest.raises(d.DocumentError) as exc:
            listing(store, enc)
        assert exc.value.status == 404


@pytest.mark.parametrize(
    ("kind", "args", "status", "rule"),
    [
        ("letter", {"encounter": "{enc}"}, 400, "unknown-kind"),
        ("visit-summary", {}, 400, "missing-encounter"),
        ("report", {"encounter": "{enc}"}, 400, "missing-report"),
        ("report", {"report": "Observation/{obs}"}, 400, "not-a-report"),
        ("report", {"report": "{obs}"}, 404, "unknown-report"),
        ("report", {"report": "{dr}", "encounter": "{other}"}, 400, "report-elsewhere"),
        ("discharge", {"encounter": "{enc}"}, 422, "not-inpatient"),
        ("prescription", {"encounter": "{other}"}, 422, "no-medicines"),
        ("visit-summary", {"encounter": "{enc}", "author": "Patient/{pid}"}, 400, "unknown-author"),
        ("visit-summary", {"encounter": "{enc}", "author": "nobody"}, 400, "unknown-author"),
        ("visit-summary", {"encounter": "{enc}", "replaces": "nothing"}, 404, "unknown-replaced"),
        ("visit-summary", {"encounter": "{other}", "replaces": "{doc}"}, 422, "replaces-other"),
        ("prescription", {"encounter": "{enc}", "replaces": "{doc}"}, 422, "replaces-other"),
    ],
)
def test_bad_requests_are_refused_with_their_rule(
    store: Store, seen: Seen, kind: str, args: dict[str, str], status: int, rule: str
) -> None:
    other = visit(store, seen.place, seen.patient, number=2, status="in-progress")
    write(store, other, v.add_diagnosis, "J00", main=True, provisional=False)
    summary = build(store, "visit-summary", encounter=seen.encounter, author=seen.author)
    store_it(store, summary)
    dr = report_of(store, seen.lab)
    with unit(store, doctor(), write=False) as repo:
        obs = repo.read("DiagnosticReport", dr).resource["result"][0]["reference"].split("/")[1]
    names = {"enc": seen.encounter, "other": other, "obs": obs, "dr": dr, "pid": seen.patient,
             "doc": composition(summary)["id"]}  # fmt: skip
    given = {k: x.format(**names) for k, x in args.items()}
    given.setdefault("author", seen.author)
    before = count(store, "Composition"), count(store, "Bundle")
    with pytest.raises(d.DocumentError) as exc:
        build(store, kind, **given)  # type: ignore[arg-type]
    assert (exc.value.status, exc.value.rule) == (status, rule)
    assert exc.value.outcome()["issue"][0]["details"]["text"].count(" / ") >= 1  # vi / en
    assert (count(store, "Composition"), count(store, "Bundle")) == before


def test_a_cancelled_visit_has_no_documents(store: Store, seen: Seen) -> None:
    change(store, "Encounter", seen.encounter, status="cancelled")
    with pytest.raises(d.DocumentError) as exc:
        build(store, "visit-summary", encounter=seen.encounter, author=seen.author)
    assert (exc.value.status, exc.value.rule) == (422, "void-encounter")


def with_head(bundle: dict[str, Any], **values: Any) -> dict[str, Any]:
    head = {**bundle["entry"][0]["resource"], **values}
    return {**bundle, "entry": [{**bundle["entry"][0], "resource": head}, *bundle["entry"][1:]]}


NOTE = {"coding": [{"system": LOINC, "code": "11488-4"}]}  # the visit note: not ours to sign


@pytest.mark.parametrize(
    ("spoil", "path"),
    [
        (lambda b: with_head(b, type=NOTE), "Bundle.entry[0].resource.type"),
        (lambda b: {**b, "type": "collection"}, "Bundle.type"),
        (lambda b: {k: x for k, x in b.items() if k != "identifier"}, "Bundle.identifier"),
        (lambda b: {k: x for k, x in b.items() if k != "timestamp"}, "Bundle.timestamp"),
        (lambda b: {**b, "entry": b["entry"][1:]}, "Bundle.entry[0].resource"),
        (lambda b: {**b, "id": "another-id"}, "Bundle.id"),
        (lambda b: {**b, "resourceType": "Composition"}, "Bundle"),
    ],
)
def test_what_is_not_a_document_is_not_stored(
    store: Store, seen: Seen, spoil: Any, path: str
) -> None:
    bundle = build(store, "prescription", encounter=seen.encounter, author=seen.author)
    with pytest.raises(d.DocumentError) as exc:
        store_it(store, spoil(bundle))
    assert (exc.value.status, exc.value.rule) == (400, "not-a-document")
    assert exc.value.issues[0].path == path
    assert (count(store, "Composition"), count(store, "Bundle")) == (1, 0)  # the visit note only


def test_an_invalid_document_changes_nothing(store: Store, seen: Seen) -> None:
    bundle = build(store, "prescription", encounter=seen.encounter, author=seen.author)
    bundle["entry"][1]["resource"] = {**bundle["entry"][1]["resource"], "colour": "red"}
    with pytest.raises(Exception) as exc:
        store_it(store, bundle)
    assert getattr(exc.value, "status", None) == 400
    assert (count(store, "Composition"), count(store, "Bundle")) == (1, 0)


def test_a_document_never_takes_the_id_of_another_composition(store: Store, seen: Seen) -> None:
    [note] = read_all(store, "Composition", seen.encounter)
    bundle = build(store, "prescription", encounter=seen.encounter, author=seen.author)
    with pytest.raises(d.DocumentError) as exc:
        store_it(store, {**with_head(bundle, id=note["id"]), "id": note["id"]})
    assert (exc.value.status, exc.value.rule) == (409, "id-taken")
    assert read_all(store, "Composition", seen.encounter) == [note]
    assert count(store, "Bundle") == 0
