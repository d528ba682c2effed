"""The ledger on both backends: every stored version chained per facility, and each edit made
behind benhan's back (SQL straight into the database) found and named by `verify`."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from joserfc import jws
from joserfc.jwk import ECKey
from typer.testing import CliRunner

from benhan.access import ROLES, Actor
from benhan.signing import ledger_commands
from benhan.store import checkpoints, ledger
from benhan.store.database import Store, open_store
from benhan.store.ledger import Report, canonical, genesis, verify
from benhan.store.repository import Repo, prepare_write, store_writes
from benhan.store.schema import ledger_checkpoint, ledger_entry, ledger_head, resource
from benhan.store.unit import unit
from tests.conftest import data_path
from tests.signing.certs import Chain, make_chain

A, B = "27001", "27002"
TODAY = datetime.now(UTC)
JSONB_ROUND_TRIP = "SELECT CAST(CAST(:j AS jsonb) AS text)"


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Bùi", "given": ["Lan"]}], **extra}


def observation(pid: str, value: float) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "nhiệt độ"},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": value, "unit": "Cel"},
    }


def integrator(facility: str) -> Actor:
    """A facility's HIS client: its writes carry AuditEvents, which are chained too."""
    role = ROLES["system-integrator"]
    return Actor("client", "his", role, facility, role.scopes, account=f"his-{facility}")


def populate(store: Store) -> dict[str, str]:
    """At A: a patient updated once, one created then deleted, an Observation; at B: a patient.
    Every write with its AuditEvent."""
    with unit(store, integrator(A), write=True) as repo:
        kept = repo.create(patient()).id
        repo.update("Patient", kept, patient(id=kept, gender="female"))
        gone = repo.create(patient(gender="male")).id
        obs = repo.create(observation(kept, 37.2)).id
        repo.delete("Patient", gone)
    with unit(store, integrator(B), write=True) as repo:
        other = repo.create(patient(birthDate="1980-02-03")).id
    return {"kept": kept, "gone": gone, "obs": obs, "other": other}


def check(store: Store, facility: str | None = None, **options: Any) -> Report:
    with store.read() as conn:
        return verify(conn, facility, **options)


def sql(store: Store, statement: str, **params: Any) -> int:
    """SQL straight into the database, the way someone going around benhan would."""
    if store.is_postgres:
        statement = statement.replace(":json", "CAST(:json AS jsonb)")
    with store.begin() as conn:
        return conn.execute(sa.text(statement), params).rowcount


def seq_of(store: Store, rtype: str, rid: str, vid: int) -> int:
    e = ledger_entry.c
    with store.read() as conn:
        seq = conn.scalar(
            sa.select(e.seq).where(e.rtype == rtype, e.id == rid, e.version_id == vid)
        )
    assert seq is not None
    return int(seq)


def entries(store: Store, facility: str) -> list[tuple[Any, ...]]:
    e = ledger_entry.c
    with store.read() as conn:
        rows = conn.execute(
            sa.select(e.seq, e.rtype, e.id, e.version_id)
            .where(e.facility == facility)
            .order_by(e.seq)
        )
        return [tuple(r) for r in rows]


def kinds(report: Report) -> dict[str, int]:
    return dict(report.counts)


# ---- an intact store ------------------------------------------------------------------------


def test_every_version_and_audit_event_is_chained_and_verifies(store: Store) -> None:
    ids = populate(store)
    chain_a = entries(store, A)
    assert [seq for seq, *_ in chain_a] == list(range(1, len(chain_a) + 1))
    versions = [(t, i, v) for _s, t, i, v in chain_a]
    assert ("Patient", ids["kept"], 1) in versions and ("Patient", ids["kept"], 2) in versions
    assert ("Patient", ids["gone"], 2) in versions  # the deletion is a version too
    assert any(t == "AuditEvent" for t, _i, _v in versions)  # the audit trail is chained
    report = check(store)
    assert report.intact, report.findings
    assert {c.facility: c.entries for c in report.chains} == {
        A: len(chain_a),
        B: len(entries(store, B)),
    }
    assert report.versions == len(chain_a) + len(entries(store, B))
    with store.read() as conn:
        heads = dict(conn.execute(sa.select(ledger_head.c.facility, ledger_head.c.seq)).all())
    assert heads == {A: len(chain_a), B: len(entries(store, B))}


