"""How fast the synthetic province is generated and loaded, and how much memory it takes.

    .venv/bin/python bench/synth.py                      # 10,000 and 100,000 people, 2 years
    .venv/bin/python bench/synth.py --people 10000       # one size only

For each size, in a fresh child process (so each peak RSS is its own): generating the province
alone (the reference: the ceiling any loader can reach), writing per-facility NDJSON, and
loading it into a new SQLite file through the repository's fast path (`benhan synth`, validated
and indexed in a worker process). Target (issue 3): 100,000 people with two years of history
loaded in ≤ 10 minutes.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import console, load, verdict
from rich.table import Table

TARGET_S = {100_000: 600.0}  # 100k people loaded in ≤ 10 minutes


@dataclass
class Run:
    people: int
    step: str
    resources: int
    seconds: float
    peak_mb: float


def child(step: str, people: int, years: int, out: Path) -> None:
    """Run one step in this process and print 'resources seconds peak_kb' on the last line."""
    from benhan.config import tune_gc
    from benhan.store.database import open_store
    from benhan.synth.output import to_ndjson, to_store
    from benhan.synth.province import SynthConfig, generate

    tune_gc()
    config = SynthConfig(people=people, years=years)
    started = time.perf_counter()
    if step == "generate":
        total = sum(1 for _ in generate(config))
    elif step == "ndjson":
        total = to_ndjson(out, generate(config))
    else:
        store = open_store(f"sqlite:///{out / 'bench.sqlite3'}")
        store.create_schema()
        with store.bulk_load():  # as `benhan synth` loads an empty store
            total = to_store(store, generate(config), workers=1)
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, children)
    print(total, seconds, peak)


def measure(step: str, people: int, years: int) -> Run:
    with tempfile.TemporaryDirectory(prefix="benhan-bench-synth-") as d:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            step,
            "--people",
            str(people),
            "--years",
            str(years),
            "--out",
            d,
        ]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    total, seconds, peak_kb = done.stdout.split()[-3:]
    return Run(people, step, int(total), float(seconds), float(peak_kb) / 1024)


def report(runs: list[Run]) -> Table:
    t = Table(title="Synthetic province: generate, write, load (2 cores)")
    for col in (
        "people",
        "step",
        "resources",
        "seconds",
        "people/s",
        "resources/s",
        "× generate",
        "peak RSS MiB",
        "target",
        "result",
    ):
        t.add_column(col, justify="left" if col in ("step", "target", "result") else "right")
    reference = {r.people: r for r in runs if r.step == "generate"}
    for r in runs:
        ref = reference.get(r.people)
        share = f"{ref.seconds / r.seconds:.0%}" if ref else "—"
        goal = TARGET_S.get(r.people) if r.step == "sqlite" else None
        t.add_row(
            f"{r.people:,}",
            r.step,
            f"{r.resources:,}",
            f"{r.seconds:,.1f}",
            f"{r.people / r.seconds:,.0f}",
            f"{r.resources / r.seconds:,.0f}",
            share,
            f"{r.peak_mb:,.0f}",
            f"≤ {goal:.0f} s" if goal else "—",
            verdict(r.seconds <= goal) if goal else "reference" if r.step == "generate" else "—",
        )
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--people", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--years", type=int, default=2)
    ap.add_argument("--child")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.people[0], args.years, args.out)
        return
    runs = []
    for people in args.people:
        for step in ("generate", "ndjson", "sqlite"):
            console.print(f"{load()}: {people:,} people, {step} …")
            runs.append(measure(step, people, args.years))
    console.print(report(runs))
    console.print(f"{load()} at the end")


if __name__ == "__main__":
    main()
