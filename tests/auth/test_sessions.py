"""Page sessions in the database: hashed ids, idle and absolute timeouts, ending them."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import orjson
import pytest
import sqlalchemy as sa

from benhan.access import Actor
from benhan.auth.accounts import Account, create_account, update_account
from benhan.auth.sessions import (
    ABSOLUTE_S,
    IDLE_S,
    account_changed,
    create_session,
    delete_session,
    end_account_sessions,
    lookup,
)
from benhan.fhir.primitives import micros
from benhan.store.schema import resource, web_session
from tests.auth.conftest import Clock
from tests.conftest import FROZEN


@pytest.fixture
def acc(conn: sa.Connection) -> Account:
    return create_account(
        conn,
        username="bs.an",
        password="mat-khau-dai-2025",
        role_code="doctor",
        facility="27001",
        display_name="Bác sĩ An",
        practitioner="pr-1",
    )


def expires(conn: sa.Connection) -> int:
    return int(conn.scalar(sa.select(web_session.c.expires)) or 0)


def test_only_the_hash_of_the_cookie_is_stored(conn: sa.Connection, acc: Account) -> None:
    value, csrf = create_session(conn, acc.id, "10.1.2.3")
    assert len(value) >= 43 and len(csrf) >= 43 and value != csrf
    row = conn.execute(sa.select(web_session)).one()
    assert row.id_hash == hashlib.sha256(value.encode()).hexdigest()
    assert value not in (row.id_hash, row.csrf)
    assert (row.account_id, row.csrf, row.address) == (acc.id, csrf, "10.1.2.3")
    found = lookup(conn, value)
    assert found is not None
    assert found[1] == acc and found[0].csrf == csrf


def test_an_unknown_value_is_no_session(conn: sa.Connection, acc: Account) -> None:
    value, _ = create_session(conn, acc.id, None)
    for other in ("", "x", "a" * 43, "a" * 500, value[:-1], value + "x"):
        assert lookup(conn, other) is None


def test_idle_for_thirty_minutes_ends_the_session(
    conn: sa.Connection, acc: Account, clock: Clock
) -> None:
    value, _ = create_session(conn, acc.id, None)
    clock.advance(IDLE_S - 1)
    assert lookup(conn, value, slide=False) is not None
    clock.advance(1)
    assert lookup(conn, value) is None


def test_activity_keeps_it_alive_but_moves_the_deadline_at_most_once_a_minute(
    conn: sa.Connection, acc: Account, clock: Clock
) -> None:
    value, _ = create_session(conn, acc.id, None)
    first = expires(conn)
    clock.advance(30)
    assert lookup(conn, value) is not None
    assert expires(conn) == first  # less than a minute: no write
    clock.advance(20 * 60)
    assert lookup(conn, value) is not None
    assert expires(conn) == micros(clock.at) + IDLE_S * 1_000_000
    clock.advance(IDLE_S - 1)  # 50 minutes after sign-in, alive thanks to the activity
    assert lookup(conn, value) is not None


def test_twelve_hours_end_it_however_busy(conn: sa.Connection, acc: Account, clock: Clock) -> None:
    value, _ = create_session(conn, acc.id, None)
    start = micros(clock.at)
    while clock.at < FROZEN + timedelta(seconds=ABSOLUTE_S - 20 * 60):
        clock.advance(20 * 60)
        assert lookup(conn, value) is not None
    assert expires(conn) <= start + ABSOLUTE_S * 1_000_000
    clock.advance(20 * 60)
    assert lookup(conn, value) is None


def test_a_disabled_account_has_no_session(conn: sa.Connection, acc: Account) -> None:
    value, _ = create_session(conn, acc.id, None)
    update_account(conn, acc.id, active=False)
    assert lookup(conn, value) is None


def test_delete_one_or_all_sessions(conn: sa.Connection, acc: Account) -> None:
    a, _ = create_session(conn, acc.id, None)
    b, _ = create_session(conn, acc.id, None)
    c, _ = create_session(conn, acc.id, None)
    delete_session(conn, a)
    assert lookup(conn, a) is None and lookup(conn, b) is not None
    assert end_account_sessions(conn, acc.id) == 2
    assert lookup(conn, b) is None and lookup(conn, c) is None


def test_expired_rows_are_cleared_when_a_session_starts(
    conn: sa.Connection, acc: Account, clock: Clock
) -> None:
    create_session(conn, acc.id, None)
    clock.advance(IDLE_S + 1)
    create_session(conn, acc.id, None)
    assert conn.scalar(sa.select(sa.func.count()).select_from(web_session)) == 1


def test_a_permission_change_signs_out_and_is_audited(conn: sa.Connection, acc: Account) -> None:
    value, _ = create_session(conn, acc.id, None)
    admin = Actor.job("27001", "cli")
    account_changed(conn, admin, acc, "role doctor -> nurse")
    assert lookup(conn, value) is None
    [content] = conn.scalars(
        sa.select(sa.cast(resource.c.content, sa.Text)).where(resource.c.rtype == "AuditEvent")
    )
    event = orjson.loads(content)
    assert event["type"]["code"] == "110136"
    assert event["subtype"][0]["code"] == "110137"
    assert event["outcomeDesc"] == "account bs.an: role doctor -> nurse"
    assert event["entity"][0]["what"]["reference"] == "Practitioner/pr-1"
    assert event["agent"][0]["altId"] == "cli"
