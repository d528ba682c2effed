"""Who may see which rows, as SQL: the rules of access, added to every query the store runs.

Every table the store reads (resources, versions, index rows) carries `rtype`, `facility` (the
owner) and `patient_key`, so one predicate serves reads, searches, includes, chains, `_has`,
history, `$everything` and `$export`; a row the caller may not read is never selected, and its
existence never shows (STYLE.md §2.1, Medplum's addSecurityFilters).

- staff see their facility's rows and the directory (organizations, practitioners…);
- a clinician also sees other facilities' rows of a patient who has an active encounter at the
  clinician's facility (the same person through a Person link counts), unless the patient
  withheld sharing with an active deny Consent; break-glass opens one patient for a while,
  consent or not;
- a privacy officer sees the audit trail of the facility's staff and of its patients;
- a DoH analyst sees every row, de-identified (redact());
- an identity steward sees every row its scopes name (Patients and Persons), identified;
- an insurance assessor sees claims and what supports them;
- a patient sees their own record.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.expression import ColumnElement, FromClause

from benhan.access import DIRECTORY, Actor, Reach
from benhan.access.roles import CLAIM_SUPPORT
from benhan.access.scopes import EXPLICIT_ONLY
from benhan.fhir.outcome import FhirError, Issue
from benhan.fhir.primitives import micros, now
from benhan.store.schema import break_glass, ix_reference, ix_token, resource, resource_version

# Encounter states that make a treatment relationship (http://hl7.org/fhir/R4/valueset-encounter-status.html).
ACTIVE_ENCOUNTER = ("arrived", "triaged", "in-progress", "onleave")
CLAIM_TYPES = ("Claim", "ClaimResponse", "ExplanationOfBenefit")
Predicate = ColumnElement[bool]


class Policy:
    """The rules for one actor, evaluated by the database."""

    def __init__(self, actor: Actor, dialect: sa.Dialect | None = None) -> None:
        self.actor = actor
        self.role = actor.role
        self.facility = actor.facility
        self.dialect = dialect  # known: rules on the plain tables are kept as ready SQL text

    # ---- interactions ------------------------------------------------------------------

    def allows(self, rtype: str, action: str) -> bool:
        return self.actor.scopes.allows(rtype, action)

    def require(self, rtype: str, action: str) -> None:
        """403 when no scope permits `action` on the type: that reveals nothing about data."""
        if not self.allows(rtype, action):
            raise forbidden_scope(rtype, action)

    def may_write_owner(self, owner: str) -> bool:
        """Rows belong to the facility that wrote them; only its own staff and nodes change them."""
        return self.actor.unrestricted or owner == self.facility

    @property
    def deidentify(self) -> bool:
        return self.role.reach is Reach.PROVINCE_DEIDENTIFIED

    # ---- rows --------------------------------------------------------------------------

    def visible(self, t: FromClause, rtype: str | None = None) -> Predicate | None:
        """The rows of `t` the actor may read; None = all. With `rtype`, the rows are of that
        one type (the caller filters on it), so only its scope is checked, here in Python."""
        if self.actor.unrestricted:
            return None
        if rtype is not None and not self.allows(rtype, "r"):
            return sa.false()
        return _cached(self, t, rtype)

    @property
    def key(self) -> tuple[object, ...]:
        """What the predicate depends on (the moment enters as a bind evaluated at run time)."""
        a = self.actor
        return (a.role.code, a.facility, a.account, a.patient, a.scopes)

    def _types(self, rtype: Any, action: str) -> Predicate:
        wildcard, named = self.actor.scopes.types(action)
        if wildcard:
            hidden = sorted(EXPLICIT_ONLY - named)
            return rtype.not_in(hidden) if hidden else sa.true()
        return rtype.in_(sorted(named)) if named else sa.false()

    def _rows(self, t: FromClause, rtype: str | None, textual: bool = False) -> Predicate | None:
        """The row rule, as small as the type allows: a query on one known type gets only the
        terms that can match it (a smaller statement to plan and to key SQLAlchemy's cache)."""
        c, reach = t.c, self.role.reach
        if rtype is None:
            directory = sa.and_(c.patient_key.is_(None), c.rtype.in_(sorted(DIRECTORY)))
        else:
            directory = c.patient_key.is_(None) if rtype in DIRECTORY else sa.false()
        if reach in (Reach.PROVINCE_DEIDENTIFIED, Reach.PROVINCE):
            return None  # every facility's rows; the scopes' type rule still applies
        if reach is Reach.OWN_RECORD:
            pid = (self.actor.patient or "").removeprefix("Patient/")
            mine = same_person(sa.select(sa.literal(pid)))
            return sa.or_(c.patient_key.in_(mine), directory)
        if reach is Reach.CLAIMS:
            return sa.or_(self._claims(t, rtype), directory)
        clauses: list[Predicate] = [c.facility == self.facility, directory]
        if self.role.clinician:
            treated = same_person(treated_at(self.facility))
            clauses.append(sa.and_(c.patient_key.in_(treated), c.patient_key.not_in(withheld())))
        if self.role.break_glass and self.actor.account:
            clauses.append(c.patient_key.in_(same_person(self._glass(textual))))
        if self.allows("AuditEvent", "r") and rtype in (None, "AuditEvent"):
            clauses.append(self._audit_of_own_patients(t))
        return sa.or_(*clauses)

    def _glass(self, textual: bool) -> sa.Select[Any]:
        """Grants still open when the query runs (the moment is bound at execution)."""
        at: sa.ColumnElement[Any] = (
            sa.literal_column(":glass_now")
            if textual
            else sa.bindparam("glass_now", callable_=_now_us)
        )
        return sa.select(break_glass.c.patient_key).where(
            break_glass.c.account_id == self.actor.account, break_glass.c.expires > at
        )

    def _claims(self, t: FromClause, rtype: str | None) -> Predicate:
        c = t.c
        claimed = ix_reference.alias("claimed")
        claim_encounters = sa.select(claimed.c.target_id).where(
            claimed.c.rtype == "Claim", claimed.c.param == "encounter"
        )
        claim_patients = sa.select(claimed.c.target_id).where(
            claimed.c.rtype == "Claim", claimed.c.param == "patient"
        )
        by_encounter = ix_reference.alias("by_encounter")
        in_claimed_encounter = (
            sa.select(by_encounter.c.id)
            .where(
                by_encounter.c.rtype == c.rtype,
                by_encounter.c.id == c.id,
                by_encounter.c.param == "encounter",
                by_encounter.c.target_type == "Encounter",
                by_encounter.c.target_id.in_(claim_encounters),
            )
            .exists()
        )
        support = sorted(CLAIM_SUPPORT - {"Patient", "Encounter"})
        terms = [
            (CLAIM_TYPES, sa.true()),
            (("Patient", "Coverage"), c.patient_key.in_(claim_patients)),
            (("Encounter",), c.id.in_(claim_encounters)),
            (support, in_claimed_encounter),
        ]
        if rtype is not None:
            return next((term for types, term in terms if rtype in types), sa.false())
        return sa.or_(*(sa.and_(c.rtype.in_(types), term) for types, term in terms))

    def _audit_of_own_patients(self, t: FromClause) -> Predicate:
        """AuditEvents that touched a patient registered at the actor's facility."""
        c = t.c
        about, patient = ix_reference.alias("about"), resource.alias("own_patient")
        own_patients = sa.select(patient.c.id).where(
            patient.c.rtype == "Patient", patient.c.facility == self.facility
        )
        touched = (
            sa.select(about.c.id)
            .where(
                about.c.rtype == "AuditEvent",
                about.c.id == c.id,
                about.c.param == "patient",
                about.c.target_id.in_(own_patients),
            )
            .exists()
        )
        return sa.and_(c.rtype == "AuditEvent", touched)

    # ---- output ------------------------------------------------------------------------

    def redact(self, content: bytes) -> bytes:
        """What leaves the store for this actor: de-identified for DoH analysts."""
        if not self.deidentify:
            return content
        from benhan.store.deid import deidentify

        return orjson.dumps(deidentify(orjson.loads(content)))


# Building a predicate costs milliseconds of SQLAlchemy; the same actor on the same table gets
# the same one (it holds no moment: break-glass expiry is a bind evaluated when it runs).
_CACHE: dict[tuple[object, ...], Predicate | None] = {}
_CACHE_MAX = 4096  # actors × tables × types; cleared when full (per-query aliases come and go)


def _cached(policy: Policy, t: FromClause, rtype: str | None) -> Predicate | None:
    textual = policy.dialect is not None and t in (resource, resource_version)
    k = (policy.key, t, rtype, policy.dialect.name if textual and policy.dialect else None)
    if k in _CACHE:
        return _CACHE[k]
    hit = policy._rows(t, rtype, textual)
    if rtype is None:  # several types: the scopes' type rule joins the row rule
        types = policy._types(t.c.rtype, "r")
        hit = types if hit is None else sa.and_(types, hit)
    if hit is not None and textual and policy.dialect is not None:
        hit = _as_text(hit, t, policy.dialect)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[k] = hit
    return hit


def _as_text(rule: Predicate, t: FromClause, dialect: sa.Dialect) -> Predicate:
    """The rule as SQL text with its values inline: SQLAlchemy keys every statement for its
    compiled cache by walking it, and this rule (subqueries, type lists) costs more to walk
    than a small read costs to run. Text is keyed by its string. Only for the plain tables:
    an alias's name is not known until its statement is compiled."""
    compiled = (
        sa.select(t.c.id)
        .where(rule)
        .compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    )
    sql = str(compiled)
    if "\nWHERE " not in sql:  # a rule that is always true (an unrestricted type list)
        return rule
    where = sql.split("\nWHERE ", 1)[1]
    text = sa.text(f"({where})")
    if ":glass_now" in where:
        text = text.bindparams(sa.bindparam("glass_now", callable_=_now_us))
    return text  # type: ignore[return-value]


def _now_us() -> int:
    return micros(now())


def treated_at(facility: str) -> sa.Select[Any]:
    """Patients with an active encounter at the facility: a treatment relationship."""
    return sa.select(ix_token.c.patient_key).where(
        ix_token.c.rtype == "Encounter",
        ix_token.c.param == "status",
        ix_token.c.code.in_(ACTIVE_ENCOUNTER),
        ix_token.c.facility == facility,
        ix_token.c.patient_key.is_not(None),
    )


def same_person(keys: sa.Select[Any]) -> sa.CompoundSelect[Any]:
    """These patient keys and every Patient a Person (the provincial index) links them to."""
    a, b = ix_reference.alias("person_a"), ix_reference.alias("person_b")
    linked = (
        sa.select(b.c.target_id)
        .join(a, sa.and_(a.c.rtype == b.c.rtype, a.c.id == b.c.id))
        .where(
            a.c.rtype == "Person",
            a.c.param == "patient",
            b.c.param == "patient",
            a.c.target_id.in_(keys),
        )
    )
    return sa.union(keys, linked)


def withheld() -> sa.CompoundSelect[Any]:
    """Patients (and their linked records) with an active Consent denying sharing."""
    status, scope, provision = (ix_token.alias(n) for n in ("c_status", "c_scope", "c_deny"))
    deny = (
        sa.select(provision.c.patient_key)
        .join(status, sa.and_(status.c.rtype == provision.c.rtype, status.c.id == provision.c.id))
        .join(scope, sa.and_(scope.c.rtype == provision.c.rtype, scope.c.id == provision.c.id))
        .where(
            provision.c.rtype == "Consent",
            provision.c.param == "provision-type",
            provision.c.code == "deny",
            status.c.param == "status",
            status.c.code == "active",
            scope.c.param == "scope",
            scope.c.code == "patient-privacy",
            provision.c.patient_key.is_not(None),
        )
    )
    return same_person(deny)


def forbidden_scope(rtype: str, action: str) -> FhirError:
    names = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
    return FhirError(
        403,
        Issue(
            "forbidden",
            f"Không có quyền {names.get(action, action)} {rtype} / "
            f"insufficient scope to {names.get(action, action)} {rtype}",
        ),
    )
