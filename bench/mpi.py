"""The master patient index against Splink, on the synthetic province's ground truth.

    .venv/bin/python bench/mpi.py                       # 20,000 people, both linkers
    .venv/bin/python bench/mpi.py --people 200000 --rebuild
    .venv/bin/python bench/mpi.py --mess hard           # few shared identifiers: names must link

Data (cached in var/bench/mpi-<N>): `benhan synth --people N --years 1 --out …`, whose
registrations carry the registration mess (typos, dropped accents, swapped day/month, old CMND,
new phones…), and the Patients of every facility as one CSV (benhan.identity.fhir_csv: family,
given, birth date, sex, CCCD, CMND, BHYT, phone, commune; the address line is left out, as
Splink is not given it). The truth is truth/people.csv: every two records of one true person
are a true pair. The tables also show, per kind of mess, the true pairs each linker left below
the review threshold.

Each linker runs as a child process on the same CSV, timed from start to exit, with its own peak
RSS (from wait4: the kernel's high-water mark of that child, no sampling): `benhan mpi dedupe`,
and the reference, Splink 5 on DuckDB with comparable comparisons (bench/mpi_splink.py). The same
code scores both outputs: precision, recall and F1 of the automatic links (p ≥ 0.99) and of the
links plus the review queue (p ≥ 0.80), and the queue's size. Targets (issue 6): benhan's
precision of automatic links ≥ 0.999, recall counting reviewed pairs ≥ 0.98, F1 ≥ Splink's (at
the link threshold), seconds per million records ≤ 2 × Splink's.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from common import VAR, console, load, verdict
from rich.table import Table

from benhan.identity.fhir_csv import COLUMNS, field_options, patients_in, write_csv

HERE = Path(__file__).resolve().parent
BENHAN = str(Path(sys.executable).parent / "benhan")
LINK = 0.99  # automatic link
REVIEW = 0.80  # sent to a person; below it the records are kept apart
FLOOR = 0.5  # the lowest probability either linker writes (what is below is never scored)
TARGET_PRECISION = 0.999
TARGET_RECALL = 0.98
TARGET_TIME_RATIO = 2.0

Keys = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


# ---- data -------------------------------------------------------------------------------------


def build(people: int, rebuild: bool, mess: str = "typical") -> Path:
    """var/bench/mpi-<N> with fhir/, truth/people.csv and records.csv; generated once per size,
    the CSV written again whenever the converter's columns have changed."""
    out = VAR / (f"mpi-{people}" if mess == "typical" else f"mpi-{people}-{mess}")
    if rebuild:
        shutil.rmtree(out, ignore_errors=True)
    if not out.exists():
        partial = out.with_name(f"{out.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        cmd = [BENHAN, "synth", "--people", str(people), "--years", "1", "--out", str(partial)]
        cmd += ["--mess", mess]
        console.print(f"{load()}: generating {people:,} people …")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        partial.rename(out)  # only a complete province is ever reused
    records = out / "records.csv"
    if header(records) != ["patient_id", *COLUMNS]:
        rows = write_csv(patients_in(out / "fhir"), records)
        console.print(f"{rows:,} Patient records → {records}")
    return out


def header(path: Path) -> list[str]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), [])


# ---- truth and scoring ------------------------------------------------------------------------


@dataclass(frozen=True)
class Truth:
    index: dict[str, int]  # patient id → row number
    pairs: Keys  # every true pair as a key (see pair_keys), sorted
    mutations: dict[str, npt.NDArray[np.bool_]]  # mess kind → which rows were registered with it

    def pairs_with(self, kind: str) -> Keys:
        """The true pairs where either record carries this kind of mess."""
        n = len(self.index)
        rows = self.mutations[kind]
        return self.pairs[rows[self.pairs // n] | rows[self.pairs % n]]


def read_truth(people_csv: Path) -> Truth:
    index: dict[str, int] = {}
    person: list[str] = []
    kinds: list[list[str]] = []
    with people_csv.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            index[row["patient_id"]] = len(person)
            person.append(row["true_person_id"])
            kinds.append(row["mutations"].split(";") if row["mutations"] else [])
    mutations = {
        k: np.zeros(len(person), dtype=bool) for k in sorted({k for ks in kinds for k in ks})
    }
    for i, ks in enumerate(kinds):
        for k in ks:
            mutations[k][i] = True
    return Truth(index, true_pairs(np.array(person), len(index)), mutations)


def true_pairs(person: npt.NDArray[Any], n: int) -> Keys:
    """All pairs of rows sharing a true person, as sorted keys."""
    order = np.argsort(person, kind="stable")
    grouped = person[order]  # one person's rows are now contiguous
    keys: list[Keys] = []
    for k in range(1, len(grouped)):  # rows k apart within a group, until no group is that big
        same = grouped[:-k] == grouped[k:]
        if not same.any():
            break
        keys.append(pair_keys(order[:-k][same], order[k:][same], n))
    return np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)


def pair_keys(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], n: int) -> Keys:
    """One int64 per unordered pair of rows: min · n + max."""
    return np.minimum(a, b) * n + np.maximum(a, b)


