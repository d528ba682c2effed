"""The documents a clinician signs: a visit's documents and what can be signed now, one
document built and shown for review before signing, the signing itself (the JWS document and its
PAdES PDF, by the same certificate), a signed document with its verification in words, and the
patient's confirmation that they received it.

Doctors and nurses see every kind of document; a lab technician sees, and signs, the lab and
imaging reports (who signs which kind: signing/who_signs.py).

Every read goes through the repository, so the user's access rules apply and it is audited; an
encounter of another facility is not found. Refusals (no Practitioner linked to the account, no
usable certificate, a document that cannot be built) are shown as a sentence, with their 4xx.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from benhan.access import Role
from benhan.emr.chart import by_ids
from benhan.emr.model import display_name, search_all
from benhan.fhir.definitions import Resource
from benhan.fhir.outcome import FhirError, Issue
from benhan.signing import pki, receipt, service, who_signs
from benhan.signing.documents import (
    INPATIENT,
    KIND_OF,
    KINDS,
    VOID,
    Document,
    DocumentError,
    Kind,
    build_document,
    documents_of,
)
from benhan.signing.pdf import PdfError
from benhan.signing.pdf import narrative as narrative_lines
from benhan.signing.verify import Verification
from benhan.store.repository import Repo, Saved
from benhan.store.unit import unit
from benhan.web.forms import FHIR_ID, Field, guard, guard_post, page, see_other, store_of
from benhan.web.i18n import N_
from benhan.web.rendering import PageRoute, language
from benhan.web.session import PageSession

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MAX_REPORTS = 50  # reports of one visit offered for signing; a visit has a handful
KIND_NAMES: dict[str, str] = {
    "visit-summary": N_("Tóm tắt lần khám"),
    "prescription": N_("Đơn thuốc"),
    "discharge": N_("Tóm tắt hồ sơ ra viện"),
    "report": N_("Phiếu kết quả"),
}
NOT_FOUND = N_("Không tìm thấy lượt khám hoặc văn bản này.")
NO_PDF = N_("Văn bản này chưa có bản PDF đã ký.")
RECEIPT_METHODS: dict[str, str] = {
    "drawn": N_("Người bệnh ký trên máy tính bảng"),
    "verbal": N_("Người bệnh xác nhận bằng lời, nhân viên đã kiểm tra danh tính"),
    "digital": N_("Người bệnh ký số"),
}
IDENTITY_CHECKS: dict[str, str] = {
    "cccd-chip": N_("Đọc chip thẻ căn cước"),
    "cccd": N_("Đối chiếu ảnh trên thẻ căn cước"),
    "vneid": N_("Tài khoản định danh điện tử VNeID"),
}
DRAWING_PREFIX = "data:image/png;base64,"  # what canvas.toDataURL("image/png") gives
# The kinds of document each role reads on these pages (it signs those who_signs.py lists).
SEES: dict[str, frozenset[str]] = {
    "doctor": frozenset(KINDS),
    "nurse": frozenset(KINDS),
    "lab-technician": frozenset({"report"}),
}


def _may_view(r: Role) -> bool:
    return r.code in SEES


def _may_sign(r: Role) -> bool:
    return bool(who_signs.kinds_signed_by(r))


def _may_record_receipt(r: Role) -> bool:
    """Whoever reads the papers a patient takes home, and may write the receipt's Provenance."""
    return bool(SEES.get(r.code, frozenset()) & receipt.RECEIPT_KINDS) and r.scopes.allows(
        "Provenance", "c"
    )


@dataclass(frozen=True)
class Signable:
    """A document the doctor can sign now: its kind, the report it is about, a label."""

    kind: Kind
    label: str  # a KIND_NAMES text, translated on the page
    detail: str = ""  # the report's name, as recorded
    report: str = ""

    def query(self) -> str:
        return urlencode({"kind": self.kind, **({"report": self.report} if self.report else {})})


@dataclass(frozen=True)
class Section:
    title: str
    lines: list[str]


@dataclass(frozen=True)
class Shown:
    """A document as a person reads it: what, whom, who signs, and each section's text."""

    title: str
    patient: str
    birth_date: str
    author: str
    custodian: str
    date: str
    header: list[str]
    sections: list[Section]


