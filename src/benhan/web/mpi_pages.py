"""The identity steward's pages: the queue of possible matches, one pair side by side with the
model's evidence field by field, and the decisions on it (link, keep apart or unlink, hand back
to the model, undo), each with a reason, audited, and standing in every later relink."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import sqlalchemy as sa
from babel.numbers import format_decimal, format_percent
from fastapi import APIRouter, HTTPException, Query, Request
from starlette.responses import Response

from benhan.access import Role
from benhan.emr.model import display_name, parse_stamp, search_all
from benhan.emr.registration import address_text
from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.outcome import not_found
from benhan.fhir.primitives import from_micros
from benhan.identity import review
from benhan.identity.decide import Thresholds
from benhan.identity.fhir_csv import patient_row
from benhan.identity.online import Evidence
from benhan.store.repository import Repo
from benhan.store.schema import resource
from benhan.store.unit import unit
from benhan.web.desk_pages import bilingual
from benhan.web.forms import FHIR_ID, Field, Message, guard, guard_post, page, see_other, store_of
from benhan.web.i18n import N_, Lang
from benhan.web.rendering import PageRoute, language
from benhan.web.session import PageSession

router = APIRouter(route_class=PageRoute, include_in_schema=False)

STEWARD = "mpi-steward"
PAGE_SIZE = 20
MAX_PAGE = 10_000
# What the steward compares, in the order the model compares it (identity/compare.py).
FIELDS = {
    "name": N_("Họ và tên"),
    "birth_date": N_("Ngày sinh"),
    "sex": N_("Giới tính"),
    "cccd": N_("Số CCCD"),
    "cmnd": N_("Số CMND cũ"),
    "bhyt": N_("Số thẻ BHYT"),
    "phone": N_("Điện thoại"),
    "commune": N_("Xã, phường"),
    "postcode": N_("Mã bưu chính"),
    "address": N_("Địa chỉ"),
    "identifier": N_("Mã định danh khác"),
}
# The model's level labels (identity/compare.py); a label not listed here is shown as it is.
LEVELS = {
    "null": N_("thiếu ở một bên"),
    "exact": N_("trùng khớp"),
    "equal": N_("trùng khớp"),
    "exact folded": N_("trùng khi bỏ dấu"),
    "one letter off, given name equal": N_("lệch một chữ cái, tên trùng"),
    "one letter off in the given name": N_("lệch một chữ cái ở tên"),
    "family+given, middle differs": N_("trùng họ và tên, khác tên đệm"),
    "jaro-winkler ≥ 0.92": N_("rất giống (Jaro-Winkler ≥ 0,92)"),
    "jaro-winkler ≥ 0.80": N_("khá giống (Jaro-Winkler ≥ 0,80)"),
    "day/month swapped": N_("đảo ngày và tháng"),
    "same year and month": N_("cùng năm và tháng"),
    "year-only, same year": N_("một bên chỉ có năm, cùng năm"),
    "same year": N_("cùng năm"),
    "else": N_("khác nhau"),
}
# The records side by side: what the model compares, then where and when each was written.
COMPARED = ("name", "birth_date", "sex", "cccd", "cmnd", "bhyt", "phone", "address", "commune")
NOTICES = {
    "link": Message(N_("Đã liên kết hai hồ sơ vào một người.")),
    "apart": Message(N_("Đã giữ riêng hai hồ sơ: từ nay không bao giờ được liên kết.")),
    "unlink": Message(N_("Đã tách hai hồ sơ: từ nay không bao giờ được liên kết.")),
    "model": Message(N_("Đã trả cặp hồ sơ cho mô hình quyết định.")),
    "undone": Message(N_("Đã hoàn tác quyết định.")),
}
BAR_WIDTH, BAR_MID = 160, 80  # the weight bars' SVG: evidence against left of the middle, for right
MIN_SCALE = 10.0  # bits filling half a bar, at least: small weights must look small


def may_review(r: Role) -> bool:
    return r.code == STEWARD


def _number(raw: str) -> int:
    """A page number from the query string: anything odd is the first page."""
    return min(int(raw), MAX_PAGE) if raw.isdigit() else 0


def _pair_ids(a: str, b: str) -> None:
    """Two well-formed, different record ids, else the 404 page (nothing read, nothing logged)."""
    if a == b or not FHIR_ID.match(a) or not FHIR_ID.match(b):
        raise HTTPException(404)


def _hub(request: Request) -> str:
    """The facility code of this node, which owns the index's Persons."""
    return str(request.app.state.settings.facility)


