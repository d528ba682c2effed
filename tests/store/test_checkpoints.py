"""Checkpoints linked to the facility's previous one and to the store's newest, on both backends:
a checkpoint deleted, replaced by a forgery signed with the same key, or a whole facility's chain
rewritten with all its checkpoints re-signed, each named by `verify` where the link breaks."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from benhan.fhir.primitives import from_micros, instant, micros, now
from benhan.store import checkpoints
from benhan.store.checkpoints import FIRST, Checkpoint, digest_of
from benhan.store.database import Store, open_store
from benhan.store.migrations import upgrade
from benhan.store.schema import ledger_checkpoint, ledger_entry
from benhan.store.unit import unit
from tests.signing.certs import Chain, make_chain
from tests.store.test_ledger import (
    A,
    B,
    _forge_version_and_rehash,
    check,
    integrator,
    kinds,
    patient,
    populate,
    seq_of,
)


@pytest.fixture(scope="module")
def keys() -> dict[str, Chain]:
    """Each facility's key and certificate chain (one test root)."""
    return {A: make_chain("Trạm Y tế 27001"), B: make_chain("Trạm Y tế 27002")}


def grow(store: Store, facility: str) -> None:
    with unit(store, integrator(facility), write=True) as repo:
        repo.create(patient())


def sign(store: Store, keys: dict[str, Chain], facility: str) -> Checkpoint:
    grow(store, facility)  # a new head: a checkpoint at an unchanged one is the same checkpoint
    with store.begin() as conn:
        return checkpoints.make(conn, facility, keys[facility].signer())


def payload(made: Checkpoint | str) -> dict[str, Any]:
    jws = made.jws if isinstance(made, Checkpoint) else made
    body = jws.split(".")[1]
    return dict(orjson.loads(checkpoints._unb64url(body)))


def interleaved(store: Store, keys: dict[str, Chain]) -> list[Checkpoint]:
    """a1 ← b1 ← a2 ← b2 ← a3: the store's chain of checkpoints (after `populate`)."""
    return [sign(store, keys, f) for f in (A, B, A, B, A)]


def rows(store: Store) -> dict[tuple[str, int], sa.Row[Any]]:
    with store.read() as conn:
        found = conn.execute(sa.select(ledger_checkpoint)).all()
    return {(r.facility, r.seq): r for r in found}


def replace(store: Store, old: Checkpoint, jws: str, **values: Any) -> None:
    """What someone writing straight into the database does: a new JWS and its digest."""
    c = ledger_checkpoint.c
    with store.begin() as conn:
        conn.execute(
            ledger_checkpoint.update()
            .where(c.facility == old.facility, c.seq == old.seq)
            .values(jws=jws, digest=digest_of(jws), **values)
        )


def forged(keys: dict[str, Chain], original: Checkpoint, **changes: Any) -> str:
    """The checkpoint's payload with `changes`, signed again with the facility's own key."""
    return checkpoints._sign(keys[original.facility].signer(), payload(original) | changes)


def a_second_later(keys: dict[str, Chain], original: Checkpoint) -> tuple[str, int]:
    """The same checkpoint signed again a second later: a new JWS, a new digest."""
    later = original.at + 1_000_000
    return forged(keys, original, at=instant(from_micros(later))), later


def links(report: Any) -> list[tuple[str, int | None, str]]:
    return sorted((f.facility, f.seq, f.message) for f in report.findings)


# ---- intact ---------------------------------------------------------------------------------


def test_each_checkpoint_follows_its_facilitys_previous_and_the_stores_newest(
    store: Store, keys: dict[str, Chain]
) -> None:
    populate(store)
    a1, b1, a2, b2, a3 = interleaved(store, keys)
    assert [payload(c)["v"] for c in (a1, b1, a2, b2, a3)] == [2] * 5
    assert [payload(c)["prev"] for c in (a1, b1, a2, b2, a3)] == [
        None, None, a1.digest.hex(), b1.digest.hex(), a2.digest.hex()
    ]  # fmt: skip
    follows = [payload(c)["follows"] for c in (a1, b1, a2, b2, a3)]
    assert follows[0] is None
    assert follows[1:] == [
        {"facility": c.facility, "seq": c.seq, "digest": c.digest.hex()} for c in (a1, b1, a2, b2)
    ]
    stored = rows(store)
    assert bytes(stored[A, a1.seq].follows) == FIRST
    assert bytes(stored[B, b2.seq].follows) == a2.digest
    assert all(bytes(r.digest) == digest_of(r.jws) for r in stored.values())
    roots = [keys[A].root.cert, keys[B].root.cert]
    report = check(store, anchors=roots)
    assert report.intact, report.findings
    assert {c.facility: c.checkpoints for c in report.chains} == {A: 3, B: 2}


