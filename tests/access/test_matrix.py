"""Every role × every way of reaching data, on own-facility, other-facility, consent-withheld and
break-glass records: what each may see is exactly its policy, whatever the interaction, and every
access leaves an AuditEvent.

The expectation for read, search, includes, history, $everything and $export is computed, not
listed: what an unrestricted job gets, cut to the ids the role may see (VISIBLE). Chains and
_has get their own leak tests (test_leaks.py), since there a visible resource could match
through a hidden one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from benhan.access import ROLES, Actor
from benhan.bulk.export import export_as
from benhan.fhir.outcome import FhirError
from benhan.store.database import Store, open_store
from benhan.store.repository import Repo, new_id
from benhan.store.schema import resource
from benhan.store.search import parse_search
from benhan.store.unit import unit
from tests.access.world import A, B, World, actor, build, encounter
from tests.conftest import pg_database

NAMED = ("pa", "pb", "pc", "ea", "eb", "oa", "ob", "oc", "org", "group", "claim")
# What each role sees of the world's named resources (before any treatment relationship).
VISIBLE: dict[str, set[str]] = {
    "registrar": {"pa", "ea", "org"},
    "kiosk": {"pa", "ea", "org"},
    "nurse": {"pa", "ea", "oa", "org"},
    "doctor": {"pa", "ea", "oa", "org"},
    "lab-technician": {"pa", "ea", "oa", "org"},
    "pharmacist": {"pa", "ea", "oa", "org"},
    "facility-admin": {"org"},
    "privacy-officer": {"pa", "org"},
    "doh-analyst": {"pa", "pb", "pc", "ea", "eb", "oa", "ob", "oc", "org", "claim"},
    "mpi-steward": {"pa", "pb", "pc", "org"},  # every facility's Patients, nothing clinical
    "insurance-assessor": {"pa", "ea", "oa", "org", "claim"},
    "system-integrator": {"pa", "ea", "oa", "org", "claim"},
    "patient": {"pa", "pb", "ea", "eb", "oa", "ob", "org", "claim"},
}
ROLE_FACILITY = {"doh-analyst": "", "mpi-steward": "", "insurance-assessor": "", "patient": ""}


@pytest.fixture
def world(store: Store) -> World:
    return build(store)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Store, World]]:
    """One world per backend for the read-only matrix (building one per case is slow on PG)."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('m') / 'm.sqlite3'}"])
    else:
        urls = pg_database()
    url = next(urls)
    s = open_store(url)
    s.create_schema()
    try:
        yield s, build(s)
    finally:
        s.dispose()
        next(urls, None)  # drops the throw-away PostgreSQL database


def who(role: str, w: World) -> Actor:
    extra = {"patient": f"Patient/{w.pa}"} if role == "patient" else {}
    return actor(role, ROLE_FACILITY.get(role, A), **extra)


def ids_of(w: World, names: set[str]) -> set[str]:
    return {getattr(w, n) for n in names}


def named(w: World, ids: set[str]) -> set[str]:
    """The world's names among these ids (other resources, like AuditEvents, are ignored)."""
    back = {getattr(w, n): n for n in NAMED}
    return {back[i] for i in ids if i in back}


def audit_count(store: Store) -> int:
    store.audit.flush()
    with store.read() as conn:
        q = sa.select(sa.func.count()).where(resource.c.rtype == "AuditEvent")
        return int(conn.scalar(q) or 0)


# ---- the interactions, each returning the ids it reached --------------------------------------

# The ids an interaction reached; None when the role's scopes refuse it outright (403).
Reach = Callable[[Repo, World], set[str] | None]


def _search(query: str, rtype: str | None) -> Reach:
    def run(repo: Repo, w: World) -> set[str] | None:
        params = [tuple(p.split("=", 1)) for p in query.split("&") if p]
        sreq = parse_search(rtype, params, strict=True)  # type: ignore[arg-type]
        try:
            res = repo.search(sreq, [k for k, _ in params])
        except FhirError as exc:
            assert exc.status == 403
            assert rtype and not repo.actor.scopes.allows(rtype, "s")
            return None
        return {i for _t, i, _c in res.matches + res.included}

    return run


