"""SMART scopes: v2 and v1 syntax, refused strings, and cutting requested scopes to a grant."""

from __future__ import annotations

import pytest

from benhan.access import ROLES, Scope, ScopeError, Scopes


@pytest.mark.parametrize(
    ("text", "context", "rtype", "actions"),
    [
        ("user/Observation.rs", "user", "Observation", "rs"),
        ("patient/*.r", "patient", "*", "r"),
        ("system/Patient.cruds", "system", "Patient", "cruds"),
        ("system/Claim.cud", "system", "Claim", "cud"),
        # SMART v1 words, understood as their v2 letters
        ("patient/*.read", "patient", "*", "rs"),
        ("user/Encounter.write", "user", "Encounter", "cud"),
        ("system/*.*", "system", "*", "cruds"),
    ],
)
def test_parse(text: str, context: str, rtype: str, actions: str) -> None:
    s = Scope.parse(text)
    assert (s.context, s.rtype, s.actions) == (context, rtype, actions)
    assert Scope.parse(str(s)) == s


@pytest.mark.parametrize(
    "text",
    [
        "user/Observation",  # no actions
        "user/Observation.",
        "admin/Patient.rs",  # unknown context
        "user/Patient.x",
        "user/Patient.sr",  # v2 letters come in the order c r u d s
        "user/Patient.rr",
        "user/Pat1ent.rs",
        "user/Patient.rs?category=x",  # v2 search-parameter scopes are not offered
        "Patient.rs",
        "",
    ],
)
def test_bad_scopes_are_refused(text: str) -> None:
    with pytest.raises(ScopeError):
        Scope.parse(text)


def test_scopes_keep_identity_words_apart_and_drop_repeats() -> None:
    s = Scopes.parse("launch/patient user/Patient.rs openid fhirUser user/Patient.rs")
    assert s.items == (Scope("user", "Patient", "rs"),)
    assert s.extra == ("launch/patient", "openid", "fhirUser")
    assert str(s) == "user/Patient.rs launch/patient openid fhirUser"
    with pytest.raises(ScopeError):
        Scopes.parse("user/Patient.rs nonsense")


def test_allows_action_by_action_and_audit_only_by_name() -> None:
    s = Scopes.parse("user/Observation.rs system/*.cruds")
    assert s.allows("Observation", "r") and s.allows("Observation", "s")
    assert s.allows("Patient", "d")  # the wildcard
    assert not s.allows("AuditEvent", "r")  # a wildcard never opens the audit trail
    assert Scopes.parse("user/AuditEvent.rs").allows("AuditEvent", "s")
    assert not Scopes.parse("user/Observation.rs").allows("Observation", "c")


def test_within_cuts_actions_and_types() -> None:
    granted = Scopes.parse("user/Observation.rs user/Patient.cruds")
    asked = Scopes.parse("user/Observation.cruds user/Claim.rs user/Patient.r fhirUser")
    got = asked.within(granted)
    assert str(got) == "user/Observation.rs user/Patient.r fhirUser"


def test_within_expands_a_wildcard_to_what_is_granted() -> None:
    granted = Scopes.parse("user/Observation.rs user/Patient.cruds")
    got = Scopes.parse("system/*.cud").within(granted)
    assert set(map(str, got.items)) == {"system/Patient.cud"}
    # a wildcard granted keeps the request as asked
    assert str(Scopes.parse("user/Claim.rs").within(Scopes.parse("system/*.cruds"))) == (
        "user/Claim.rs"
    )


@pytest.mark.parametrize("code", sorted(ROLES))
def test_within_a_role_never_exceeds_it(code: str) -> None:
    r = ROLES[code]
    widest = Scopes.parse("user/*.cruds user/AuditEvent.cruds").within(r.scopes)
    for rtype in ("Patient", "Observation", "Claim", "AuditEvent", "Organization", "Consent"):
        for action in "cruds":
            assert widest.allows(rtype, action) == r.scopes.allows(rtype, action), (rtype, action)