def test_a_checkpoint_at_an_unchanged_head_is_the_same_one(
    store: Store, keys: dict[str, Chain]
) -> None:
    populate(store)
    b1 = interleaved(store, keys)[1]
    grow(store, A)  # the store's newest moves on; B's chain does not
    with store.begin() as conn:
        again = checkpoints.make(conn, B, keys[B].signer())
    assert again.seq != b1.seq and again.jws == rows(store)[B, again.seq].jws
    with store.begin() as conn:
        assert checkpoints.make(conn, B, keys[B].signer()) == again
    assert len(rows(store)) == 5


# ---- deleted, replaced, rewritten -------------------------------------------------------------


def test_a_deleted_checkpoint_is_named_by_the_next_of_its_facility_and_of_the_store(
    store: Store, keys: dict[str, Chain]
) -> None:
    populate(store)
    a1, _b1, a2, b2, a3 = interleaved(store, keys)
    c = ledger_checkpoint.c
    with store.begin() as conn:
        conn.execute(ledger_checkpoint.delete().where(c.facility == A, c.seq == a2.seq))
    report = check(store)
    assert kinds(report) == {"checkpoint-link": 2}
    (fa, sa_, ma), (fb, sb, mb) = links(report)
    assert (fa, sa_) == (A, a3.seq) and f"does not follow the checkpoint at seq {a1.seq}" in ma
    assert (fb, sb) == (B, b2.seq)
    assert f"the checkpoint it follows (facility '{A}', seq {a2.seq}) was deleted" in mb


def test_the_first_checkpoint_deleted_is_named_too(store: Store, keys: dict[str, Chain]) -> None:
    populate(store)
    a1, b1, a2, *_ = interleaved(store, keys)
    c = ledger_checkpoint.c
    with store.begin() as conn:
        conn.execute(ledger_checkpoint.delete().where(c.facility == A, c.seq == a1.seq))
    report = check(store)
    assert links(report)[0][:2] == (A, a2.seq)
    assert "the checkpoint before it was deleted" in links(report)[0][2]
    assert links(report)[1][:2] == (B, b1.seq)  # b1 followed a1
    assert kinds(report) == {"checkpoint-link": 2}


def test_a_checkpoint_replaced_by_a_forgery_signed_with_the_same_key_is_named(
    store: Store, keys: dict[str, Chain]
) -> None:
    """The forgery is well signed, at the right seq and hash, with the right links and its own
    digest stored: only the checkpoints that followed the original show it."""
    populate(store)
    _a1, _b1, a2, b2, a3 = interleaved(store, keys)
    jws, later = a_second_later(keys, a2)
    replace(store, a2, jws, at=later)
    report = check(store, anchors=[keys[A].root.cert, keys[B].root.cert])
    assert kinds(report) == {"checkpoint-link": 2}
    assert [(f, s) for f, s, _m in links(report)] == [(A, a3.seq), (B, b2.seq)]
    assert {c.facility: c.checkpoints for c in report.chains} == {A: 3, B: 2}  # each one holds


def test_a_replaced_checkpoint_whose_digest_was_left_is_named_itself(
    store: Store, keys: dict[str, Chain]
) -> None:
    populate(store)
    _a1, _b1, a2, b2, a3 = interleaved(store, keys)
    jws, later = a_second_later(keys, a2)
    c = ledger_checkpoint.c
    with store.begin() as conn:  # the old digest kept: what b2 follows still finds a row
        conn.execute(
            ledger_checkpoint.update()
            .where(c.facility == A, c.seq == a2.seq)
            .values(jws=jws, at=later)
        )
    report = check(store)
    named = {(f, s) for f, s, _m in links(report)}
    assert named == {(A, a2.seq), (A, a3.seq), (B, b2.seq)}
    assert "its stored digest is not its JWS's" in next(
        m for f, s, m in links(report) if (f, s) == (A, a2.seq)
    )


def test_a_facility_that_rewrites_its_chain_and_re_signs_all_its_checkpoints_is_named_by_another(
    store: Store, keys: dict[str, Chain]
) -> None:
    """Facility A edits a version, recomputes its whole chain and head, and signs each of its
    checkpoints again with its own key, links and all. A's own chain then holds; B's
    checkpoints, which followed A's, name the checkpoints of A that are gone."""
    ids = populate(store)
    a1, b1, a2, b2, a3 = interleaved(store, keys)
    _forge_version_and_rehash(store, ids, seq_of(store, "Observation", ids["obs"], 1),
                              rehash_rest=True)  # fmt: skip
    assert kinds(check(store, A)) == {"checkpoint-mismatch": 3}  # before A re-signs
    previous: bytes | None = None
    for old in (a1, a2, a3):
        new_hash = _entry_hash(store, A, old.seq)
        jws = forged(keys, old, hash=new_hash.hex(),
                     prev=previous.hex() if previous else None)  # fmt: skip
        replace(store, old, jws, hash=new_hash)
        previous = digest_of(jws)
    assert check(store, A).intact  # A alone: its checkpoints' own links hold
    report = check(store, anchors=[keys[A].root.cert, keys[B].root.cert])
    assert kinds(report) == {"checkpoint-link": 2}
    assert [(f, s) for f, s, _m in links(report)] == [(B, b1.seq), (B, b2.seq)]
    assert f"(facility '{A}', seq {a1.seq}) was deleted or replaced" in links(report)[0][2]
    assert f"(facility '{A}', seq {a2.seq}) was deleted or replaced" in links(report)[1][2]