def _formats(lang: Lang) -> dict[str, Callable[[float], str]]:
    return {
        "percent": partial(format_percent, format="#,##0.0%", locale=lang),
        "bits": lambda w: format_decimal(w, "+#,##0.0;−#,##0.0", locale=lang) if w else "0",
    }


# ---- the records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One Patient, as the steward compares it with another."""

    id: str
    name: str
    birth_date: str
    sex: str
    cccd: str
    cmnd: str
    bhyt: str
    phone: str
    commune: str
    address: str
    facility: str  # MA_CSKCB of the facility that owns the record ("" for the province's)
    updated: datetime | None


def _record(patient: Resource, owner: str) -> Record:
    row = patient_row(patient)
    return Record(
        id=patient["id"],
        name=display_name(patient),
        birth_date=row["birth_date"],
        sex=row["sex"],
        cccd=row["cccd"],
        cmnd=row["cmnd"],
        bhyt=row["bhyt"],
        phone=row["phone"],
        commune=_commune(patient, row["commune"]),
        address=address_text(patient),
        facility=owner,
        updated=parse_stamp((patient.get("meta") or {}).get("lastUpdated")),
    )


def _commune(patient: Resource, compared: str) -> str:
    """The home commune's name with the code the model compares, e.g. "Phường Mão Điền (09409)"."""
    addresses = patient.get("address") or [{}]
    name = str(next((a for a in addresses if a.get("use") == "home"), addresses[0]).get("city", ""))
    return f"{name} ({compared})" if name and compared and compared != name else name or compared


def _owners(conn: sa.Connection, ids: list[str]) -> dict[str, str]:
    """The facility that owns each Patient: the row's owner, which no sender can set."""
    q = sa.select(resource.c.id, resource.c.facility).where(
        resource.c.rtype == "Patient", resource.c.id.in_(ids)
    )
    return {rid: owner for rid, owner in conn.execute(q).all()}


def _queued_records(repo: Repo, ids: list[str]) -> dict[str, Record]:
    """The queue's Patients in one search through the steward's repository (authorized, and one
    AuditEvent naming them all); a record deleted since it was queued is missing."""
    if not ids:
        return {}
    found = search_all(repo, "Patient", [("_id", ",".join(ids)), ("_count", str(len(ids)))])
    owners = _owners(repo.conn, [p["id"] for p in found])
    return {p["id"]: _record(p, owners.get(p["id"], "")) for p in found}


def _pair_records(repo: Repo, a: str, b: str) -> tuple[Record, Record]:
    """Both Patients, read through the steward's repository: a 404 page when one is not there."""
    first, second = (repo.read("Patient", rid).resource for rid in (a, b))
    owners = _owners(repo.conn, [a, b])
    return _record(first, owners.get(a, "")), _record(second, owners.get(b, ""))


def _facility_names(repo: Repo, codes: Iterable[str]) -> dict[str, str]:
    """Facility names by MA_CSKCB, from the directory in one search."""
    wanted = sorted({c for c in codes if c})
    if not wanted:
        return {}
    idents = ",".join(f"{sy.MA_CSKCB}|{c}" for c in wanted)
    orgs = search_all(repo, "Organization", [("identifier", idents), ("_count", "100")])
    return {
        str(i["value"]): str(o.get("name", ""))
        for o in orgs
        for i in o.get("identifier", [])
        if i.get("system") == sy.MA_CSKCB and i.get("value") in wanted
    }


