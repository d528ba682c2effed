"""Signing a clinical document as the clinician at the keyboard, and checking a signed one
against the province's trust anchors: the parts (documents, pki, jws, verify) put together.

A document is built from what is stored, signed with the certificate of the Practitioner the
account is linked to, and stored with a Provenance that carries the same signature (who, for
which facility, when, why). Verification reads the anchors and revocation lists from the store,
so a facility checks a document from anywhere in the province offline.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from cryptography.x509.oid import NameOID

from benhan.access import Actor
from benhan.emr.model import search_all
from benhan.fhir.outcome import FhirError, Issue
from benhan.fhir.primitives import now
from benhan.signing import jws, pki, who_signs
from benhan.signing.documents import Kind, build_document, store_document
from benhan.signing.pdf import render_pdf, sign_pdf
from benhan.signing.signers import Signer
from benhan.signing.verify import Verification, verify
from benhan.store import provenance
from benhan.store.repository import Repo, Saved

PDF_REASON = "Ký tài liệu / document signature"


def sign(
    repo: Repo,
    kind: Kind,
    *,
    encounter: str | None = None,
    report: str | None = None,
    replaces: str | None = None,
    signature_type: str = jws.AUTHOR,
    when: datetime | None = None,
    with_pdf: bool = False,
) -> Saved:
    """Build the document, sign it as the caller's Practitioner, store it (immutable from then
    on) with its Provenance, which carries the signature; the stored Bundle. FhirError 4xx
    when the caller cannot sign.

    `with_pdf`: also print it, sign the PDF (PAdES) with the same certificate, and store that as
    a DocumentReference related to the Composition (found by `signed_pdf`)."""
    who_signs.require(repo.actor, kind)
    who = practitioner_of(repo.actor)
    at = (when or now()).replace(microsecond=0)  # as Bundle.signature.when says it
    signer = _signer(repo.conn, who, at)
    bundle = build_document(
        repo, kind, encounter=encounter, report=report, author=who, replaces=replaces
    )
    head = bundle["entry"][0]["resource"]
    for attester in head.get("attester", []):
        attester["time"] = jws.instant(at)
    for_facility = _custodian(bundle)
    signed = jws.sign_document(
        bundle, signer, who=who, on_behalf_of=for_facility, signature_type=signature_type, when=at
    )
    saved = store_document(
        repo, signed, lambda targets: _provenance(repo, signed, targets, for_facility, replaces)
    )
    if with_pdf:
        repo.create(_pdf_reference(signed, signer, at))
    return saved


def _pdf_reference(signed: dict[str, Any], signer: Signer, at: datetime) -> dict[str, Any]:
    """The signed document printed, signed again as a PDF by the same certificate, as a
    DocumentReference in local "Type/id" references (it is searched by them)."""
    head = signed["entry"][0]["resource"]
    place = _facility_name(signed)
    pdf = sign_pdf(
        render_pdf(signed), signer, reason=PDF_REASON, location=place,
        name=_common_name(signer), when=at,
    )  # fmt: skip
    title = str(head.get("title") or "")
    out: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "final",
        "type": head["type"],
        "subject": {"reference": _local(signed, head["subject"]["reference"])},
        "date": jws.instant(at),
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "language": "vi",
                    "data": base64.b64encode(pdf).decode("ascii"),
                    "title": f"{title}.pdf" if title else "document.pdf",
                    "creation": jws.instant(at),
                }
            }
        ],
    }
    context: dict[str, Any] = {"related": [{"reference": f"Composition/{head['id']}"}]}
    if head.get("encounter"):
        context["encounter"] = [{"reference": _local(signed, head["encounter"]["reference"])}]
    out["context"] = context
    return out


def _entry_at(bundle: dict[str, Any], url: str | None) -> dict[str, Any] | None:
    """The resource of the entry a document's (urn:uuid) reference names, if any."""
    for e in bundle.get("entry", []):
        if url and e.get("fullUrl") == url and isinstance(e.get("resource"), dict):
            found: dict[str, Any] = e["resource"]
            return found
    return None


def _custodian_ref(bundle: dict[str, Any]) -> str | None:
    return (bundle["entry"][0]["resource"].get("custodian") or {}).get("reference")


def _local(bundle: dict[str, Any], url: str) -> str:
    """ "Type/id" of the entry a document's reference names (as written, if none)."""
    res = _entry_at(bundle, url)
    return f"{res['resourceType']}/{res['id']}" if res and res.get("id") else url


def _facility_name(bundle: dict[str, Any]) -> str:
    """Where the document was signed, as the PDF signature says it: the custodian's name."""
    return str((_entry_at(bundle, _custodian_ref(bundle)) or {}).get("name") or "")


def _common_name(signer: Signer) -> str:
    names = signer.chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def signed_pdf(repo: Repo, composition: str) -> tuple[bytes, str] | None:
    """The signed PDF stored for Composition/`composition` and its file title; None if none."""
    params = [("related", f"Composition/{composition}"), ("_count", "10")]
    for ref in search_all(repo, "DocumentReference", params):
        for content in ref.get("content", []):
            attachment = content.get("attachment") or {}
            if attachment.get("contentType") == "application/pdf" and attachment.get("data"):
                data = base64.b64decode(attachment["data"])
                return data, str(attachment.get("title") or "document.pdf")
    return None


def practitioner_of(actor: Actor) -> str:
    """The Practitioner the account signs as; FhirError 403 when it is linked to none."""
    if not actor.practitioner:
        raise FhirError(
            403,
            Issue(
                "forbidden",
                "tài khoản chưa gắn với người hành nghề nên không ký được / "
                "the account is not linked to a practitioner, so it cannot sign",
            ),
        )
    return actor.practitioner


def _signer(conn: sa.Connection, who: str, at: datetime) -> Any:
    try:
        return pki.signer_for(conn, who, at=at)
    except pki.PkiError as err:  # none usable, or its token or signing service failed
        raise FhirError(409, Issue("business-rule", str(err))) from None


def _custodian(bundle: dict[str, Any]) -> str | None:
    """ "Organization/<id>" of the document's custodian (its entries are named by urn:uuid)."""
    res = _entry_at(bundle, _custodian_ref(bundle))
    return (
        f"Organization/{res['id']}" if res and res.get("resourceType") == "Organization" else None
    )


def _provenance(
    repo: Repo,
    signed: dict[str, Any],
    targets: list[str],
    for_facility: str | None,
    replaces: str | None,
) -> dict[str, Any]:
    """Who signed which versions, for whom and when, with the document's own signature."""
    on_behalf_of = {"reference": for_facility} if for_facility else None
    out = provenance.provenance(
        targets,
        signed["signature"]["when"],
        "UPDATE" if replaces else "CREATE",
        provenance.author(repo.actor, on_behalf_of),
        signature=signed["signature"],
    )
    if replaces:
        out["entity"] = [{"role": "revision", "what": {"reference": f"Composition/{replaces}"}}]
    return out


def check(conn: sa.Connection, bundle: Any, *, at: datetime | None = None) -> Verification:
    """A signed document checked against the province's trust anchors and revocation lists."""
    anchors = pki.trust_anchors(conn)
    crls = pki.crls(conn) if anchors else []  # no CA here yet: nothing is trusted
    return verify(bundle, anchors=anchors, crls=crls, at=at)


__all__ = ["check", "sign", "signed_pdf"]