def _reads(repo: Repo, w: World) -> set[str]:
    seen = set()
    for n in NAMED:
        rid = getattr(w, n)
        rtype = _type_of(n)
        try:
            repo.read(rtype, rid)
            seen.add(rid)
        except FhirError as exc:
            assert exc.status in (403, 404), exc  # never 410 or 200 for a hidden one
    return seen


def _history(level: str) -> Reach:
    def run(repo: Repo, w: World) -> set[str] | None:
        out = set()
        if level == "instance":
            for n in NAMED:
                try:
                    versions, _ = repo.history(
                        _type_of(n), getattr(w, n), since=None, count=50, offset=0
                    )
                    out |= {v.id for v in versions}
                except FhirError as exc:
                    assert exc.status in (403, 404)
            return out
        rtype = "Observation" if level == "type" else None
        try:
            versions, total = repo.history(rtype, None, since=None, count=1000, offset=0)
        except FhirError as exc:
            assert exc.status == 403
            assert rtype and not repo.actor.scopes.allows(rtype, "r")
            return None
        assert total >= len(versions)
        return {v.id for v in versions}

    return run


def _everything(repo: Repo, w: World) -> set[str] | None:
    if not repo.actor.scopes.allows("Patient", "r"):
        with pytest.raises(FhirError, match="Patient"):
            repo.everything(w.pa, since=None, types=[], count=10, offset=0)
        return None
    out = set()
    for pid in (w.pa, w.pb, w.pc):
        try:
            res = repo.everything(pid, since=None, types=[], count=1000, offset=0)
            out |= {i for _t, i, _c in res.matches}
        except FhirError as exc:
            assert exc.status in (403, 404)
    return out


def _export(tmp: Path) -> Reach:
    def run(repo: Repo, w: World) -> set[str]:
        out_dir = tmp / repo.actor.name
        files = export_as(repo, out_dir, level="system", types=None, since_us=None, patients=None)
        ids = set()
        for f in files:
            for line in f.path.read_bytes().splitlines():
                ids.add(orjson.loads(line)["id"])
        return ids

    return run


def _type_of(name: str) -> str:
    return {
        "p": "Patient",
        "e": "Encounter",
        "o": "Observation",
        "org": "Organization",
        "group": "Group",
        "claim": "Claim",
    }[name if name in ("org", "group", "claim") else name[0]]


INTERACTIONS: dict[str, Callable[[Path], Reach]] = {
    "read": lambda _t: _reads,
    "search-observation": lambda _t: _search("", "Observation"),
    "search-patient": lambda _t: _search("", "Patient"),
    "search-system": lambda _t: _search("_type=Patient,Observation,Encounter,Claim", None),
    "include": lambda _t: _search("_include=Observation:subject", "Observation"),
    "revinclude": lambda _t: _search("_revinclude=Observation:subject", "Patient"),
    "include-iterate": lambda _t: _search(
        "_revinclude=Observation:encounter&_include:iterate=Observation:subject", "Encounter"
    ),
    "history-instance": lambda _t: _history("instance"),
    "history-type": lambda _t: _history("type"),
    "history-system": lambda _t: _history("system"),
    "everything": lambda _t: _everything,
    "export": _export,
}


def _run(store: Store, a: Actor, fn: Reach, w: World) -> set[str] | None:
    with unit(store, a, write=False) as repo:
        return fn(repo, w)


@pytest.mark.parametrize("interaction", sorted(INTERACTIONS))
@pytest.mark.parametrize("role", sorted(VISIBLE))
def test_each_role_reaches_exactly_what_it_may(
    shared: tuple[Store, World], role: str, interaction: str, tmp_path: Path
) -> None:
    store, world = shared
    fn = INTERACTIONS[interaction](tmp_path)
    everything = named(world, _run(store, Actor.job(A, "reference"), fn, world) or set())
    before = audit_count(store)
    reached = _run(store, who(role, world), fn, world)
    if reached is not None:  # else refused by scope, as the run asserted
        assert named(world, reached) == everything & VISIBLE[role]
    assert audit_count(store) > before, "the access left no AuditEvent"


