"""Signing as the clinician at the keyboard: a real visit, a certificate from the provincial CA,
the stored document verified against the store's anchors, by the API and the command line."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding
from typer.testing import CliRunner

from benhan.access import Actor
from benhan.cli import app
from benhan.fhir.outcome import FhirError
from benhan.signing import pki, service
from benhan.signing.jws import canonical
from benhan.store.database import Store
from benhan.store.schema import resource
from benhan.store.unit import unit
from tests.emr.test_visit import doctor
from tests.emr.world import FACILITY, person, place, visit
from tests.signing.test_documents import document, practitioner


def signing_doctor(author: str) -> Actor:
    return replace(doctor(), practitioner=author)


@pytest.fixture
def visit_and_author(store: Store) -> tuple[str, str]:
    return signed_visit(store)


def signed_visit(store: Store) -> tuple[str, str]:
    """A documented, closed visit and a doctor holding a certificate of the provincial CA."""
    enc = visit(store, place(store), person(store), status="in-progress")
    document(store, enc)
    author = practitioner(store)
    with store.begin() as conn:
        pki.issue(conn, kind="practitioner", owner=author, common_name="BS. Trần An",
                  facility=FACILITY)  # fmt: skip
    return enc, author


def sign(store: Store, author: str, **kw: Any) -> Any:
    with unit(store, signing_doctor(author), write=True) as repo:
        return service.sign(repo, **kw)


def stored(store: Store, author: str, rtype: str, rid: str) -> dict[str, Any]:
    with unit(store, signing_doctor(author), write=False) as repo:
        out: dict[str, Any] = repo.read(rtype, rid).resource
        return out


def check(store: Store, bundle: Any) -> Any:
    with store.read() as conn:
        return service.check(conn, bundle)


def test_a_signed_visit_summary_verifies_against_the_provinces_anchors(
    store: Store, visit_and_author: tuple[str, str]
) -> None:
    enc, author = visit_and_author
    saved = sign(store, author, kind="visit-summary", encounter=enc)
    bundle = stored(store, author, "Bundle", saved.id)
    assert bundle["signature"]["who"]["reference"] == author
    assert check(store, bundle).ok
    head = bundle["entry"][0]["resource"]
    assert head["attester"][0]["time"] == bundle["signature"]["when"]
    # The stored copy (with the server's meta) signs the same bytes as the signer saw.
    assert canonical(bundle) == canonical({k: v for k, v in bundle.items() if k != "meta"})
    changed = copy.deepcopy(bundle)
    changed["entry"][1]["resource"]["id"] += "x"
    failed = check(store, changed)
    assert not failed.ok and [c.name for c in failed.failures] == ["content"]


def test_signing_records_a_provenance_with_the_same_signature(
    store: Store, visit_and_author: tuple[str, str]
) -> None:
    enc, author = visit_and_author
    saved = sign(store, author, kind="prescription", encounter=enc)
    with store.read() as conn:
        q = sa.select(sa.cast(resource.c.content, sa.Text)).where(resource.c.rtype == "Provenance")
        provenances = [json.loads(text) for text in conn.execute(q).scalars()]
    # The document's only Provenance: the one with the signature, naming the stored versions.
    document = {f"Composition/{saved.id}/_history/1", f"Bundle/{saved.id}/_history/1"}
    mine = [p for p in provenances if document & {t["reference"] for t in p["target"]}]
    assert len(mine) == 1
    assert [t["reference"] for t in mine[0]["target"]] == sorted(document, reverse=True)
    bundle = stored(store, author, "Bundle", saved.id)
    assert mine[0]["signature"] == [bundle["signature"]]
    assert mine[0]["agent"][0]["who"] == {"reference": author}


def test_an_amendment_keeps_both_versions_verifiable(
    store: Store, visit_and_author: tuple[str, str]
) -> None:
    enc, author = visit_and_author
    first = sign(store, author, kind="visit-summary", encounter=enc)
    second = sign(store, author, kind="visit-summary", encounter=enc, replaces=first.id)
    old, new = (stored(store, author, "Bundle", s.id) for s in (first, second))
    assert check(store, old).ok and check(store, new).ok
    relates = new["entry"][0]["resource"]["relatesTo"]
    target = {"reference": f"Composition/{first.id}"}
    assert relates == [{"code": "replaces", "targetReference": target}]


def test_a_revoked_certificate_cannot_sign_and_its_later_signatures_fail(
    store: Store, visit_and_author: tuple[str, str]
) -> None:
    enc, author = visit_and_author
    saved = sign(store, author, kind="visit-summary", encounter=enc)
    bundle = stored(store, author, "Bundle", saved.id)
    with store.begin() as conn:
        [record] = pki.certificates(conn, owner=author)
        pki.revoke(conn, record.serial, reason="keyCompromise")
    result = check(store, bundle)
    assert not result.ok and any(c.name == "revocation" for c in result.failures)
    with pytest.raises(FhirError) as err:
        sign(store, author, kind="prescription", encounter=enc)
    assert err.value.status == 409


def test_an_account_without_a_practitioner_cannot_sign(
    store: Store, visit_and_author: tuple[str, str]
) -> None:
    enc, _ = visit_and_author
    with unit(store, doctor(), write=True) as repo, pytest.raises(FhirError) as err:
        service.sign(repo, "visit-summary", encounter=enc)
    assert err.value.status == 403


def test_a_practitioner_without_a_certificate_is_told_so(store: Store) -> None:
    enc = visit(store, place(store), person(store), status="in-progress")
    document(store, enc)
    author = practitioner(store)  # no certificate issued
    with pytest.raises(FhirError) as err:
        sign(store, author, kind="visit-summary", encounter=enc)
    assert err.value.status == 409
    assert "chưa" in str(err.value.issues[0].text) or "never" in str(err.value.issues[0].text)


def test_benhan_verify_reads_a_file_and_says_what_failed(
    store: Store, visit_and_author: tuple[str, str], tmp_path: Path
) -> None:
    enc, author = visit_and_author
    saved = sign(store, author, kind="visit-summary", encounter=enc)
    bundle = stored(store, author, "Bundle", saved.id)
    anchors = tmp_path / "anchors.pem"
    runner = CliRunner()
    with store.read() as conn:
        anchors.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in pki.trust_anchors(conn)))
        crl = tmp_path / "ca.crl"
        crl.write_bytes(pki.crl(conn).public_bytes(Encoding.DER))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(bundle, ensure_ascii=False))
    ok = runner.invoke(app, ["verify", str(good), "--trust", str(anchors), "--crl", str(crl)])
    assert ok.exit_code == 0, ok.output
    assert "HỢP LỆ" in ok.output
    bad = copy.deepcopy(bundle)
    bad["entry"][0]["resource"]["title"] += "."
    tampered = tmp_path / "bad.json"
    tampered.write_text(json.dumps(bad, ensure_ascii=False))
    failed = runner.invoke(app, ["verify", str(tampered), "--trust", str(anchors)])
    assert failed.exit_code == 1 and "content" in failed.output
    missing = runner.invoke(app, ["verify", str(tmp_path / "none.json"), "--trust", str(anchors)])
    assert missing.exit_code == 2 and "none.json" in missing.output
    (tmp_path / "x.json").write_text("{not json")
    garbage = runner.invoke(app, ["verify", str(tmp_path / "x.json"), "--trust", str(anchors)])
    assert garbage.exit_code == 2 and "JSON" in garbage.output


def test_a_signed_document_cannot_be_changed_or_deleted(
    store: Store, visit_and_author: tuple[str, str]
) -> None:
    enc, author = visit_and_author
    saved = sign(store, author, kind="visit-summary", encounter=enc)
    bundle = stored(store, author, "Bundle", saved.id)
    head = stored(store, author, "Composition", saved.id)
    attempts = [
        lambda repo: repo.update("Bundle", saved.id, {**bundle, "type": "collection"}),
        lambda repo: repo.update("Composition", saved.id, {**head, "title": "Sửa"}),
        lambda repo: repo.delete("Bundle", saved.id),
        lambda repo: repo.delete("Composition", saved.id),
    ]
    for attempt in attempts:
        with (
            unit(store, signing_doctor(author), write=True) as repo,
            pytest.raises(FhirError) as err,
        ):
            attempt(repo)
        assert err.value.status == 409
    assert stored(store, author, "Bundle", saved.id) == bundle  # unchanged