# ---------------------------------------------------------------- refusals


def _not_found(request: Request) -> Response:
    return page(request, "error.html", {"message": NOT_FOUND, "values": {}}, 404)


def _refused(request: Request, exc: FhirError) -> Response:
    """The error's own sentence in the page's language, with its status (4xx)."""
    text = exc.issues[0].text if exc.issues else str(exc)
    status = exc.status if 400 <= exc.status < 500 else 409
    message = half(text, language(request))
    return page(request, "error.html", {"message": message, "values": {}}, status)


def half(text: str, lang: str) -> str:
    """The half of a "tiếng Việt / English" text that the page speaks. A name quoted in both
    halves may hold " / " itself (the CA is "CA gốc / Root CA"): the middle separator splits."""
    parts = text.split(" / ")
    if len(parts) % 2:  # an even number of separators: no middle one, keep the text whole
        return text
    middle = len(parts) // 2
    return " / ".join(parts[middle:] if lang == "en" else parts[:middle])


# ---------------------------------------------------------------- reading what the page shows


def _entry(bundle: Resource, reference: Any) -> Resource | None:
    url = (reference or {}).get("reference") if isinstance(reference, dict) else None
    for e in bundle.get("entry", []):
        if url and e.get("fullUrl") == url:
            res: Resource = e.get("resource") or {}
            return res
    return None


def _name(res: Resource | None) -> str:
    if res is None:
        return ""
    if res.get("resourceType") == "Organization":
        return str(res.get("name", ""))
    return display_name(res)


def _lines(text: Any) -> list[str]:
    """A narrative's text, line by line (its markup is never put on the page)."""
    div = (text or {}).get("div") if isinstance(text, dict) else None
    return narrative_lines(div) if div else []


def shown(bundle: Resource) -> Shown:
    """What a document says, read from the document itself."""
    head: Resource = bundle["entry"][0]["resource"]
    patient = _entry(bundle, head.get("subject"))
    author = _entry(bundle, next(iter(head.get("author") or []), None))
    sections = [
        Section(str(s.get("title", "")), _lines(s.get("text")))
        for s in head.get("section") or []
        if isinstance(s, dict)
    ]
    return Shown(
        title=str(head.get("title", "")),
        patient=_name(patient),
        birth_date=str((patient or {}).get("birthDate", "")),
        author=_name(author),
        custodian=_name(_entry(bundle, head.get("custodian"))),
        date=str(head.get("date", ""))[:10],
        header=_lines(head.get("text")),
        sections=sections,
    )


def _signables(repo: Repo, encounter: Resource) -> list[Signable]:
    """What can be signed for this visit: its summary, prescription, discharge summary for a
    stay in hospital, and each of its lab and imaging reports."""
    out = [
        Signable("visit-summary", KIND_NAMES["visit-summary"]),
        Signable("prescription", KIND_NAMES["prescription"]),
    ]
    if (encounter.get("class") or {}).get("code") in INPATIENT:
        out.append(Signable("discharge", KIND_NAMES["discharge"]))
    params = [("encounter", f"Encounter/{encounter['id']}"), ("_count", str(MAX_REPORTS))]
    for dr in search_all(repo, "DiagnosticReport", params):
        if dr.get("status") not in VOID:
            name = next((c.get("display", "") for c in dr["code"].get("coding", [])), "")
            detail = (dr.get("code") or {}).get("text") or name
            out.append(Signable("report", KIND_NAMES["report"], str(detail), str(dr["id"])))
    return out


def _visit(repo: Repo, encounter_id: str) -> tuple[Resource, Resource | None]:
    """The encounter and its patient, as this user may see them (FhirError 404 otherwise)."""
    enc = repo.read("Encounter", encounter_id).resource
    ref = str((enc.get("subject") or {}).get("reference", ""))
    patient = repo.read("Patient", ref.split("/", 1)[1]).resource if "/" in ref else None
    return enc, patient


# ---------------------------------------------------------------- the visit's documents


