"""FHIR Patients → CSV rows with the linker's roles (for `benhan mpi dedupe` and bench/mpi.py)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from benhan.fhir import systems

# Column → role, as `--field COLUMN=ROLE` takes them; birth dates are FHIR's (ISO, or a year).
COLUMNS: dict[str, str] = {
    "family": "family", "given": "given", "birth_date": "birthdate", "sex": "sex",
    "cccd": "cccd", "cmnd": "cmnd", "bhyt": "bhyt", "phone": "phone", "commune": "commune",
    "address": "address",
}  # fmt: skip
_IDS = {systems.CCCD: "cccd", systems.CMND: "cmnd", systems.BHYT: "bhyt"}


def patient_row(patient: dict[str, Any]) -> dict[str, str]:
    """One Patient as a flat row: the official (else first) name, identifiers by system, the
    first phone, the home commune's code (else its name, district and province) and address
    line."""
    row = dict.fromkeys(["patient_id", *COLUMNS], "")
    row["patient_id"] = patient.get("id", "")
    names = patient.get("name") or [{}]
    name = next((n for n in names if n.get("use") == "official"), names[0])
    row["family"] = name.get("family", "")
    row["given"] = " ".join(name.get("given", []))
    if not row["family"] and not row["given"]:  # only the text: "NGUYEN THI HUONG", family first
        family, _, given = (name.get("text") or "").strip().partition(" ")
        row["family"], row["given"] = family, given.strip()
    row["birth_date"] = patient.get("birthDate", "")
    row["sex"] = patient.get("gender", "")
    for ident in patient.get("identifier", []):
        role = _IDS.get(ident.get("system", ""))
        if role and not row[role]:
            row[role] = ident.get("value", "")
    phones = [t for t in patient.get("telecom", []) if t.get("system") == "phone"]
    row["phone"] = phones[0].get("value", "") if phones else ""
    addresses = patient.get("address") or [{}]
    addr = next((a for a in addresses if a.get("use") == "home"), addresses[0])
    codes = [e["valueCode"] for e in addr.get("extension", [])
             if e.get("url") == systems.COMMUNE_CODE_EXT and "valueCode" in e]  # fmt: skip
    # Without a code, the names as a record of either side of the 2025 reform writes them
    # (an old one with its district), for normalise_commune to read as the 2025 unit.
    names = [addr.get(k, "") for k in ("city", "district", "state")]
    row["commune"] = codes[0] if codes else ", ".join(n for n in names if n) if names[0] else ""
    row["address"] = " ".join(addr.get("line", []))
    return row


def patients_in(folder: Path) -> Iterator[dict[str, Any]]:
    """Every Patient in the Patient.ndjson files under `folder` (`benhan synth --out`)."""
    for path in sorted(folder.rglob("Patient.ndjson")):
        with path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    yield orjson.loads(line)


def write_csv(patients: Iterable[dict[str, Any]], out: Path) -> int:
    """`patients` as CSV rows, headed patient_id (as in synth's truth/people.csv) + COLUMNS;
    returns the number written."""
    n = 0
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["patient_id", *COLUMNS])
        w.writeheader()
        for p in patients:
            w.writerow(patient_row(p))
            n += 1
    return n


def field_options(with_address: bool = False) -> list[str]:
    """`--field` values for a CSV written by write_csv."""
    fmt = {"birth_date": ":%Y-%m-%d"}
    return [
        f"{c}={r}{fmt.get(c, '')}" for c, r in COLUMNS.items() if with_address or c != "address"
    ]
