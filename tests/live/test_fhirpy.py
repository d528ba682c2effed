"""fhirpy, a real FHIR client, against the real server: CRUD, search and paging."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, OperationOutcome, ResourceNotFound

from benhan.auth.clients import register_client
from benhan.store.database import Store

pytestmark = pytest.mark.live
CCCD = "https://benhan.vn/sid/cccd"


@pytest.fixture
def fhir(live_server: str, store: Store) -> SyncFHIRClient:
    """fhirpy with a token got the way a facility's system gets one: OAuth client credentials."""
    with store.begin() as conn:
        client, secret = register_client(
            conn, name="HIS bệnh viện", role_code="system-integrator", facility="27001"
        )
    assert secret is not None
    r = httpx.post(
        f"{live_server}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "system/*.cruds"},
        auth=(client.client_id, secret),
    )
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    return SyncFHIRClient(
        f"{live_server}/fhir",
        authorization=f"Bearer {token}",
        extra_headers={"Accept": "application/fhir+json"},
    )


def test_without_a_token_the_server_answers_401(live_server: str) -> None:
    bare = SyncFHIRClient(f"{live_server}/fhir", extra_headers={"Accept": "application/fhir+json"})
    with pytest.raises(AuthorizationError) as err:
        bare.resources("Patient").fetch()
    assert "Bearer" in str(err.value)


def test_create_read_update_delete(fhir: SyncFHIRClient) -> None:
    cccd = uuid.uuid4().hex[:12]
    p = fhir.resource(
        "Patient",
        identifier=[{"system": CCCD, "value": cccd}],
        name=[{"family": "Lê", "given": ["Minh", "Châu"]}],
        gender="female",
        birthDate="1990-05-17",
    )
    p.save()
    assert p.id and p["meta"]["versionId"] == "1"
    got = fhir.reference("Patient", p.id).to_resource()
    assert got["name"][0]["family"] == "Lê"
    got["gender"] = "other"
    got.save()
    assert fhir.reference("Patient", p.id).to_resource()["meta"]["versionId"] == "2"
    found = fhir.resources("Patient").search(identifier=f"{CCCD}|{cccd}").fetch_all()
    assert [r.id for r in found] == [p.id]
    assert [r.id for r in fhir.resources("Patient").search(name="le").fetch_all()] == [p.id]
    got.delete()
    with pytest.raises(ResourceNotFound):
        fhir.reference("Patient", p.id).to_resource()


def test_paging_through_a_search(fhir: SyncFHIRClient) -> None:
    family = f"Phạm{uuid.uuid4().hex[:6]}"
    ids = set()
    for i in range(23):
        r = fhir.resource("Patient", name=[{"family": family, "given": [f"Số {i}"]}])
        r.save()
        ids.add(r.id)
    search = fhir.resources("Patient").search(family=family).limit(5)
    assert search.count() == 23
    seen = [r.id for r in search.fetch_all()]
    assert len(seen) == 23 and set(seen) == ids  # 5 pages, nothing twice, nothing lost


def test_validation_error_reaches_the_client(fhir: SyncFHIRClient) -> None:
    bad = fhir.resource("Patient", gender="robot")
    with pytest.raises(OperationOutcome) as err:
        bad.save()
    assert "gender" in str(err.value)