@router.get("/visit/{encounter_id}/documents", name="visit_documents")
def visit_documents(request: Request, encounter_id: str) -> Response:
    s = guard(request, _may_view)
    if isinstance(s, Response):
        return s
    if not FHIR_ID.match(encounter_id):
        return _not_found(request)
    try:
        with unit(store_of(request), s.actor, write=False) as repo:
            enc, patient = _visit(repo, encounter_id)
            role = s.actor.role
            docs = [d for d in documents_of(repo, encounter_id) if d.kind in SEES[role.code]]
            offered = _signables(repo, enc) if _may_sign(role) else []
            signables = [x for x in offered if who_signs.may_sign(role, x.kind)]
    except FhirError as exc:
        return _failed(request, exc)
    ctx = {
        "eid": encounter_id,
        "patient": _name(patient),
        "docs": docs,
        "by_id": {d.id: d for d in docs},
        "signables": signables,
        "kind_names": KIND_NAMES,
        "may_sign": bool(signables),
        "may_open_visit": s.actor.role.code in ("doctor", "nurse"),  # visit_pages.py's readers
    }
    return page(request, "documents.html", ctx)


# ---------------------------------------------------------------- review, then sign


def _kind(raw: str) -> Kind | None:
    return cast(Kind, raw) if raw in KINDS else None


@router.get("/visit/{encounter_id}/documents/review", name="document_review")
def document_review(
    request: Request, encounter_id: str, kind: str = "", report: str = "", replaces: str = ""
) -> Response:
    s = guard(request, _may_sign)
    if isinstance(s, Response):
        return s
    if not FHIR_ID.match(encounter_id):
        return _not_found(request)
    wanted = _kind(kind)
    try:
        if wanted is None:
            raise DocumentError("unknown-kind")
        who_signs.require(s.actor, wanted)
        author = service.practitioner_of(s.actor)
        with unit(store_of(request), s.actor, write=False) as repo:
            bundle = build_document(
                repo, wanted, encounter=encounter_id, report=_id_or_none(report, "unknown-report"),
                author=author, replaces=_id_or_none(replaces, "unknown-replaced"),
            )  # fmt: skip
    except FhirError as exc:
        return _refused(request, exc)
    ctx = {
        "eid": encounter_id,
        "doc": shown(bundle),
        "kind": wanted,
        "report": report.strip(),
        "replaces": replaces.strip(),
    }
    return page(request, "document.html", {**ctx, "mode": "review", **_no_document()})


def _id_or_none(raw: str, rule: str) -> str | None:
    """An id from the query or the form: "" is none; anything that is no id is refused."""
    raw = raw.strip()
    if raw and not FHIR_ID.match(raw):
        raise DocumentError(rule)
    return raw or None


def _failed(request: Request, exc: FhirError) -> Response:
    """A refusal that must not say whether the visit or document exists is a plain 404."""
    return _not_found(request) if exc.status in (403, 404, 410) else _refused(request, exc)


def _issue(text: str, code: str = "forbidden") -> Issue:
    return Issue(code, text)


def _no_document() -> dict[str, Any]:
    """What document.html shows of a stored document, for a document not stored yet."""
    return {
        "cid": "", "signed": False, "signed_at": "", "verification": None, "verdict": "",
        "verdicts": VERDICTS, "has_pdf": False, "amend": "", "replaces_doc": "",
        "replaced_by": (), "just_signed": False, "receipt": None, "just_received": False,
    }  # fmt: skip


@router.post("/visit/{encounter_id}/documents/sign", name="document_sign")
def document_sign(
    request: Request,
    encounter_id: str,
    csrf: Field = "",
    kind: Field = "",
    report: Field = "",
    replaces: Field = "",
) -> Response:
    s = guard_post(request, csrf, _may_sign)
    if isinstance(s, Response):
        return s
    if not FHIR_ID.match(encounter_id):
        return _not_found(request)
    try:
        saved = _sign(s, request, encounter_id, kind, report, replaces)
    except FhirError as exc:
        return _refused(request, exc)
    return see_other(request, "document", "signed=1", composition_id=saved)