def test_a_facility_without_a_chain_verifies_empty_and_an_empty_store_too(store: Store) -> None:
    empty = check(store)
    assert empty.intact and empty.chains == [] and empty.versions == 0
    populate(store)
    unknown = check(store, "99999")
    assert unknown.intact and [(c.facility, c.head, c.entries) for c in unknown.chains] == [
        ("99999", None, 0)
    ]


def test_a_bulk_write_of_several_facilities_makes_one_chain_each(store: Store) -> None:
    writes = [prepare_write(patient(id=f"p{i}"), "PUT", facility=(A, B)[i % 2]) for i in range(9)]
    with store.begin() as conn:
        store_writes(conn, writes, "")
    assert [r[2] for r in entries(store, A)] == ["p0", "p2", "p4", "p6", "p8"]
    assert [r[2] for r in entries(store, B)] == ["p1", "p3", "p5", "p7"]
    assert check(store).intact


def test_a_rolled_back_write_leaves_no_entry(store: Store) -> None:
    populate(store)
    before = entries(store, A)
    with pytest.raises(RuntimeError), store.begin() as conn:
        Repo(conn, Actor.job(A, "test")).create(patient())
        raise RuntimeError("the caller fails after the write")
    with store.begin() as conn:  # savepoints rolled back and released in a committed one
        repo = Repo(conn, Actor.job(A, "test"))
        savepoint = conn.begin_nested()
        repo.create(patient())
        inner = conn.begin_nested()
        repo.create(patient())
        inner.rollback()
        savepoint.rollback()
        kept = repo.create(patient()).id
        with conn.begin_nested():
            released = repo.create(patient()).id
            with conn.begin_nested() as undone:
                repo.create(patient())
                undone.rollback()
    after = entries(store, A)
    assert after[: len(before)] == before
    assert [r[2] for r in after[len(before) :] if r[1] == "Patient"] == [kept, released]
    assert [r[1] for r in after[len(before) :]] == ["Patient", "Provenance"] * 2  # each its own
    assert check(store).intact


def test_bundles_over_http_are_chained_with_their_audit_events(
    client: TestClient, store: Store
) -> None:
    """A transaction, a batch with a refused entry (its savepoint rolled back), reads that
    queue AuditEvents for the background writer, and a Synthea Bundle: all verify."""
    fhir = {"Content-Type": "application/fhir+json"}
    good = {"resource": patient(), "request": {"method": "POST", "url": "Patient"}}
    bad = {"resource": patient(gender="robot"), "request": {"method": "POST", "url": "Patient"}}
    for kind, items in (("transaction", [good, good]), ("batch", [good, bad, good])):
        bundle = {"resourceType": "Bundle", "type": kind, "entry": items}
        assert client.post("/fhir", json=bundle, headers=fhir).status_code == 200
    assert client.get("/fhir/Patient?_count=5").status_code == 200
    synthea = sorted(data_path("synthea-r4-bundles").glob("*.json"))[0]
    assert client.post("/fhir", content=synthea.read_bytes(), headers=fhir).status_code == 200
    assert store.audit.flush()
    report = check(store)
    assert report.intact, report.findings
    with store.read() as conn:
        stored = conn.scalar(sa.select(sa.func.count()).select_from(resource))
    assert stored is not None and report.versions == stored  # nothing but current versions
    chained = [t for _s, t, _i, _v in entries(store, A)]
    assert chained.count("AuditEvent") >= 4  # two Bundles, a search, Synthea's


def test_numbers_jsonb_prints_differently_still_verify(store: Store) -> None:
    """jsonb keeps numbers as decimals printed without exponent; the digest must not care."""
    tricky = [1e16, 1e20, -0.0, 1.5e300, 1e-7, 12345678901234567890.0, -1e18, -1e19, 5e-324]
    with store.begin() as conn:
        repo = Repo(conn, Actor.job(A, "test"))
        pid = repo.create(patient()).id
        for value in tricky:
            repo.create(observation(pid, value))
    report = check(store)
    assert report.intact, report.findings


