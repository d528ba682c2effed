"""Prescribing checks: allergies by ingredient, class or ATC; duplicates; same-class notes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from benhan.access import Actor, role
from benhan.catalog.drugs import Drug
from benhan.emr import prescribing as rx
from benhan.emr import visit as v
from benhan.emr.model import local_now, stamp
from benhan.fhir import systems as sy
from benhan.fhir.validation import check
from benhan.store.database import Store
from benhan.store.unit import unit
from tests.emr.world import person, place, visit

NOW = local_now()
HERE = "Encounter/this-visit"


def drug(name: str, strength: str) -> Drug:
    return next(d for d in rx.drugs_by_key().values() if (d.name, d.strength) == (name, strength))


AMOXICILLIN = drug("Amoxicilin", "500mg")
CO_AMOXICLAV = drug("Amoxicilin + Acid clavulanic", "500mg+125mg")
PARACETAMOL = drug("Paracetamol", "500mg")
PARA_CODEINE = drug("Paracetamol + Codein", "500mg+30mg")


def allergy(text: str, atc: str = "", rid: str = "a1") -> dict[str, Any]:
    code: dict[str, Any] = {"text": text}
    if atc:
        code["coding"] = [{"system": sy.ATC, "code": atc}]
    return {"resourceType": "AllergyIntolerance", "id": rid, "code": code}


def current(d: Drug, rid: str = "m1", **more: Any) -> dict[str, Any]:
    res = rx.medication_request(
        v.Visit(
            {"id": "this-visit", "subject": {"reference": "Patient/p"}, "status": "in-progress"},
            {"display": "BS"},
            NOW,
        ),
        d,
        rx.Dosage(d.dose or 1, d.per_day or 1, d.days or 1, 10),  # type: ignore[arg-type]
    )
    return {**res, "id": rid, **more}


@pytest.mark.parametrize(
    ("text", "atc", "drug_", "because"),
    [
        ("penicillin", "", AMOXICILLIN, "penicillin (J01C)"),
        ("Dị ứng PENICILIN", "", AMOXICILLIN, "penicillin (J01C)"),  # Vietnamese spelling
        ("penicillin", "", CO_AMOXICLAV, "penicillin (J01C)"),
        ("Amoxicilin", "", AMOXICILLIN, "amoxicillin"),
        ("kháng sinh", "J01C", AMOXICILLIN, "J01C"),
        ("paracetamol", "", PARA_CODEINE, "paracetamol"),
    ],
)
def test_allergies_warn(text: str, atc: str, drug_: Drug, because: str) -> None:
    [alert] = rx.check(drug_, [allergy(text, atc)], [], NOW, HERE)
    assert (alert.kind, alert.blocking, alert.reference) == (
        "allergy",
        True,
        "AllergyIntolerance/a1",
    )
    assert alert.because == because


@pytest.mark.parametrize(
    ("text", "atc"), [("penicillin", ""), ("tôm cua", ""), ("", "J01E"), ("sulfamid", "")]
)
def test_unrelated_allergies_do_not_warn(text: str, atc: str) -> None:
    assert rx.check(PARACETAMOL, [allergy(text, atc)], [], NOW, HERE) == []


def test_a_shared_ingredient_is_a_duplicate() -> None:
    [alert] = rx.check(PARA_CODEINE, [], [current(PARACETAMOL)], NOW, HERE)
    assert (alert.kind, alert.because, alert.blocking) == ("duplicate", "paracetamol", True)
    assert alert.reference == "MedicationRequest/m1"


def test_same_atc_group_is_a_note_that_does_not_block() -> None:
    ibuprofen, naproxen = drug("Ibuprofen", "400mg"), drug("Naproxen", "250mg")
    [alert] = rx.check(naproxen, [], [current(ibuprofen)], NOW, HERE)
    assert (alert.kind, alert.because, alert.blocking) == ("class", "M01AE", False)
    assert rx.check(PARACETAMOL, [], [current(ibuprofen)], NOW, HERE) == []


def test_earlier_prescriptions_count_while_their_supply_lasts() -> None:
    old = stamp(NOW - timedelta(days=30))
    recent = stamp(NOW - timedelta(days=2))
    earlier = {"encounter": {"reference": "Encounter/earlier"}}
    finished_long_ago = current(PARACETAMOL, "m1", authoredOn=old, **earlier)
    still_taken = current(PARACETAMOL, "m2", authoredOn=recent, **earlier)
    stopped = current(PARACETAMOL, "m3", status="completed")
    alerts = rx.check(PARACETAMOL, [], [finished_long_ago, still_taken, stopped], NOW, HERE)
    assert [a.reference for a in alerts] == ["MedicationRequest/m2"]


def test_the_override_is_a_valid_detected_issue() -> None:
    alerts = rx.check(AMOXICILLIN, [allergy("penicillin")], [current(AMOXICILLIN)], NOW, HERE)
    issue = rx.detected_issue(alerts, "Patient/p", {"display": "BS"}, stamp(NOW), "Đã test da")
    assert check({**issue, "id": "x"}) == []
    assert issue["code"]["coding"][0]["code"] == "ALGY" and issue["severity"] == "high"
    assert issue["implicated"] == [
        {"reference": "AllergyIntolerance/a1"},
        {"reference": "MedicationRequest/m1"},
    ]
    assert issue["mitigation"][0]["action"]["text"] == "Đã test da"


def test_patient_context_reads_active_allergies_and_orders(store: Store) -> None:
    where = place(store)
    pid = person(store)
    enc = visit(store, where, pid)
    r = role("doctor")
    me = Actor("user", "bs", r, where.facility, r.scopes, account="a")
    with unit(store, me, write=True) as repo:
        vis = v.open_visit(repo, enc, {"display": "BS"}, NOW)
        v.record_allergy(repo, vis, v.parse_allergy({"substance": "Penicilin"}))
        rx.prescribe(
            repo,
            vis,
            PARACETAMOL,
            rx.parse_dosage({"dose": "1", "per_day": "2", "days": "3"}),
            override=False,
            reason="",
        )
    with unit(store, me, write=True) as repo:
        vis = v.open_visit(repo, enc, {"display": "BS"}, NOW)
        allergies, meds = rx.patient_context(repo, f"Patient/{pid}")
        assert [a["code"]["text"] for a in allergies] == ["Penicilin"]
        assert [m["medicationCodeableConcept"]["text"] for m in meds] == ["Paracetamol 500mg"]
        with pytest.raises(rx.Blocked) as exc:
            rx.prescribe(
                repo,
                vis,
                AMOXICILLIN,
                rx.parse_dosage({"dose": "1", "per_day": "3", "days": "5"}),
                override=False,
                reason="",
            )
        assert [a.kind for a in exc.value.alerts] == ["allergy"]
