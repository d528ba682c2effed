"""The ledger's checkpoints: a facility's chain head signed with its key, each checkpoint linked to
the facility's previous one and to the store's newest, so that deleting, replacing or re-signing
one shows (`ledger.verify` reports what `check` finds).

A checkpoint is a compact JWS whose header carries the certificate chain (x5c) and whose payload
is, since version 2:

    v         2 (absent: version 1, the checkpoints made before links existed)
    facility, seq, hash, at   the chain head signed, and when
    prev      digest of the facility's previous checkpoint (null: its first)
    follows   {facility, seq, digest} of the store's newest checkpoint, of whatever facility,
              when this one was made (null: the store's first)

A checkpoint's digest is the SHA-256 of its JWS. Through `follows` the checkpoints of every
facility in a store form one chain, so a checkpoint commits to every other facility's newest
checkpoint at that moment (and to all before) with a single link, not one per facility (a hub
holds some 1,400). A facility that rewrites its chain and re-signs all its own checkpoints
breaks the `follows` of the next checkpoint another facility made, which it cannot sign. The
newest checkpoints, which nothing follows yet, are as exposed as the unsigned entries.

Several servers may make checkpoints at once: a unique index on `follows` lets only one
checkpoint follow each, so the chain never forks; the other is made again after it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from benhan.fhir.primitives import from_micros, instant, micros, now
from benhan.store.schema import ledger_checkpoint, ledger_entry, ledger_head

if TYPE_CHECKING:
    from benhan.signing.signers import Signer

CHECKPOINT_TYPE = "benhan-ledger-checkpoint+jws"
VERSION = 2
CORE = frozenset({"facility", "seq", "hash", "at"})  # version 1's whole payload
LINKED = CORE | {"v", "prev", "follows"}
# What the store's first linked checkpoint follows (a value, not NULL: a unique index lets any
# number of NULLs in, and two first checkpoints would fork the chain).
FIRST = hashlib.sha256(b"benhan-ledger-checkpoints\x00").digest()
ATTEMPTS = 10  # another server's checkpoint took the link we read: read again, sign again

# (the signer's certificate chain, the signing time) → why the signature no longer holds (None:
# it holds) and what a person should still read (revoked after signing, not checked …).
Revocation = Callable[[Sequence[x509.Certificate], datetime], tuple[str | None, list[str]]]


class CheckpointError(Exception):
    """A checkpoint that cannot be made (the message says why)."""


@dataclass(frozen=True)
class Checkpoint:
    facility: str
    seq: int
    hash: bytes
    at: int  # microseconds since epoch, UTC
    jws: str

    @property
    def digest(self) -> bytes:
        return digest_of(self.jws)


def digest_of(jws: str) -> bytes:
    return hashlib.sha256(jws.encode()).digest()


# ---- making one -------------------------------------------------------------------------------


def make(conn: sa.Connection, facility: str, signer: Signer) -> Checkpoint:
    """Sign the facility's chain head now, linked to its previous checkpoint and to the store's
    newest (or return the checkpoint already made at that head). No lock on the chain head:
    the facility's writers never wait for a checkpoint."""
    moment = now()
    problem = (
        _chain_problem(signer.chain, moment, ())
        if signer.chain
        else "chuỗi chứng thư trống / empty certificate chain"
    )
    for _attempt in range(ATTEMPTS):
        # In this order: a newest checkpoint read after the store's newest is never older than
        # it, so two checkpoints of one facility never follow the same previous one.
        follows, prev = _store_newest(conn), _newest(conn, facility)
        seq, chained = _head(conn, facility)
        if prev is not None and prev.seq >= seq:
            return prev
        if problem is not None:  # a checkpoint that verify would reject is worth nothing
            raise CheckpointError(f"không ký được / cannot sign: {problem}")
        made = _signed(signer, facility, seq, chained, micros(moment), prev, follows)
        if _inserted(conn, made, follows):
            return made
        if (existing := _stored(conn, facility, seq)) is not None:  # a concurrent signer's
            return existing
    raise CheckpointError(
        "máy chủ khác đang ký cùng lúc, thử lại / other servers kept making checkpoints at the "
        "same moment: try again"
    )


def _head(conn: sa.Connection, facility: str) -> tuple[int, bytes]:
    h = ledger_head.c
    head = conn.execute(sa.select(h.seq, h.hash).where(h.facility == facility)).first()
    if head is None or head.seq == 0:
        raise CheckpointError(
            f"sổ của cơ sở {facility!r} chưa có mục nào để ký / the ledger of facility "
            f"{facility!r} has no entries to sign"
        )
    return int(head.seq), bytes(head.hash)


_COLUMNS = tuple(ledger_checkpoint.c[name] for name in ("facility", "seq", "hash", "at", "jws"))


