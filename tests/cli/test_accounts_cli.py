"""`benhan accounts …` on SQLite and PostgreSQL: add, list, set-role, set-password, disable."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from benhan.auth.accounts import Account, authenticate, find_account
from benhan.auth.commands_accounts import accounts_app
from benhan.auth.sessions import create_session, lookup
from benhan.store.database import Store
from benhan.store.schema import resource

runner = CliRunner()
PASSWORD = "mat-khau-dai-2025"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str, store: Store) -> Store:
    monkeypatch.setenv("BENHAN_DATABASE_URL", database_url)
    monkeypatch.setenv("BENHAN_FACILITY", "27001")
    return store


def run(*args: str, password: str | None = PASSWORD) -> tuple[int, str]:
    stdin = f"{password}\n" if password is not None else None
    result = runner.invoke(accounts_app, list(args), input=stdin)
    return result.exit_code, result.output


def add(username: str, role: str, *extra: str) -> tuple[int, str]:
    args = ["add", "--username", username, "--role", role, "--name", f"Tên {username}"]
    return run(*args, *extra, "--password-stdin")


def get(store: Store, username: str) -> Account:
    with store.read() as conn:
        found = find_account(conn, username)
    assert found is not None
    return found


def changes(store: Store) -> list[str]:
    """What the permission-change AuditEvents say, oldest first."""
    q = (
        sa.select(sa.cast(resource.c.content, sa.Text))
        .where(resource.c.rtype == "AuditEvent")
        .order_by(resource.c.last_updated)
    )
    with store.read() as conn:
        events = [orjson.loads(c) for c in conn.scalars(q)]
    assert all(e["subtype"][0]["code"] == "110137" for e in events)
    assert all(e["agent"][0]["altId"] == "cli" for e in events)
    return [e["outcomeDesc"] for e in events]


def test_add_then_list(env: Store) -> None:
    assert add("bs.an", "doctor", "--practitioner", "pr-1") == (
        0,
        "đã thêm / added: bs.an (doctor, 27001)\n",
    )
    assert add("pt.hoa", "patient", "--patient", "p-9")[0] == 0
    assert add("so.yte", "doh-analyst")[0] == 0
    acc = get(env, "bs.an")
    assert (acc.role, acc.facility, acc.practitioner, acc.display_name) == (
        "doctor",
        "27001",  # staff default to this node's facility
        "pr-1",
        "Tên bs.an",
    )
    assert get(env, "so.yte").facility == ""  # province roles have none
    with env.begin() as conn:
        assert authenticate(conn, "bs.an", PASSWORD, None) == acc
    code, out = run("list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "username\trole\tfacility\tactive\tlinked\tname"
    assert lines[1] == "bs.an\tdoctor\t27001\tyes\tPractitioner/pr-1\tTên bs.an"
    assert lines[2] == "pt.hoa\tpatient\t\tyes\tPatient/p-9\tTên pt.hoa"
    assert [line.split("\t")[0] for line in run("list", "--facility", "27001")[1].splitlines()] == [
        "username",
        "bs.an",
    ]
    assert PASSWORD not in out
    assert changes(env) == [
        "account bs.an: created, role doctor, facility 27001",
        "account pt.hoa: created, role patient, facility ",
        "account so.yte: created, role doh-analyst, facility ",
    ]


def test_the_password_can_be_typed_twice_without_echo(env: Store) -> None:
    args = ["add", "--username", "bs.an", "--role", "doctor", "--name", "An"]
    result = runner.invoke(accounts_app, args, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert get(env, "bs.an").role == "doctor"


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (["--role", "surgeon"], PASSWORD, "unknown role 'surgeon'"),
        (["--role", "system-integrator"], PASSWORD, "this role is for client applications"),
        (["--role", "patient"], PASSWORD, "needs a Patient id"),
        (["--role", "doctor", "--username", "A B"], PASSWORD, "a username is 3–64"),
        (["--role", "doctor"], "ngan", "at least 10 characters"),
        (["--role", "doctor"], "", "empty password"),
    ],
)
def test_bad_input_exits_2_and_adds_nothing(
    env: Store, args: list[str], password: str, message: str
) -> None:
    base = ["add", "--username", "bs.an", "--name", "An", "--password-stdin"]
    code, out = run(*base, *args, password=password)
    assert code == 2
    assert message in " ".join(out.split())
    with env.read() as conn:
        assert find_account(conn, "bs.an") is None
        assert find_account(conn, "A B") is None
    assert changes(env) == []


def test_a_taken_name_exits_2(env: Store) -> None:
    assert add("bs.an", "doctor")[0] == 0
    code, out = add("bs.an", "nurse")
    assert code == 2 and "username taken: bs.an" in out
    assert get(env, "bs.an").role == "doctor"


def test_set_role_disable_enable_and_set_password(env: Store) -> None:
    assert add("bs.an", "doctor")[0] == 0
    acc = get(env, "bs.an")
    with env.begin() as conn:
        value, _ = create_session(conn, acc.id, None)

    assert run("set-role", "bs.an", "nurse")[0] == 0
    assert get(env, "bs.an").role == "nurse"
    with env.begin() as conn:
        assert lookup(conn, value) is None  # a new role: signed out everywhere
        value, _ = create_session(conn, acc.id, None)

    assert run("disable", "bs.an") == (0, "đã khoá / disabled: bs.an\n")
    assert get(env, "bs.an").active is False
    with env.begin() as conn:
        assert lookup(conn, value) is None
        value, _ = create_session(conn, acc.id, None)
    assert run("enable", "bs.an")[0] == 0
    assert get(env, "bs.an").active is True

    assert run("set-password", "bs.an", "--password-stdin", password="mat-khau-moi-2025")[0] == 0
    with env.begin() as conn:
        assert lookup(conn, value) is None
        assert authenticate(conn, "bs.an", "mat-khau-moi-2025", None).username == "bs.an"
    assert changes(env)[1:] == [
        "account bs.an: role doctor -> nurse",
        "account bs.an: disabled",
        "account bs.an: enabled",
        "account bs.an: password set",
    ]


@pytest.mark.parametrize(
    "args",
    [["set-role", "ghost", "nurse"], ["disable", "ghost"], ["enable", "ghost"]],
)
def test_an_unknown_account_exits_2(env: Store, args: list[str]) -> None:
    code, out = run(*args)
    assert code == 2
    assert "no such account: ghost" in out
    assert changes(env) == []


def test_a_bad_role_change_exits_2_and_changes_nothing(env: Store) -> None:
    assert add("bs.an", "doctor")[0] == 0
    code, out = run("set-role", "bs.an", "system-integrator")
    assert code == 2 and "client applications" in " ".join(out.split())
    assert get(env, "bs.an").role == "doctor"
    assert len(changes(env)) == 1
