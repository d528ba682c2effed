"""Review decisions: link / keep apart / unlink with a reason, logged, audited, reversible, and
standing in every later relink; $everything follows them."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa

from benhan.access import ROLES, Actor
from benhan.identity import online, review
from benhan.identity.persons import members, relink
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.store.schema import resource

from .conftest import HUB
from .test_persons import create, patient, persons

STEWARD = Actor("user", "steward1", ROLES["doctor"], HUB, ROLES["doctor"].scopes, account="acc1")


def together(store: Store, a: str, b: str) -> bool:
    return any({a, b} <= set(members(p)) for p in persons(store))


def decide(
    store: Store, a: str, b: str, decision: str, reason: str = "đã gọi điện xác minh"
) -> str:
    with store.begin() as conn:
        repo = Repo(conn, STEWARD)
        done = review.decide(repo, HUB, a, b, decision, reason)
        repo.trail.flush(conn)
    return done.id


def everything_subjects(store: Store, pid: str) -> set[str]:
    with store.read() as conn:
        result = Repo(conn, Actor.job("27001", "test")).everything(
            pid, since=None, types=[], count=100, offset=0
        )
    return {orjson.loads(c)["id"] for t, _i, c in result.matches if t == "Patient"}


def test_unlink_link_undo_each_changes_the_person_and_everything(province: Store) -> None:
    a = create(province, "27001", patient("Kiều Thị Nhàn", "1983-08-21", "female"))
    b = create(province, "27002", patient("KIEU THI NHAN", "1983-08-21", "female"))
    c = create(province, "27003", patient("Kiều Thị Nhàn", "1985-08-21", "female"))
    online.drain(province, HUB)
    assert together(province, a, b) and not together(province, a, c)
    assert everything_subjects(province, a) == {a, b}
    unlinked = decide(province, a, b, "apart", "hai chị em sinh đôi / twins")
    assert not together(province, a, b)
    assert everything_subjects(province, a) == {a}
    decide(province, a, c, "link")
    assert together(province, a, c) and not together(province, a, b)
    level = {m["target"]["reference"]: m["assurance"] for p in persons(province)
             for m in p["link"]}  # fmt: skip
    assert level[f"Patient/{c}"] == "level4"  # a person verified it
    with province.begin() as conn:
        review.undo(Repo(conn, STEWARD), HUB, unlinked, "nhầm / mistaken")
    assert together(province, a, b) and together(province, a, c)
    assert everything_subjects(province, a) == {a, b, c}
    with province.read() as conn:
        log = review.history(conn, a, b)
    assert [(d.decision, d.previous) for d in log] == [("model", "apart"), ("apart", "model")]
    assert log[0].actor == "steward1" and log[1].reason == "hai chị em sinh đôi / twins"


def test_decisions_stand_in_a_relink(province: Store) -> None:
    a = create(province, "27001", patient("Tạ Văn Lực", "1958-12-01", "male", "027058000321"))
    b = create(province, "27002", patient("TA VAN LUC", "1958-12-01", "male", "027058000321"))
    c = create(province, "27003", patient("Tạ Văn Lực", "1958-01-12", "male"))
    online.drain(province, HUB)
    assert together(province, a, b)  # the same CCCD
    decide(province, a, b, "apart", "thẻ CCCD bị dùng chung / a shared card")
    decide(province, b, c, "link")
    relink(province, HUB)
    assert not together(province, a, b) and together(province, b, c)
    assert not together(province, a, c)  # a chain must not rejoin what was kept apart


def test_a_decision_is_audited_with_both_patients(province: Store) -> None:
    a = create(province, "27001", patient("Mạc Thị Yến", "1995-05-15", "female"))
    b = create(province, "27002", patient("MAC THI YEN", "1995-05-15", "female"))
    online.drain(province, HUB)
    decide(province, a, b, "link")
    q = sa.select(sa.cast(resource.c.content, sa.Text)).where(resource.c.rtype == "AuditEvent")
    with province.read() as conn:
        events = [orjson.loads(t) for t in conn.execute(q).scalars()]
    mine = [e for e in events if e["agent"][0].get("altId") == "steward1" or "steward1" in str(e)]
    assert mine, "the decision left no AuditEvent"
    refs = {x["what"]["reference"] for x in mine[-1]["entity"] if "what" in x}
    assert {f"Patient/{a}", f"Patient/{b}"} <= refs


@pytest.mark.parametrize(
    ("decision", "reason", "words"),
    [
        ("merge", "x", "unknown decision"),
        ("link", "   ", "reason is required"),
        ("link", "x" * 1001, "longer than"),
    ],
)
def test_bad_decisions_are_refused_and_change_nothing(
    province: Store, decision: str, reason: str, words: str
) -> None:
    a = create(province, "27001", patient("Ông Văn Tám", "1949-09-09", "male"))
    b = create(province, "27002", patient("Ông Văn Tám", "1949-09-09", "male"))
    online.drain(province, HUB)
    before = persons(province)
    with province.begin() as conn, pytest.raises(review.ReviewError, match=words):
        review.decide(Repo(conn, STEWARD), HUB, a, b, decision, reason)
    with province.begin() as conn, pytest.raises(review.ReviewError, match="no such patient"):
        review.decide(Repo(conn, STEWARD), HUB, a, "nope", "link", "x")
    with province.begin() as conn, pytest.raises(review.ReviewError, match="must differ"):
        review.decide(Repo(conn, STEWARD), HUB, a, a, "link", "x")
    assert persons(province) == before
    with province.read() as conn:
        assert review.history(conn, a, b) == []


def test_the_queue_lists_review_pairs_most_probable_first(province: Store) -> None:
    with province.read() as conn:
        pairs, total = review.queue(conn, limit=5)
    assert total >= len(pairs)
    probs = [p.probability for p in pairs]
    assert probs == sorted(probs, reverse=True)
    assert all(p.state == "review" for p in pairs)


def test_evidence_explains_a_pair_field_by_field(province: Store) -> None:
    a = create(province, "27001", patient("Lò Văn Pấng", "1970-02-14", "male", "027070000909"))
    b = create(province, "27002", patient("LO VAN PANG", "1970-02-14", "male", "027070000909"))
    with province.read() as conn:
        seen = review.evidence(conn, a, b)
        with pytest.raises(review.ReviewError, match="no such patient"):
            review.evidence(conn, a, "nope")
    assert seen.probability == 1.0 and seen.reason == "same-id"
    fields = {f.comparison: f.level for f in seen.fields}
    assert fields["cccd"] == "equal" and fields["birth_date"] == "exact"
