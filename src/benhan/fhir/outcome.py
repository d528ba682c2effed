"""Errors as FHIR OperationOutcomes, raised anywhere below HTTP.

FhirError(status, *issues)        one exception type; the status travels with it
  ├─ not_found / gone             404 / 410 on read
  ├─ bad_request / unprocessable  400 / 422 with the path of each problem
  ├─ conflict / precondition      409 / 412 (version clashes, conditional ambiguity)
  └─ forbidden / too_large        403 / 413
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Issue:
    code: str  # FHIR issue-type: invalid, structure, required, value, not-found, conflict, …
    text: str  # Vietnamese first, English after " / "
    path: str | None = None  # FHIRPath of the offending element, e.g. "Patient.birthDate"
    severity: str = "error"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        out["details"] = {"text": self.text}
        if self.path:
            out["expression"] = [self.path]
        return out


class FhirError(Exception):
    def __init__(self, status: int, *issues: Issue) -> None:
        super().__init__(issues[0].text if issues else str(status))
        self.status = status
        self.issues = issues

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


def operation_outcome(issues: tuple[Issue, ...] | list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def info_outcome(text: str) -> dict[str, Any]:
    return operation_outcome([Issue("informational", text, severity="information")])


def not_found(rtype: str, rid: str) -> FhirError:
    return FhirError(
        404, Issue("not-found", f"Không tìm thấy {rtype}/{rid} / {rtype}/{rid} not found")
    )


def gone(rtype: str, rid: str) -> FhirError:
    return FhirError(410, Issue("deleted", f"{rtype}/{rid} đã bị xoá / {rtype}/{rid} was deleted"))


def bad_request(text: str, path: str | None = None, code: str = "invalid") -> FhirError:
    return FhirError(400, Issue(code, text, path))


def unprocessable(issues: list[Issue]) -> FhirError:
    return FhirError(422, *issues)


def conflict(text: str) -> FhirError:
    return FhirError(409, Issue("conflict", text))


def precondition(text: str) -> FhirError:
    return FhirError(412, Issue("conflict", text))


def forbidden(text: str) -> FhirError:
    return FhirError(403, Issue("forbidden", text))


def too_large(limit: int) -> FhirError:
    msg = f"Nội dung quá lớn (tối đa {limit:,} byte) / Request body exceeds {limit:,} bytes"
    return FhirError(413, Issue("too-costly", msg))
