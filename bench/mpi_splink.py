"""The reference for bench/mpi.py: Splink 5 on DuckDB, configured like benhan's linker.

    .venv/bin/python bench/mpi_splink.py records.csv pairs.csv [--floor 0.5]

Reads the bench's records CSV (benhan.identity.fhir_csv: patient_id, family, given, birth_date,
sex, cccd, cmnd, bhyt, phone, commune), trains a Fellegi–Sunter model as Splink's tutorials
teach (λ from deterministic rules, u by random sampling, m by EM on two blocking sessions) and
writes every pair scoring at least the floor as `id_a,id_b,match_probability`, the same output
as `benhan mpi dedupe`.
The features get the normalisation benhan's own linker applies (accent folding, the family /
middle / given parts, the 10-digit BHXH number inside a 15-character BHYT code, a commune from
before the 2025 reform read as the unit it became), so that the two are compared on the model,
not on data cleaning.
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path
from typing import Any

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on
from splink.internals.blocking_rule_creator import BlockingRuleCreator
from splink.internals.comparison_creator import ComparisonCreator

from benhan.fhir.primitives import fold
from benhan.identity.normalise import normalise_commune

Column = list[str | None]


def features(path: Path) -> dict[str, Column]:
    """The records CSV as columns for DuckDB: folded name parts, blocking keys, nulls for ''."""
    cols: dict[str, Column] = {
        k: []
        for k in (
            "unique_id", "family", "middle", "given", "given_initial", "birthdate",
            "birth_year", "sex", "cccd", "cmnd", "bhyt10", "phone", "commune",
        )
    }  # fmt: skip
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            for key, value in feature_row(row).items():
                cols[key].append(value)
    return cols


def feature_row(row: dict[str, str]) -> dict[str, str | None]:
    parts = fold(row["given"]).split()  # "Thị Hương" → middle "thi", given "huong"
    given = parts[-1] if parts else None
    dob = row["birth_date"] or None  # "YYYY-MM-DD", or "YYYY" when only the year is known
    bhyt = row["bhyt"]
    return {
        "unique_id": row["patient_id"],
        "family": fold(row["family"]).strip() or None,
        "middle": " ".join(parts[:-1]) or None,
        "given": given,
        "given_initial": given[0] if given else None,
        "birthdate": dob,
        "birth_year": dob[:4] if dob else None,
        "sex": row["sex"] or None,
        "cccd": row["cccd"] or None,
        "cmnd": row["cmnd"] or None,
        # A legacy 15-character code ends with the 10-digit BHXH number newer cards print.
        "bhyt10": bhyt[-10:] if len(bhyt) >= 10 else None,
        "phone": row["phone"] or None,
        # The 2025 unit of an old commune, as benhan reads it (normalise_commune).
        "commune": normalise_commune(row["commune"]),
    }


def name(column: str, thresholds: list[float]) -> ComparisonCreator:
    # Term frequencies on the exact level: a shared "nguyen" says little, a rare name much.
    return cl.JaroWinklerAtThresholds(column, thresholds).configure(term_frequency_adjustments=True)


def birth_date() -> cl.CustomComparison:
    return cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("birthdate"),
            cll.ExactMatchLevel("birthdate"),
            cll.LevenshteinLevel("birthdate", 1),
            cll.CustomLevel("substr(birthdate_l, 1, 4) = substr(birthdate_r, 1, 4)", "same year"),
            cll.ElseLevel(),
        ],
        output_column_name="birthdate",
    )


# benhan's blocking rules where Splink's columns allow, so both score much the same pairs.
BLOCKING: list[BlockingRuleCreator | dict[str, Any]] = [
    block_on("cccd"),
    block_on("cmnd"),
    block_on("bhyt10"),
    block_on("phone"),
    block_on("family", "given_initial", "birth_year"),
    block_on("given", "birthdate"),
]


def settings() -> SettingsCreator:
    return SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            name("family", [0.92, 0.8]),
            name("middle", [0.9]),
            name("given", [0.92, 0.8]),
            birth_date(),
            cl.ExactMatch("sex"),
            cl.ExactMatch("cccd"),
            cl.ExactMatch("cmnd"),
            cl.ExactMatch("bhyt10"),
            cl.ExactMatch("phone"),
            cl.ExactMatch("commune"),
        ],
        blocking_rules_to_generate_predictions=BLOCKING,
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def train(linker: Linker, u_pairs: float) -> None:
    """λ, then u by random sampling, then m by EM, in the order of Splink's tutorials."""
    training = linker.training
    training.estimate_probability_two_random_records_match(
        [block_on("cccd"), block_on("family", "given", "birthdate")], recall=0.8
    )
    training.estimate_u_using_random_sampling(max_pairs=u_pairs, seed=2025)
    # Each session trains what its blocking rule leaves free: the names, then the rest.
    training.estimate_parameters_using_expectation_maximisation(block_on("birthdate"))
    training.estimate_parameters_using_expectation_maximisation(block_on("family", "given"))


def link(records: Path, output: Path, floor: float, u_pairs: float) -> int:
    """Train and predict; returns the number of pairs written."""
    db = DuckDBAPI()
    table: Any = features(records)
    linker = Linker(db.register(table), settings(), log_level=logging.WARNING)
    train(linker, u_pairs)
    predictions = linker.inference.predict(threshold_match_probability=floor)
    relation = predictions.as_duckdbpyrelation().select(
        "unique_id_l AS id_a, unique_id_r AS id_b, match_probability"
    )
    relation.write_csv(str(output))
    return int(relation.aggregate("count(*)").fetchall()[0][0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("records", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--floor", type=float, default=0.5, help="lowest probability written")
    ap.add_argument("--u-pairs", type=float, default=1e7, help="pairs sampled for u")
    args = ap.parse_args()
    pairs = link(args.records, args.output, args.floor, args.u_pairs)
    print(f"splink: {pairs} pairs ≥ {args.floor} → {args.output}")


if __name__ == "__main__":
    main()