def _sign(
    s: PageSession, request: Request, encounter_id: str, kind: str, report: str, replaces: str
) -> str:
    """Sign and store; the Composition's id. Every refusal comes out as a FhirError 4xx."""
    wanted = _kind(kind)
    if wanted is None:
        raise DocumentError("unknown-kind")
    try:
        with unit(store_of(request), s.actor, write=True) as repo:
            saved = service.sign(
                repo, wanted, encounter=encounter_id,
                report=_id_or_none(report, "unknown-report"),
                replaces=_id_or_none(replaces, "unknown-replaced"), with_pdf=True,
            )  # fmt: skip
    except pki.PkiError as exc:  # a key that cannot be opened here, say
        raise FhirError(409, _issue(str(exc), "business-rule")) from None
    except PdfError as exc:
        raise FhirError(422, _issue(str(exc), "processing")) from None
    return saved.id


# ---------------------------------------------------------------- one document


VERDICTS = {
    "ok": N_("Chữ ký số hợp lệ: văn bản còn nguyên vẹn, người ký có chứng thư hợp lệ."),
    "warn": N_("Chữ ký số hợp lệ, nhưng có điểm cần lưu ý (xem dưới đây)."),
    "bad": N_("Chữ ký số KHÔNG hợp lệ: không được tin văn bản này."),
}


def _verdict(v: Verification) -> str:
    if not v.ok:
        return "bad"
    return "warn" if v.warnings else "ok"


def _head_kind(head: Resource) -> Kind | None:
    codes = [c.get("code") for c in (head.get("type") or {}).get("coding", [])]
    return next((KIND_OF[c] for c in codes if c in KIND_OF), None)


def _amend_link(request: Request, bundle: Resource, doc: Document | None) -> str:
    """The review page of an amendment of this document, when it is the latest version."""
    head = bundle["entry"][0]["resource"]
    kind = _head_kind(head)
    enc = _entry(bundle, head.get("encounter"))
    if kind is None or enc is None or (doc is not None and doc.replaced_by):
        return ""
    params = {"kind": kind, "replaces": str(head["id"])}
    if kind == "report":
        focus = next(
            (e for s in head.get("section") or [] for e in s.get("entry", [])
             if (_entry(bundle, e) or {}).get("resourceType") == "DiagnosticReport"),
            None,
        )  # fmt: skip
        params["report"] = str((_entry(bundle, focus) or {}).get("id", ""))
    path = request.url_for("document_review", encounter_id=enc["id"]).path
    return f"{path}?{urlencode(params)}"


def _listed(repo: Repo, bundle: Resource, cid: str) -> Document | None:
    """This document as its visit's list has it (which replaces it), when it has a visit."""
    enc = _entry(bundle, bundle["entry"][0]["resource"].get("encounter"))
    if enc is None:
        return None
    return next((d for d in documents_of(repo, str(enc["id"])) if d.id == cid), None)


@router.get("/documents/{composition_id}", name="document")
def document_page(request: Request, composition_id: str) -> Response:
    s = guard(request, _may_view)
    if isinstance(s, Response):
        return s
    if not FHIR_ID.match(composition_id):
        return _not_found(request)
    try:
        with unit(store_of(request), s.actor, write=False) as repo:
            ctx = _stored_document(request, repo, s.actor.role, composition_id)
    except FhirError as exc:
        return _failed(request, exc)
    if ctx is None:
        return _not_found(request)
    return page(request, "document.html", ctx)


def _stored_document(request: Request, repo: Repo, role: Role, cid: str) -> dict[str, Any] | None:
    """What document.html shows of a stored document; None when it is none this role reads."""
    saved = repo.read("Bundle", cid)
    bundle = saved.resource
    if bundle.get("type") != "document" or not bundle.get("entry"):
        return None
    head = bundle["entry"][0]["resource"]
    kind = _head_kind(head)
    if kind is None or kind not in SEES[role.code]:
        return None
    listed = _listed(repo, bundle, cid)
    verification = service.check(repo.conn, bundle) if bundle.get("signature") else None
    enc = _entry(bundle, head.get("encounter"))
    return {
        "eid": str(enc["id"]) if enc else "",
        "doc": shown(bundle),
        "mode": "view",
        "kind": kind,
        "report": "",
        "replaces": "",
        "cid": cid,
        "signed": bool(bundle.get("signature")),
        "signed_at": str((bundle.get("signature") or {}).get("when", "")),
        "verification": verification,
        "verdict": _verdict(verification) if verification else "",
        "verdicts": VERDICTS,
        "has_pdf": service.signed_pdf(repo, cid) is not None,
        "amend": _amend_link(request, bundle, listed) if who_signs.may_sign(role, kind) else "",
        "replaces_doc": listed.replaces if listed else "",
        "replaced_by": listed.replaced_by if listed else (),
        "just_signed": request.query_params.get("signed") == "1",
        **_receipt(request, repo, role, saved),
    }


