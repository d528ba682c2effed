"""Matching as records arrive: the index tables, Patient matching, the inbox drain."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from benhan.access import Actor
from benhan.identity import index, online
from benhan.identity.blocking import DEFAULT_RULES
from benhan.identity.columns import ROW, columns_of, row_of, to_columns
from benhan.identity.dedupe import link
from benhan.identity.persons import members, patients, person_of, relink
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.store.schema import mpi_inbox, mpi_key, mpi_model, mpi_pair, mpi_record, mpi_term

from .conftest import HUB, SynthCsv
from .test_persons import create, patient, persons


def test_text_keys_pair_exactly_the_records_the_batch_blocking_pairs(
    province_csv: SynthCsv,
) -> None:
    """index.part_values must agree with columns.to_columns, or online matching would miss
    (or add) candidates batch linkage finds."""
    people = province_csv.people[:3000]
    cols = to_columns(people)
    for rule in DEFAULT_RULES:
        codes = rule.keys(cols)
        texts = [next((k for k in index.keys_of(p) if k.startswith(rule.name + index.SEP)), None)
                 for p in people]  # fmt: skip
        assert [c < 0 for c in codes] == [t is None for t in texts], rule.name
        by_text: dict[str, set[int]] = {}
        for code, text in zip(codes.tolist(), texts, strict=True):
            if text is not None:
                by_text.setdefault(text, set()).add(code)
        assert all(len(c) == 1 for c in by_text.values()), rule.name
        assert len(by_text) == len(set(codes[codes >= 0].tolist())), rule.name


def test_relink_indexes_every_record_and_empties_the_inbox(province: Store) -> None:
    with province.read() as conn:
        records = conn.execute(sa.select(sa.func.count()).select_from(mpi_record)).scalar_one()
        inbox = conn.execute(sa.select(sa.func.count()).select_from(mpi_inbox)).scalar_one()
        totals = dict(
            conn.execute(
                sa.select(mpi_term.c.value, mpi_term.c.n).where(mpi_term.c.kind == index.TOTAL)
            ).all()
        )
        assert index.current_model(conn) is not None
    assert records > 400 and inbox == 0
    assert totals["family"] == records  # every synthetic record has a family name


def test_an_index_stored_in_an_older_format_is_rebuilt_not_misread(province: Store) -> None:
    """Rows stored by an older benhan would score wrongly: its model counts as none, and the
    next drain relinks every record instead of matching against those rows."""
    with province.begin() as conn:
        q = sa.select(mpi_model.c.trained, mpi_model.c.content)
        trained, content = conn.execute(q).one()
        old = {k: v for k, v in orjson.loads(content).items() if k != "record_format"}
        conn.execute(
            mpi_model.update().where(mpi_model.c.trained == trained),
            {"content": orjson.dumps(old).decode()},
        )
        conn.execute(mpi_record.update().values(record="[]"))
        assert index.current_model(conn) is None
    create(province, "27001", patient("Phan Thị Lụa", "1990-05-06", "female"))
    done = online.drain(province, HUB)
    assert done.trained and done.failed == 0
    with province.read() as conn:
        assert index.current_model(conn) is not None
        stored = conn.execute(sa.select(mpi_record.c.record)).scalars().all()
    assert stored and all(len(orjson.loads(r)) == len(ROW) for r in stored)


def test_a_new_record_of_a_known_person_joins_their_person_as_it_arrives(
    province: Store,
) -> None:
    first = create(province, "27001", patient("Nguyễn Thị Hương", "1987-03-12", "female"))
    second = create(province, "27002", patient("Hoàng Văn Tú", "1950-06-30", "male"))
    assert online.drain(province, HUB).records == 2
    again = patient("NGUYEN THI HUONG", "1987-03-12", "female")
    again["telecom"] = [{"system": "phone", "value": "0912345678"}]
    # Same name and birth date, no identifier: the model decides; with the telephone of the
    # first record too, it is one person.
    with province.begin() as conn:
        Repo(conn, Actor.job("27001", "test")).update(
            "Patient", first, {**patient("Nguyễn Thị Hương", "1987-03-12", "female"),
                               "id": first, "telecom": again["telecom"]}
        )  # fmt: skip
    third = create(province, "27003", again)
    done = online.drain(province, HUB)
    assert done.records == 2 and not done.trained
    linked = [members(p) for p in persons(province) if first in members(p)]
    assert linked and set(linked[0]) >= {first, third} and second not in linked[0]


def test_an_updated_record_is_found_by_its_new_keys_only(province: Store) -> None:
    """Re-indexing replaces what the previous version added: after an update the key table
    holds exactly the new keys and the stored row is the new one; after a delete, nothing."""
    pid = create(province, "27001", patient("Đỗ Văn Khải", "1982-09-14", "male"))
    online.drain(province, HUB)
    with province.begin() as conn:
        changed = {**patient("Đỗ Văn Khánh", "1982-09-14", "male"), "id": pid}
        Repo(conn, Actor.job("27001", "test")).update("Patient", pid, changed)
    online.drain(province, HUB)

    def indexed_now() -> tuple[list[str], list[str], list[Any]]:
        with province.read() as conn:
            q = sa.select(mpi_key.c.key).where(mpi_key.c.patient_id == pid)
            keys = sorted(conn.execute(q).scalars())
            stored = index.indexed(conn, [pid]).get(pid)
            row = index.indexed_rows(conn, [pid]).get(pid, [])
        return keys, sorted(stored["keys"]) if stored else [], list(row)

    keys, recorded, row = indexed_now()
    assert keys and keys == recorded
    assert row[ROW.index("given")] == "khanh"  # folded
    assert not any("khai" in k for k in keys)
    with province.begin() as conn:
        Repo(conn, Actor.job("27001", "test")).delete("Patient", pid)
    online.drain(province, HUB)
    assert indexed_now() == ([], [], [])


def test_deleting_a_linked_record_takes_it_out_of_its_person(province: Store) -> None:
    a = create(province, "27001", patient("Lý Thị Mai", "1991-02-03", "female", "027191000555"))
    b = create(province, "27002", patient("LY THI MAI", "1991-02-03", "female", "027191000555"))
    online.drain(province, HUB)
    assert any({a, b} <= set(members(p)) for p in persons(province))
    with province.begin() as conn:
        Repo(conn, Actor.job("27002", "test")).delete("Patient", b)
    online.drain(province, HUB)
    assert not any(b in members(p) for p in persons(province))
    assert not any(a in members(p) for p in persons(province))  # a Person of one is none


def test_match_grades_candidates_and_explains_each_field(province: Store) -> None:
    a = create(province, "27001", patient("Đặng Thị Thu", "1979-11-05", "female", "027179000888"))
    online.drain(province, HUB)
    query = patient("DANG THI THU", "1979-11-05", "female", "027179000888")
    with province.read() as conn:
        found = online.match(conn, query)
        stranger = online.match(conn, patient("Đặng Thị Thu", "2001-01-01", "female"))
    assert found[0].patient_id == a and found[0].grade == "certain"
    assert found[0].reason == "same-id"
    fields = {w.comparison: w for w in found[0].explanation}
    assert fields["cccd"].level == "equal" and fields["cccd"].weight > 5
    assert fields["name"].level == "exact folded"
    assert all(c.patient_id != a for c in stranger)  # another birth year: another person


def test_match_without_a_model_says_so(store: Store) -> None:
    with store.read() as conn, pytest.raises(online.NoModel):
        online.match(conn, patient("Trần Văn Bình", "1975-01-20", "male"))


def test_online_and_batch_score_a_pair_alike(province: Store) -> None:
    """A record matched online gets the probability batch linkage gives the same pair, on the
    same records: same model, same population name frequencies, same rules."""
    a = create(province, "27001", patient("Vũ Văn Khánh", "1968-04-09", "male"))
    b = create(province, "27002", patient("VU VAN KHANH", "1968-09-04", "male"))  # swapped
    c = create(province, "27003", patient("Vũ Thị Khánh", "1968-04-09", "female"))
    relink(province, HUB)
    records = list(patients(province))
    linkage = link([person_of(r) for r in records])
    at = {r["id"]: i for i, r in enumerate(records)}
    batch = {
        (linkage.cols.ids[i], linkage.cols.ids[j]): float(p)
        for i, j, p in zip(linkage.ia, linkage.ib, linkage.probability, strict=True)
        if {at[a], at[b], at[c]} & {int(i), int(j)}
    }
    with province.read() as conn:
        got = {x.patient_id: x.probability for x in online.match(conn, records[at[b]], count=50)}
    pair = batch.get((a, b), batch.get((b, a)))
    assert pair is not None and pair >= online.POSSIBLE and np.isclose(got[a], pair, rtol=1e-9)
    assert c not in got  # a woman of the same name and birth date is another person


def test_every_write_path_queues_patients_for_matching(store: Store) -> None:
    pid = create(store, "27001", patient("Trần Văn Bình", "1975-01-20", "male"))
    with store.begin() as conn:
        Repo(conn, Actor.job("27001", "test")).delete("Patient", pid)
    with store.read() as conn:
        rows = conn.execute(sa.select(mpi_inbox.c.patient_id, mpi_inbox.c.version_id)).all()
    assert sorted(rows) == [(pid, 1), (pid, 2)]


def test_an_absurdly_long_name_is_indexed_on_every_backend(province: Store) -> None:
    long = patient("Nguyễn " + "Văn" * 400 + " Nam", "1990-01-01", "male")
    a = create(province, "27001", long)
    b = create(province, "27002", long)
    assert online.drain(province, HUB).failed == 0
    with province.read() as conn:
        keys = index.indexed(conn, [a])[a]["keys"]
        assert all(len(k) <= index.KEY_MAX for k in keys)
        assert b in index.candidates(conn, keys)


def test_one_record_that_cannot_be_matched_does_not_stop_the_others(
    province: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = create(province, "27001", patient("Cù Thị Lý", "1984-04-04", "female", "027184000777"))
    bad = create(province, "27002", patient("Cù Văn Sáu", "1960-06-06", "male"))
    twin = create(province, "27003", patient("CU THI LY", "1984-04-04", "female", "027184000777"))
    real = online.reindex

    def broken(conn: sa.Connection, facility: str, written: set[str], *rest: Any) -> int:
        if bad in written:
            raise RuntimeError("boom")
        return real(conn, facility, written, *rest)

    monkeypatch.setattr(online, "reindex", broken)
    done = online.drain(province, HUB, batch=10)
    assert done.failed == 1 and done.records == 2
    assert any({good, twin} <= set(members(p)) for p in persons(province))
    with province.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(mpi_inbox)).scalar_one() == 0


def test_a_large_batch_of_arrivals_each_finds_its_person(province: Store) -> None:
    """Matching a batch at once must not skip anyone's neighbours: 60 records of people the
    index knows (same CCCD) arrive together, and every one joins its person."""
    with province.read():
        originals = [
            r for r in patients(province)
            if any(i.get("system", "").endswith("cccd") for i in r.get("identifier", []))
        ][:60]  # fmt: skip
    assert len(originals) == 60
    copies = {}
    for r in originals:
        copy = {k: v for k, v in r.items() if k not in ("id", "meta")}
        copies[create(province, "27003", copy)] = r["id"]
    done = online.drain(province, HUB, batch=200)
    assert done.records == 60 and done.failed == 0
    together = {frozenset(members(p)) for p in persons(province)}
    assert all(any({new, old} <= m for m in together) for new, old in copies.items())


def test_the_index_writes_valid_persons(province: Store) -> None:
    from benhan.fhir.validation import validate

    found = persons(province)
    assert found
    for p in found[:50]:
        validate(p)  # written with the validator skipped: the shape must hold


def test_a_person_whose_members_pair_is_in_review_takes_a_new_record(province: Store) -> None:
    """Two members of one Person (linked through a third) can be a pair in the review band;
    matching a new record of that Person must leave that pair's queue entry alone."""
    bhyt = [{"system": "https://benhan.vn/sid/bhyt", "value": "HC4270123456789"}]
    a = create(province, "27001", patient("Phan Thị Hoa", "1980-05-05", "female", "027180000123"))
    b = create(province, "27002", {**patient("PHAN THI HOA", "1980-05-05", "female",
                                              "027180000123"), "identifier": [
        {"system": "https://benhan.vn/sid/cccd", "value": "027180000123"}, *bhyt]})  # fmt: skip
    c = create(
        province, "27003", {**patient("Phan Thi Hoa", "1980-05-06", "female"), "identifier": bhyt}
    )
    relink(province, HUB)
    with province.read() as conn:
        queued = conn.execute(
            sa.select(mpi_pair.c.state).where(
                mpi_pair.c.patient_a == min(a, c), mpi_pair.c.patient_b == max(a, c)
            )
        ).scalar()
    assert queued == "review", "precondition: a and c are a review pair inside one Person"
    d = create(province, "27001", patient("Phan Thị Hoa", "1980-05-05", "female", "027180000123"))
    done = online.drain(province, HUB)
    assert done.failed == 0
    assert any({a, b, c, d} <= set(members(p)) for p in persons(province))


def test_stored_rows_give_the_columns_batch_linkage_builds(province_csv: SynthCsv) -> None:
    """Candidates are read back from the index as rows, not normalised again: the JSON round
    trip must give exactly the batch's columns, or online scores would drift from batch ones."""
    people = province_csv.people[:2000]
    ids = [p.record_id for p in people]
    stored = [orjson.loads(orjson.dumps(row_of(p))) for p in people]
    batch, online_cols = to_columns(people), columns_of(ids, stored)
    for f in fields(batch):
        a, b = getattr(batch, f.name), getattr(online_cols, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), f.name
        else:
            assert a == b, f.name
    assert len(batch.present) >= 8 and int(batch.year_only.sum()) > 0  # the sample has them