def test_canonical_form_is_what_jsonb_gives_back(store: Store) -> None:
    rng = random.Random(7)
    values: list[Any] = [1e16, 1e22, -0.0, 0.1, 2.0**63, 2.0**64, -(2.0**63), 1.8446744073709552e19]
    values += [rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30) for _ in range(2000)]
    values += [rng.randint(-(2**63), 2**64 - 1) for _ in range(50)]
    written = orjson.dumps({"z": 'e+ \u00e9\n\t"', "values": values, "a": {"k": [None, True]}})
    if store.is_postgres:
        with store.read() as conn:
            read = conn.scalar(sa.text(JSONB_ROUND_TRIP), {"j": written.decode()})
    else:
        read = written.decode()
    assert read is not None
    assert canonical(written) == canonical(read)
    assert canonical(written) != canonical(written.replace(b"0.1", b"0.2"))


# ---- edits made directly in the database ------------------------------------------------------


def test_an_edited_current_version_is_named(store: Store) -> None:
    ids = populate(store)
    changed = orjson.dumps(observation(ids["kept"], 39.5) | {"id": ids["obs"]}).decode()
    sql(store, "UPDATE resource SET content = :json WHERE id = :i", json=changed, i=ids["obs"])
    report = check(store)
    assert kinds(report) == {"version-altered": 1}
    found = report.findings[0]
    assert (found.facility, found.rtype, found.id, found.version_id) == (A, "Observation",
                                                                         ids["obs"], 1)  # fmt: skip
    assert found.seq == seq_of(store, "Observation", ids["obs"], 1)
    assert f"Observation/{ids['obs']}/_history/1" in found.message and "resource" in found.message


def test_an_edited_superseded_version_is_named(store: Store) -> None:
    ids = populate(store)
    forged = orjson.dumps(patient(id=ids["kept"], gender="other")).decode()
    n = sql(
        store,
        "UPDATE resource_version SET content = :json WHERE id = :i AND version_id = 1",
        json=forged,
        i=ids["kept"],
    )
    assert n == 1
    report = check(store)
    assert kinds(report) == {"version-altered": 1}
    found = report.findings[0]
    assert (found.rtype, found.id, found.version_id) == ("Patient", ids["kept"], 1)
    assert found.seq == seq_of(store, "Patient", ids["kept"], 1)
    assert "resource_version" in found.message


def test_a_backdated_version_is_named(store: Store) -> None:
    ids = populate(store)
    sql(store, "UPDATE resource SET last_updated = last_updated - 86400000000 WHERE id = :i",
        i=ids["obs"])  # fmt: skip
    report = check(store)
    assert kinds(report) == {"version-altered": 1}
    assert report.findings[0].id == ids["obs"]


def test_a_version_moved_to_another_facility_is_named_in_both(store: Store) -> None:
    ids = populate(store)
    sql(store, "UPDATE resource SET facility = :f WHERE id = :i", f="27999", i=ids["obs"])
    report = check(store)
    assert kinds(report) == {"version-altered": 1, "version-unrecorded": 1}
    by_kind = {f.kind: f for f in report.findings}
    assert by_kind["version-altered"].facility == A
    assert by_kind["version-unrecorded"].facility == "27999"
    assert kinds(check(store, "27999")) == {"version-unrecorded": 1}


def test_an_inserted_version_is_named(store: Store) -> None:
    ids = populate(store)
    forged = orjson.dumps(patient(id=ids["kept"], gender="other")).decode()
    sql(
        store,
        "INSERT INTO resource_version (rtype, id, version_id, last_updated, method, deleted, "
        "content, facility, patient_key) VALUES ('Patient', :i, 0, 1, 'PUT', false, :json, "
        ":f, :i)",
        i=ids["kept"],
        json=forged,
        f=A,
    )
    sql(
        store,
        "INSERT INTO resource (rtype, id, version_id, last_updated, method, deleted, content, "
        "facility, patient_key) VALUES ('Patient', 'ghost', 1, 1, 'POST', false, :json, :f, "
        "'ghost')",
        json=orjson.dumps(patient(id="ghost")).decode(),
        f=B,
    )
    report = check(store)
    assert kinds(report) == {"version-unrecorded": 2}
    named = {(f.facility, f.rtype, f.id, f.version_id) for f in report.findings}
    assert named == {(A, "Patient", ids["kept"], 0), (B, "Patient", "ghost", 1)}
    assert kinds(check(store, B)) == {"version-unrecorded": 1}  # one facility's view


