"""Reference checks on write: one lookup for every type a resource names, exactly the pairs that
exist and the caller may see, and a 422 naming each missing target's first path."""

from __future__ import annotations

from typing import Any

import pytest

from benhan.access import Actor, role
from benhan.fhir.outcome import FhirError
from benhan.store.database import Store
from benhan.store.repository import CHUNK, Repo, reference_values, references

A, B = "27001", "27002"


def doctor(facility: str) -> Actor:
    r = role("doctor")
    return Actor("user", f"bs-{facility}", r, facility, r.scopes, account=f"acc-{facility}")


def seed(store: Store, facility: str, rtype: str, rid: str, **extra: Any) -> None:
    with store.begin() as conn:
        Repo(conn, Actor.job(facility, "test")).update(
            rtype, rid, {"resourceType": rtype, "id": rid, **extra}
        )


def test_existing_finds_exactly_the_stored_pairs_across_types(store: Store) -> None:
    seed(store, A, "Patient", "p1")
    seed(store, A, "Practitioner", "shared-id")
    seed(store, A, "Organization", "o1", name="Trạm y tế")
    seed(store, A, "Patient", "o1")  # not asked for: one query over types × ids must drop it
    seed(store, A, "Patient", "gone")
    with store.begin() as conn:
        Repo(conn, Actor.job(A, "test")).delete("Patient", "gone")
    asked = {
        ("Patient", "p1"),
        ("Practitioner", "shared-id"),
        ("Patient", "shared-id"),  # the id exists, but as a Practitioner
        ("Organization", "o1"),
        ("Organization", "nowhere"),
        ("Patient", "gone"),  # deleted
    }
    with store.read() as conn:
        found = Repo(conn, doctor(A)).existing(asked)
    assert found == {("Patient", "p1"), ("Practitioner", "shared-id"), ("Organization", "o1")}


def test_existing_over_more_than_one_chunk(store: Store) -> None:
    ids = [f"p{i}" for i in range(CHUNK + 7)]  # not a power of two, more than one query
    with store.begin() as conn:
        repo = Repo(conn, Actor.job(A, "test"))
        repo.flush(
            [repo.prepare({"resourceType": "Patient", "id": i}, "PUT", known=set()) for i in ids]
        )
    asked = {("Patient", i) for i in ids} | {("Practitioner", "p0"), ("Patient", "zz")}
    with store.read() as conn:
        found = Repo(conn, Actor.job(A, "test")).existing(asked)
    assert found == {("Patient", i) for i in ids}


def test_a_target_the_caller_may_not_see_is_missing(store: Store) -> None:
    seed(store, A, "Patient", "ours")
    seed(store, B, "Patient", "theirs")  # another facility's, never treated at A
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Mạch"},
        "subject": {"reference": "Patient/ours"},
        "performer": [{"reference": "Patient/theirs"}, {"reference": "Patient/theirs"}],
        "hasMember": [{"reference": "http://example.org/fhir/Patient/theirs"}],
    }
    with store.read() as conn:
        repo = Repo(conn, doctor(A))
        assert repo.existing({("Patient", "ours"), ("Patient", "theirs")}) == {("Patient", "ours")}
        with pytest.raises(FhirError) as caught:
            repo.check_references([(obs, "Observation")], set())
    assert caught.value.status == 422
    [issue] = caught.value.issues
    assert "Patient/theirs" in issue.text
    assert issue.path == "Observation.performer[0].reference"  # the first place it is named


def test_every_missing_target_is_named_in_order(store: Store) -> None:
    seed(store, A, "Patient", "p1")
    items: list[tuple[dict[str, Any], str]] = [
        ({"resourceType": "Encounter", "subject": {"reference": "Patient/p1"}}, "entry[0]"),
        (
            {
                "resourceType": "Condition",
                "subject": {"reference": "Patient/p1"},
                "encounter": {"reference": "Encounter/e9"},
                "asserter": {"reference": "Practitioner/x"},
                "evidence": [{"detail": [{"reference": "urn:uuid:1"}, {"reference": "#c1"}]}],
            },
            "entry[1]",
        ),
    ]
    with store.read() as conn:
        repo = Repo(conn, Actor.job(A, "test"))
        repo.check_references(items[:1], set())  # all there: nothing raised
        repo.check_references(items, {("Encounter", "e9"), ("Practitioner", "x")})
        with pytest.raises(FhirError) as caught:
            repo.check_references(items, set())
    assert [(i.path, i.text.rsplit(": ", 1)[1]) for i in caught.value.issues] == [
        ("entry[1].encounter.reference", "Encounter/e9"),
        ("entry[1].asserter.reference", "Practitioner/x"),
    ]


def test_reference_values_are_those_references_finds() -> None:
    node = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"subject": {"reference": "Patient/1"}, "x": [[{"reference": "A/2"}]]}},
            {"resource": {"contained": [{"reference": "Hidden/3"}], "reference": {"a": 1}}},
        ],
        "reference": "Top/4",
        "other": {"reference": 5},
    }
    walked = [ref for _path, ref in references(node, "Bundle")]
    assert sorted(reference_values(node)) == sorted(walked) == ["A/2", "Patient/1", "Top/4"]
