"""The server's own checkpoints (when one is due, with which certificate, what a failure does)
and the revocation of a checkpoint's signer, on both backends; the clock is injected, never
waited on."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

from benhan.api import create_app
from benhan.fhir.primitives import from_micros, micros, now
from benhan.signing import ledger_commands, ledger_signing, pki
from benhan.signing.ledger_signing import (
    EVERY_ENV,
    MINUTES_ENV,
    RETRY,
    Checkpointer,
    Schedule,
    facility_signer,
    revocation_check,
)
from benhan.store import checkpoints, ledger
from benhan.store.checkpoints import ChainState
from benhan.store.database import Store
from benhan.store.repository import prepare_write, store_writes
from benhan.store.schema import ledger_checkpoint
from tests.conftest import make_settings

A, B, C = "27001", "27002", "27003"
NOW = now()


@pytest.fixture(autouse=True)
def var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CA's keys under this test's own directory and passphrase."""
    monkeypatch.setenv("BENHAN_VAR", str(tmp_path / "var"))
    monkeypatch.setenv(pki.PASSPHRASE_ENV, "mật-khẩu-thử")
    for name in (EVERY_ENV, MINUTES_ENV):
        monkeypatch.delenv(name, raising=False)


def write(store: Store, facility: str, n: int) -> None:
    """n versions, hence exactly n ledger entries (no AuditEvent: no unit of work)."""
    patients = [{"resourceType": "Patient", "id": uuid.uuid4().hex} for _ in range(n)]
    writes = [prepare_write(p, "PUT", facility=facility) for p in patients]
    with store.begin() as conn:
        store_writes(conn, writes, "")


def certify(store: Store, facility: str) -> pki.CertificateRecord:
    with store.begin() as conn:
        return pki.issue(conn, kind="facility", owner=f"Organization/{facility}",
                         common_name=f"Trạm Y tế {facility}", facility=facility)  # fmt: skip


def head(store: Store, facility: str) -> int:
    with store.read() as conn:
        return next(c.head for c in checkpoints.chain_states(conn) if c.facility == facility)


def stored(store: Store) -> list[tuple[str, int]]:
    c = ledger_checkpoint.c
    with store.read() as conn:
        return [tuple(r) for r in conn.execute(sa.select(c.facility, c.seq).order_by(c.at))]


def checked(store: Store) -> ledger.Report:
    """`benhan audit verify` as the command runs it: the store's anchors and CRLs."""
    with store.read() as conn:
        anchors = pki.trust_anchors(conn)
        return ledger.verify(conn, anchors=anchors, revocation=revocation_check(conn))


# ---- when a checkpoint is due -----------------------------------------------------------------

MINUTE = 60_000_000


@pytest.mark.parametrize(
    ("head", "signed", "minutes_ago", "schedule", "due"),
    [
        (999, 0, None, Schedule(1000, 0), False),  # too few entries, time not counted
        (1000, 0, None, Schedule(1000, 0), True),
        (1500, 600, 1, Schedule(1000, 15), False),  # 900 new, a minute old
        (1600, 600, 1, Schedule(1000, 15), True),  # 1,000 new
        (601, 600, 14, Schedule(1000, 15), False),
        (601, 600, 15, Schedule(1000, 15), True),  # one new entry, its checkpoint 15 minutes old
        (600, 600, 600, Schedule(1000, 15), False),  # nothing new: never
        (3, 0, None, Schedule(1000, 15), True),  # never signed: due at once
        (3, 0, None, Schedule(0, 15), True),
        (5000, 0, None, Schedule(0, 0), False),  # off
    ],
)
def test_due_after_n_entries_or_t_minutes_whichever_first(
    head: int, signed: int, minutes_ago: int | None, schedule: Schedule, due: bool
) -> None:
    at = None if minutes_ago is None else micros(NOW) - minutes_ago * MINUTE
    assert schedule.due(ChainState(A, head, signed, at), NOW) is due


def test_the_schedule_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Schedule.from_env() == Schedule(1000, 60.0) and Schedule.from_env().on
    monkeypatch.setenv(EVERY_ENV, "250")
    monkeypatch.setenv(MINUTES_ENV, "0.5")
    assert Schedule.from_env() == Schedule(250, 0.5)
    assert Schedule.from_env().poll_seconds == 30.0
    monkeypatch.setenv(MINUTES_ENV, "0.1")
    assert Schedule.from_env().poll_seconds == pytest.approx(6.0)
    monkeypatch.setenv(EVERY_ENV, "0")
    monkeypatch.setenv(MINUTES_ENV, "0")
    assert not Schedule.from_env().on