def test_a_deleted_version_is_named(store: Store) -> None:
    ids = populate(store)
    sql(store, "DELETE FROM resource_version WHERE id = :i AND version_id = 1", i=ids["gone"])
    report = check(store)
    assert kinds(report) == {"version-missing": 1}
    found = report.findings[0]
    assert (found.rtype, found.id, found.version_id) == ("Patient", ids["gone"], 1)
    assert found.seq == seq_of(store, "Patient", ids["gone"], 1)


def test_a_deleted_entry_is_named_with_the_version_it_covered(store: Store) -> None:
    ids = populate(store)
    seq = seq_of(store, "Patient", ids["kept"], 2)
    sql(store, "DELETE FROM ledger_entry WHERE facility = :f AND seq = :s", f=A, s=seq)
    report = check(store)
    assert kinds(report) == {"entry-missing": 1, "version-unrecorded": 1}
    by_kind = {f.kind: f for f in report.findings}
    assert by_kind["entry-missing"].seq == seq
    assert f"entries {seq} deleted" in by_kind["entry-missing"].message
    assert (by_kind["version-unrecorded"].id, by_kind["version-unrecorded"].version_id) == (
        ids["kept"],
        2,
    )


def test_the_last_entries_deleted_are_named_by_the_head(store: Store) -> None:
    populate(store)
    last = len(entries(store, A))
    sql(store, "DELETE FROM ledger_entry WHERE facility = :f AND seq >= :s", f=A, s=last - 1)
    report = check(store)
    assert report.counts["entry-missing"] == 1
    missing = next(f for f in report.findings if f.kind == "entry-missing")
    assert missing.seq == last - 1 and f"{last - 1}–{last}" in missing.message
    assert report.counts["version-unrecorded"] == 2


def test_an_edited_entry_is_named(store: Store) -> None:
    ids = populate(store)
    seq = seq_of(store, "Observation", ids["obs"], 1)
    sql(
        store, "UPDATE ledger_entry SET version_id = 7 WHERE facility = :f AND seq = :s", f=A, s=seq
    )
    report = check(store)
    # The entry no longer hashes right, points at nothing, and its version has lost its entry.
    assert kinds(report) == {"entry-altered": 1, "version-missing": 1, "version-unrecorded": 1}
    altered = next(f for f in report.findings if f.kind == "entry-altered")
    assert altered.seq == seq and f"ledger entry {seq} altered" in altered.message


def test_an_entry_rewritten_with_its_hash_breaks_the_next_link(store: Store) -> None:
    """Someone edits a version and its entry's digest and hash: the next entry names it."""
    ids = populate(store)
    seq = seq_of(store, "Observation", ids["obs"], 1)
    _forge_version_and_rehash(store, ids, seq, rehash_rest=False)
    report = check(store)
    assert kinds(report) == {"chain-broken": 1}
    assert report.findings[0].seq == seq + 1
    assert f"entry {seq + 1} does not follow entry {seq}" in report.findings[0].message


def test_a_whole_rewrite_shows_only_against_a_checkpoint(store: Store) -> None:
    """Rehashing everything after the edit (and the head) leaves a consistent chain: only a
    signed checkpoint made before shows it, which is why checkpoints exist."""
    ids = populate(store)
    chain = facility_chain()
    with store.begin() as conn:
        made = checkpoints.make(conn, A, chain.signer())
    seq = seq_of(store, "Observation", ids["obs"], 1)
    _forge_version_and_rehash(store, ids, seq, rehash_rest=True)
    without = check(store)
    assert kinds(without) == {"checkpoint-mismatch": 1}
    assert without.findings[0].seq == made.seq
    assert "the chain was rewritten up to it" in without.findings[0].message