# ---- the queue -----------------------------------------------------------------------------


@router.get("/mpi/review", name="mpi_review")
def review_queue(request: Request, page_no: Annotated[str, Query(alias="page")] = "0") -> Response:
    s = guard(request, may_review)
    if isinstance(s, Response):
        return s
    ctx = _queue(request, s, _number(page_no))
    template = "partials/mpi_queue.html" if _rows_only(request) else "mpi_review.html"
    return page(request, template, ctx)


def _queue(request: Request, s: PageSession, n: int) -> dict[str, Any]:
    """Page `n` of the queue, both records of each pair, and where they were written."""
    with unit(store_of(request), s.actor, write=False) as repo:
        pairs, total = review.queue(repo.conn, offset=n * PAGE_SIZE, limit=PAGE_SIZE)
        ids = [rid for pair in pairs for rid in (pair.patient_a, pair.patient_b)]
        records = _queued_records(repo, ids)
        names = _facility_names(repo, (r.facility for r in records.values()))
    return {
        "pairs": pairs,
        "records": records,
        "facilities": names,
        "total": total,
        "page_no": n,
        "has_next": (n + 1) * PAGE_SIZE < total,
        "done": _done(request),
        **_formats(language(request)),
    }


def _rows_only(request: Request) -> bool:
    """htmx asks for the queue alone as the steward pages through it."""
    h = request.headers
    return h.get("HX-Request") == "true" and h.get("HX-Target") == "mpi-queue"


def _done(request: Request) -> dict[str, Any] | None:
    """What the last decision did, from the redirect's query: its message and its pair."""
    q = request.query_params
    notice = NOTICES.get(q.get("done", ""))
    if notice is None:
        return None
    a, b = q.get("a", ""), q.get("b", "")
    ids = {"a": a, "b": b} if FHIR_ID.match(a) and FHIR_ID.match(b) and a != b else None
    return {"notice": notice, "pair": ids}


# ---- one pair ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Weight:
    """One line of the evidence table, with its bar's geometry."""

    field: str
    level: str
    bits: float
    x: float
    width: float


def _weights(evidence: Evidence) -> list[Weight]:
    scale = max([MIN_SCALE, *(abs(f.weight) for f in evidence.fields)])
    out = []
    for f in evidence.fields:
        width = round(abs(f.weight) / scale * (BAR_MID - 2), 1)
        x = BAR_MID if f.weight >= 0 else BAR_MID - width
        label = FIELDS.get(f.comparison, f.comparison)
        out.append(Weight(label, LEVELS.get(f.level, f.level), f.weight, x, width))
    return out


@dataclass(frozen=True)
class Entry:
    """A decision in the pair's history, and whether undoing it would change anything now."""

    decided: review.Decided
    at: datetime
    undoable: bool


def _standing(found: review.Pair | None) -> str:
    """People's decision on the pair now: link, apart, or "model" when none stands."""
    return found.state if found and found.state in ("link", "apart") else "model"


@router.get("/mpi/review/{a}/{b}", name="mpi_pair")
def pair_page(request: Request, a: str, b: str) -> Response:
    s = guard(request, may_review)
    if isinstance(s, Response):
        return s
    _pair_ids(a, b)
    notice = NOTICES["undone"] if request.query_params.get("done") == "undone" else None
    return _pair_page(request, s, a, b, notice=notice)