@pytest.mark.parametrize(
    ("name", "value"),
    [(EVERY_ENV, "mười"), (EVERY_ENV, "-1"), (EVERY_ENV, "2.5"), (MINUTES_ENV, "nan"),
     (MINUTES_ENV, "-3"), (MINUTES_ENV, "inf")],
)  # fmt: skip
def test_a_bad_schedule_stops_the_server_before_it_starts(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, store: Store, tmp_path: Path
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=rf"{name}='{value}': phải là .* / must be"):
        create_app(settings=make_settings("sqlite://", tmp_path), store=store)


# ---- the server's rounds ----------------------------------------------------------------------


def test_a_checkpoint_once_a_chain_has_n_new_entries(store: Store) -> None:
    certify(store, A)
    checkpointer = Checkpointer(store, Schedule(entries=5, minutes=0))
    with store.read() as conn:  # the certificate's issue, audited at A (the CA's, province-wide)
        chains = {c.facility: c for c in checkpoints.chain_states(conn)}
    audited = chains[A]
    assert set(chains) == {A, ""} and 0 < audited.head < 4
    write(store, A, 4 - audited.head)
    assert checkpointer.step() == [] and stored(store) == []
    write(store, A, 1)
    made = checkpointer.step()
    assert [(m.facility, m.seq) for m in made] == [(A, 5)] == stored(store)
    write(store, A, 4)
    assert checkpointer.step() == []
    write(store, A, 3)
    assert [m.seq for m in checkpointer.step()] == [12]
    report = checked(store)
    assert report.intact, report.findings
    summary = {c.facility: (c.checkpoints, c.last_checkpoint, c.unsigned) for c in report.chains}
    assert summary == {A: (2, 12, 0), "": (0, None, 1)}  # the province's chain: not the server's


def test_a_checkpoint_once_t_minutes_have_passed_by_the_injected_clock(store: Store) -> None:
    certify(store, A)
    clock = [now()]
    checkpointer = Checkpointer(store, Schedule(entries=0, minutes=15), clock=lambda: clock[0])
    write(store, A, 2)
    assert [m.seq for m in checkpointer.step()] == [head(store, A)]  # never signed: at once
    write(store, A, 1)
    clock[0] += timedelta(minutes=14)
    assert checkpointer.step() == []
    clock[0] += timedelta(minutes=2)
    assert [m.seq for m in checkpointer.step()] == [head(store, A)]
    clock[0] += timedelta(hours=5)
    assert checkpointer.step() == []  # nothing new to sign


def test_a_chain_without_a_certificate_is_logged_once_and_the_others_go_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    certify(store, A)
    clock = [now()]
    checkpointer = Checkpointer(store, Schedule(entries=1, minutes=0), clock=lambda: clock[0])
    write(store, A, 1)
    write(store, B, 1)
    with caplog.at_level(logging.INFO, logger="benhan.ledger"):
        assert [m.facility for m in checkpointer.step()] == [A]
        write(store, B, 1)
        clock[0] += RETRY + timedelta(seconds=1)
        assert checkpointer.step() == []  # tried again, the same reason: not logged again
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"'{B}'" in warnings[0].getMessage()
    assert f"no certificate was ever issued to Organization/{B}" in warnings[0].getMessage()
    certify(store, B)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="benhan.ledger"):
        assert checkpointer.step() == []  # waiting for its retry
        clock[0] += RETRY
        assert [m.facility for m in checkpointer.step()] == [B]
    assert [r.getMessage() for r in caplog.records] == [
        f"ledger: facility '{B}' is checkpointed again"
    ]


