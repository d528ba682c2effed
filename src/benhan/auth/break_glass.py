"""Break-glass: a clinician opens one patient's record for a while, with a reason, and is audited.

The grant is a row in `break_glass` (store/policy.py honours it until it expires) and a BREAK_GLASS
AuditEvent with purpose BTG, written in the same transaction: there is no grant without its
record. Privacy officers of the clinician's facility and of the patient's see every grant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from benhan.access import Actor
from benhan.auth.accounts import AuthError
from benhan.fhir import primitives
from benhan.fhir.primitives import from_micros, micros
from benhan.store.audit import BREAK_GLASS, record_security, security_event
from benhan.store.schema import account, break_glass, resource

MIN_REASON, MAX_REASON = 10, 500
MIN_MINUTES, MAX_MINUTES = 5, 240
DEFAULT_MINUTES = 60


@dataclass(frozen=True)
class Reason:
    code: str
    vi: str
    en: str


REASONS: dict[str, Reason] = {
    r.code: r
    for r in (
        Reason("emergency", "Cấp cứu", "Emergency care"),
        Reason(
            "unconscious",
            "Người bệnh bất tỉnh, không hỏi được",
            "Patient unconscious, cannot be asked",
        ),
        Reason("transfer", "Chuyển tuyến, hồ sơ chưa đến", "Transfer, records not yet received"),
        Reason("other", "Lý do khác (ghi rõ)", "Other (explain)"),
    )
}


class BreakGlassError(AuthError):
    """A refused break-glass; `code` says why (the pages translate it), nothing was written."""


@dataclass(frozen=True)
class Grant:
    id: str
    account_id: str
    username: str
    facility: str  # the clinician's
    patient_id: str
    owner_facility: str  # the patient record's
    reason_code: str
    reason: str
    started: datetime
    expires: datetime

    @property
    def active(self) -> bool:
        return self.expires > primitives.now()

    @property
    def reason_label(self) -> Reason:
        return REASONS.get(self.reason_code, Reason(self.reason_code, self.reason_code, ""))


def open_break_glass(
    conn: sa.Connection,
    actor: Actor,
    patient_id: str,
    reason_code: str,
    reason: str,
    minutes: int = DEFAULT_MINUTES,
) -> str:
    """Open `patient_id`'s record to the actor for `minutes`; the grant's id. Audited (BTG)."""
    if not actor.role.break_glass or actor.kind != "user" or not actor.account:
        raise BreakGlassError(
            "forbidden",
            "Vai trò này không được mở khẩn cấp / this role may not break the glass",
        )
    pid = patient_id.strip().removeprefix("Patient/")
    if reason_code not in REASONS:
        raise BreakGlassError(
            "bad-reason-code", f"Lý do không hợp lệ / unknown reason code {reason_code!r}"
        )
    text = reason.strip()
    if not MIN_REASON <= len(text) <= MAX_REASON:
        raise BreakGlassError(
            "bad-reason",
            f"Lý do cần {MIN_REASON}–{MAX_REASON} ký tự / the reason needs "
            f"{MIN_REASON}–{MAX_REASON} characters",
        )
    if not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise BreakGlassError(
            "bad-minutes",
            f"Thời hạn {MIN_MINUTES}–{MAX_MINUTES} phút / the duration is "
            f"{MIN_MINUTES}–{MAX_MINUTES} minutes",
        )
    owner = conn.scalar(
        sa.select(resource.c.facility).where(
            resource.c.rtype == "Patient", resource.c.id == pid, resource.c.deleted.is_(False)
        )
    )
    if owner is None:
        raise BreakGlassError("unknown-patient", f"Không có người bệnh / no such patient: {pid}")
    from benhan.store.repository import new_id

    grant_id = new_id()
    start = micros(primitives.now())
    conn.execute(
        break_glass.insert().values(
            id=grant_id,
            account_id=actor.account,
            facility=actor.facility,
            patient_key=pid,
            owner_facility=owner,
            reason_code=reason_code,
            reason=text,
            started=start,
            expires=start + minutes * 60 * 1_000_000,
        )
    )
    # The reason's words stay in break_glass (privacy officers read them there): an AuditEvent
    # carries codes, not what a clinician wrote about a patient.
    event = security_event(
        BREAK_GLASS,
        patients=[pid],
        detail=f"{reason_code}; {minutes} min; grant {grant_id}",
        purpose="BTG",
    )
    record_security(conn, actor, event)
    return grant_id


def _grants(conn: sa.Connection, *where: sa.ColumnElement[bool]) -> list[Grant]:
    q = (
        sa.select(break_glass, account.c.username)
        .select_from(break_glass.outerjoin(account, account.c.id == break_glass.c.account_id))
        .where(*where)
        .order_by(break_glass.c.started.desc(), break_glass.c.id)
    )
    return [
        Grant(
            id=r.id,
            account_id=r.account_id,
            username=r.username or r.account_id,
            facility=r.facility,
            patient_id=r.patient_key,
            owner_facility=r.owner_facility,
            reason_code=r.reason_code,
            reason=r.reason,
            started=from_micros(r.started),
            expires=from_micros(r.expires),
        )
        for r in conn.execute(q)
    ]


def active_grants(conn: sa.Connection, account_id: str) -> list[Grant]:
    """The account's grants that have not expired yet, newest first."""
    return _grants(
        conn,
        break_glass.c.account_id == account_id,
        break_glass.c.expires > micros(primitives.now()),
    )


def grants_for_facility(conn: sa.Connection, facility: str, since: datetime) -> list[Grant]:
    """Grants opened since `since` by the facility's clinicians or on the facility's patients."""
    involved = sa.or_(break_glass.c.facility == facility, break_glass.c.owner_facility == facility)
    return _grants(conn, involved, break_glass.c.started >= micros(since))


__all__ = [
    "DEFAULT_MINUTES",
    "MAX_MINUTES",
    "MAX_REASON",
    "MIN_MINUTES",
    "MIN_REASON",
    "REASONS",
    "BreakGlassError",
    "Grant",
    "Reason",
    "active_grants",
    "grants_for_facility",
    "open_break_glass",
]
