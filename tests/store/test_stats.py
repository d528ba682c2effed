"""Counts for the dashboards: current resources by type, deletions left out."""

from __future__ import annotations

from benhan.access import Actor
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.store.stats import counts_by_type


def test_counts_leave_out_deleted_and_types_with_nothing_left(store: Store) -> None:
    with store.begin() as conn:
        repo = Repo(conn, Actor.job("27001", "test"))
        kept = [repo.create({"resourceType": "Patient"}).id for _ in range(3)]
        gone = repo.create({"resourceType": "Organization", "name": "Trạm Y tế"}).id
        repo.update("Patient", kept[0], {"resourceType": "Patient", "id": kept[0], "active": True})
        repo.delete("Patient", kept[1])
        repo.delete("Organization", gone)
    with store.read() as conn:
        # Provenances of the 3 creates, the update and the 2 deletions: records, never deleted.
        assert counts_by_type(conn) == {"Patient": 2, "Provenance": 7}
