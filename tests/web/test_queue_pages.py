"""Queue pages: the day's overview with waiting times, and the waiting-room board."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from benhan.emr.model import CALLED_EXT, local_now, stamp
from benhan.store.database import Store
from benhan.store.unit import unit
from tests.access.world import actor
from tests.emr.world import KHAM_NHI, KHAM_NOI, Place, person, place, visit
from tests.web.conftest import SignedIn, SignIn
from tests.web.test_desk_pages import versions


@pytest.fixture
def here(web_store: Store, anon: TestClient) -> Place:
    return place(web_store)


@pytest.fixture
def nurse(sign_in: SignIn, here: Place) -> SignedIn:
    return sign_in("dd.lan", "nurse")


@pytest.fixture
def morning(web_store: Store, here: Place) -> dict[int, str]:
    """Three people waiting at Khám Nội (numbers 1–3), one finished at Khám Nhi."""
    start = local_now().replace(hour=7, minute=0, second=0, microsecond=0)
    ids = {}
    for n in (1, 2, 3):
        pid = person(web_store, f"Người Thứ {chr(64 + n)}", f"02718700{n:04d}")
        ids[n] = visit(web_store, here, pid, number=n, arrived=start + timedelta(minutes=n))
    done = person(web_store, "Lê Văn Xong", "027086000999", "1986-01-01", "male")
    visit(web_store, here, done, service_code=KHAM_NHI, arrived=start, status="finished")
    return ids


def test_the_board_calls_the_next_number_in_order(
    anon: TestClient, nurse: SignedIn, here: Place, morning: dict[int, str], web_store: Store
) -> None:
    clinic = here.clinics[KHAM_NOI]
    board = anon.get(f"/queue/{clinic}")
    assert board.status_code == 200
    assert f'hx-get="/queue/{clinic}/now" hx-trigger="every 5s"' in board.text
    assert "3 người đang chờ" in board.text and "Gọi số tiếp theo (001)" in board.text
    assert "Người Thứ" not in board.text  # numbers only, never names
    r = anon.post(f"/queue/{clinic}/call", data={"csrf": nurse.csrf}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, f"/queue/{clinic}")
    fragment = anon.post(
        f"/queue/{clinic}/call", data={"csrf": nurse.csrf}, headers={"HX-Request": "true"}
    )
    assert "<html" not in fragment.text and 'id="queue-now"' in fragment.text
    assert '<p class="board-now-number">002</p>' in fragment.text
    assert "<li>001</li>" in fragment.text and "1 người đang chờ" in fragment.text
    with unit(web_store, actor("nurse"), write=False) as repo:
        called = [repo.read("Encounter", morning[n]).resource for n in (1, 2, 3)]
    assert [any(x["url"] == CALLED_EXT for x in e.get("extension", [])) for e in called] == [
        True,
        True,
        False,
    ]
    now = anon.get(f"/queue/{clinic}/now")
    assert '<p class="board-now-number">002</p>' in now.text and "Người Thứ" not in now.text


def test_recall_calls_the_same_number_again(
    anon: TestClient, nurse: SignedIn, here: Place, morning: dict[int, str], web_store: Store
) -> None:
    clinic = here.clinics[KHAM_NOI]
    anon.post(f"/queue/{clinic}/call", data={"csrf": nurse.csrf})
    r = anon.post(
        f"/queue/visit/{morning[1]}/recall", data={"csrf": nurse.csrf}, follow_redirects=False
    )
    assert (r.status_code, r.headers["location"]) == (303, f"/queue/{clinic}")
    assert anon.post("/queue/visit/nobody/recall", data={"csrf": nurse.csrf}).status_code == 404


def test_the_overview_shows_counts_waiting_times_and_a_chart(
    anon: TestClient, nurse: SignedIn, here: Place, web_store: Store
) -> None:
    start = local_now().replace(hour=7, minute=0, second=0, microsecond=0)
    pid = person(web_store)
    for n, wait in ((1, 10), (2, 30)):
        eid = visit(web_store, here, pid, number=n, arrived=start)
        with unit(web_store, actor("nurse"), write=True) as repo:
            e = repo.read("Encounter", eid).resource
            e["extension"] = [
                {"url": CALLED_EXT, "valueDateTime": stamp(start + timedelta(minutes=wait))}
            ]
            repo.update("Encounter", eid, e)
    visit(web_store, here, pid, number=3, arrived=start)
    r = anon.get("/queue")
    assert r.status_code == 200
    assert f'href="/queue/{here.clinics[KHAM_NOI]}"' in r.text
    assert "<svg" in r.text and 'class="bar-median"' in r.text
    # arrival → called: 10 and 30 minutes → median 20, p90 28
    assert '<td class="num">20</td><td class="num">28</td>' in r.text
    assert "style=" not in r.text and "<script>" not in r.text


def test_the_overview_of_another_day_and_a_bad_day(
    anon: TestClient, nurse: SignedIn, here: Place
) -> None:
    assert anon.get("/queue", params={"day": "2025-03-01"}).status_code == 200
    assert anon.get("/queue", params={"day": "01/03/2025"}).status_code == 400


def test_unknown_or_foreign_clinics_are_404(
    anon: TestClient, nurse: SignedIn, web_store: Store
) -> None:
    there = place(web_store, "27002", "Trạm y tế B")
    assert anon.get(f"/queue/{there.clinics[KHAM_NOI]}").status_code == 404
    assert anon.get("/queue/no-such-room").status_code == 404
    assert anon.get("/queue/bad%20id!/now").status_code == 404
    r = anon.post(f"/queue/{there.clinics[KHAM_NOI]}/call", data={"csrf": nurse.csrf})
    assert r.status_code == 404


@pytest.mark.parametrize("role", ["registrar", "doctor"])
def test_staff_who_may_update_visits_call(
    anon: TestClient, sign_in: SignIn, here: Place, morning: dict[int, str], role: str
) -> None:
    me = sign_in("x.user", role)
    clinic = here.clinics[KHAM_NOI]
    assert "Gọi số tiếp theo (001)" in anon.get(f"/queue/{clinic}").text
    r = anon.post(f"/queue/{clinic}/call", data={"csrf": me.csrf}, follow_redirects=False)
    assert r.status_code == 303


@pytest.mark.parametrize("role", ["lab-technician", "pharmacist"])
def test_roles_that_only_read_visits_see_the_board_but_do_not_call(
    anon: TestClient,
    sign_in: SignIn,
    here: Place,
    morning: dict[int, str],
    role: str,
    web_store: Store,
) -> None:
    me = sign_in("x.user", role)
    clinic = here.clinics[KHAM_NOI]
    before = versions(web_store)
    board = anon.get(f"/queue/{clinic}")
    assert board.status_code == 200 and "Gọi số tiếp theo" not in board.text
    assert anon.post(f"/queue/{clinic}/call", data={"csrf": me.csrf}).status_code == 403
    assert versions(web_store) == before


def test_a_role_that_may_not_read_visits_is_refused(
    anon: TestClient, sign_in: SignIn, here: Place, morning: dict[int, str], web_store: Store
) -> None:
    me = sign_in("x.admin", "facility-admin")
    clinic = here.clinics[KHAM_NOI]
    assert anon.get("/queue").status_code == 403
    assert anon.get(f"/queue/{clinic}").status_code == 403
    assert anon.get(f"/queue/{clinic}/now").status_code == 403
    assert anon.post(f"/queue/{clinic}/call", data={"csrf": me.csrf}).status_code == 403


def test_calling_needs_the_csrf_token(
    anon: TestClient, nurse: SignedIn, here: Place, morning: dict[int, str], web_store: Store
) -> None:
    before = versions(web_store)
    assert anon.post(f"/queue/{here.clinics[KHAM_NOI]}/call").status_code == 403
    assert versions(web_store) == before
