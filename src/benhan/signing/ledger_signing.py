"""The ledger's checkpoints from the signing side: each facility's chain signed with its own
certificate, by the server on a schedule, and their signers checked against the store's CRLs.

The server (`benhan serve`, api/app.py) makes a checkpoint of a chain once it has grown by
BENHAN_CHECKPOINT_EVERY entries (default 1,000) or BENHAN_CHECKPOINT_MINUTES (default 60) have
passed since its last checkpoint, whichever comes first; 0 turns that reason off, both 0 turn
the server's checkpoints off. It signs every facility's chain in the store with that
facility's certificate; a chain it cannot sign (no certificate yet, one revoked or expired) is
logged once with the reason and tried again later, and the writes go on. The province's own
chain (facility "": the CA's events) has no certificate of its own and is left to
`benhan audit checkpoint --facility "" --key … --chain …`.

A checkpoint is about 3.4 KB (its JWS carries three certificates): at a hub of 1,400
facilities, one an hour for each chain that changed is of the order of 40 GB a year, one a
quarter-hour four times that.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from cryptography import x509

from benhan.fhir.primitives import from_micros, now
from benhan.signing import pki
from benhan.signing.signers import Signer
from benhan.signing.verify import revocation_checks
from benhan.store import checkpoints
from benhan.store.database import Store

log = logging.getLogger("benhan.ledger")

EVERY_ENV, MINUTES_ENV = "BENHAN_CHECKPOINT_EVERY", "BENHAN_CHECKPOINT_MINUTES"
POLL_SECONDS = 30.0  # how often the server looks for chains due (at most)
RETRY = timedelta(minutes=15)  # a chain that could not be signed is tried again after this
LOGGED_APART = 3  # more failures than this in one round are logged in one line


def facility_signer(conn: sa.Connection, facility: str) -> Signer:
    """The facility's own certificate from the provincial CA (`benhan pki issue`)."""
    return pki.signer_for(conn, f"Organization/{facility}")


# ---- revocation of the signers ----------------------------------------------------------------


def revocation_check(conn: sa.Connection) -> checkpoints.Revocation:
    """A checkpoint's signer checked as a document's is (signing/verify.py) against the CRLs
    of the store's CA: revoked before the checkpoint was made, it fails; after, it holds with
    a note (unless for a key compromise, which taints what the key signed before too)."""
    try:
        crls, anchors = pki.crls(conn), pki.trust_anchors(conn)
    except pki.PkiError as exc:
        reason = f"chưa kiểm tra thu hồi / revocation not checked: {exc}"
        return lambda _chain, _at: (None, [reason])
    moment = datetime.now(UTC)

    def check(
        chain: Sequence[x509.Certificate], signed_at: datetime
    ) -> tuple[str | None, list[str]]:
        found = revocation_checks(chain, anchors, crls, signed_at, moment)
        failed = next((c.message for c in found if not c.ok), None)
        return failed, [c.message for c in found if c.ok and c.warning]

    return check


# ---- the schedule -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    entries: int = 1000  # a checkpoint once a chain has this many entries no checkpoint covers
    minutes: float = 60.0  # … or once its last checkpoint is this old (and it has new entries)

    @classmethod
    def from_env(cls) -> Schedule:
        """The schedule from the environment: a bad value stops the server from starting."""
        return cls(
            entries=int(_number(EVERY_ENV, str(cls.entries), whole=True)),
            minutes=_number(MINUTES_ENV, str(cls.minutes), whole=False),
        )

    @property
    def on(self) -> bool:
        return self.entries > 0 or self.minutes > 0

    @property
    def poll_seconds(self) -> float:
        return min(POLL_SECONDS, self.minutes * 60) if self.minutes > 0 else POLL_SECONDS

    def due(self, chain: checkpoints.ChainState, moment: datetime) -> bool:
        if chain.unsigned <= 0:
            return False
        if self.entries > 0 and chain.unsigned >= self.entries:
            return True
        if self.minutes <= 0:
            return False
        if chain.signed_at is None:  # never signed: its entries have waited long enough
            return True
        return moment - from_micros(chain.signed_at) >= timedelta(minutes=self.minutes)


def _number(name: str, default: str, *, whole: bool) -> float:
    raw = os.environ.get(name, default).strip()
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = -1
    if not 0 <= value < float("inf"):
        vi, en = ("số nguyên", "a whole number") if whole else ("một số", "a number")
        raise ValueError(f"{name}={raw!r}: phải là {vi} ≥ 0 / must be {en} ≥ 0")
    return value


class Checkpointer:
    """Makes the checkpoints that are due, a round at a time: the server calls `step` every
    poll, tests call it with their own clock."""

    def __init__(
        self, store: Store, schedule: Schedule, clock: Callable[[], datetime] = now
    ) -> None:
        self.store, self.schedule, self.clock = store, schedule, clock
        self.failing: dict[str, tuple[str, datetime]] = {}  # facility → (reason, retry after)

    def step(self, stop: Callable[[], bool] = lambda: False) -> list[checkpoints.Checkpoint]:
        """One round: every chain due that is not waiting to be retried, until `stop`."""
        moment = self.clock()
        with self.store.read() as conn:
            chains = checkpoints.chain_states(conn)
        made, failed = [], {}
        for chain in chains:
            if stop():
                break
            if not chain.facility:  # the province's own chain: no facility certificate signs it
                continue
            if not self.schedule.due(chain, moment) or self._waiting(chain.facility, moment):
                continue
            try:
                made.append(self._sign(chain.facility))
            except (checkpoints.CheckpointError, pki.PkiError) as exc:
                failed[chain.facility] = str(exc)
            else:
                self._recovered(chain.facility)
        self._failed(failed, moment)
        return made

    def _sign(self, facility: str) -> checkpoints.Checkpoint:
        with self.store.read() as conn:  # a key is decrypted outside the write transaction
            signer = facility_signer(conn, facility)
        with self.store.begin() as conn:
            return checkpoints.make(conn, facility, signer)

    def _waiting(self, facility: str, moment: datetime) -> bool:
        failing = self.failing.get(facility)
        return failing is not None and moment < failing[1]

    def _failed(self, failed: dict[str, str], moment: datetime) -> None:
        """Log each reason once, not every round; many at once (a hub's first round before
        its facilities have certificates) in one line."""
        new = {f: r for f, r in failed.items() if self.failing.get(f, ("", moment))[0] != r}
        self.failing.update((f, (r, moment + RETRY)) for f, r in failed.items())
        if len(new) > LOGGED_APART:
            facility, reason = next(iter(new.items()))
            named = ", ".join(list(new)[:LOGGED_APART])  # a hub holds hundreds of chains
            log.warning("ledger: no checkpoint for %d facilities (%s…), e.g. %r: %s",
                        len(new), named, facility, reason)  # fmt: skip
            return
        for facility, reason in new.items():
            log.warning("ledger: no checkpoint for facility %r: %s", facility, reason)

    def _recovered(self, facility: str) -> None:
        if self.failing.pop(facility, None) is not None:
            log.info("ledger: facility %r is checkpointed again", facility)
