"""Patients confirming that they received a signed document: a signature drawn on a tablet, a
confirmation that a staff member records after checking who the patient is, or the patient's
own digital signature.

TT 13/2025/TT-BYT Art 3 lets a patient (or their representative) sign or confirm by a lawful
electronic signature, by biometrics or by another electronic confirmation; which papers need it
is the facility's internal EMR regulation (Art 6). benhan asks it for the papers the patient
takes home: the discharge summary and the prescription (RECEIPT_KINDS).

A receipt is a Provenance (http://hl7.org/fhir/R4/provenance.html) of the signed Bundle's
version and its Composition:

    activity   RECEIPT_ACTIVITY "receipt-confirmed"
    agent[0]   the Patient: informant (provenance-participant-type) and receiver (v3 RCV)
    agent[1]   the staff member who recorded it (enterer), for the document's custodian
    extension  IDENTITY_CHECK: how the patient's identity was checked (required for verbal)
    signature  drawn    a Consent signature by the Patient: sigFormat image/png, the drawing
               verbal   a Signature Witness signature by the staff member, without data
               digital  a Consent signature by the Patient: a JWS with detached payload over the
                        same canonical bytes as the document's own signature (jws.py), checked
                        as that one is (verify.py), by a certificate that names the patient

One receipt per document: a second is refused, as is a receipt of a document that is unsigned,
of another patient, replaced by a signed amendment, or of a kind that needs none.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, get_args

import orjson
from cryptography import x509

from benhan.emr.chart import by_ids
from benhan.emr.model import search_all
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.outcome import FhirError, Issue
from benhan.fhir.primitives import now
from benhan.signing import jws, service
from benhan.signing.documents import KIND_OF, Kind
from benhan.signing.signers import Signer
from benhan.signing.verify import Verification
from benhan.store import provenance
from benhan.store.repository import Repo, Saved, new_id

# The papers a patient confirms receiving (TT 13/2025 Art 3, 6: the facility's regulation).
RECEIPT_KINDS: Final[frozenset[str]] = frozenset({"discharge", "prescription"})

Method = Literal["drawn", "verbal", "digital"]
METHODS: Final[tuple[str, ...]] = get_args(Method)
# How staff made sure the person confirming is the patient.
IDENTITY_CHECKS: Final[dict[str, str]] = {
    "cccd-chip": "đọc chip thẻ căn cước / read the chip of the citizen ID card",
    "cccd": "đối chiếu ảnh trên thẻ căn cước / compared with the ID card's photo",
    "vneid": "tài khoản định danh điện tử VNeID / VNeID electronic identity",
}
# benhan's own codes (the base of fhir/systems.py's code systems).
RECEIPT_ACTIVITY: Final = "https://benhan.vn/CodeSystem/provenance-activity"
RECEIPT_CODE: Final = "receipt-confirmed"
IDENTITY_CHECK: Final = "https://benhan.vn/StructureDefinition/identity-check"
IDENTITY_CHECK_SYSTEM: Final = "https://benhan.vn/CodeSystem/identity-check"
V3_PARTICIPATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
WITNESS: Final = "1.2.840.10065.1.12.1.8"  # Signature Witness Signature
PNG: Final = "image/png"
PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
PNG_END: Final = b"\x00\x00\x00\x00IEND\xaeB`\x82"
MAX_DRAWING: Final = 256 * 1024  # a signature pad's PNG is a few kilobytes
MAX_SIDE: Final = 4096
MAX_RECEIPTS: Final = 20

_RULES: Final[dict[str, tuple[int, str, str]]] = {
    "unknown-method": (400, "invalid", "cách xác nhận không hợp lệ / unknown confirmation method"),
    "no-drawing": (400, "required", "chưa có chữ ký vẽ tay / no drawn signature"),
    "bad-drawing": (
        400, "invalid", "chữ ký vẽ tay phải là ảnh PNG dưới 256 kB / the drawing must be a PNG "
        "image under 256 kB",
    ),
    "no-identity-check": (
        400, "required", "cần ghi cách đã kiểm tra danh tính người bệnh / say how the patient's "
        "identity was checked",
    ),
    "unknown-identity-check": (
        400, "invalid", "cách kiểm tra danh tính không hợp lệ / unknown identity check",
    ),
    "no-jws": (400, "required", "chưa có chữ ký số của người bệnh / no patient signature (JWS)"),
    "bad-jws": (
        400, "invalid", "chữ ký số không phải JWS dạng compact có sigT / the signature is not a "
        "compact JWS with a sigT signing time",
    ),
    "not-a-document": (404, "not-found", "không tìm thấy văn bản / document not found"),
    "unsigned": (
        409, "conflict", "văn bản chưa ký số nên chưa giao được / the document is not signed yet",
    ),
    "superseded": (
        409, "conflict", "văn bản đã có bản sửa đổi đã ký: hãy xác nhận bản mới / a signed "
        "amendment replaces this document: confirm the new one",
    ),
    "already-confirmed": (
        409, "conflict", "người bệnh đã xác nhận nhận văn bản này / the patient already "
        "confirmed receipt of this document",
    ),
    "not-needed": (
        422, "business-rule", "loại văn bản này không cần người bệnh xác nhận / this kind of "
        "document needs no receipt",
    ),
    "not-the-patient": (
        422, "business-rule", "văn bản không phải của người bệnh này / the document is not "
        "this patient's",
    ),
    "certificate-not-the-patient": (
        422, "business-rule", "chứng thư ký không mang số định danh của người bệnh / the "
        "signing certificate does not name the patient's ID number",
    ),
    "signature-invalid": (
        422, "business-rule", "chữ ký số của người bệnh không hợp lệ / the patient's signature "
        "does not verify",
    ),
}  # fmt: skip


class ReceiptError(FhirError):
    """A receipt refused: `rule` is a stable name that pages word and tests key on."""

    def __init__(self, rule: str, *more: Issue) -> None:
        status, code, text = _RULES[rule]
        super().__init__(status, Issue(code, text), *more)
        self.rule = rule


@dataclass(frozen=True)
class Confirmation:
    """One recorded receipt, as a page shows it."""

    provenance: str  # the Provenance's id
    method: Method
    patient: str  # "Patient/…"
    recorded_by: str  # "Practitioner/…"
    at: str  # when the patient confirmed (Signature.when)
    identity_check: str  # an IDENTITY_CHECKS code, or ""
    drawing: bytes  # the PNG of a drawn signature, else b""
    verification: Verification | None  # a digital signature checked against the anchors


@dataclass(frozen=True)
class ReceiptState:
    kind: Kind | None
    needed: bool  # the rules ask for a receipt, and the document is signed and current
    confirmations: tuple[Confirmation, ...]

    @property
    def status(self) -> Literal["confirmed", "needed", "not-needed"]:
        if self.confirmations:
            return "confirmed"
        return "needed" if self.needed else "not-needed"


@dataclass(frozen=True)
class _Doc:
    """The stored document a receipt is about."""

    id: str
    version: int
    bundle: Resource
    kind: Kind | None
    patient: str  # "Patient/…" the Composition is about
    custodian: str | None  # "Organization/…"

    @property
    def signed(self) -> bool:
        return bool(self.bundle.get("signature"))


# ---------------------------------------------------------------- reading the document


def _entry(bundle: Resource, reference: Any) -> Resource | None:
    url = reference.get("reference") if isinstance(reference, dict) else None
    for e in bundle.get("entry", []):
        if url and e.get("fullUrl") == url and isinstance(e.get("resource"), dict):
            found: Resource = e["resource"]
            return found
    return None


def _local(res: Resource | None, rtype: str) -> str | None:
    if res is None or res.get("resourceType") != rtype or not res.get("id"):
        return None
    return f"{rtype}/{res['id']}"


def _open(repo: Repo, bundle_id: str, saved: Saved | None = None) -> _Doc:
    """The document Bundle as the caller may read it (404 otherwise)."""
    saved = saved or repo.read("Bundle", bundle_id)
    bundle = saved.resource
    entries = bundle.get("entry") if bundle.get("type") == "document" else None
    head = entries[0].get("resource") if isinstance(entries, list) and entries else None
    if not isinstance(head, dict) or head.get("resourceType") != "Composition":
        raise ReceiptError("not-a-document")
    codes = [c.get("code") for c in (head.get("type") or {}).get("coding", [])]
    kind = next((KIND_OF[c] for c in codes if c in KIND_OF), None)
    patient = _local(_entry(bundle, head.get("subject")), "Patient") or ""
    custodian = _local(_entry(bundle, head.get("custodian")), "Organization")
    return _Doc(saved.id, saved.version_id, bundle, kind, patient, custodian)


def _superseded(repo: Repo, doc: _Doc) -> bool:
    """Whether a signed amendment replaces this document (a draft one does not)."""
    params = [("related-ref", f"Composition/{doc.id}"), ("_count", str(MAX_RECEIPTS))]
    newer = {f"Bundle/{c['id']}" for c in search_all(repo, "Composition", params)}
    return any(b.get("signature") for b in by_ids(repo, "Bundle", newer).values())


def _receipts(repo: Repo, doc: _Doc) -> list[Resource]:
    """The receipts of this document: every write leaves a Provenance, only these have a
    receiver and the receipt activity."""
    params = [
        ("target", f"Composition/{doc.id}"),
        ("agent-type", f"{V3_PARTICIPATION}|RCV"),
        ("_count", str(MAX_RECEIPTS)),
    ]
    return [
        p
        for p in search_all(repo, "Provenance", params)
        if any(
            c.get("system") == RECEIPT_ACTIVITY and c.get("code") == RECEIPT_CODE
            for c in (p.get("activity") or {}).get("coding", [])
        )
    ]


# ---------------------------------------------------------------- the state of a document


def receipt_state(repo: Repo, bundle_id: str, *, saved: Saved | None = None) -> ReceiptState:
    """Whether the patient must still confirm receipt of this document, or did (by whom, when,
    how); `saved` is the Bundle when the caller has read it already."""
    doc = _open(repo, bundle_id, saved)
    if doc.kind not in RECEIPT_KINDS:
        return ReceiptState(doc.kind, False, ())
    found = tuple(_confirmation(repo, doc, p) for p in _receipts(repo, doc))
    needed = doc.signed and not _superseded(repo, doc)
    return ReceiptState(doc.kind, needed, found)


def _method(signature: Resource) -> Method:
    if signature.get("sigFormat") == PNG:
        return "drawn"
    return "digital" if signature.get("sigFormat") == jws.SIG_FORMAT else "verbal"


def _confirmation(repo: Repo, doc: _Doc, receipt: Resource) -> Confirmation:
    signature: Resource = (receipt.get("signature") or [{}])[0]
    agents = receipt.get("agent") or []
    who = [str((a.get("who") or {}).get("reference", "")) for a in agents]
    method = _method(signature)
    checked = next(
        (
            str((x.get("valueCoding") or {}).get("code", ""))
            for x in receipt.get("extension", [])
            if x.get("url") == IDENTITY_CHECK
        ),
        "",
    )
    drawing = base64.b64decode(signature.get("data", "")) if method == "drawn" else b""
    verification = (
        service.check(repo.conn, {**doc.bundle, "signature": signature})
        if method == "digital"
        else None
    )
    return Confirmation(
        provenance=str(receipt["id"]), method=method, patient=who[0] if who else "",
        recorded_by=who[1] if len(who) > 1 else "", at=str(signature.get("when", "")),
        identity_check=checked, drawing=drawing, verification=verification,
    )  # fmt: skip


# ---------------------------------------------------------------- confirming


def confirm_receipt(
    repo: Repo,
    bundle_id: str,
    *,
    method: str,
    patient: str | None = None,
    drawing: bytes | None = None,
    identity_check: str | None = None,
    signature: str | None = None,
) -> Saved:
    """Record that the patient received the signed document Bundle/`bundle_id`, confirmed by
    `method`: "drawn" (`drawing`, a PNG), "verbal" (`identity_check` required) or "digital"
    (`signature`, the compact JWS `patient_jws` makes). `patient` ("Patient/…") is who
    confirms, by default the document's own patient. The stored Provenance; ReceiptError (4xx)
    for every refusal, and nothing is stored."""
    if method not in METHODS:
        raise ReceiptError("unknown-method")
    check = _identity_check(identity_check, required=method == "verbal")
    doc = _open(repo, bundle_id)
    _receivable(repo, doc, patient)
    staff = service.practitioner_of(repo.actor)
    repo.lock(f"benhan-receipt:{doc.id}")  # two desks confirming at once: the second sees it
    if _receipts(repo, doc):
        raise ReceiptError("already-confirmed")
    at = now().replace(microsecond=0)
    if method == "drawn":
        element = _drawn(drawing, doc.patient, at)
    elif method == "verbal":
        element = _witnessed(staff, at)
    else:
        element = _digital(repo, doc, signature)
    made = repo.prepare({**_provenance(doc, staff, element, check, at), "id": new_id()}, "POST")
    # In the document's patient's compartment (R4 puts a Provenance there only by a Patient
    # target), so the patient's record, $everything and the access rules include it.
    made.patient_key = doc.patient.removeprefix("Patient/")
    return repo.flush([made])[0]


def _receivable(repo: Repo, doc: _Doc, patient: str | None) -> None:
    if doc.kind not in RECEIPT_KINDS:
        raise ReceiptError("not-needed")
    if not doc.signed:
        raise ReceiptError("unsigned")
    if patient is not None and patient != doc.patient:
        raise ReceiptError("not-the-patient")
    if _superseded(repo, doc):
        raise ReceiptError("superseded")


def _identity_check(code: str | None, *, required: bool) -> str:
    code = (code or "").strip()
    if not code and required:
        raise ReceiptError("no-identity-check")
    if code and code not in IDENTITY_CHECKS:
        raise ReceiptError("unknown-identity-check")
    return code


def _drawn(drawing: bytes | None, patient: str, at: datetime) -> Resource:
    if not drawing:
        raise ReceiptError("no-drawing")
    if not _is_png(drawing):
        raise ReceiptError("bad-drawing")
    return {
        "type": [_signature_type(jws.CONSENT)],
        "when": jws.instant(at),
        "who": {"reference": patient},
        "sigFormat": PNG,
        "data": base64.b64encode(drawing).decode("ascii"),
    }


def _is_png(data: bytes) -> bool:
    """A whole PNG of sane size: the signature, its IHDR header first, IEND last."""
    if len(data) > MAX_DRAWING or not data.startswith(PNG_MAGIC) or not data.endswith(PNG_END):
        return False
    header = data[8:24]
    if header[:8] != b"\x00\x00\x00\x0dIHDR":
        return False
    width, height = int.from_bytes(header[8:12], "big"), int.from_bytes(header[12:16], "big")
    return 0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE


def _witnessed(staff: str, at: datetime) -> Resource:
    """A confirmation the patient gave aloud, witnessed by the staff member: no data."""
    return {
        "type": [_signature_type(WITNESS)],
        "when": jws.instant(at),
        "who": {"reference": staff},
    }


def _signature_type(code: str) -> dict[str, str]:
    return {"system": jws.SIGNATURE_TYPE_SYSTEM, "code": code,
            "display": jws.SIGNATURE_TYPES[code]}  # fmt: skip


def _provenance(
    doc: _Doc, staff: str, signature: Resource, identity_check: str, at: datetime
) -> Resource:
    patient_type = [
        {"system": provenance.PARTICIPANT, "code": "informant"},
        {"system": V3_PARTICIPATION, "code": "RCV", "display": "receiver"},
    ]
    recorder: Resource = {
        "type": {"coding": [{"system": provenance.PARTICIPANT, "code": "enterer"}]},
        "who": {"reference": staff},
    }
    if doc.custodian:
        recorder["onBehalfOf"] = {"reference": doc.custodian}
    out: Resource = {
        "resourceType": "Provenance",
        "target": [{"reference": f"Bundle/{doc.id}/_history/{doc.version}"},
                   {"reference": f"Composition/{doc.id}"}],
        "recorded": jws.instant(at),
        "activity": {"coding": [{"system": RECEIPT_ACTIVITY, "code": RECEIPT_CODE,
                                 "display": "Người bệnh xác nhận đã nhận văn bản"}]},
        "agent": [{"type": {"coding": patient_type}, "who": {"reference": doc.patient}}, recorder],
        "signature": [signature],
    }  # fmt: skip
    if identity_check:
        coding = {"system": IDENTITY_CHECK_SYSTEM, "code": identity_check,
                  "display": IDENTITY_CHECKS[identity_check].split(" / ")[0]}  # fmt: skip
        out["extension"] = [{"url": IDENTITY_CHECK, "valueCoding": coding}]
    return out


# ---------------------------------------------------------------- the patient's own signature


def patient_jws(bundle: Resource, signer: Signer, when: datetime) -> str:
    """The patient's signature of a document, made where their key is (a token at the desk, a
    phone): a compact JWS with detached payload over the document's canonical bytes, with
    their certificate chain, the signing time and the Consent commitment."""
    header = jws.protected_header(signer.algorithm, signer.chain, when, jws.CONSENT)
    return jws.compact_jws(header, jws.canonical(bundle), signer)


def _digital(repo: Repo, doc: _Doc, compact: str | None) -> Resource:
    if not compact:
        raise ReceiptError("no-jws")
    element = jws.signature_element(
        compact, who=doc.patient, on_behalf_of=None, signature_type=jws.CONSENT,
        when=_signed_at(compact),
    )  # fmt: skip
    result = service.check(repo.conn, {**doc.bundle, "signature": element})
    if not result.ok:
        failed = [Issue("invalid", c.message) for c in result.failures]
        raise ReceiptError("signature-invalid", *failed)
    patient = repo.read("Patient", doc.patient.split("/", 1)[1]).resource
    if result.signer is None or not _names(result.signer, _id_numbers(patient)):
        raise ReceiptError("certificate-not-the-patient")
    return element


def _signed_at(compact: str) -> datetime:
    """sigT of the JWS's protected header: Signature.when must say the same."""
    try:
        segment = compact.split(".")[0]
        header = orjson.loads(jws.b64url_decode(segment))
        return jws.parse_time(header["sigT"])
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise ReceiptError("bad-jws") from None


def _id_numbers(patient: Resource) -> set[str]:
    """The patient's citizen ID numbers (CCCD, old CMND): what a personal certificate names."""
    return {
        str(i["value"])
        for i in patient.get("identifier", [])
        if i.get("system") in (sy.CCCD, sy.CMND) and i.get("value")
    }


def _names(certificate: x509.Certificate, numbers: Iterable[str]) -> bool:
    """Whether the certificate's subject carries one of the numbers: Vietnamese CAs write a
    person's ID as UID=CCCD:<number> (or CMND:), some as a serialNumber."""
    wanted = set(numbers)
    for attribute in certificate.subject:
        value = attribute.value if isinstance(attribute.value, str) else ""
        if value.rsplit(":", 1)[-1].strip() in wanted:
            return True
    return False


__all__ = [
    "IDENTITY_CHECKS",
    "METHODS",
    "RECEIPT_KINDS",
    "Confirmation",
    "ReceiptError",
    "ReceiptState",
    "confirm_receipt",
    "patient_jws",
    "receipt_state",
]
