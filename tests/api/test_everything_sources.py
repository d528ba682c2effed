"""Patient/$everything over records the provincial index links: each resource says which facility
it came from (meta.source), and the access rules still decide what is in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from benhan.access import Actor
from benhan.api import create_app
from benhan.fhir.systems import facility_source, source_facility
from benhan.store.database import Store
from benhan.store.repository import Repo
from tests.access.world import A, B, World, build, encounter
from tests.conftest import bearer, make_settings


@pytest.fixture
def hub(store: Store, database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, World]]:
    world = build(store)  # one person at A and at B, linked by a Person; a stranger at B
    app = create_app(settings=make_settings(database_url, tmp_path, facility=A), store=store)
    with TestClient(app) as client:
        yield client, world


def everything(client: TestClient, pid: str, token: str) -> dict[str, dict[str, Any]]:
    """Every resource of $everything (all pages), by "Type/id"."""
    out: dict[str, dict[str, Any]] = {}
    url: str | None = f"/fhir/Patient/{pid}/$everything?_count=100"
    while url:
        r = client.get(url, headers={"Authorization": token})
        assert r.status_code == 200, r.text
        bundle = r.json()
        for e in bundle.get("entry", []):
            res = e["resource"]
            out[f"{res['resourceType']}/{res['id']}"] = res
        url = next((lk["url"] for lk in bundle.get("link", []) if lk["relation"] == "next"), None)
        url = url.split("testserver", 1)[1] if url else None
    return out


def test_a_treating_doctor_gets_the_linked_records_each_marked_by_its_facility(
    store: Store, hub: tuple[TestClient, World]
) -> None:
    client, w = hub
    doctor = bearer(store, "doctor", A)
    before = everything(client, w.pa, doctor)
    assert f"Observation/{w.ob}" not in before  # no treatment relationship yet: A's own only

    with store.begin() as conn:  # she is being seen at A now
        visit = Repo(conn, Actor.job(A, "test")).create(encounter(w.pa, "in-progress")).id
    got = everything(client, w.pa, doctor)
    mine = {f"Patient/{w.pa}", f"Encounter/{w.ea}", f"Encounter/{visit}", f"Observation/{w.oa}"}
    theirs = {f"Patient/{w.pb}", f"Encounter/{w.eb}", f"Observation/{w.ob}"}
    assert mine | theirs <= set(got)
    assert {k: source_facility(got[k]) for k in mine} == dict.fromkeys(mine, A)
    assert {k: got[k]["meta"]["source"] for k in theirs} == dict.fromkeys(
        theirs, facility_source(B)
    )
    assert f"Patient/{w.pc}" not in got and f"Observation/{w.oc}" not in got  # not the same person


def test_the_patient_sees_both_facilities_records_with_their_sources(
    store: Store, hub: tuple[TestClient, World]
) -> None:
    client, w = hub
    got = everything(client, w.pa, bearer(store, "patient", "", patient=w.pa))
    sources = {k: source_facility(v) for k, v in got.items()}
    assert sources[f"Observation/{w.oa}"] == A and sources[f"Observation/{w.ob}"] == B
    assert sources[f"Encounter/{w.eb}"] == B