# ---------------------------------------------------------------- the patient's receipt


@dataclass(frozen=True)
class ReceiptShown:
    """A recorded receipt as the page words it."""

    method: str  # a RECEIPT_METHODS text, translated on the page
    recorded_by: str
    at: str
    identity_check: str  # an IDENTITY_CHECKS text, or ""
    image: str  # the drawn signature as a data: URL, or ""
    verdict: str  # a VERDICTS key for the patient's digital signature, or ""


def _receipt(request: Request, repo: Repo, role: Role, saved: Saved) -> dict[str, Any]:
    """The receipt part of the page: shown for the kinds the rules ask a receipt for."""
    state = receipt.receipt_state(repo, saved.id, saved=saved)
    recorders = by_ids(repo, "Practitioner", {c.recorded_by for c in state.confirmations})
    names = {ref: display_name(p) for ref, p in recorders.items()}
    shown_receipts = [
        ReceiptShown(
            method=RECEIPT_METHODS[c.method], recorded_by=names.get(c.recorded_by, ""),
            at=c.at, identity_check=IDENTITY_CHECKS.get(c.identity_check, ""),
            image=DRAWING_PREFIX + base64.b64encode(c.drawing).decode("ascii") if c.drawing else "",
            verdict=_verdict(c.verification) if c.verification else "",
        )
        for c in state.confirmations
    ]  # fmt: skip
    return {
        "receipt": state if state.kind in receipt.RECEIPT_KINDS else None,
        "receipts": shown_receipts,
        "may_record_receipt": state.status == "needed" and _may_record_receipt(role),
        "receipt_methods": RECEIPT_METHODS,
        "identity_checks": IDENTITY_CHECKS,
        "just_received": request.query_params.get("received") == "1",
    }


@router.post("/documents/{composition_id}/receipt", name="document_receipt")
def document_receipt(
    request: Request,
    composition_id: str,
    csrf: Field = "",
    method: Field = "",
    drawing: Field = "",
    identity_check: Field = "",
) -> Response:
    s = guard_post(request, csrf, _may_record_receipt)
    if isinstance(s, Response):
        return s
    if not FHIR_ID.match(composition_id):
        return _not_found(request)
    try:
        image = _drawing(drawing) if method == "drawn" else None
        with unit(store_of(request), s.actor, write=True) as repo:
            receipt.confirm_receipt(
                repo, composition_id, method=method, drawing=image, identity_check=identity_check
            )
    except FhirError as exc:
        return _refused(request, exc)
    return see_other(request, "document", "received=1", composition_id=composition_id)


def _drawing(data_url: str) -> bytes | None:
    """The PNG the signature pad sent; None when nothing was drawn."""
    if not data_url.strip():
        return None
    if not data_url.startswith(DRAWING_PREFIX):
        raise receipt.ReceiptError("bad-drawing")
    try:
        return base64.b64decode(data_url.removeprefix(DRAWING_PREFIX), validate=True)
    except binascii.Error:
        raise receipt.ReceiptError("bad-drawing") from None


@router.get("/documents/{composition_id}/pdf", name="document_pdf")
def document_pdf(request: Request, composition_id: str) -> Response:
    s = guard(request, _may_view)
    if isinstance(s, Response):
        return s
    if not FHIR_ID.match(composition_id):
        return _not_found(request)
    try:
        with unit(store_of(request), s.actor, write=False) as repo:
            found = service.signed_pdf(repo, composition_id)
    except FhirError as exc:
        return _failed(request, exc)
    if found is None:
        return page(request, "error.html", {"message": NO_PDF, "values": {}}, 404)
    data, title = found
    disposition = f"attachment; filename=\"{composition_id}.pdf\"; filename*=UTF-8''{quote(title)}"
    headers = {"Content-Disposition": disposition, "Cache-Control": "no-store"}
    return Response(data, media_type="application/pdf", headers=headers)


__all__ = ["router", "shown"]
