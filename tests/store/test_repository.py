"""The repository on both backends: versions, atomic writes, patient keys, the migrated schema."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from benhan.access import Actor
from benhan.fhir.outcome import FhirError
from benhan.store.database import Store
from benhan.store.history import history
from benhan.store.repository import Repo, _Storage
from benhan.store.schema import ix_token, metadata, resource, resource_version


def patient(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": "Bùi", "given": ["Thị", "Lan"]}],
        **extra,
    }


def test_versions_and_history_rows(store: Store) -> None:
    with store.begin() as conn:
        repo = Repo(conn, Actor.job("27001", "test"))
        p = repo.create(patient())
        repo.update("Patient", p.id, {**patient(gender="female"), "id": p.id})
        repo.delete("Patient", p.id)
    with store.read() as conn:
        versions = history(conn, "Patient", p.id, since=None, count=10, offset=0)[0]
        assert [(v.version_id, v.method, v.deleted) for v in versions] == [
            (3, "DELETE", True),
            (2, "PUT", False),
            (1, "POST", False),
        ]
        archived = conn.scalar(
            sa.select(sa.func.count())
            .select_from(resource_version)
            .where(resource_version.c.id == p.id)
        )
        assert archived == 2  # the current (deleted) version stays in `resource`
        tokens = conn.scalar(
            sa.select(sa.func.count()).select_from(ix_token).where(ix_token.c.id == p.id)
        )
        assert tokens == 0  # a deleted resource is found by no search


def test_a_failure_mid_write_leaves_the_previous_state(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.begin() as conn:
        p = Repo(conn, Actor.job("27001", "test")).create(patient())

    def broken(self: Repo, writes: Any) -> None:
        raise RuntimeError("disk full")  # after the resource rows, before the index rows

    monkeypatch.setattr(_Storage, "_insert_index_rows", broken)
    with pytest.raises(RuntimeError), store.begin() as conn:
        Repo(conn, Actor.job("27001", "test")).update(
            "Patient", p.id, {**patient(gender="male"), "id": p.id}
        )
    with store.read() as conn:
        current = Repo(conn, Actor.job("27001", "test")).read("Patient", p.id)
        assert current.version_id == 1 and "gender" not in current.resource
        archived = conn.scalar(
            sa.select(sa.func.count())
            .select_from(resource_version)
            .where(resource_version.c.id == p.id)
        )
        assert archived == 0


def test_invalid_resource_changes_nothing(store: Store) -> None:
    with pytest.raises(FhirError) as err, store.begin() as conn:
        Repo(conn, Actor.job("27001", "test")).create(patient(gender="robot"))
    assert err.value.status == 400
    with store.read() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(resource)) == 0


def test_rows_carry_facility_and_patient_key(store: Store) -> None:
    with store.begin() as conn:
        repo = Repo(conn, Actor.job("27123", "test"))
        p = repo.create(patient())
        obs = repo.create(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "Huyết áp"},
                "subject": {"reference": f"Patient/{p.id}"},
            }
        )
        org = repo.create({"resourceType": "Organization", "name": "TYT xã Tam Sơn"})
    with store.read() as conn:
        rows = {
            r.id: (r.rtype, r.facility, r.patient_key) for r in conn.execute(sa.select(resource))
        }
    written = {i: rows.pop(i)[1:] for i in (p.id, obs.id, org.id)}
    assert written == {p.id: ("27123", p.id), obs.id: ("27123", p.id), org.id: ("27123", None)}
    # Each write's Provenance, in the compartment of what it records.
    assert sorted(rows.values(), key=str) == sorted(
        [("Provenance", "27123", p.id)] * 2 + [("Provenance", "27123", None)], key=str
    )


def test_migrations_match_the_schema(store: Store) -> None:
    """The Alembic history builds exactly the tables and indexes the code declares."""
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_bulk_load_defers_value_indexes_and_always_restores_them(store: Store) -> None:
    def index_names() -> set[str]:
        inspector = sa.inspect(store.engine)
        return {i["name"] for t in ("ix_token", "ix_string") for i in inspector.get_indexes(t)}

    before = index_names()
    with pytest.raises(RuntimeError), store.bulk_load():
        assert "ix_token_lookup" not in index_names()
        raise RuntimeError("the load failed half-way")
    assert index_names() == before
    with store.bulk_load(), store.begin() as conn:
        Repo(conn, Actor.job("27001", "test")).create(patient())
    test_migrations_match_the_schema(store)