def _pair_page(
    request: Request,
    s: PageSession,
    a: str,
    b: str,
    *,
    notice: Message | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    with unit(store_of(request), s.actor, write=False) as repo:
        left, right = _pair_records(repo, a, b)
        names = _facility_names(repo, (left.facility, right.facility))
        ctx = _pair_state(repo.conn, a, b)
    ctx |= {
        "left": left,
        "right": right,
        "facilities": names,
        "compared": COMPARED,
        "labels": FIELDS,
        "notice": notice,
        "error": error,
        "form": {"decision": "", "reason": "", "decision_id": ""} | (form or {}),
        "max_reason": review.MAX_REASON,
        "bar": {"width": BAR_WIDTH, "mid": BAR_MID},
        **_formats(language(request)),
    }
    return page(request, "mpi_pair.html", ctx, status)


def _pair_state(conn: sa.Connection, a: str, b: str) -> dict[str, Any]:
    """What the model and people say about the pair now."""
    found = review.pair(conn, a, b)
    standing = _standing(found)
    history = [
        Entry(d, from_micros(d.at), d.previous != standing) for d in review.history(conn, a, b)
    ]
    try:
        evidence: Evidence | None = review.evidence(conn, a, b)
        unscored = ""
    except review.ReviewError as exc:  # no model trained yet
        evidence, unscored = None, str(exc)
    return {
        "pair": found,
        "standing": standing,
        "linked": review.linked(conn, a, b),
        "history": history,
        "evidence": evidence,
        "unscored": unscored,
        "weights": _weights(evidence) if evidence else [],
        "outcome": Thresholds().outcome(evidence.probability) if evidence else "",
    }


# ---- decisions -----------------------------------------------------------------------------

Act = Callable[[Repo, str], review.Decided]  # (the steward's repository, the hub) → the decision


@router.post("/mpi/review/{a}/{b}", name="mpi_decide")
def decide_pair(
    request: Request, a: str, b: str, csrf: Field = "", decision: Field = "", reason: Field = ""
) -> Response:
    s = guard_post(request, csrf, may_review)
    if isinstance(s, Response):
        return s

    def act(repo: Repo, hub: str) -> review.Decided:
        return review.decide(repo, hub, a, b, decision, reason)

    return _decide(request, s, a, b, {"decision": decision, "reason": reason}, act)


@router.post("/mpi/review/{a}/{b}/undo", name="mpi_undo")
def undo_decision(
    request: Request, a: str, b: str, csrf: Field = "", decision_id: Field = "", reason: Field = ""
) -> Response:
    s = guard_post(request, csrf, may_review)
    if isinstance(s, Response):
        return s

    def act(repo: Repo, hub: str) -> review.Decided:
        if decision_id not in {d.id for d in review.history(repo.conn, a, b)}:
            raise not_found("decision", decision_id[:64])  # another pair's, or none
        return review.undo(repo, hub, decision_id, reason)

    form = {"decision_id": decision_id, "reason": reason}
    return _decide(request, s, a, b, form, act, undo=True)


def _decide(
    request: Request,
    s: PageSession,
    a: str,
    b: str,
    form: dict[str, str],
    act: Act,
    *,
    undo: bool = False,
) -> Response:
    """Take the decision in one transaction, then the queue (the pair, after an undo) with a
    message; refused, the pair page says why (400) and nothing changed; a record that is not
    there, the 404 page."""
    _pair_ids(a, b)
    done: review.Decided | None = None
    error = ""
    with unit(store_of(request), s.actor, write=True) as repo:
        _pair_records(repo, a, b)  # an unknown record: the 404 page, the read audited
        was_linked = review.linked(repo.conn, a, b)
        mark = len(repo.trail.accesses)
        try:
            with repo.conn.begin_nested():  # a refused decision leaves nothing behind
                done = act(repo, _hub(request))
        except review.ReviewError as exc:
            error = bilingual(str(exc), language(request))
            repo.trail.record("update", [f"Patient/{a}", f"Patient/{b}"], [a, b])
            repo.trail.failed(400, "invalid", since=mark)  # the attempt, audited as refused
    if done is None:
        return _pair_page(request, s, a, b, error=error, form=form, status=400)
    if undo:
        return see_other(request, "mpi_pair", "done=undone", a=a, b=b)
    kind = "unlink" if done.decision == "apart" and was_linked else done.decision
    return see_other(request, "mpi_review", f"done={kind}&a={a}&b={b}")