# ---- treatment relationship, consent, break-glass ---------------------------------------------


def _write(store: Store, facility: str, res: dict[str, object]) -> str:
    with store.begin() as conn:
        return Repo(conn, Actor.job(facility, "test")).create(res).id


def _visible_named(store: Store, a: Actor, w: World) -> set[str]:
    return named(w, _run(store, a, _reads, w) or set())


@pytest.mark.parametrize("role", ["doctor", "nurse", "pharmacist", "lab-technician"])
def test_an_active_encounter_opens_the_persons_records_elsewhere(
    store: Store, world: World, role: str
) -> None:
    a = who(role, world)
    hidden = {"pb", "eb", "ob"}  # B's records of the same person
    assert not _visible_named(store, a, world) & hidden
    eid = _write(store, A, encounter(world.pa, "in-progress"))
    opened = _visible_named(store, a, world)
    assert hidden <= opened, "the Person link brings B's records of the same person"
    assert not opened & {"pc", "oc"}
    # The encounter ends: the window closes.
    with store.begin() as conn:
        repo = Repo(conn, Actor.job(A, "test"))
        enc = repo.read("Encounter", eid).resource
        repo.update("Encounter", eid, {**enc, "status": "finished"})
    assert not _visible_named(store, a, world) & hidden


def test_a_registrar_is_no_clinician(store: Store, world: World) -> None:
    _write(store, A, encounter(world.pa, "in-progress"))
    assert _visible_named(store, who("registrar", world), world) == VISIBLE["registrar"]


def test_withheld_consent_keeps_records_closed_until_break_glass(
    store: Store, world: World
) -> None:
    from benhan.store.schema import break_glass

    doctor = who("doctor", world)
    _write(store, A, encounter(world.pc, "in-progress"))  # treated at A, but withheld
    assert not _visible_named(store, doctor, world) & {"pc", "oc"}
    with store.begin() as conn:
        conn.execute(
            break_glass.insert().values(
                id="g1",
                account_id=doctor.account,
                facility=A,
                patient_key=world.pc,
                owner_facility=B,
                reason_code="emergency",
                reason="unconscious, no relatives",
                started=0,
                expires=2**62,
            )
        )
    assert {"pc", "oc"} <= _visible_named(store, doctor, world)
    other = actor("doctor", A)  # same role, another account: the grant is personal
    other = Actor(**{**other.__dict__, "account": "someone-else"})
    assert not _visible_named(store, other, world) & {"pc", "oc"}
    with store.begin() as conn:
        conn.execute(break_glass.update().values(expires=1))  # expired
    assert not _visible_named(store, doctor, world) & {"pc", "oc"}


# ---- writes -------------------------------------------------------------------------------------


def _status(fn: Callable[[], object]) -> int:
    try:
        fn()
    except FhirError as exc:
        return exc.status
    return 200


def test_writes_stay_in_the_own_facility(store: Store, world: World) -> None:
    doctor = who("doctor", world)
    _write(store, A, encounter(world.pa, "in-progress"))  # ob is now visible to A's doctor

    def update(rid: str) -> Callable[[], object]:
        def run() -> object:
            with unit(store, doctor, write=True) as repo:
                obs = repo.read("Observation", rid).resource
                return repo.update("Observation", rid, {**obs, "status": "amended"})

        return run

    def delete(rid: str) -> Callable[[], object]:
        def run() -> object:
            with unit(store, doctor, write=True) as repo:
                return repo.delete("Observation", rid)

        return run

    assert _status(update(world.oa)) == 200
    assert _status(update(world.ob)) == 403  # visible, but B's record
    assert _status(update(world.oc)) == 404  # not even visible
    assert _status(delete(world.ob)) == 403
    assert _status(delete(world.oc)) == 404
    with store.read() as conn:
        rows = conn.execute(
            sa.select(resource.c.id, resource.c.version_id).where(
                resource.c.id.in_([world.ob, world.oc])
            )
        ).all()
    assert {r.version_id for r in rows} == {1}, "refused writes changed nothing"


