"""$verify: is this signed document the one its signer signed, by a certificate the province
trusts, valid and not revoked when it was signed? (benhan's operation; FHIR R4 defines none.)

`POST [base]/Bundle/$verify` with the document (or a Parameters with `resource`), or
`GET|POST [base]/Bundle/{id}/$verify` for a stored one. Always 200 with an OperationOutcome:
one issue per check, in order, error where it failed, warning where it passed with a note.
"""

from __future__ import annotations

from benhan.fhir.outcome import FhirError, Issue, operation_outcome
from benhan.rest.message import Request, Response
from benhan.rest.operations.validate import resource_of
from benhan.rest.router import Context
from benhan.signing.service import check


def verify_op(ctx: Context, req: Request, target: list[str]) -> Response:
    if target[:1] != ["Bundle"] or len(target) > 2:
        raise FhirError(
            404, Issue("not-supported", "$verify chỉ có ở Bundle / $verify is on Bundle only")
        )
    if len(target) == 2:
        if req.method not in ("GET", "POST"):
            raise FhirError(
                405, Issue("not-supported", "$verify cần GET hoặc POST / $verify needs GET or POST")
            )
        document = ctx.repo.read("Bundle", target[1]).resource  # authorised and audited
    else:
        if req.method != "POST":
            raise FhirError(405, Issue("not-supported", "$verify cần POST / $verify needs POST"))
        ctx.repo.trail.record("operation", [], [], query="Bundle/$verify")
        document = resource_of(req.body)
    result = check(ctx.conn, document)
    issues = [
        Issue(
            "informational" if c.ok else "invalid",
            f"{c.name}: {c.message}",
            "Bundle.signature",
            severity="error" if not c.ok else ("warning" if c.warning else "information"),
        )
        for c in result.checks
    ]
    return Response(200, operation_outcome(issues))
