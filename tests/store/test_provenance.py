"""Every write leaves a Provenance, on both backends: who, for which facility, when, which
versions, what was done; one per patient compartment; none added where the write carries its
own; nothing when the write fails."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from benhan.access import ROLES, Actor
from benhan.fhir import systems as sy
from benhan.fhir.outcome import FhirError
from benhan.fhir.searchparams import extract
from benhan.fhir.validation import validate
from benhan.store import provenance
from benhan.store.database import Store
from benhan.store.repository import Repo, prepare_write, store_writes
from benhan.store.schema import resource
from benhan.store.unit import unit
from tests.conftest import bearer
from tests.emr.world import place
from tests.signing.test_service import sign, signed_visit

A, B = "27001", "27002"
FHIR = {"Content-Type": "application/fhir+json"}
DOCTOR_OF = "Practitioner/bs-an"


def integrator(facility: str = A) -> Actor:
    role = ROLES["system-integrator"]
    return Actor("client", "his", role, facility, role.scopes, account=f"his-{facility}")


def staff(role: str, facility: str = A, practitioner: str | None = None) -> Actor:
    r = ROLES[role]
    return Actor("user", f"u-{role}", r, facility, r.scopes, account=f"acc-{role}",
                 practitioner=practitioner)  # fmt: skip


def patient(**extra: Any) -> dict[str, Any]:
    family = f"Bùi-{uuid.uuid4().hex[:6]}"
    return {"resourceType": "Patient", "name": [{"family": family, "given": ["Lan"]}], **extra}


def observation(pid: str, value: float = 37.2) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "nhiệt độ"},
        "subject": {"reference": pid},
        "valueQuantity": {"value": value, "unit": "Cel"},
    }


def stored_provenances(store: Store) -> list[tuple[dict[str, Any], str | None, str]]:
    """Every current Provenance: (resource, patient_key, owning facility)."""
    with store.read() as conn:
        rows = conn.execute(
            sa.select(
                sa.cast(resource.c.content, sa.Text), resource.c.patient_key, resource.c.facility
            ).where(resource.c.rtype == "Provenance", resource.c.deleted.is_(False))
        ).all()
    return [(orjson.loads(text), key, facility) for text, key, facility in rows]


def naming(store: Store, ref: str) -> list[tuple[dict[str, Any], str | None, str]]:
    """The Provenances naming this "Type/id" (any version)."""
    return [
        p
        for p in stored_provenances(store)
        if any(t["reference"].split("/_history/")[0] == ref for t in p[0]["target"])
    ]


def activity(p: dict[str, Any]) -> str:
    coding = p["activity"]["coding"][0]
    assert coding["system"] == provenance.ACTIVITY
    return str(coding["code"])


# ---------------------------------------------------------------- create, update, delete


def test_create_update_and_delete_each_leave_a_provenance(store: Store) -> None:
    org = place(store).organization  # the facility in the registry
    doctor = staff("doctor", practitioner=DOCTOR_OF)
    with unit(store, doctor, write=True) as repo:
        pid = repo.create(patient()).id
        obs = repo.create(observation(f"Patient/{pid}"))
    with unit(store, doctor, write=True) as repo:
        changed = repo.update(
            "Observation", obs.id, {**observation(f"Patient/{pid}", 38), "id": obs.id}
        )
    with unit(store, doctor, write=True) as repo:
        gone = repo.delete("Observation", obs.id)
    assert (changed.version_id, gone) == (2, 3)
    found = naming(store, f"Observation/{obs.id}")
    assert [activity(p) for p, _k, _f in found] == ["CREATE", "UPDATE", "DELETE"]
    assert [p["target"] for p, _k, _f in found] == [
        [{"reference": f"Observation/{obs.id}/_history/{v}"}] for v in (1, 2, 3)
    ]
    for p, key, facility in found:
        assert (key, facility) == (pid, A)  # the patient's compartment, the writer's rows
        assert p["agent"] == [
            {
                "type": {
                    "coding": [
                        {"system": provenance.PARTICIPANT, "code": "author", "display": "Author"}
                    ]
                },
                "who": {"reference": DOCTOR_OF},
                "onBehalfOf": {
                    "reference": org,
                    "type": "Organization",
                    "identifier": {"system": sy.MA_CSKCB, "value": A},
                },
            }
        ]
    assert found[0][0]["recorded"] == obs.last_updated  # the write time: the version's own
    assert found[1][0]["recorded"] == changed.last_updated


def test_a_machine_client_is_named_as_a_device_and_a_facility_by_its_code(store: Store) -> None:
    """No Organization in the registry for B: the code alone names the facility."""
    with unit(store, integrator(B), write=True) as repo:
        pid = repo.create(patient()).id
    [(p, key, facility)] = naming(store, f"Patient/{pid}")
    assert (key, facility, activity(p)) == (pid, B, "CREATE")
    agent = p["agent"][0]
    assert agent["who"] == {
        "type": "Device",
        "identifier": {"system": sy.CLIENT, "value": "his-27002"},
    }
    assert agent["onBehalfOf"] == {
        "type": "Organization",
        "identifier": {"system": sy.MA_CSKCB, "value": B},
    }
    assert p["meta"]["source"] == sy.facility_source(B)


def test_a_relayed_write_is_recorded_for_the_facility_that_owns_it(store: Store) -> None:
    with store.begin() as conn:
        repo = Repo(conn, Actor.job(A, "sync"))
        saved = repo.flush([repo.prepare({**patient(), "id": str(uuid.uuid4())}, "PUT", owner=B)])
    [(p, _key, facility)] = naming(store, f"Patient/{saved[0].id}")
    assert facility == B
    assert p["agent"][0]["onBehalfOf"]["identifier"]["value"] == B
    job = {"type": "Device", "identifier": {"system": sy.ACCOUNT, "value": "sync"}}
    assert p["agent"][0]["who"] == job


def test_a_provenance_written_gets_none_of_its_own(store: Store) -> None:
    with unit(store, integrator(), write=True) as repo:
        pid = repo.create(patient()).id
        mine = repo.create(
            provenance.provenance(
                [f"Patient/{pid}"],
                "2025-03-01T06:30:00+07:00",
                "UPDATE",
                provenance.author(integrator(), None),
            )
        )
        repo.delete("Provenance", mine.id)
    assert naming(store, f"Provenance/{mine.id}") == []
    assert len(stored_provenances(store)) == 1  # the Patient's


def test_a_role_without_provenance_scopes_still_leaves_one_but_cannot_read_it(
    store: Store,
) -> None:
    registrar = staff("registrar")
    assert not registrar.scopes.allows("Provenance", "c")
    with unit(store, registrar, write=True) as repo:
        pid = repo.create(patient()).id
    [(p, _key, _facility)] = naming(store, f"Patient/{pid}")
    assert p["agent"][0]["who"] == {"identifier": {"system": sy.ACCOUNT, "value": "acc-registrar"}}
    with pytest.raises(FhirError) as err, unit(store, registrar, write=False) as repo:
        repo.read("Provenance", p["id"])
    assert err.value.status == 403
    nurse = staff("nurse")  # reads Provenance at the facility, as any clinical record
    with unit(store, nurse, write=False) as repo:
        assert repo.read("Provenance", p["id"]).resource["target"] == p["target"]
    with pytest.raises(FhirError) as err, unit(store, staff("nurse", B), write=False) as repo:
        repo.read("Provenance", p["id"])  # another facility's nurse, no relationship: unseen
    assert err.value.status == 404


def test_a_failed_write_leaves_no_provenance(store: Store) -> None:
    with pytest.raises(FhirError), unit(store, integrator(), write=True) as repo:
        repo.create(patient())
        repo.create(observation("Patient/does-not-exist"))  # 422: the unit rolls back
    with pytest.raises(FhirError), unit(store, integrator(), write=True) as repo:
        repo.create({"resourceType": "Patient", "gender": "nam"})  # 400: not an R4 code
    assert stored_provenances(store) == []


def test_audit_events_get_no_provenance(store: Store) -> None:
    with unit(store, integrator(), write=True) as repo:
        pid = repo.create(patient()).id
    with store.read() as conn:
        events = conn.scalar(
            sa.select(sa.func.count()).select_from(resource).where(resource.c.rtype == "AuditEvent")
        )
    assert events == 1
    assert [p["target"] for p, _k, _f in stored_provenances(store)] == [
        [{"reference": f"Patient/{pid}/_history/1"}]
    ]


# ---------------------------------------------------------------- Bundles


def entry(res: dict[str, Any], url: str) -> dict[str, Any]:
    return {"fullUrl": url, "resource": res,
            "request": {"method": "POST", "url": res["resourceType"]}}  # fmt: skip


def transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def locations(body: dict[str, Any]) -> list[str]:
    return [e["response"]["location"] for e in body["entry"]]


def test_a_transaction_leaves_one_provenance_per_patient(client: TestClient, store: Store) -> None:
    one, two = (f"urn:uuid:{uuid.uuid4()}" for _ in range(2))
    body = transaction(
        entry(patient(), one),
        entry(observation(one), f"urn:uuid:{uuid.uuid4()}"),
        entry(patient(), two),
        entry(observation(two), f"urn:uuid:{uuid.uuid4()}"),
        entry(observation(two, 39), f"urn:uuid:{uuid.uuid4()}"),
        entry({"resourceType": "Organization", "name": "Trạm Y tế"}, f"urn:uuid:{uuid.uuid4()}"),
    )
    r = client.post("/fhir", json=body, headers=FHIR)
    assert r.status_code == 200, r.text
    written = locations(r.json())
    by_patient = {key: p for p, key, _f in stored_provenances(store)}
    first, second = (loc.split("/")[1] for loc in (written[0], written[2]))
    assert set(by_patient) == {first, second, None}  # the Organization's has no patient
    assert [t["reference"] for t in by_patient[first]["target"]] == written[:2]
    assert [t["reference"] for t in by_patient[second]["target"]] == written[2:5]
    assert [t["reference"] for t in by_patient[None]["target"]] == written[5:]
    assert {activity(p) for p in by_patient.values()} == {"CREATE"}


def test_a_bundle_carrying_its_own_provenance_keeps_it(client: TestClient, store: Store) -> None:
    """Ingested data keeps its source's Provenance; what it does not name gets benhan's."""
    pid, obs, other = (f"urn:uuid:{uuid.uuid4()}" for _ in range(3))
    source = {
        "resourceType": "Provenance",
        "target": [{"reference": pid}, {"reference": obs}],
        "recorded": "2025-02-28T09:15:00+07:00",
        "agent": [{"who": {"display": "HIS Bệnh viện B"}}],
    }
    body = transaction(
        entry(patient(), pid),
        entry(observation(pid), obs),
        entry(observation(pid, 36.8), other),
        entry(source, f"urn:uuid:{uuid.uuid4()}"),
    )
    r = client.post("/fhir", json=body, headers=FHIR)
    assert r.status_code == 200, r.text
    written = locations(r.json())
    [kept] = [p for p, _k, _f in stored_provenances(store) if p["agent"] == source["agent"]]
    [added] = [p for p, _k, _f in stored_provenances(store) if p["id"] != kept["id"]]
    assert [t["reference"] for t in kept["target"]] == [
        w.split("/_history")[0] for w in written[:2]
    ]
    assert [t["reference"] for t in added["target"]] == [written[2]]  # only the one not named


def test_a_failed_transaction_leaves_no_provenance(client: TestClient, store: Store) -> None:
    pid = f"urn:uuid:{uuid.uuid4()}"
    body = transaction(
        entry(patient(), pid), entry(observation("Patient/nobody"), f"urn:uuid:{uuid.uuid4()}")
    )
    r = client.post("/fhir", json=body, headers=FHIR)
    assert r.status_code in (400, 404, 422), r.text
    assert stored_provenances(store) == []


def test_provenances_are_found_by_target_and_revinclude(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient(), headers=FHIR).json()["id"]
    obs = client.post("/fhir/Observation", json=observation(f"Patient/{pid}"), headers=FHIR).json()
    found = client.get("/fhir/Provenance", params={"target": f"Observation/{obs['id']}"}).json()
    assert [e["resource"]["target"] for e in found["entry"]] == [
        [{"reference": f"Observation/{obs['id']}/_history/1"}]
    ]
    found = client.get(
        "/fhir/Observation", params={"_id": obs["id"], "_revinclude": "Provenance:target"}
    ).json()
    modes = sorted((e["resource"]["resourceType"], e["search"]["mode"]) for e in found["entry"])
    assert modes == [("Observation", "match"), ("Provenance", "include")]
    mine = client.get("/fhir/Provenance", params={"patient": f"Patient/{pid}"}).json()
    assert [e["resource"]["target"][0]["reference"] for e in mine["entry"]] == [
        f"Patient/{pid}/_history/1"
    ]


def test_another_facility_does_not_see_the_provenances(client: TestClient, store: Store) -> None:
    client.post("/fhir/Patient", json=patient(), headers=FHIR)
    assert client.get("/fhir/Provenance").json()["total"] == 1
    other = {"Authorization": bearer(store, facility=B)}
    r = client.get("/fhir/Provenance", headers=other)
    assert r.status_code == 200 and r.json()["total"] == 0


# ---------------------------------------------------------------- signed documents


def test_a_signed_document_has_one_provenance_the_signed_one(store: Store) -> None:
    enc, author = signed_visit(store)
    before = {p["id"] for p, _k, _f in stored_provenances(store)}
    saved = sign(store, author, kind="visit-summary", encounter=enc)
    new = [(p, key) for p, key, _f in stored_provenances(store) if p["id"] not in before]
    [(p, key)] = new
    assert [t["reference"] for t in p["target"]] == [
        f"Composition/{saved.id}/_history/1",
        f"Bundle/{saved.id}/_history/1",
    ]
    assert p["signature"][0]["data"] and p["agent"][0]["who"] == {"reference": author}
    assert key is not None  # the document's patient: the Composition's compartment
    validate(p)


# ---------------------------------------------------------------- the shape


def built(
    actor: Actor, targets: list[str], activity_code: str, on_behalf_of: Any
) -> dict[str, Any]:
    res = provenance.provenance(
        targets, "2025-03-01T06:30:00.123456+07:00", activity_code,
        provenance.author(actor, on_behalf_of),
    )  # fmt: skip
    res["id"] = str(uuid.uuid4())
    return prepare_write(res, "POST", facility=A, trusted=True, rows=provenance.index_rows).resource


SHAPES = [
    (staff("doctor", practitioner=DOCTOR_OF), ["Patient/p1/_history/1", "Observation/o/_history/2"],
     "CREATE", {"reference": "Organization/o1", "type": "Organization",
                "identifier": {"system": sy.MA_CSKCB, "value": A}}),
    (integrator(), ["Encounter/e/_history/3"], "UPDATE",
     {"type": "Organization", "identifier": {"system": sy.MA_CSKCB, "value": A}}),
    (Actor.job("", "mpi"), ["Person/x/_history/4"], "DELETE", None),
    (staff("registrar"), ["Patient/p2/_history/1"], "CREATE", None),
    (replace(staff("patient"), patient="Patient/p3"), ["Patient/p3/_history/2"], "UPDATE", None),
]  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES, ids=["doctor", "client", "job", "account", "patient"])
def test_the_provenances_built_are_valid_r4(shape: tuple[Any, ...]) -> None:
    validate(built(*shape))  # they are stored unvalidated (trusted): this keeps the shape right


@pytest.mark.parametrize("shape", SHAPES, ids=["doctor", "client", "job", "account", "patient"])
def test_their_index_rows_are_those_the_extractor_makes(shape: tuple[Any, ...]) -> None:
    res = built(*shape)

    def canon(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
        return {k: sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode() for r in v)
                for k, v in rows.items()}  # fmt: skip

    assert canon(provenance.index_rows(res)) == canon(extract(res))
    assert provenance.index_rows(res)["reference"]  # the targets are searchable


def test_no_provenance_is_recorded_when_switched_off(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The switch the benchmark uses to measure what they cost."""
    monkeypatch.setattr(provenance, "RECORD", False)
    with unit(store, integrator(), write=True) as repo:
        repo.create(patient())
    assert stored_provenances(store) == []


def test_a_batch_of_the_hubs_own_work_can_share_one_provenance(store: Store) -> None:
    """What the MPI's Person writes would use: one Provenance per batch, in no compartment."""
    batch = [prepare_write({**patient(), "id": str(uuid.uuid4())}, "PUT", facility=A)
             for _ in range(3)]  # fmt: skip
    with store.begin() as conn:
        targets = provenance.targets_of(batch, A)
        extra = provenance.provenance_writes(conn, Actor.job(A, "mpi"), targets, per_patient=False)
        store_writes(conn, batch + extra, A)
    [(p, key, facility)] = stored_provenances(store)
    assert (key, facility) == (None, A)
    assert [t["reference"] for t in p["target"]] == [
        f"Patient/{w.resource['id']}/_history/1" for w in batch
    ]
