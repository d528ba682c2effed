"""$validate (http://hl7.org/fhir/R4/resource-operation-validate.html): check, store nothing.

Always answers 200 with an OperationOutcome; problems are its issues, as the operation defines.
"""

from __future__ import annotations

from typing import Any

from benhan.fhir.outcome import FhirError, Issue, bad_request, operation_outcome
from benhan.fhir.validation import check
from benhan.rest.message import Request, Response
from benhan.rest.router import Context


def validate_op(ctx: Context, req: Request, target: list[str]) -> Response:
    if req.method != "POST":
        raise FhirError(405, Issue("not-supported", "$validate cần POST / $validate needs POST"))
    if not target:
        raise bad_request("$validate cần loại tài nguyên / $validate needs a resource type")
    res = resource_of(req.body)
    issues = check(res)
    if isinstance(res, dict) and res.get("resourceType") not in (None, target[0]):
        issues.append(
            Issue(
                "invalid",
                f"resourceType khác {target[0]} / resourceType is not {target[0]}",
                "resourceType",
            )
        )
    if not issues and isinstance(res, dict):
        try:
            ctx.repo.check_references([(res, res["resourceType"])], set())
        except FhirError as err:
            issues.extend(err.issues)
    if not issues:
        ok = Issue("informational", "Hợp lệ / valid", severity="information")
        return Response(200, operation_outcome([ok]))
    return Response(200, operation_outcome(issues))


def resource_of(body: Any) -> Any:
    """The body is the resource itself or a Parameters with a `resource` parameter."""
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for p in body.get("parameter", []):
            if isinstance(p, dict) and p.get("name") == "resource":
                return p.get("resource")
        raise bad_request("Parameters thiếu 'resource' / Parameters has no 'resource'")
    return body
