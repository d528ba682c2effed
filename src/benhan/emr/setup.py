"""Making a facility ready for its EMR: the clinics that registration sends people to."""

from __future__ import annotations

from benhan.access import Actor
from benhan.emr.clinics import Clinic, ensure_default_clinics
from benhan.emr.model import facility_refs
from benhan.store.database import Store
from benhan.store.unit import unit


def prepare_facility(store: Store, facility: str) -> list[Clinic]:
    """The facility's clinics, made from the exam catalogue when it has none yet; [] when the
    registry does not hold the facility (there is nothing to hang clinics on)."""
    with unit(store, Actor.job(facility, "setup"), write=True) as repo:
        refs = facility_refs(repo)
        return [] if refs is None else ensure_default_clinics(repo, refs)
