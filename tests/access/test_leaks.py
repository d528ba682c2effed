"""Ways a hidden resource could still show: through a chain, _has, a count, an include, a 410,
or a de-identified copy that kept a name."""

from __future__ import annotations

import pytest

from benhan.access import Actor
from benhan.fhir.outcome import FhirError
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.store.search import parse_search
from benhan.store.unit import unit
from tests.access.world import A, B, World, actor, build, observation


@pytest.fixture
def world(store: Store) -> World:
    w = build(store)
    # B's lab wrote a result about A's patient: A's doctor, with no encounter open, must not see
    # it, nor learn that it exists.
    with store.begin() as conn:
        Repo(conn, Actor.job(B, "test")).create(observation(w.pa, None, 77))
    return w


def search(store: Store, who: Actor, rtype: str, *params: tuple[str, str]) -> list[str]:
    with unit(store, who, write=False) as repo:
        sreq = parse_search(rtype, list(params), strict=True)
        res = repo.search(sreq, [k for k, _ in params])
    assert res.total is None or res.total == len(res.matches)
    return [i for _t, i, _c in res.matches + res.included]


def test_has_does_not_match_through_a_hidden_resource(store: Store, world: World) -> None:
    doctor = actor("doctor", A)
    job = Actor.job(A, "reference")
    has = ("_has:Observation:subject:value-quantity", "77")
    assert search(store, job, "Patient", has) == [world.pa]  # it does exist
    assert search(store, doctor, "Patient", has) == []
    assert search(store, doctor, "Patient", ("_has:Observation:subject:value-quantity", "120")) == [
        world.pa
    ]


def test_a_chain_does_not_follow_into_a_hidden_resource(store: Store, world: World) -> None:
    nurse = actor("nurse", B)  # B's nurse sees B's observations, not A's patient
    chain = ("subject:Patient.name", "Nguyễn Thị Hương")  # folded: also "NGUYEN THI HUONG"
    job = Actor.job(B, "reference")
    found_by_job = search(store, job, "Observation", chain)
    assert len(found_by_job) == 3  # oa, ob, and the one B's lab wrote about A's patient
    # B's lab result is B's own, but it matches only through A's hidden patient.
    assert search(store, nurse, "Observation", chain) == [world.ob]


def test_counts_only_count_what_may_be_seen(store: Store, world: World) -> None:
    with unit(store, actor("doctor", A), write=False) as repo:
        sreq = parse_search("Observation", [("_summary", "count")], strict=True)
        assert repo.search(sreq, ["_summary"]).total == 1
    with unit(store, Actor.job(A, "reference"), write=False) as repo:
        sreq = parse_search("Observation", [("_summary", "count")], strict=True)
        assert repo.search(sreq, ["_summary"]).total == 4


def test_a_deleted_hidden_resource_is_404_not_410(store: Store, world: World) -> None:
    with store.begin() as conn:
        Repo(conn, Actor.job(B, "test")).delete("Observation", world.ob)
    for who, status in ((Actor.job(B, "reference"), 410), (actor("doctor", A), 404)):
        with pytest.raises(FhirError) as err, unit(store, who, write=False) as repo:
            repo.read("Observation", world.ob)
        assert err.value.status == status


def test_an_analyst_gets_no_names_identifiers_contacts_or_free_text(
    store: Store, world: World
) -> None:
    analyst = actor("doh-analyst", "")
    with unit(store, analyst, write=False) as repo:
        pat = repo.read("Patient", world.pa).resource
        obs = repo.read("Observation", world.oa).resource
        found = repo.search(parse_search("Patient", [], strict=True), [])
    assert pat["birthDate"] == "1987"
    assert pat["gender"] == "female"
    assert {"name", "identifier", "telecom"}.isdisjoint(pat)
    assert pat["address"] == [{"district": "Từ Sơn", "state": "Bắc Ninh"}]
    assert obs["valueQuantity"]["value"] == 120 and "note" not in obs
    assert obs["subject"] == {"reference": f"Patient/{world.pa}"}
    assert pat["meta"]["security"][0]["code"] == "REDACTED"
    text = b"".join(c for _t, _i, c in found.matches).decode()
    for secret in ("Hương", "HUONG", "Bình", "027187000123", "0912345678", "Lý Thái Tổ"):
        assert secret not in text


def test_an_assessor_sees_what_supports_a_claim_and_nothing_else(
    store: Store, world: World
) -> None:
    assessor = actor("insurance-assessor", "")
    obs = search(store, assessor, "Observation")
    assert obs == [world.oa]  # in the claimed encounter; ob and B's result are not
    enc = search(store, assessor, "Encounter")
    assert enc == [world.ea]


def test_a_patient_sees_their_own_record_at_every_facility(store: Store, world: World) -> None:
    me = actor("patient", "", patient=f"Patient/{world.pa}")
    mine = set(search(store, me, "Observation"))
    assert world.oa in mine and world.ob in mine and world.oc not in mine
    with pytest.raises(FhirError) as err, unit(store, me, write=False) as repo:
        repo.everything(world.pc, since=None, types=[], count=10, offset=0)
    assert err.value.status == 404


def test_the_job_sees_everything(store: Store, world: World) -> None:
    ids = search(store, Actor.job(A, "reference"), "Observation")
    assert {world.oa, world.ob, world.oc} <= set(ids)
