"""The facility's clinics: Locations under the facility's Location, typed with an exam service."""

from __future__ import annotations

from benhan.emr.clinics import DEFAULT_SERVICES, clinic, clinics, ensure_default_clinics
from benhan.emr.model import FacilityRefs, facility_refs
from benhan.store.database import Store
from benhan.store.unit import unit
from tests.access.world import actor
from tests.emr.world import FACILITY, KHAM_NHI, KHAM_NOI, OTHER_FACILITY, create, place


def refs_of(store: Store) -> FacilityRefs:
    with unit(store, actor("registrar"), write=False) as repo:
        refs = facility_refs(repo)
    assert refs is not None
    return refs


def test_clinics_are_the_rooms_under_the_facility(store: Store) -> None:
    here = place(store)
    place(store, OTHER_FACILITY, "Trạm y tế B")
    # A ward Location under the facility, not a room with an exam service: not a clinic.
    create(
        store, {"resourceType": "Location", "name": "Kho", "partOf": {"reference": here.location}}
    )
    refs = refs_of(store)
    with unit(store, actor("registrar"), write=False) as repo:
        found = clinics(repo, refs)
    assert {(c.id, c.service) for c in found} == {
        (here.clinics[KHAM_NOI], KHAM_NOI),
        (here.clinics[KHAM_NHI], KHAM_NHI),
    }
    assert [c.name for c in found] == sorted(c.name for c in found)


def test_a_clinic_of_another_facility_or_unknown_is_none(store: Store) -> None:
    place(store)
    there = place(store, OTHER_FACILITY, "Trạm y tế B")
    refs = refs_of(store)
    with unit(store, actor("registrar"), write=False) as repo:
        assert clinic(repo, refs, there.clinics[KHAM_NOI]) is None
        assert clinic(repo, refs, "no-such-room") is None


def test_default_clinics_are_opened_once(store: Store) -> None:
    from benhan.access import Actor
    from benhan.fhir import systems as sy

    ident = [{"system": sy.MA_CSKCB, "value": FACILITY}]
    org = create(store, {"resourceType": "Organization", "identifier": ident, "name": "Trạm A"})
    create(
        store,
        {
            "resourceType": "Location",
            "identifier": ident,
            "name": "Trạm A",
            "managingOrganization": {"reference": f"Organization/{org}"},
        },
    )
    job = Actor.job(FACILITY, "demo")
    with unit(store, job, write=True) as repo:
        refs = facility_refs(repo)
        assert refs is not None
        first = ensure_default_clinics(repo, refs)
    with unit(store, job, write=True) as repo:
        again = ensure_default_clinics(repo, refs)
    assert sorted(c.service for c in first) == sorted(DEFAULT_SERVICES)
    assert {c.id for c in again} == {c.id for c in first}
    assert all(c.name.startswith("Phòng khám") for c in first)