def _newest(conn: sa.Connection, facility: str) -> Checkpoint | None:
    c = ledger_checkpoint.c
    row = conn.execute(
        sa.select(*_COLUMNS).where(c.facility == facility).order_by(c.seq.desc()).limit(1)
    ).first()
    return None if row is None else _checkpoint(row)


def _stored(conn: sa.Connection, facility: str, seq: int) -> Checkpoint | None:
    c = ledger_checkpoint.c
    row = conn.execute(sa.select(*_COLUMNS).where(c.facility == facility, c.seq == seq)).first()
    return None if row is None else _checkpoint(row)


def _checkpoint(row: Sequence[Any]) -> Checkpoint:
    facility, seq, chained, at, jws = row
    return Checkpoint(facility, int(seq), bytes(chained), int(at), jws)


def _store_newest(conn: sa.Connection) -> Checkpoint | None:
    """The checkpoint nothing follows yet: the latest by its time, then whatever follows that
    (a server whose clock is behind may have made the newest)."""
    c = ledger_checkpoint.c
    row = conn.execute(sa.select(*_COLUMNS).order_by(c.at.desc()).limit(1)).first()
    while row is not None:
        after = conn.execute(sa.select(*_COLUMNS).where(c.follows == digest_of(row.jws))).first()
        if after is None:
            return _checkpoint(row)
        row = after
    return None


def _signed(
    signer: Signer,
    facility: str,
    seq: int,
    chained: bytes,
    at: int,
    prev: Checkpoint | None,
    follows: Checkpoint | None,
) -> Checkpoint:
    payload = _payload(facility, seq, chained, at) | {
        "v": VERSION,
        "prev": prev.digest.hex() if prev is not None else None,
        "follows": None
        if follows is None
        else {"facility": follows.facility, "seq": follows.seq, "digest": follows.digest.hex()},
    }
    return Checkpoint(facility, seq, chained, at, _sign(signer, payload))


def _inserted(conn: sa.Connection, made: Checkpoint, follows: Checkpoint | None) -> bool:
    """Whether the checkpoint was stored: not if one is at its seq, or follows the same one."""
    values = {c.name: getattr(made, c.name) for c in _COLUMNS}
    values["digest"] = made.digest
    values["follows"] = follows.digest if follows is not None else FIRST
    return conn.execute(_insert_or_nothing(conn).values(values)).rowcount == 1


def _insert_or_nothing(conn: sa.Connection) -> Any:
    """INSERT … ON CONFLICT DO NOTHING, whichever unique index the conflict is on."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(ledger_checkpoint).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(ledger_checkpoint).on_conflict_do_nothing()


def _payload(facility: str, seq: int, chained: bytes, at: int) -> dict[str, Any]:
    return {"facility": facility, "seq": seq, "hash": chained.hex(), "at": instant(from_micros(at))}


# ---- the schedule's view ----------------------------------------------------------------------


@dataclass(frozen=True)
class ChainState:
    """A chain's head and its newest checkpoint: whether a new one is due."""

    facility: str
    head: int
    signed: int  # the newest checkpoint's seq (0: none yet)
    signed_at: int | None  # its time, microseconds since epoch

    @property
    def unsigned(self) -> int:
        return self.head - self.signed


def chain_states(conn: sa.Connection) -> list[ChainState]:
    """Every chain with entries, one indexed lookup each for its newest checkpoint."""
    h, c, any_ = ledger_head.c, ledger_checkpoint.c, ledger_checkpoint.alias("any_").c
    newest = sa.select(sa.func.max(any_.seq)).where(any_.facility == h.facility)
    signed = sa.and_(
        c.facility == h.facility, c.seq == newest.correlate(ledger_head).scalar_subquery()
    )
    rows = conn.execute(
        sa.select(h.facility, h.seq, c.seq, c.at)
        .select_from(ledger_head.outerjoin(ledger_checkpoint, signed))
        .where(h.seq > 0)
        .order_by(h.facility)
    )
    return [ChainState(f, int(head), int(seq or 0), at) for f, head, seq, at in rows]


# ---- checking ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What checking one checkpoint found: problems as (kind, message) and notes for people."""

    seq: int
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        """It signs the chain as it is (whatever its links to other checkpoints)."""
        return all(kind == "checkpoint-link" for kind, _message in self.problems)

    def add(self, kind: str, vi: str, en: str) -> None:
        self.problems.append((kind, _at(self.seq, f"{vi} / {en}")))


def check(
    conn: sa.Connection,
    facility: str,
    *,
    anchors: Sequence[x509.Certificate] = (),
    revocation: Revocation | None = None,
    page: int = 2000,
) -> Iterator[Outcome]:
    """Each of the facility's checkpoints in seq order: against the chain entry it signed, its
    signature and signer, the facility's previous checkpoint, and the store's checkpoint it
    follows."""
    walk, query = _CheckpointWalk(facility, anchors, revocation), _checkpoint_page()
    after = 0
    while rows := conn.execute(query, {"f": facility, "after": after, "n": page}).all():
        for row in rows:
            yield walk.checkpoint(row)
        after = rows[-1][0]


