"""benhan mpi relink: Person resources linking one person's Patients, and what they open up."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from benhan.access import ROLES, Actor
from benhan.fhir import systems as sy
from benhan.identity.persons import TAG, relink
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.store.schema import resource
from benhan.store.search import parse_search

A, B, C = "27001", "27002", "27003"


def patient(name: str, birth: str, gender: str, cccd: str | None = None) -> dict[str, Any]:
    family, *given = name.split()
    res: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": family, "given": [" ".join(given)]}],
        "gender": gender,
        "birthDate": birth,
    }
    if cccd:
        res["identifier"] = [{"system": sy.CCCD, "value": cccd}]
    return res


def create(store: Store, facility: str, res: dict[str, Any]) -> str:
    with store.begin() as conn:
        return Repo(conn, Actor.job(facility, "test")).create(res).id


def persons(store: Store) -> list[dict[str, Any]]:
    q = sa.select(sa.cast(resource.c.content, sa.Text)).where(
        resource.c.rtype == "Person", resource.c.deleted.is_(False)
    )
    with store.read() as conn:
        return [orjson.loads(t) for t in conn.execute(q).scalars()]


def doctor_sees(store: Store, facility: str, patient_id: str) -> bool:
    actor = Actor("user", "bs", ROLES["doctor"], facility, ROLES["doctor"].scopes, account="acc")
    with store.read() as conn:
        params = [("_id", patient_id)]
        found = Repo(conn, actor).search(parse_search("Patient", params, strict=True), ["_id"])
    return bool(found.matches)


def test_one_person_two_facilities_linked_for_certain_a_namesake_kept_apart(store: Store) -> None:
    here = create(store, A, patient("Nguyễn Thị Hương", "1987-03-12", "female", "027187000123"))
    there = create(store, B, patient("NGUYEN THI HUONG", "1987-03-12", "female", "027187000123"))
    namesake = create(store, B, patient("Nguyễn Thị Hương", "1990-07-01", "female", "027190004567"))
    create(store, C, patient("Trần Văn Bình", "1975-01-20", "male", "027075000111"))
    done = relink(store, "27000")
    assert (done.records, done.persons, done.created) == (4, 1, 1)
    (person,) = persons(store)
    assert {t["code"] for t in person["meta"]["tag"]} == {TAG["code"]}
    links = {x["target"]["reference"]: x["assurance"] for x in person["link"]}
    assert links == {f"Patient/{here}": "level4", f"Patient/{there}": "level4"}
    assert f"Patient/{namesake}" not in links

    again = relink(store, "27000")  # nothing changed: nothing written
    assert (again.created, again.updated, again.unchanged, again.deleted) == (0, 0, 1, 0)
    with store.read() as conn:
        version = conn.scalar(sa.select(resource.c.version_id).where(resource.c.id == person["id"]))
    assert version == 1


def test_the_link_opens_the_other_facilitys_record_to_the_treating_doctor(store: Store) -> None:
    here = create(store, A, patient("Lê Văn Nam", "1980-05-05", "male", "027080001234"))
    there = create(store, B, patient("Le Van Nam", "1980-05-05", "male", "027080001234"))
    encounter = {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {"system": sy.V3_ACT_CODE, "code": "AMB"},
        "subject": {"reference": f"Patient/{here}"},
    }
    create(store, A, encounter)
    assert doctor_sees(store, A, here) and not doctor_sees(store, A, there)
    relink(store, "27000")
    assert doctor_sees(store, A, there)  # one person now: the whole record at the bedside


def test_the_same_cccd_on_a_different_person_is_a_conflict_never_a_link(store: Store) -> None:
    create(store, A, patient("Phạm Thị Lan", "1992-02-02", "female", "027192000999"))
    create(store, B, patient("Hoàng Văn Đức", "1961-11-30", "male", "027192000999"))
    done = relink(store, "27000")
    assert done.persons == 0 and done.conflicts == 1
    assert persons(store) == []


def test_a_cluster_that_falls_apart_loses_its_person(store: Store) -> None:
    create(store, A, patient("Vũ Thị Mai", "1985-09-09", "female", "027185000321"))
    there = create(store, B, patient("Vu Thi Mai", "1985-09-09", "female", "027185000321"))
    assert relink(store, "27000").created == 1
    with store.begin() as conn:  # the facility corrects a wrong registration: another person
        repo = Repo(conn, Actor.job(B, "test"))
        fixed = patient("Đỗ Văn Tâm", "1950-01-01", "male", "027050000777")
        repo.update("Patient", there, {**fixed, "id": there})
    done = relink(store, "27000")
    assert (done.persons, done.deleted) == (0, 1)
    assert persons(store) == []


def test_everything_gathers_every_linked_record_and_audits_each_patient(store: Store) -> None:
    here = create(store, A, patient("Đặng Thị Thu", "1979-06-06", "female", "027179000555"))
    there = create(store, B, patient("DANG THI THU", "1979-06-06", "female", "027179000555"))
    stranger = create(store, B, patient("Bùi Văn Long", "1966-03-03", "male", "027066000222"))
    for facility, pid in ((A, here), (B, there), (B, stranger)):
        obs = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Huyết áp"},
            "subject": {"reference": f"Patient/{pid}"},
        }
        create(store, facility, obs)

    def everything_of(pid: str) -> tuple[set[str], set[str]]:
        with store.read() as conn:
            repo = Repo(conn, Actor.job(A, "test"))
            result = repo.everything(pid, since=None, types=[], count=100, offset=0)
            patients = set(repo.trail.accesses[-1].patients)
        subjects = {
            orjson.loads(c)["subject"]["reference"]
            for t, _i, c in result.matches
            if t == "Observation"
        }
        return subjects, patients

    assert everything_of(here) == ({f"Patient/{here}"}, {here})
    relink(store, "27000")
    subjects, audited = everything_of(here)
    assert subjects == {f"Patient/{here}", f"Patient/{there}"}  # both facilities, no stranger
    assert audited == {here, there}