def _forge_version_and_rehash(
    store: Store, ids: dict[str, str], seq: int, *, rehash_rest: bool
) -> None:
    forged = orjson.dumps(observation(ids["kept"], 35.0) | {"id": ids["obs"]}).decode()
    sql(store, "UPDATE resource SET content = :json WHERE id = :i", json=forged, i=ids["obs"])
    with store.begin() as conn:
        row = conn.execute(
            sa.text("SELECT rtype, id, version_id, last_updated, method, deleted, "
                    "CAST(content AS TEXT), facility, patient_key FROM resource WHERE id = :i"),
            {"i": ids["obs"]},
        ).one()  # fmt: skip
        e = ledger_entry.c
        rows = conn.execute(
            sa.select(e.seq, e.rtype, e.id, e.version_id, e.digest, e.prev)
            .where(e.facility == A, e.seq >= seq)
            .order_by(e.seq)
        ).all()
        prev = bytes(rows[0].prev)
        for r in rows if rehash_rest else rows[:1]:
            digest = ledger.version_digest(tuple(row)) if r.seq == seq else bytes(r.digest)
            new = ledger.entry_hash(prev, A, r.seq, r.rtype, r.id, r.version_id, digest)
            conn.execute(
                ledger_entry.update()
                .where(e.facility == A, e.seq == r.seq)
                .values(digest=digest, prev=prev, hash=new)
            )
            prev = new
        if rehash_rest:
            conn.execute(ledger_head.update().where(ledger_head.c.facility == A).values(hash=prev))


def test_an_edited_head_is_named(store: Store) -> None:
    populate(store)
    with store.begin() as conn:
        conn.execute(ledger_head.update().where(ledger_head.c.facility == B).values(hash=b"x" * 32))
    report = check(store)
    assert kinds(report) == {"head-mismatch": 1}
    assert report.findings[0].facility == B


# ---- checkpoints ------------------------------------------------------------------------------


def facility_chain(**leaf: Any) -> Chain:
    options = {"start": TODAY - timedelta(days=1), "days": 365, **leaf}
    return make_chain("Trạm Y tế 27001", **options)


def test_a_checkpoint_signs_the_head_and_verifies_against_its_anchor(store: Store) -> None:
    populate(store)
    chain = facility_chain()
    with store.begin() as conn:
        made = checkpoints.make(conn, A, chain.signer())
        again = checkpoints.make(conn, A, chain.signer())  # nothing new: the same checkpoint
    assert again == made
    assert made.seq == len(entries(store, A))
    report = check(store, anchors=[chain.root.cert])
    assert report.intact and report.trusted
    summary = next(c for c in report.chains if c.facility == A)
    assert (summary.checkpoints, summary.last_checkpoint, summary.unsigned) == (1, made.seq, 0)
    with unit(store, integrator(A), write=True) as repo:
        repo.create(patient())
    summary = next(c for c in check(store).chains if c.facility == A)
    assert summary.unsigned == len(entries(store, A)) - made.seq > 0


def test_a_checkpoint_verifies_with_another_jose_library(store: Store) -> None:
    populate(store)
    chain = facility_chain()
    with store.begin() as conn:
        made = checkpoints.make(conn, A, chain.signer())
    pem = chain.leaf.cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    registry = jws.JWSRegistry(algorithms=["ES256"])
    registry.max_header_length = 16_000  # x5c carries three certificates
    token = jws.deserialize_compact(made.jws, ECKey.import_key(pem), registry=registry)
    payload = orjson.loads(token.payload)
    assert payload["facility"] == A and payload["seq"] == made.seq
    assert payload["hash"] == made.hash.hex()


def test_a_tampered_checkpoint_is_named(store: Store) -> None:
    populate(store)
    chain = facility_chain()
    with store.begin() as conn:
        made = checkpoints.make(conn, A, chain.signer())
    with store.begin() as conn:
        conn.execute(
            ledger_checkpoint.update()
            .where(ledger_checkpoint.c.facility == A)
            .values(hash=b"\x00" * 32)
        )
    report = check(store, anchors=[chain.root.cert])
    assert kinds(report) == {"checkpoint-mismatch": 1, "checkpoint-signature": 1}
    signature = next(f for f in report.findings if f.kind == "checkpoint-signature")
    assert signature.seq == made.seq and "signed payload differs" in signature.message


