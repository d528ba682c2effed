"""Patient/$match (http://hl7.org/fhir/R4/patient-operation-match.html): the records of the
master patient index that may be the person described, for the registration desk.

Each entry carries the probability (`search.score`), FHIR's match grade (certain / probable /
possible) and benhan's explanation: per field, the level it fell in and its weight in bits. The
index scores every candidate in the province; only those the caller may read are returned, and
each one returned is read (and audited) as the caller.
"""

from __future__ import annotations

from typing import Any

from benhan.fhir.outcome import FhirError, Issue, bad_request, unprocessable
from benhan.fhir.validation import check
from benhan.identity import online
from benhan.rest.message import Request, Response
from benhan.rest.router import Context

GRADE_EXT = "http://hl7.org/fhir/StructureDefinition/match-grade"
EXPLANATION_EXT = "https://benhan.vn/fhir/StructureDefinition/match-explanation"
DEFAULT_COUNT, MAX_COUNT = 10, 100


def match_op(ctx: Context, req: Request, target: list[str]) -> Response:
    if target != ["Patient"]:
        raise FhirError(
            404, Issue("not-supported", "$match chỉ có ở Patient / $match is on Patient only")
        )
    if req.method != "POST":
        raise FhirError(405, Issue("not-supported", "$match cần POST / $match needs POST"))
    patient, count, only_certain = _params(req.body)
    ctx.repo.policy.require("Patient", "s")
    ctx.repo.trail.record("operation", [], [], query="Patient/$match")
    try:
        found = online.match(ctx.conn, patient, count=MAX_COUNT, only_certain=only_certain)
    except online.NoModel:
        raise FhirError(
            503,
            Issue(
                "transient",
                "Chỉ mục bệnh nhân chưa được xây dựng, thử lại sau / "
                "the patient index is not built yet, try again later",
            ),
        ) from None
    entries: list[dict[str, Any]] = []
    for c in found:
        if len(entries) == count:
            break
        try:
            saved = ctx.repo.read("Patient", c.patient_id)  # authorised and audited as the caller
        except FhirError:
            continue  # not the caller's to see
        entries.append(_entry(ctx.base, saved.resource, c))
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries)}
    return Response(200, {**bundle, "entry": entries})


def _params(body: Any) -> tuple[dict[str, Any], int, bool]:
    """resource (a Patient), count and onlyCertainMatches from a Parameters body."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad_request("$match cần Parameters / $match takes a Parameters resource")
    patient, count, only_certain = None, DEFAULT_COUNT, False
    for p in body.get("parameter") or []:
        name = p.get("name") if isinstance(p, dict) else None
        if name == "resource":
            patient = p.get("resource")
        elif name == "count":
            count = p.get("valueInteger")
            if not isinstance(count, int) or isinstance(count, bool) or not count > 0:
                raise bad_request(
                    "count phải là số nguyên dương / count must be a positive integer"
                )
            count = min(count, MAX_COUNT)
        elif name == "onlyCertainMatches":
            only_certain = p.get("valueBoolean")
            if not isinstance(only_certain, bool):
                raise bad_request("onlyCertainMatches phải là boolean / must be a boolean")
        else:
            raise bad_request(f"Tham số không hỗ trợ / unknown parameter {name!r}")
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise bad_request(
            "Cần tham số resource là một Patient / parameter 'resource' must be a Patient"
        )
    issues = check(patient)
    if issues:
        raise unprocessable(issues)
    return patient, count, only_certain


def _entry(base: str, patient: dict[str, Any], c: online.Candidate) -> dict[str, Any]:
    fields = [
        {
            "url": "field",
            "extension": [
                {"url": "name", "valueCode": w.comparison},
                {"url": "level", "valueString": w.level},
                {"url": "weight", "valueDecimal": round(w.weight, 3)},
            ],
        }
        for w in c.explanation
    ]
    return {
        "fullUrl": f"{base}/Patient/{c.patient_id}",
        "resource": patient,
        "search": {
            "mode": "match",
            "score": round(c.probability, 6),
            "extension": [
                {"url": GRADE_EXT, "valueCode": c.grade},
                {
                    "url": EXPLANATION_EXT,
                    "extension": [{"url": "reason", "valueCode": c.reason}, *fields],
                },
            ],
        },
    }