def test_a_create_is_owned_by_the_writer_whatever_it_claims(store: Store, world: World) -> None:
    doctor = who("doctor", world)
    with unit(store, doctor, write=True) as repo:
        w = repo.prepare(
            {
                "resourceType": "Observation",
                "id": new_id(),
                "status": "final",
                "code": {"text": "x"},
            },
            "POST",
        )
        w.facility = B  # a forged owner
        saved = repo.flush([w])[0]
    with store.read() as conn:
        owner = conn.scalar(sa.select(resource.c.facility).where(resource.c.id == saved.id))
    assert owner == A


def test_references_to_hidden_resources_are_missing(store: Store, world: World) -> None:
    """A write cannot probe for a hidden resource: its reference is simply not found."""
    doctor = who("doctor", world)

    def create(pid: str) -> Callable[[], object]:
        def run() -> object:
            with unit(store, doctor, write=True) as repo:
                return repo.create(
                    {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"text": "x"},
                        "subject": {"reference": f"Patient/{pid}"},
                    }
                )

        return run

    assert _status(create(world.pa)) == 200
    assert _status(create(world.pc)) == 422
    assert _status(create("no-such-patient")) == 422


@pytest.mark.parametrize(
    ("role", "rtype", "expected"),
    [
        ("registrar", "Observation", 403),
        ("registrar", "Patient", 200),
        ("pharmacist", "Observation", 403),
        ("pharmacist", "MedicationDispense", 422),  # allowed, but the body is incomplete
        ("lab-technician", "Provenance", 422),  # signs reports (signing/who_signs.py)
        ("lab-technician", "Composition", 422),
        ("lab-technician", "MedicationRequest", 403),
        ("lab-technician", "Consent", 403),
        ("doh-analyst", "Patient", 403),
        ("mpi-steward", "Patient", 403),
        ("privacy-officer", "AuditEvent", 403),
        ("system-integrator", "AuditEvent", 403),
        ("patient", "Observation", 403),
    ],
)
def test_create_needs_a_scope(
    store: Store, world: World, role: str, rtype: str, expected: int
) -> None:
    body: dict[str, object] = {"resourceType": rtype}
    if rtype == "Patient":
        body["gender"] = "female"
    if rtype == "Observation":
        body.update(status="final", code={"text": "x"})

    def run() -> object:
        with unit(store, who(role, world), write=True) as repo:
            return repo.create(body)

    status = _status(run)
    assert status == expected or (expected == 422 and status == 400)


def test_a_lab_technician_writes_what_signing_a_report_needs_and_no_more() -> None:
    scopes = ROLES["lab-technician"].scopes
    needed = {"Composition": "crus", "Bundle": "crus", "Provenance": "c", "DocumentReference": "c"}
    for rtype, actions in needed.items():
        assert all(scopes.allows(rtype, a) for a in actions), rtype
    assert not scopes.allows("Provenance", "r") and not scopes.allows("Provenance", "u")
    assert not scopes.allows("Composition", "d") and not scopes.allows("Bundle", "d")
    for rtype in ("MedicationRequest", "AllergyIntolerance", "Procedure", "Consent"):
        assert not scopes.allows(rtype, "r") and not scopes.allows(rtype, "c"), rtype


# ---- what the trail says -----------------------------------------------------------------------


def _events(store: Store) -> Iterator[dict[str, object]]:
    store.audit.flush()
    with store.read() as conn:
        q = sa.select(sa.cast(resource.c.content, sa.Text)).where(resource.c.rtype == "AuditEvent")
        for (content,) in conn.execute(q):
            yield orjson.loads(content)