def read_pairs(path: Path, truth: Truth) -> tuple[Keys, Floats]:
    """A linker's `id_a,id_b,match_probability` as unique pair keys with their best probability."""
    a: list[int] = []
    b: list[int] = []
    p: list[float] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            try:
                a.append(truth.index[row["id_a"]])
                b.append(truth.index[row["id_b"]])
            except KeyError as e:
                raise SystemExit(f"{path}:{line}: id {e} is not in the truth") from None
            p.append(float(row["match_probability"]))
    ia, ib = np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)
    keep = ia != ib  # a record paired with itself is no link
    keys = pair_keys(ia[keep], ib[keep], len(truth.index))
    probs = np.array(p, dtype=np.float64)[keep]
    order = np.lexsort((-probs, keys))  # by key, best probability first
    keys, probs = keys[order], probs[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return keys[first], probs[first]


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    predicted: int


def score(keys: Keys, probs: Floats, truth: Keys, threshold: float) -> Scores:
    predicted = keys[probs >= threshold]
    hits = int(np.isin(predicted, truth, assume_unique=True).sum())
    precision = hits / len(predicted) if len(predicted) else 1.0
    recall = hits / len(truth) if len(truth) else 1.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return Scores(precision, recall, f1, len(predicted))


@dataclass(frozen=True)
class Outcome:
    tool: str
    seconds: float
    cpu_seconds: float
    peak_mb: float
    link: Scores  # p ≥ LINK
    reviewed: Scores  # p ≥ REVIEW: what is linked once the reviewers agree
    missed: dict[str, int]  # mess kind → true pairs with it left below REVIEW

    @property
    def queue(self) -> int:
        return self.reviewed.predicted - self.link.predicted


# ---- running the linkers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    seconds: float
    cpu_seconds: float
    peak_mb: float


def timed(cmd: list[str], log: Path) -> Timed:
    """Run a child to its end: wall seconds, its CPU seconds and its peak RSS (ru_maxrss)."""
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} exited with {proc.returncode}; see {log}")
    return Timed(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def benhan_cmd(records: Path, output: Path) -> list[str]:
    fields = [arg for option in field_options() for arg in ("--field", option)]
    return [
        *(BENHAN, "mpi", "dedupe", str(records), "--id", "patient_id", *fields),
        *("--output", str(output), "--floor", str(FLOOR)),
    ]


def splink_cmd(records: Path, output: Path) -> list[str]:
    return [sys.executable, str(HERE / "mpi_splink.py"), str(records), str(output)]


def benhan_ready() -> bool:
    done = subprocess.run([BENHAN, "mpi", "dedupe", "--help"], capture_output=True)
    return done.returncode == 0


def run(tool: str, data: Path, truth: Truth) -> Outcome:
    out = data / "run"
    out.mkdir(exist_ok=True)
    pairs = out / f"{tool}-pairs.csv"
    pairs.unlink(missing_ok=True)
    make = benhan_cmd if tool == "benhan" else splink_cmd
    console.print(f"{load()}: {tool} …")
    t = timed(make(data / "records.csv", pairs), out / f"{tool}.log")
    keys, probs = read_pairs(pairs, truth)
    found = keys[probs >= REVIEW]
    missed = {
        kind: int((~np.isin(truth.pairs_with(kind), found, assume_unique=True)).sum())
        for kind in truth.mutations
    }
    return Outcome(
        tool,
        t.seconds,
        t.cpu_seconds,
        t.peak_mb,
        score(keys, probs, truth.pairs, LINK),
        score(keys, probs, truth.pairs, REVIEW),
        missed,
    )


# ---- report -----------------------------------------------------------------------------------


def quality_table(outcomes: list[Outcome], records: int, true_pairs: int) -> Table:
    t = Table(title=f"Linkage of {records:,} records ({true_pairs:,} true pairs), {load()}")
    heads = ("linker", "links", "P link", "R link", "F1 link", "review queue", "P ≥0.80",
             "R ≥0.80", "F1 ≥0.80", "seconds", "cpu s", "s / M records", "× Splink",
             "peak RSS MiB")  # fmt: skip
    for h in heads:
        t.add_column(h, justify="left" if h == "linker" else "right")
    ref = next((o for o in outcomes if o.tool == "splink"), None)
    for o in outcomes:
        t.add_row(
            o.tool if o.tool == "benhan" else "Splink ref.",
            f"{o.link.predicted:,}",
            f"{o.link.precision:.4f}",
            f"{o.link.recall:.4f}",
            f"{o.link.f1:.4f}",
            f"{o.queue:,}",
            f"{o.reviewed.precision:.4f}",
            f"{o.reviewed.recall:.4f}",
            f"{o.reviewed.f1:.4f}",
            f"{o.seconds:,.1f}",
            f"{o.cpu_seconds:,.1f}",
            f"{o.seconds / records * 1e6:,.0f}",
            f"{o.seconds / ref.seconds:.2f}" if ref else "—",
            f"{o.peak_mb:,.0f}",
        )
    return t


def mess_table(outcomes: list[Outcome], truth: Truth) -> Table:
    """Recall counting reviewed pairs, by the kind of mess in either record of a true pair."""
    t = Table(title="True pairs missed (below 0.80), by the registration mess in either record")
    t.add_column("mess", justify="left")
    t.add_column("true pairs", justify="right")
    for o in outcomes:
        t.add_column(f"{o.tool} missed", justify="right")
        t.add_column(f"{o.tool} recall", justify="right")
    for kind in truth.mutations:
        total = len(truth.pairs_with(kind))
        cells: list[str] = []
        for o in outcomes:
            recall = f"{1 - o.missed[kind] / total:.4f}" if total else "—"
            cells += [f"{o.missed[kind]:,}", recall]
        t.add_row(kind, f"{total:,}", *cells)
    return t


def targets_table(ours: Outcome, ref: Outcome | None) -> Table:
    t = Table(title="Targets (issue 6)")
    for h in ("target", "benhan", "goal", "result"):
        t.add_column(h, justify="left" if h == "target" else "right")
    rows: list[tuple[str, str, str, bool]] = [
        ("precision of automatic links", f"{ours.link.precision:.4f}", f"≥ {TARGET_PRECISION}",
         ours.link.precision >= TARGET_PRECISION),
        ("recall counting reviewed pairs", f"{ours.reviewed.recall:.4f}", f"≥ {TARGET_RECALL}",
         ours.reviewed.recall >= TARGET_RECALL),
    ]  # fmt: skip
    if ref:
        ratio = ours.seconds / ref.seconds
        rows += [
            ("F1 of automatic links", f"{ours.link.f1:.4f}", f"≥ Splink {ref.link.f1:.4f}",
             ours.link.f1 >= ref.link.f1),
            ("batch time per million records", f"{ratio:.2f} × Splink",
             f"≤ {TARGET_TIME_RATIO:.0f} × Splink", ratio <= TARGET_TIME_RATIO),
        ]  # fmt: skip
    for name, value, goal, ok in rows:
        t.add_row(name, value, goal, verdict(ok))
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=20_000)
    ap.add_argument("--rebuild", action="store_true", help="generate the data again")
    ap.add_argument("--only", choices=("benhan", "splink"), help="run one linker")
    ap.add_argument(
        "--mess", choices=("typical", "hard"), default="typical",
        help="registration errors: hard leaves most records without a shared identifier",
    )  # fmt: skip
    args = ap.parse_args()
    data = build(args.people, args.rebuild, args.mess)
    truth = read_truth(data / "truth" / "people.csv")
    tools = [args.only] if args.only else ["splink", "benhan"]
    if "benhan" in tools and not benhan_ready():
        console.print("[red]`benhan mpi dedupe` is not available: running Splink only[/red]")
        tools.remove("benhan")
    outcomes = [run(tool, data, truth) for tool in tools]
    console.print(mess_table(outcomes, truth))
    console.print(quality_table(outcomes, len(truth.index), len(truth.pairs)))
    ours = next((o for o in outcomes if o.tool == "benhan"), None)
    if ours:
        console.print(targets_table(ours, next((o for o in outcomes if o.tool == "splink"), None)))
    console.print(f"{load()} at the end")


if __name__ == "__main__":
    main()
