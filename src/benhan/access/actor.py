"""Who is asking: a person with an account, a client application, or a trusted local job."""

from __future__ import annotations

from dataclasses import dataclass

from benhan.access.roles import JOB, Role
from benhan.access.scopes import Scopes


@dataclass(frozen=True)
class Actor:
    """Everything the repository needs to decide and to audit; built once per request."""

    kind: str  # "user" (an account), "client" (OAuth client credentials), "job" (local)
    name: str  # username, client_id or job name: goes to the audit trail, never to logs
    role: Role
    facility: str  # MA_CSKCB the actor acts for; "" for province-level roles
    scopes: Scopes  # effective: requested ∩ role
    account: str | None = None  # account id (users) or client id (clients)
    practitioner: str | None = None  # "Practitioner/…" the account is linked to
    patient: str | None = None  # "Patient/…" for the patient role
    address: str | None = None  # client IP, for the audit trail
    session: str | None = None  # token id or page-session id
    purpose: str = "TREAT"  # v3 PurposeOfUse the access is for

    @classmethod
    def job(cls, facility: str, name: str) -> Actor:
        """A trusted local job (benhan import, synth, demo): unrestricted, audited as one event."""
        return cls("job", name, JOB, facility, JOB.scopes, purpose="HOPERAT")

    @property
    def unrestricted(self) -> bool:
        return self.role is JOB
