"""The index at work in a running server: Patients posted by a real FHIR client (fhirpy) are
matched as they arrive by the server's own background drain, and Patient/$match answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fhirpy import SyncFHIRClient

from benhan.api import create_app
from benhan.auth.clients import register_client
from benhan.store.database import Store
from tests.conftest import make_settings
from tests.identity.conftest import HUB, load_small_province

from .conftest import free_port

pytestmark = pytest.mark.live
CCCD = "https://benhan.vn/sid/cccd"


@pytest.fixture
def matching_server(store: Store, database_url: str, tmp_path: Path) -> Iterator[str]:
    """A server on a province with a trained index, matching arrivals every 0.1 s."""
    load_small_province(store)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(
        database_url, tmp_path, base_url=f"{base}/fhir", facility=HUB, match_every=0.1
    )
    app = create_app(settings=settings, store=store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(timeout=10)


def client_for(base: str, store: Store, facility: str) -> SyncFHIRClient:
    with store.begin() as conn:
        client, secret = register_client(
            conn, name=f"HIS {facility}", role_code="system-integrator", facility=facility
        )
    r = httpx.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "system/*.cruds"},
        auth=(client.client_id, secret or ""),
    )
    assert r.status_code == 200, r.text
    return SyncFHIRClient(
        f"{base}/fhir",
        authorization=f"Bearer {r.json()['access_token']}",
        extra_headers={"Accept": "application/fhir+json"},
    )


def test_records_posted_at_two_facilities_are_linked_as_they_arrive(
    matching_server: str, store: Store
) -> None:
    hub = client_for(matching_server, store, HUB)
    commune = client_for(matching_server, store, "27001")
    first = commune.resource(
        "Patient",
        name=[{"family": "Nguyễn", "given": ["Thị Hương"]}],
        gender="female",
        birthDate="1987-03-12",
        identifier=[{"system": CCCD, "value": "027187000123"}],
    )
    first.save()
    second = hub.resource(
        "Patient",
        name=[{"text": "NGUYEN THI HUONG"}],
        gender="female",
        birthDate="1987-03-12",
        identifier=[{"system": CCCD, "value": "027187000123"}],
    )
    second.save()
    deadline, persons = time.monotonic() + 30, []
    while not persons and time.monotonic() < deadline:
        persons = hub.resources("Person").search(patient=first.id).fetch_all()
        time.sleep(0.1)
    assert persons, "the server did not link the two records"
    targets = {link["target"]["reference"] for link in persons[0]["link"]}
    assert targets == {f"Patient/{first.id}", f"Patient/{second.id}"}
    found = hub.execute(
        "Patient/$match",
        method="post",
        data={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "resource", "resource": {
                    "resourceType": "Patient", "name": [{"text": "Nguyễn Thị Hương"}],
                    "birthDate": "1987-03-12", "gender": "female"}},
                {"name": "count", "valueInteger": 5},
            ],
        },
    )  # fmt: skip
    ids = [e["resource"]["id"] for e in found["entry"]]
    assert second.id in ids  # the hub's own record; 27001's is not the hub's to read
    assert all(e["search"]["score"] >= 0.5 for e in found["entry"])