def test_a_forged_signature_is_named(store: Store) -> None:
    populate(store)
    chain = facility_chain()
    with store.begin() as conn:
        made = checkpoints.make(conn, A, chain.signer())
    head, body, sig = made.jws.split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    with store.begin() as conn:
        conn.execute(ledger_checkpoint.update().values(jws=f"{head}.{body}.{flipped}"))
    report = check(store)
    # The JWS is no longer the one its digest names (what a later checkpoint would link to).
    assert kinds(report) == {"checkpoint-signature": 1, "checkpoint-link": 1}
    signature = next(f for f in report.findings if f.kind == "checkpoint-signature")
    assert "signature invalid" in signature.message
    with store.begin() as conn:
        conn.execute(ledger_checkpoint.update().values(jws="not a jws"))
    assert "unreadable" in check(store).findings[0].message


def test_a_checkpoint_from_an_untrusted_chain_is_named(store: Store) -> None:
    populate(store)
    with store.begin() as conn:
        checkpoints.make(conn, A, facility_chain().signer())
    stranger = facility_chain()  # another root: not the one the province trusts
    report = check(store, anchors=[stranger.root.cert])
    assert kinds(report) == {"checkpoint-signature": 1}
    assert "not trusted" in report.findings[0].message
    assert check(store).intact  # without anchors the signature is only self-consistent


def test_checkpoint_refuses_an_empty_ledger_and_an_expired_certificate(store: Store) -> None:
    refused = checkpoints.CheckpointError
    with store.begin() as conn, pytest.raises(refused, match="no entries to sign"):
        checkpoints.make(conn, A, facility_chain().signer())
    populate(store)
    expired = facility_chain(start=TODAY - timedelta(days=400), days=30)
    with store.begin() as conn, pytest.raises(refused, match="not valid at signing"):
        checkpoints.make(conn, A, expired.signer())
    with store.read() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(ledger_checkpoint)) == 0


# ---- concurrency, progress, sealing -----------------------------------------------------------


def test_concurrent_writers_of_one_facility_make_one_unbroken_chain(store: Store) -> None:
    per_thread, threads = 25, 3
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with unit(store, integrator(A), write=True) as repo:
                    repo.create(patient(birthDate=f"19{n}{i % 10}-01-01"))
        except BaseException as exc:  # reported below, with the thread's failure
            errors.append(exc)

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    chain = entries(store, A)
    assert [s for s, *_ in chain] == list(range(1, len(chain) + 1))
    assert sum(1 for _s, t, _i, _v in chain if t == "Patient") == per_thread * threads
    report = check(store)
    assert report.intact, report.findings


def test_a_committing_writer_holds_the_head_until_its_commit_ends(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first writer's commit stops after locking the head; the second writer's commit waits
    for it (without the lock both would take the same seq) and continues the chain after it."""
    populate(store)
    locked, release = threading.Event(), threading.Event()
    ids: dict[str, str] = {}
    errors: list[BaseException] = []
    move = ledger._move_heads

    def paused_move(conn: sa.Connection, moved: list[tuple[str, int, bytes]]) -> None:
        if threading.current_thread().name == "first":
            locked.set()
            release.wait(10)
        move(conn, moved)

    monkeypatch.setattr(ledger, "_move_heads", paused_move)
    monkeypatch.setattr(ledger, "SMALL", 0)  # the COPY path, which calls _move_heads

    def write(name: str) -> None:
        try:
            with store.begin() as conn:
                ids[name] = Repo(conn, Actor.job(A, name)).create(patient()).id
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=write, args=("first",), name="first")
    second = threading.Thread(target=write, args=("second",), name="second")
    first.start()
    assert locked.wait(10)
    second.start()
    second.join(0.5)
    blocked = second.is_alive()
    release.set()
    first.join(30)
    second.join(30)
    assert not errors
    assert blocked
    # Right after the first's entries: its Patient, then that Patient's Provenance.
    assert (
        seq_of(store, "Patient", ids["second"], 1) == seq_of(store, "Patient", ids["first"], 1) + 2
    )
    assert check(store).intact


def test_an_open_transaction_holds_no_lock_before_its_commit(store: Store) -> None:
    """On PostgreSQL another facility's writer and this facility's next writer go on while a
    transaction is open: the chain follows the order of commits."""
    if not store.is_postgres:
        pytest.skip("SQLite has one writer at a time whatever the ledger does")
    populate(store)
    with store.begin() as conn:
        early = Repo(conn, Actor.job(A, "early")).create(patient()).id
        with store.begin() as other:  # a second connection, while the first is still open
            late = Repo(other, Actor.job(A, "late")).create(patient()).id
    # Entries follow the commits, not the writes (each write's Provenance may come between).
    assert seq_of(store, "Patient", late, 1) < seq_of(store, "Patient", early, 1)
    assert check(store).intact


def test_two_servers_writing_in_turn_keep_one_chain(
    store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each process remembers the heads it wrote, to append in one round trip; when another
    process wrote since, that guess is wrong and the commit falls back to locking first."""
    guesses: list[bool] = []
    attempt = ledger._write_if_heads_are

    def counted(*args: Any) -> Any:
        result = attempt(*args)
        guesses.append(result is None)
        return result

    monkeypatch.setattr(ledger, "_write_if_heads_are", counted)
    other = open_store(database_url)
    try:
        ids = []
        for writer in (store, store, other, other, store, store):
            with unit(writer, integrator(A), write=True) as repo:
                ids.append(repo.create(patient()).id)
    finally:
        other.dispose()
    chain = entries(store, A)
    assert [s for s, *_ in chain] == list(range(1, len(chain) + 1))
    seqs = [seq_of(store, "Patient", i, 1) for i in ids]
    assert seqs == sorted(seqs)
    assert check(store).intact
    if store.is_postgres:  # SQLite never guesses: its statements cost no round trip
        assert True in guesses and False in guesses


def test_writers_of_two_facilities_in_opposite_orders_do_not_deadlock(store: Store) -> None:
    errors: list[BaseException] = []

    def write(order: tuple[str, str]) -> None:
        try:
            for i in range(15):
                writes = [
                    prepare_write(patient(id=f"{order[0]}-{i}-{f}"), "POST", facility=f)
                    for f in order
                ]
                with store.begin() as conn:
                    store_writes(conn, writes, "")
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=write, args=(o,)) for o in ((A, B), (B, A))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    assert len(entries(store, A)) == len(entries(store, B)) == 30
    assert check(store).intact


