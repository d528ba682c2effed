"""The queue read back from the Encounters: calling in order, the board, waiting statistics."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from benhan.emr import queue
from benhan.emr.model import (
    CALLED_EXT,
    QUEUE_NUMBER,
    called,
    finished,
    local_now,
    queue_label,
    seen,
    stamp,
)
from benhan.fhir.primitives import VIETNAM
from benhan.store.database import Store
from benhan.store.unit import unit
from tests.access.world import actor
from tests.emr.world import KHAM_NHI, KHAM_NOI, person, place, visit

T0 = datetime(2025, 3, 1, 7, 0, tzinfo=VIETNAM)


def test_call_next_takes_the_lowest_waiting_number(store: Store) -> None:
    here = place(store)
    start = local_now().replace(hour=7, minute=0, second=0, microsecond=0)
    people = [person(store, cccd=f"02718700{i:04d}") for i in range(3)]
    # Created out of order: the number, not the insertion, decides who is next.
    ids = {
        n: visit(store, here, people[i], number=n, arrived=start + timedelta(minutes=n))
        for i, n in enumerate((3, 1, 2))
    }
    other = visit(store, here, people[0], service_code=KHAM_NHI, number=1, arrived=start)
    clinic = here.clinics[KHAM_NOI]
    day = start.date()
    calls = []
    with unit(store, actor("nurse"), write=True) as repo:
        for _ in range(4):
            e = queue.call_next(repo, clinic, day, when=start + timedelta(minutes=30))
            calls.append(e["id"] if e else None)
    assert calls == [ids[1], ids[2], ids[3], None]
    with unit(store, actor("nurse"), write=False) as repo:
        nhi = repo.read("Encounter", other).resource
        day_visits = queue.clinic_day(repo, clinic, day)
    assert not queue.is_called(nhi)  # the other clinic's queue was not touched
    assert all(e["status"] == "arrived" and queue.is_called(e) for e in day_visits)


def test_finished_and_seen_visits_are_not_called(store: Store) -> None:
    here = place(store)
    start = local_now().replace(hour=7, minute=0, second=0, microsecond=0)
    p = person(store)
    visit(store, here, p, number=1, arrived=start, status="in-progress")
    visit(store, here, p, number=2, arrived=start, status="finished")
    with unit(store, actor("nurse"), write=True) as repo:
        assert queue.call_next(repo, here.clinics[KHAM_NOI], start.date()) is None


def test_recall_moves_the_call_time_and_the_board_follows(store: Store) -> None:
    here = place(store)
    start = local_now().replace(hour=7, minute=0, second=0, microsecond=0)
    p1, p2 = person(store), person(store, cccd="027187000999")
    e1 = visit(store, here, p1, number=1, arrived=start)
    e2 = visit(store, here, p2, number=2, arrived=start)
    clinic, day = here.clinics[KHAM_NOI], start.date()
    with unit(store, actor("registrar"), write=True) as repo:
        queue.call_next(repo, clinic, day, when=start + timedelta(minutes=5))
        queue.call_next(repo, clinic, day, when=start + timedelta(minutes=6))
        b = queue.board(queue.clinic_day(repo, clinic, day))
        assert (b.now, b.recent, b.waiting, b.now_id) == ("002", ["001"], 0, e2)
        again = queue.recall(repo, e1, when=start + timedelta(minutes=7))
        assert again is not None
        b = queue.board(queue.clinic_day(repo, clinic, day))
    assert (b.now, b.recent) == ("001", ["002"])
    [ext] = [x for x in again["extension"] if x["url"] == CALLED_EXT]
    assert ext["valueDateTime"] == stamp(start + timedelta(minutes=7))


def test_a_visit_past_calling_is_not_recalled(store: Store) -> None:
    here = place(store)
    e = visit(store, here, person(store), status="finished")
    with unit(store, actor("nurse"), write=True) as repo:
        assert queue.recall(repo, e) is None


def _visit(
    number: int, arrived: int, call: int | None, seen_at: int | None, done: int | None
) -> dict[str, Any]:
    """A visit with known minutes after T0 for each step."""
    e: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": f"e{number}",
        "status": "arrived",
        "identifier": [{"system": QUEUE_NUMBER, "value": f"2025-03-01/c/{number}"}],
        "period": {"start": stamp(T0 + timedelta(minutes=arrived))},
    }
    if call is not None:
        e = called(e, T0 + timedelta(minutes=call))
    if seen_at is not None:
        e = seen(e, T0 + timedelta(minutes=seen_at), None)
    if done is not None:
        e = finished(e, T0 + timedelta(minutes=done))
    return e


def test_waiting_statistics_from_known_timestamps() -> None:
    visits = [
        _visit(1, 0, 10, 12, 22),  # waited 10 to be called, 12 to be seen, 10 in the room
        _visit(2, 0, 20, 25, 30),
        _visit(3, 5, 35, 40, None),  # being seen
        _visit(4, 10, 50, None, None),  # called, not in yet
        _visit(5, 20, None, None, None),  # waiting
    ]
    s = queue.stats(visits)
    assert (s.waiting, s.called, s.being_seen, s.done, s.total) == (1, 1, 1, 2, 5)
    # arrival → called: 10, 20, 30, 40 → median 25, p90 37 (linear between ranks)
    assert (s.to_called.count, s.to_called.median) == (4, 25.0)
    assert s.to_called.p90 == pytest.approx(37.0)
    # arrival → seen: 12, 25, 35 → median 25, p90 33
    assert (s.to_seen.count, s.to_seen.median) == (3, 25.0)
    assert s.to_seen.p90 == pytest.approx(33.0)
    # seen → finished: 10, 5 → median 7.5, p90 9.5
    assert (s.seen_to_finished.count, s.seen_to_finished.median) == (2, 7.5)
    assert s.seen_to_finished.p90 == pytest.approx(9.5)


def test_percentile_matches_the_linear_definition() -> None:
    assert queue.percentile([], 50) is None
    assert queue.percentile([7.0], 90) == 7.0
    values = [float(v) for v in range(1, 11)]
    assert queue.percentile(values, 50) == 5.5
    assert queue.percentile(values, 90) == pytest.approx(9.1)
    assert queue.percentile(list(reversed(values)), 0) == 1.0


def test_board_shows_numbers_and_the_next_one() -> None:
    visits = [
        _visit(1, 0, 10, None, None),
        _visit(2, 1, 12, None, None),
        _visit(3, 2, None, None, None),
    ]
    visits += [_visit(4, 3, None, None, None)]
    b = queue.board(visits)
    assert (b.now, b.recent, b.waiting, b.next_up) == ("002", ["001"], 2, "003")
    assert queue.people_ahead(visits, visits[3]) == 1
    assert queue_label(visits[3]) == "004"
    assert queue.board([]) == queue.Board(None, None, [], 0, None)


def test_facility_day_groups_the_days_visits_by_clinic(store: Store) -> None:
    here = place(store)
    today = local_now().replace(hour=8, minute=0, second=0, microsecond=0)
    p = person(store)
    a = visit(store, here, p, number=1, arrived=today)
    b = visit(store, here, p, service_code=KHAM_NHI, number=1, arrived=today)
    visit(store, here, p, number=1, arrived=today - timedelta(days=1))  # yesterday, still open
    with unit(store, actor("nurse"), write=False) as repo:
        grouped = queue.facility_day(repo, here.organization, today.date())
    assert {k: [e["id"] for e in v] for k, v in grouped.items()} == {
        here.clinics[KHAM_NOI]: [a],
        here.clinics[KHAM_NHI]: [b],
    }