def test_the_trail_names_who_what_and_which_patient_without_content(
    store: Store, world: World
) -> None:
    doctor = Actor(**{**who("doctor", world).__dict__, "address": "10.1.2.3"})
    with unit(store, doctor, write=False) as repo:
        repo.read("Observation", world.oa)
    with pytest.raises(FhirError), unit(store, doctor, write=False) as repo:
        repo.read("Observation", world.ob)
    events = [e for e in _events(store) if e["agent"][0]["altId"] == doctor.name]  # type: ignore[index]
    assert len(events) == 2
    ok, refused = sorted(events, key=lambda e: str(e["outcome"]))
    assert ok["outcome"] == "0" and refused["outcome"] == "4"
    assert {"reference": f"Patient/{world.pa}"} in [e["what"] for e in ok["entity"]]  # type: ignore[index, union-attr]
    assert ok["agent"][0]["network"]["address"] == "10.1.2.3"  # type: ignore[index]
    assert ok["source"]["site"] == A  # type: ignore[index]
    text = orjson.dumps(events).decode()
    assert "Hương" not in text and "HUONG" not in text and "đau đầu" not in text
    assert "027187000123" not in text


def test_a_failed_write_is_undone_but_recorded(store: Store, world: World) -> None:
    doctor = who("doctor", world)
    before = audit_count(store)
    with pytest.raises(FhirError), unit(store, doctor, write=True) as repo:
        repo.create({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
        repo.update("Observation", world.ob, {"resourceType": "Observation", "id": world.ob})
    with store.read() as conn:
        created = conn.scalar(
            sa.select(sa.func.count()).where(
                resource.c.rtype == "Observation", resource.c.facility == A
            )
        )
    assert created == 1, "the create in the failed unit was rolled back"
    assert audit_count(store) == before + 2
    outcomes = sorted(str(e["outcome"]) for e in _events(store))
    assert outcomes.count("4") >= 2


def test_privacy_officers_of_both_facilities_see_a_cross_facility_look(
    store: Store, world: World
) -> None:
    doctor_b = actor("doctor", B)
    _write(store, B, encounter(world.pb, "in-progress"))  # B treats her: sees A's records
    with unit(store, doctor_b, write=False) as repo:
        repo.read("Observation", world.oa)
    store.audit.flush()

    def seen_by(officer: Actor) -> list[str]:
        with unit(store, officer, write=False) as repo:
            sreq = parse_search("AuditEvent", [("agent-name", "x")][:0], strict=True)
            sreq.count = 1000
            res = repo.search(sreq, [])
        return [orjson.loads(c)["agent"][0]["altId"] for _t, _i, c in res.matches]

    assert doctor_b.name in seen_by(actor("privacy-officer", A))  # their patient was looked at
    assert doctor_b.name in seen_by(actor("privacy-officer", B))  # their staff looked
    assert doctor_b.name not in seen_by(actor("privacy-officer", "27003"))


def test_an_identity_steward_sees_every_facilitys_patients_identified_and_no_care(
    store: Store, world: World
) -> None:
    steward = who("mpi-steward", world)
    with unit(store, steward, write=False) as repo:
        other = repo.read("Patient", world.pb).resource  # written at B
        withheld = repo.read("Patient", world.pc).resource
        persons = repo.search(parse_search("Person", [], strict=True), [])
    assert other["name"][0]["text"] == "NGUYEN THI HUONG"  # identified, not redacted
    assert other["identifier"][0]["value"] == "027187000123"
    assert withheld["name"][0]["text"] == "Trần Văn Bình"  # the index links every record
    assert len(persons.matches) == 1
    for rtype, rid in (("Observation", world.oa), ("Encounter", world.ea), ("Claim", world.claim)):
        with pytest.raises(FhirError) as err, unit(store, steward, write=False) as repo:
            repo.read(rtype, rid)
        assert err.value.status == 403, rtype
    with pytest.raises(FhirError) as err, unit(store, steward, write=False) as repo:
        repo.search(parse_search("Encounter", [], strict=True), [])
    assert err.value.status == 403