def test_progress_reports_every_entry(store: Store) -> None:
    populate(store)
    seen: list[tuple[int, int]] = []
    check(store, progress=lambda done, total: seen.append((done, total)), page=3)
    total = len(entries(store, A)) + len(entries(store, B))
    assert seen[-1] == (total, total)
    assert [d for d, _t in seen] == sorted(d for d, _t in seen) and len(seen) > 2


def test_seal_chains_what_was_stored_before_the_ledger(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger, "RECORD", False)
    populate(store)
    monkeypatch.setattr(ledger, "RECORD", True)
    before = check(store)
    assert set(before.counts) == {"version-unrecorded"}
    with store.begin() as conn:
        sealed = ledger.seal(conn, batch=4)
    assert sealed == before.counts["version-unrecorded"]
    assert check(store).intact
    with store.begin() as conn:
        assert ledger.seal(conn) == 0


def test_genesis_differs_per_facility() -> None:
    assert genesis(A) != genesis(B) and len(genesis(A)) == 32


# ---- the command ------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, database_url: str, store: Store) -> Store:
    from rich.console import Console

    monkeypatch.setenv("BENHAN_DATABASE_URL", database_url)
    monkeypatch.setattr(ledger_commands, "out", Console(width=400))
    return store


def pem_files(tmp_path: Path, chain: Chain) -> tuple[Path, Path]:
    key = tmp_path / "facility.key.pem"
    key.write_bytes(
        chain.leaf.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    certs = tmp_path / "facility.chain.pem"
    certs.write_bytes(
        b"".join(
            c.cert.public_bytes(serialization.Encoding.PEM)
            for c in (chain.leaf, chain.intermediate, chain.root)
        )
    )
    return key, certs


def test_audit_verify_exits_0_when_intact_and_1_naming_the_break(cli: Store) -> None:
    ids = populate(cli)
    result = runner.invoke(ledger_commands.audit_app, ["verify"])
    assert result.exit_code == 0, result.output
    assert "intact" in result.output
    sql(cli, "DELETE FROM resource_version WHERE id = :i AND version_id = 1", i=ids["kept"])
    result = runner.invoke(ledger_commands.audit_app, ["verify", "--facility", A])
    assert result.exit_code == 1
    assert (
        "version-missing" in result.output and f"Patient/{ids['kept']}/_history/1" in result.output
    )
    assert "BROKEN" in result.output
    assert runner.invoke(ledger_commands.audit_app, ["verify", "--facility", B]).exit_code == 0


def test_audit_checkpoint_signs_with_a_pem_key_and_chain(cli: Store, tmp_path: Path) -> None:
    populate(cli)
    chain = facility_chain()
    key, certs = pem_files(tmp_path, chain)
    result = runner.invoke(
        ledger_commands.audit_app,
        ["checkpoint", "--facility", A, "--key", str(key), "--chain", str(certs)],
    )
    assert result.exit_code == 0, result.output
    with cli.read() as conn:
        assert conn.scalar(sa.select(ledger_checkpoint.c.seq)) == len(entries(cli, A))
    anchor = tmp_path / "root.pem"
    anchor.write_bytes(chain.root.cert.public_bytes(serialization.Encoding.PEM))
    verified = runner.invoke(ledger_commands.audit_app, ["verify", "--anchor", str(anchor)])
    assert verified.exit_code == 0, verified.output


def test_audit_checkpoint_refuses_bad_keys_and_files(cli: Store, tmp_path: Path) -> None:
    populate(cli)
    key, certs = pem_files(tmp_path, facility_chain())
    (tmp_path / "other").mkdir()
    _, other_certs = pem_files(tmp_path / "other", facility_chain())

    def run(*args: str, facility: str = A) -> tuple[int, str]:
        command = ["checkpoint", "--facility", facility, *args]
        result = runner.invoke(ledger_commands.audit_app, command)
        return result.exit_code, result.output

    code, output = run("--key", str(key), "--chain", str(other_certs))
    assert code == 2 and "does not belong to the first certificate" in output
    code, output = run("--key", str(tmp_path / "missing.pem"), "--chain", str(certs))
    assert code == 2 and "cannot read" in output
    code, output = run("--key", str(certs), "--chain", str(certs))
    assert code == 2 and "no PEM private key" in output
    code, output = run("--key", str(key), "--chain", str(key))
    assert code == 2 and "no PEM certificate" in output
    code, output = run("--key", str(key), "--chain", str(certs), facility="99999")
    assert code == 2 and "no entries to sign" in output
    with cli.read() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(ledger_checkpoint)) == 0