@functools.cache
def _checkpoint_page() -> sa.Select[Any]:
    """A page of a facility's checkpoints, each with the entry at its seq and the checkpoint
    it follows (found by its stored digest: the walk checks that digest against the JWS)."""
    c, e = ledger_checkpoint, ledger_entry
    followed = ledger_checkpoint.alias("followed")
    signed = sa.and_(e.c.facility == c.c.facility, e.c.seq == c.c.seq)
    return (
        sa.select(c.c.seq, c.c.hash, c.c.at, c.c.jws, c.c.digest, c.c.follows)
        .add_columns(e.c.hash, followed.c.jws)
        .select_from(c.outerjoin(e, signed).outerjoin(followed, followed.c.digest == c.c.follows))
        .where(c.c.facility == sa.bindparam("f"), c.c.seq > sa.bindparam("after"))
        .order_by(c.c.seq)
        .limit(sa.bindparam("n"))
    )


class _CheckpointWalk:
    """One facility's checkpoints, in seq order."""

    def __init__(
        self,
        facility: str,
        anchors: Sequence[x509.Certificate],
        revocation: Revocation | None,
    ) -> None:
        self.facility, self.anchors, self.revocation = facility, anchors, revocation
        self.previous: tuple[int, bytes] | None = None  # seq and digest of the one before
        self.linked = False  # a checkpoint with links was seen: every later one must have them

    def checkpoint(self, row: Sequence[Any]) -> Outcome:
        seq, signed, at, jws, stored_digest, follows, chained, followed = row
        outcome, signed, digest = Outcome(seq), bytes(signed), digest_of(jws)
        if chained is None or bytes(chained) != signed:
            gone = chained is None
            why = "mục này đã bị xoá" if gone else "chuỗi đã bị viết lại trước đó"
            what = "its entry was deleted" if gone else "the chain was rewritten up to it"
            outcome.add("checkpoint-mismatch", f"không khớp: {why}", f"does not match: {what}")
        payload = self._signature(outcome, jws, _payload(self.facility, seq, signed, at), at)
        if stored_digest is None or bytes(stored_digest) != digest:
            outcome.add("checkpoint-link", "mã băm trong kho không phải của chữ ký: đã bị thay",
                        "its stored digest is not its JWS's: it was replaced")  # fmt: skip
        if payload is not None:
            self._links(outcome, payload, follows, followed)
        self.previous = (seq, digest)
        return outcome

    def _signature(
        self, outcome: Outcome, jws: str, expected: dict[str, Any], at: int
    ) -> dict[str, Any] | None:
        """Check the signature and its signer; the signed payload, when it matches."""
        signed_at = from_micros(at).astimezone(UTC)
        parsed = _read(jws)
        problem, signed = _signature_problem(parsed, expected, signed_at, self.anchors)
        if problem is None and parsed is not None and self.revocation is not None:
            problem, notes = self.revocation(parsed.chain, signed_at)
            outcome.notes += notes
        if problem is not None:
            outcome.problems.append(("checkpoint-signature", _at(outcome.seq, problem)))
        return parsed.payload if parsed is not None and signed else None

    def _links(
        self, outcome: Outcome, payload: dict[str, Any], follows: bytes | None, followed: str | None
    ) -> None:
        if "v" not in payload:  # version 1: made before links
            if self.linked:
                outcome.add("checkpoint-link", "không có liên kết dù điểm kiểm trước có: bị chèn",
                            "it has no links though an earlier one has: inserted")  # fmt: skip
            return
        self.linked = True
        for problem in (
            _prev_problem(payload.get("prev"), self.previous),
            _follows_problem(payload.get("follows"), follows, followed),
        ):
            if problem is not None:
                outcome.add("checkpoint-link", *problem)


def _at(seq: int, message: str) -> str:
    return f"điểm kiểm tại mục {seq} / checkpoint at seq {seq}: {message}"


def _prev_problem(prev: object, previous: tuple[int, bytes] | None) -> tuple[str, str] | None:
    """The facility's previous checkpoint, as signed, against the one before it in the table."""
    if previous is None:
        return None if prev is None else ("điểm kiểm trước nó đã bị xoá",
                                          "the checkpoint before it was deleted")  # fmt: skip
    if prev == previous[1].hex():
        return None
    at = previous[0]
    return (
        f"không nối tiếp điểm kiểm tại mục {at}: một điểm kiểm ở giữa bị xoá, hoặc điểm kiểm tại "
        f"mục {at} bị thay hay bị chèn",
        f"it does not follow the checkpoint at seq {at}: one between was deleted, or the one at "
        f"seq {at} was replaced or inserted",
    )


