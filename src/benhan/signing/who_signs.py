"""Who may sign which kind of document: the rule as data, checked where a document is signed.

A lab or imaging result form is signed by the technician who produced it or by the doctor who
read it; the visit summary, the prescription and the discharge summary are the treating
doctor's. A role that is not listed signs nothing. The role's scopes (access/roles.py) must also
let it write the Composition, the Bundle and the Provenance: this rule narrows them by kind,
which type-level SMART scopes cannot say.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from benhan.access import Actor, Role
from benhan.fhir.outcome import FhirError, Issue
from benhan.signing.documents import KINDS, DocumentError, Kind

SIGNS: Final[Mapping[str, frozenset[str]]] = {
    "doctor": frozenset(KINDS),
    "lab-technician": frozenset({"report"}),
}
KIND_NAMES: Final[Mapping[str, str]] = {
    "visit-summary": "tóm tắt lần khám / visit summary",
    "prescription": "đơn thuốc / prescription",
    "report": "phiếu kết quả / lab or imaging report",
    "discharge": "tóm tắt hồ sơ ra viện / discharge summary",
}


def kinds_signed_by(role: Role) -> frozenset[str]:
    """The kinds of document `role` signs; empty for a role that signs none."""
    return SIGNS.get(role.code, frozenset())


def may_sign(role: Role, kind: str) -> bool:
    return kind in kinds_signed_by(role)


def require(actor: Actor, kind: Kind) -> None:
    """FhirError 403 unless the actor's role signs documents of this kind (400 for no kind)."""
    if kind not in KINDS:
        raise DocumentError("unknown-kind")
    if may_sign(actor.role, kind):
        return
    what_vi, what_en = KIND_NAMES.get(kind, f"{kind} / {kind}").split(" / ")
    raise FhirError(
        403,
        Issue(
            "forbidden",
            f"vai trò {actor.role.vi} không ký {what_vi} / the {actor.role.en} role does not "
            f"sign a {what_en}",
        ),
    )


__all__ = ["SIGNS", "kinds_signed_by", "may_sign", "require"]