def test_audit_seal_chains_the_old_history_and_verify_checks_anchor_files(
    cli: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger, "RECORD", False)
    populate(cli)
    monkeypatch.setattr(ledger, "RECORD", True)
    assert runner.invoke(ledger_commands.audit_app, ["verify"]).exit_code == 1
    sealed = runner.invoke(ledger_commands.audit_app, ["seal"])
    assert sealed.exit_code == 0 and "versions chained" in sealed.output
    assert runner.invoke(ledger_commands.audit_app, ["verify"]).exit_code == 0
    missing = runner.invoke(ledger_commands.audit_app, ["verify", "--anchor", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    (tmp_path / "junk.pem").write_text("not a certificate")
    junk = runner.invoke(
        ledger_commands.audit_app, ["verify", "--anchor", str(tmp_path / "junk.pem")]
    )
    assert junk.exit_code == 2 and "no PEM certificate" in junk.output


def test_audit_checkpoint_signs_with_the_facilitys_own_certificate(
    cli: Store, tmp_path: Path
) -> None:
    from benhan.signing import pki

    populate(cli)
    missing = runner.invoke(ledger_commands.audit_app, ["checkpoint", "--facility", A])
    assert missing.exit_code == 2 and "Organization/" in missing.output  # no certificate yet
    with cli.begin() as conn:
        pki.issue(conn, kind="facility", owner=f"Organization/{A}", common_name="Bệnh viện A",
                  facility=A)  # fmt: skip
        anchors = pki.trust_anchors(conn)
    result = runner.invoke(ledger_commands.audit_app, ["checkpoint", "--facility", A])
    assert result.exit_code == 0, result.output
    anchor = tmp_path / "anchors.pem"
    anchor.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in anchors))
    verified = runner.invoke(ledger_commands.audit_app, ["verify", "--anchor", str(anchor)])
    assert verified.exit_code == 0, verified.output
    half = runner.invoke(ledger_commands.audit_app, ["checkpoint", "--facility", A, "--key", "k"])
    assert half.exit_code == 2 and "--chain" in half.output
