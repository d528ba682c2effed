"""Who signs which kind of document: doctors every kind, lab technicians lab and imaging reports."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benhan.access import ROLES, Actor
from benhan.emr.model import search_all
from benhan.fhir.outcome import FhirError
from benhan.signing import service, who_signs
from benhan.signing.documents import KINDS
from benhan.store.database import Store
from benhan.store.unit import unit
from tests.emr.test_results import tech
from tests.emr.world import FACILITY
from tests.signing.test_service import check, signed_visit, stored


@pytest.mark.parametrize(
    ("role", "kinds"),
    [
        ("doctor", set(KINDS)),
        ("lab-technician", {"report"}),
        ("nurse", set()),
        ("pharmacist", set()),
        ("patient", set()),
    ],
)
def test_the_rule_as_data(role: str, kinds: set[str]) -> None:
    assert who_signs.kinds_signed_by(ROLES[role]) == kinds
    for kind in KINDS:
        assert who_signs.may_sign(ROLES[role], kind) == (kind in kinds)


def test_a_refusal_says_who_and_what_in_both_languages() -> None:
    with pytest.raises(FhirError) as err:
        who_signs.require(tech(), "discharge")
    assert err.value.status == 403
    text = err.value.issues[0].text
    assert "Kỹ thuật viên xét nghiệm không ký tóm tắt hồ sơ ra viện" in text
    assert "the Lab technician role does not sign a discharge summary" in text
    who_signs.require(tech(), "report")  # no error


def test_a_technician_signs_a_report_that_verifies(store: Store) -> None:
    enc, author = signed_visit(store)
    with unit(store, Actor.job(FACILITY, "test"), write=False) as repo:
        [rid, *_] = [r["id"] for r in search_all(repo, "DiagnosticReport", [("encounter", enc)])]
    technician = replace(tech(), practitioner=author)
    with unit(store, technician, write=True) as repo:
        saved = service.sign(repo, "report", report=rid, with_pdf=True)
    bundle = stored(store, author, "Bundle", saved.id)
    assert check(store, bundle).ok
    assert bundle["signature"]["who"] == {"reference": author}


@pytest.mark.parametrize("kind", ["visit-summary", "prescription", "discharge"])
def test_the_sign_service_refuses_a_technician_other_kinds(store: Store, kind: str) -> None:
    enc, author = signed_visit(store)
    technician = replace(tech(), practitioner=author)
    with pytest.raises(FhirError) as err, unit(store, technician, write=True) as repo:
        service.sign(repo, kind, encounter=enc)  # type: ignore[arg-type]
    assert err.value.status == 403 and "không ký" in err.value.issues[0].text