def _follows_problem(
    signed: object, follows: bytes | None, followed: str | None
) -> tuple[str, str] | None:
    """The store's checkpoint it follows, as signed, against the row the stored link finds."""
    differs = ("liên kết trong kho khác liên kết đã ký", "its stored link differs from the signed")
    if signed is None:
        return None if follows is not None and bytes(follows) == FIRST else differs
    if not isinstance(signed, dict) or not isinstance(signed.get("digest"), str):
        return ("liên kết đã ký không đọc được", "its signed link is unreadable")
    if follows is None or bytes(follows).hex() != signed["digest"]:
        return differs
    if followed is not None and digest_of(followed).hex() == signed["digest"]:
        return None
    facility, seq = signed.get("facility"), signed.get("seq")
    return (
        f"điểm kiểm nó theo sau (cơ sở {facility!r}, mục {seq}) đã bị xoá hoặc bị thay",
        f"the checkpoint it follows (facility {facility!r}, seq {seq}) was deleted or replaced",
    )


# ---- signatures -------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(signer: Signer, payload: dict[str, Any]) -> str:
    """A compact JWS (RFC 7515) made with the signer's key: the header names the algorithm and
    carries the certificate chain (x5c, standard base64 DER), the payload the checkpoint."""
    from cryptography.hazmat.primitives.serialization import Encoding

    header = {
        "alg": signer.algorithm,
        "typ": CHECKPOINT_TYPE,
        "x5c": [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in signer.chain],
    }
    signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(payload))}"
    return f"{signing_input}.{_b64url(signer.sign(signing_input.encode()))}"


@dataclass(frozen=True)
class _Jws:
    header: dict[str, Any]
    payload: Any
    chain: list[x509.Certificate]
    signature: bytes
    signing_input: str


def _read(jws: str) -> _Jws | None:
    try:
        head_b64, body_b64, sig_b64 = jws.split(".")
        header = orjson.loads(_unb64url(head_b64))
        payload = orjson.loads(_unb64url(body_b64))
        chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in header["x5c"]]
        signature = _unb64url(sig_b64)
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    return _Jws(header, payload, chain, signature, f"{head_b64}.{body_b64}")


def _signature_problem(
    parsed: _Jws | None, expected: dict[str, Any], at: datetime, anchors: Sequence[x509.Certificate]
) -> tuple[str | None, bool]:
    """Why a checkpoint's JWS does not hold (None if it does), and whether its payload is the
    stored checkpoint's, signed: its signature by the first certificate of x5c, its payload
    against `expected` (version 1's fields), each certificate's validity at signing time and
    each one issued by the next; with anchors, a chain that ends at one."""
    if parsed is None:
        return "chữ ký không đọc được / signature unreadable (not a compact JWS with x5c)", False
    header, payload, chain = parsed.header, parsed.payload, parsed.chain
    if header.get("typ") != CHECKPOINT_TYPE or not chain or not isinstance(payload, dict):
        return "không phải chữ ký điểm kiểm / not a checkpoint signature", False
    if not _signature_holds(header.get("alg"), chain[0], parsed.signature, parsed.signing_input):
        return "chữ ký không hợp lệ / signature invalid", False
    fields = LINKED if payload.get("v") == VERSION else CORE
    if set(payload) != fields or {k: payload[k] for k in CORE} != expected:
        differs = "nội dung đã ký khác điểm kiểm / the signed payload differs from the checkpoint"
        return differs, False
    return _chain_problem(chain, at, anchors), True


def _signature_holds(alg: object, cert: x509.Certificate, signature: bytes, signed: str) -> bool:
    key = cert.public_key()
    try:
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey) and len(signature) == 64:
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), signed.encode(), ec.ECDSA(hashes.SHA256()))
        elif alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _chain_problem(
    chain: list[x509.Certificate], at: datetime, anchors: Sequence[x509.Certificate]
) -> str | None:
    for cert in chain:
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            return (
                f"chứng thư hết hạn khi ký / certificate not valid at signing time: "
                f"{cert.subject.rfc4514_string()}"
            )
    for cert, issuer in itertools.pairwise(chain):
        if not _issued_by(cert, issuer):
            return (
                f"chuỗi chứng thư đứt / broken certificate chain: "
                f"{cert.subject.rfc4514_string()} not issued by {issuer.subject.rfc4514_string()}"
            )
    if anchors and not any(chain[-1] == a or _issued_by(chain[-1], a) for a in anchors):
        return (
            f"chứng thư không thuộc nơi tin cậy / certificate chain not trusted: "
            f"{chain[-1].subject.rfc4514_string()}"
        )
    return None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        ca = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        cert.verify_directly_issued_by(issuer)
    except (x509.ExtensionNotFound, ValueError, TypeError, InvalidSignature):
        return False
    return ca
