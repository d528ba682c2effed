"""People's decisions on pairs of records: the review queue, link / keep apart / unlink with a
reason, every decision logged and audited, and any decision undone by deciding again.

A decision outranks the model from then on, online and in every relink: a linked pair is
certain (level4), a pair kept apart is never in one Person, not even through a chain of other
links. "Unlink" is keeping apart a pair that is linked now. Withdrawing a decision ("model")
hands the pair back to the model, which may queue it for review again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import sqlalchemy as sa

from benhan.fhir.primitives import micros, now
from benhan.identity import index, online
from benhan.identity.decide import Thresholds
from benhan.identity.persons import Relink
from benhan.store.repository import Repo, new_id
from benhan.store.schema import mpi_decision, mpi_pair, mpi_record

Decision = Literal["link", "apart", "model"]
DECISIONS: tuple[str, ...] = get_args(Decision)
MAX_REASON = 1000


class ReviewError(ValueError):
    """A decision that cannot be taken: the message says why, in Vietnamese and English."""


@dataclass(frozen=True, slots=True)
class Pair:
    patient_a: str
    patient_b: str
    probability: float
    state: str  # review, link, apart
    updated: int


@dataclass(frozen=True, slots=True)
class Decided:
    id: str
    patient_a: str
    patient_b: str
    decision: str
    previous: str
    reason: str
    actor: str
    at: int


def queue(conn: sa.Connection, *, offset: int = 0, limit: int = 20) -> tuple[list[Pair], int]:
    """Pairs waiting for a person, the most probable first, and how many wait in all."""
    waiting = mpi_pair.c.state == "review"
    total = conn.execute(sa.select(sa.func.count()).where(waiting)).scalar_one()
    q = (
        sa.select(mpi_pair)
        .where(waiting)
        .order_by(mpi_pair.c.probability.desc(), mpi_pair.c.patient_a, mpi_pair.c.patient_b)
        .offset(offset)
        .limit(limit)
    )
    return [Pair(**row) for row in conn.execute(q).mappings()], total


def pair(conn: sa.Connection, a: str, b: str) -> Pair | None:
    a, b = index.ordered(a, b)
    q = sa.select(mpi_pair).where(mpi_pair.c.patient_a == a, mpi_pair.c.patient_b == b)
    row = conn.execute(q).mappings().first()
    return Pair(**row) if row else None


def linked(conn: sa.Connection, a: str, b: str) -> bool:
    """Whether the two records are in one Person now."""
    rows = conn.execute(
        sa.select(mpi_record.c.person_id).where(mpi_record.c.patient_id.in_([a, b]))
    ).scalars()
    found = list(rows)
    return len(found) == 2 and found[0] is not None and found[0] == found[1]


def evidence(conn: sa.Connection, a: str, b: str, th: Thresholds | None = None) -> online.Evidence:
    """The model's view of the pair now (whatever people decided); ReviewError when a record
    is gone or no model is trained yet."""
    people = online.load_people(conn, [a, b])
    if {a, b} - set(people):
        raise ReviewError("Không tìm thấy hồ sơ / no such patient record")
    model = index.current_model(conn)
    if model is None:
        raise ReviewError("Chỉ mục chưa được xây dựng / the index has not been built (mpi relink)")
    return online.score_pair(conn, model, people[a][1], people[b][1], th or Thresholds())


def history(conn: sa.Connection, a: str, b: str) -> list[Decided]:
    """Every decision on the pair, the newest first."""
    a, b = index.ordered(a, b)
    q = (
        sa.select(mpi_decision)
        .where(mpi_decision.c.patient_a == a, mpi_decision.c.patient_b == b)
        .order_by(mpi_decision.c.at.desc(), mpi_decision.c.id)
    )
    return [Decided(**row) for row in conn.execute(q).mappings()]


def decide(
    repo: Repo,
    hub: str,
    a: str,
    b: str,
    decision: str,
    reason: str,
    *,
    thresholds: Thresholds | None = None,
) -> Decided:
    """Record a decision on the pair (a, b) and recluster the records around it at once.
    `repo` is the decider's: their name goes to the log and their access to the audit trail;
    `hub` owns the Persons. Raises ReviewError, changing nothing, on a bad decision."""
    conn, th = repo.conn, thresholds or Thresholds()
    reason = " ".join(reason.split())
    if decision not in DECISIONS:
        raise ReviewError(f"Quyết định không hợp lệ / unknown decision {decision!r}")
    if not reason:
        raise ReviewError("Cần ghi lý do / a reason is required")
    if len(reason) > MAX_REASON:
        raise ReviewError(f"Lý do quá dài / reason longer than {MAX_REASON} characters")
    if a == b:
        raise ReviewError("Hai hồ sơ phải khác nhau / the two records must differ")
    a, b = index.ordered(a, b)
    index.lock(conn)
    missing = {a, b} - set(online.load_people(conn, [a, b]))
    if missing:
        raise ReviewError(
            f"Không tìm thấy hồ sơ / no such patient record: {', '.join(sorted(missing))}"
        )
    model = index.current_model(conn)
    if model is None:
        raise ReviewError("Chỉ mục chưa được xây dựng / the index has not been built (mpi relink)")
    before = pair(conn, a, b)
    previous = before.state if before and before.state in ("link", "apart") else "model"
    if decision == previous:
        raise ReviewError(f"Cặp này đã được quyết định như vậy / already decided: {decision}")
    stamp = micros(now())
    done = Decided(new_id(), a, b, decision, previous, reason, repo.actor.name, stamp)
    conn.execute(mpi_decision.insert(), [_row(done)])
    where = (mpi_pair.c.patient_a == a) & (mpi_pair.c.patient_b == b)
    if decision == "model":
        conn.execute(mpi_pair.delete().where(where))
    elif before is None:
        conn.execute(
            mpi_pair.insert(),
            {"patient_a": a, "patient_b": b, "probability": 1.0 if decision == "link" else 0.0,
             "state": decision, "updated": stamp},
        )  # fmt: skip
    else:
        conn.execute(mpi_pair.update().where(where).values(state=decision, updated=stamp))
    online.recluster(conn, hub, {a, b}, model, th, Relink())
    access = repo.trail.record("update", [f"Patient/{a}", f"Patient/{b}"], [a, b])
    access.detail = f"mpi {decision} ({done.id})"
    return done


def undo(repo: Repo, hub: str, decision_id: str, reason: str) -> Decided:
    """Put the pair back as it was before decision `decision_id` (a new decision, logged)."""
    row = (
        repo.conn.execute(sa.select(mpi_decision).where(mpi_decision.c.id == decision_id))
        .mappings()
        .first()
    )
    if row is None:
        raise ReviewError(f"Không có quyết định / no such decision: {decision_id}")
    return decide(repo, hub, row["patient_a"], row["patient_b"], row["previous"], reason)


def _row(d: Decided) -> dict[str, object]:
    return {
        "id": d.id, "patient_a": d.patient_a, "patient_b": d.patient_b, "decision": d.decision,
        "previous": d.previous, "reason": d.reason, "actor": d.actor, "at": d.at,
    }  # fmt: skip