def _entry_hash(store: Store, facility: str, seq: int) -> bytes:
    e = ledger_entry.c
    with store.read() as conn:
        found = conn.scalar(sa.select(e.hash).where(e.facility == facility, e.seq == seq))
    assert found is not None
    return bytes(found)


# ---- version 1 --------------------------------------------------------------------------------


def version_1(store: Store, keys: dict[str, Chain], facility: str) -> Checkpoint:
    """A checkpoint as benhan made them before links: the four fields, no `v`."""
    grow(store, facility)
    with store.begin() as conn:
        seq, chained = checkpoints._head(conn, facility)
        at = micros(now())
        old = checkpoints._payload(facility, seq, chained, at)
        jws = checkpoints._sign(keys[facility].signer(), old)
        conn.execute(
            ledger_checkpoint.insert().values(
                facility=facility, seq=seq, hash=chained, at=at, jws=jws, digest=digest_of(jws)
            )
        )
    return Checkpoint(facility, seq, chained, at, jws)


def test_checkpoints_made_before_links_still_verify_and_the_next_ones_follow_them(
    store: Store, keys: dict[str, Chain]
) -> None:
    populate(store)
    old_a, old_b = version_1(store, keys, A), version_1(store, keys, B)
    assert "v" not in payload(old_a)
    new_a = sign(store, keys, A)
    assert payload(new_a)["prev"] == old_a.digest.hex()
    assert payload(new_a)["follows"]["digest"] == old_b.digest.hex()  # the store's newest
    report = check(store, anchors=[keys[A].root.cert, keys[B].root.cert])
    assert report.intact, report.findings
    assert {c.facility: c.checkpoints for c in report.chains} == {A: 2, B: 1}


def test_a_checkpoint_without_links_after_linked_ones_is_named(
    store: Store, keys: dict[str, Chain]
) -> None:
    """A forger cannot dodge the links by signing the old format."""
    populate(store)
    sign(store, keys, A)
    late = version_1(store, keys, A)
    report = check(store)
    assert kinds(report) == {"checkpoint-link": 1}
    assert report.findings[0].seq == late.seq and "inserted" in report.findings[0].message


def test_the_migration_gives_old_checkpoints_their_digest(database_url: str) -> None:
    store = open_store(database_url)
    try:
        upgrade(store, "0006")  # before the links
        jws = "header.payload.signature"
        with store.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO ledger_checkpoint (facility, seq, hash, at, jws) "
                        "VALUES (:f, 3, :h, 1, :j)"),
                {"f": A, "h": b"\x01" * 32, "j": jws},
            )  # fmt: skip
        store.create_schema()
        stored = rows(store)[A, 3]
        assert bytes(stored.digest) == digest_of(jws) and stored.follows is None
    finally:
        store.dispose()


# ---- several servers --------------------------------------------------------------------------


def test_servers_checkpointing_at_once_keep_one_chain_of_checkpoints(
    store: Store, database_url: str, keys: dict[str, Chain]
) -> None:
    """Two servers (engines) sign both facilities' chains as fast as they can while writing:
    no checkpoint follows the same one as another, and everything verifies."""
    populate(store)
    other = open_store(database_url)
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def server(s: Store) -> None:
        try:
            start.wait()
            for i in range(8):
                facility = (A, B)[i % 2]
                grow(s, facility)
                with s.begin() as conn:
                    checkpoints.make(conn, facility, keys[facility].signer())
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=server, args=(s,)) for s in (store, other)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    other.dispose()
    assert not errors
    stored = rows(store)
    follows = [bytes(r.follows) for r in stored.values()]
    assert len(set(follows)) == len(follows) and follows.count(FIRST) == 1
    digests = {bytes(r.digest) for r in stored.values()}
    assert sum(f not in digests for f in follows) == 1  # only the first follows nothing stored
    report = check(store)
    assert report.intact, report.findings


def test_a_checkpoint_being_made_does_not_hold_up_the_facilitys_writers(
    store: Store, keys: dict[str, Chain]
) -> None:
    if not store.is_postgres:
        pytest.skip("SQLite has one writer at a time whatever the checkpoint does")
    populate(store)
    written = threading.Event()

    def write() -> None:
        grow(store, A)
        written.set()

    with store.begin() as conn:
        checkpoints.make(conn, A, keys[A].signer())
        writer = threading.Thread(target=write)
        writer.start()
        finished_first = written.wait(30)  # while the checkpoint's transaction is still open
    writer.join()
    assert finished_first
    assert check(store).intact