def test_many_chains_without_certificates_are_logged_in_one_line(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A hub's first round, before its facilities have certificates."""
    uncertified = [f"2701{i}" for i in range(5)]
    for facility in uncertified:
        write(store, facility, 1)
    with caplog.at_level(logging.WARNING, logger="benhan.ledger"):
        assert Checkpointer(store, Schedule(1, 0)).step() == []
    (line,) = [r.getMessage() for r in caplog.records]
    first = ", ".join(uncertified[:3])  # the line stays short however many chains a hub holds
    assert line.startswith(f"ledger: no checkpoint for 5 facilities ({first}…)")
    assert uncertified[3] not in line
    assert "no certificate was ever issued" in line


def test_a_revoked_certificate_is_not_used_and_says_why(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    record = certify(store, A)
    with store.begin() as conn:
        pki.revoke(conn, record.serial_hex, reason="cessationOfOperation")
    write(store, A, 1)
    with caplog.at_level(logging.WARNING, logger="benhan.ledger"):
        assert Checkpointer(store, Schedule(1, 0)).step() == []
    assert "was revoked" in caplog.records[0].getMessage()


def test_the_server_runs_rounds_in_the_background_and_survives_a_failed_one(
    store: Store, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    rounds: list[int] = []
    second = threading.Event()

    def step(self: Checkpointer, stop: object = None) -> list[checkpoints.Checkpoint]:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise sa.exc.OperationalError("SELECT", {}, Exception("the database went away"))
        second.set()
        return []

    monkeypatch.setattr(Checkpointer, "step", step)
    monkeypatch.setattr(ledger_signing, "POLL_SECONDS", 0.01)
    app = create_app(settings=make_settings(database_url, tmp_path), store=store)
    with caplog.at_level(logging.ERROR, logger="benhan.api"), TestClient(app):
        assert second.wait(30)
    assert "ledger: checkpoint round failed (OperationalError)" in caplog.text
    monkeypatch.setenv(EVERY_ENV, "0")
    monkeypatch.setenv(MINUTES_ENV, "0")
    rounds.clear()
    with TestClient(create_app(settings=make_settings(database_url, tmp_path), store=store)):
        pass
    assert rounds == []  # off: no rounds at all


def test_the_signer_is_the_facilitys_own_certificate(store: Store) -> None:
    record = certify(store, A)
    with store.read() as conn:
        assert facility_signer(conn, A).chain[0] == record.certificate
        with pytest.raises(pki.NoUsableCertificate, match=f"Organization/{B}"):
            facility_signer(conn, B)


# ---- revocation of the signer -----------------------------------------------------------------


def signed_then_revoked(
    store: Store, facility: str, *, after: timedelta, reason: str
) -> checkpoints.Checkpoint:
    """A checkpoint, then its signer revoked `after` its time (negative: before it)."""
    record = certify(store, facility)
    write(store, facility, 2)
    with store.read() as conn:
        signer = facility_signer(conn, facility)
    with store.begin() as conn:
        made = checkpoints.make(conn, facility, signer)
    with store.begin() as conn:  # a CRL gives whole seconds: the margins are more than one
        pki.revoke(conn, record.serial_hex, reason=reason, at=from_micros(made.at) + after)
    return made


def test_a_signer_revoked_before_the_checkpoint_fails_it_after_it_holds_with_a_note(
    store: Store,
) -> None:
    before = signed_then_revoked(store, A, after=timedelta(seconds=-5), reason="superseded")
    after = signed_then_revoked(store, B, after=timedelta(seconds=3), reason="superseded")
    report = checked(store)
    assert dict(report.counts) == {"checkpoint-signature": 1}
    found = report.findings[0]
    assert (found.facility, found.seq) == (A, before.seq)
    assert "before the signing time" in found.message
    assert {c.facility: c.checkpoints for c in report.chains} == {A: 0, B: 1, "": 0}
    notes = [n for n in report.notes.values() if n.facility == B]
    assert [(n.first, n.count) for n in notes] == [(after.seq, 1)]
    assert "after the signing time: the signature stands" in notes[0].message


def test_a_key_compromise_taints_checkpoints_made_before_it_too(store: Store) -> None:
    """As for documents (signing/verify.py): whoever had the key could have signed them."""
    made = signed_then_revoked(store, C, after=timedelta(seconds=3), reason="keyCompromise")
    report = checked(store)
    assert dict(report.counts) == {"checkpoint-signature": 1}
    assert report.findings[0].seq == made.seq
    assert "compromised key" in report.findings[0].message


def test_without_a_ca_in_the_store_revocation_is_noted_as_not_checked(store: Store) -> None:
    write(store, A, 1)
    from tests.signing.certs import make_chain

    with store.begin() as conn:
        checkpoints.make(conn, A, make_chain("Trạm Y tế 27001").signer())
    report = checked(store)
    assert report.intact
    assert [n.message for n in report.notes.values()] == [
        "chưa kiểm tra thu hồi / revocation not checked: chưa khởi tạo CA: chạy `benhan pki "
        "init` / no CA: run `benhan pki init`"
    ]


runner = CliRunner()


def test_audit_verify_prints_the_note_and_fails_on_the_revoked_signer(
    store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENHAN_DATABASE_URL", database_url)
    monkeypatch.setattr(ledger_commands, "out", Console(width=400))
    signed_then_revoked(store, B, after=timedelta(seconds=3), reason="superseded")
    result = runner.invoke(ledger_commands.audit_app, ["verify"])
    assert result.exit_code == 0, result.output
    assert f"note {B}, điểm kiểm / checkpoints" in result.output
    assert "the signature stands" in result.output
    before = signed_then_revoked(store, A, after=timedelta(seconds=-5), reason="superseded")
    result = runner.invoke(ledger_commands.audit_app, ["verify"])
    assert result.exit_code == 1
    assert "checkpoint-signature" in result.output
    assert f"checkpoint at seq {before.seq}" in result.output
    assert "before the signing time" in result.output
