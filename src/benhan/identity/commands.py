"""`benhan mpi …`: batch record linkage of a CSV (`dedupe`), Patients → CSV (`fhir-csv`), the
hub's index rebuilt (`relink`) or brought up to date with what was written (`drain`)."""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from benhan.identity.decide import REASONS, Thresholds
from benhan.identity.dedupe import Linkage, link
from benhan.identity.evaluate import Evaluation, evaluate, read_truth
from benhan.identity.table import TableError, parse_field, read_table
from benhan.store.database import Store

mpi_app = typer.Typer(help="Chỉ mục bệnh nhân / master patient index", no_args_is_help=True)
console = Console(stderr=True)


def _fail(problems: list[str]) -> typer.Exit:
    for p in problems:
        console.print(f"[red]lỗi / error:[/red] {escape(p)}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


@contextmanager
def _steps() -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Rich progress bars, one per long step (hidden when stderr is not a terminal)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as progress:

        def step(label: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(label, total=total)
            return lambda n: progress.advance(task, n)

        yield step


@mpi_app.command()
def dedupe(
    input_csv: Annotated[Path, typer.Argument(help="tệp CSV / CSV file", metavar="INPUT.csv")],
    id_column: Annotated[str, typer.Option("--id", help="cột mã bản ghi / record id column")],
    fields: Annotated[
        list[str],
        typer.Option("--field", help="COLUMN=ROLE[:FORMAT], e.g. NGAY_SINH=birthdate:%d/%m/%Y"),
    ],
    output: Annotated[Path, typer.Option("--output", help="pairs.csv")],
    truth: Annotated[Path | None, typer.Option(help="sự thật / ground truth CSV")] = None,
    truth_entity: Annotated[str, typer.Option(help="cột thực thể / entity column")] = (
        "true_person_id"
    ),
    link_threshold: Annotated[float, typer.Option(help="tự động liên kết / auto-link")] = 0.99,
    review_threshold: Annotated[float, typer.Option(help="cần xem xét / review")] = 0.80,
    floor: Annotated[float, typer.Option(help="ghi cặp từ mức này / write pairs from")] = 0.01,
    block_cap: Annotated[int, typer.Option(help="khối lớn nhất / largest block")] = 1000,
    seed: Annotated[int, typer.Option(help="hạt giống / seed")] = 0,
) -> None:
    """Liên kết bản ghi CSV / link the records of a CSV: writes id_a,id_b,match_probability."""
    try:
        specs = [parse_field(f) for f in fields]
        thresholds = Thresholds(link=link_threshold, review=review_threshold)
    except ValueError as e:
        raise _fail([str(e)]) from None
    if not input_csv.is_file():
        raise _fail([f"{input_csv}: không tìm thấy / not found"])
    if truth is not None and not truth.is_file():
        raise _fail([f"{truth}: không tìm thấy / not found"])
    started = time.perf_counter()
    try:
        table = read_table(input_csv, id_column, specs)
        truth_map = read_truth(truth, id_column, truth_entity) if truth else None
    except TableError as e:
        raise _fail(e.problems) from None
    if len(table.people) < 2:
        raise _fail([f"{input_csv}: cần ít nhất 2 bản ghi / need at least 2 records"])
    with _steps() as step:
        result = link(
            table.people, thresholds=thresholds, block_cap=block_cap, seed=seed, step=step
        )
    written = write_pairs(output, result, floor)
    _report(result, written, time.perf_counter() - started, table.ignored)
    if truth_map is not None:
        ev = evaluate(result.cols.ids, truth_map, result.ia, result.ib, result.probability,
                      thresholds.link, thresholds.review)  # fmt: skip
        _print_evaluation(ev)


def write_pairs(path: Path, result: Linkage, floor: float) -> int:
    """Pairs at or above `floor`, most probable first; written whole or not at all."""
    keep = np.flatnonzero(result.probability >= floor)
    ids = result.cols.ids
    rows = sorted(
        ((ids[int(result.ia[k])], ids[int(result.ib[k])], float(result.probability[k]))
         for k in keep),
        key=lambda r: (-r[2], r[0], r[1]),
    )  # fmt: skip
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id_a", "id_b", "match_probability"])
        for a, b, p in rows:
            w.writerow([a, b, f"{p:.6f}"])
    os.replace(tmp, path)
    return len(rows)


def _report(result: Linkage, written: int, seconds: float, ignored: dict[str, int]) -> None:
    b, m = result.blocking, result.model
    console.print(
        f"{len(result.cols):,} bản ghi / records · {b.pairs:,} cặp ứng viên / candidate pairs"
        f" · {written:,} cặp ghi / pairs written · {seconds:.1f} s"
    )
    for rule, n in b.pairs_by_rule.items():
        skipped = b.skipped_blocks.get(rule, 0)
        extra = f" (bỏ / skipped {skipped:,} blocks, {b.skipped_records.get(rule, 0):,} records)"
        console.print(f"  chặn / block {rule}: {n:,}{extra if skipped else ''}")
    for role, n in sorted(ignored.items()):
        console.print(f"  [yellow]{role}: {n:,} giá trị sai dạng, coi như trống / malformed, "
                      "treated as missing[/yellow]")  # fmt: skip
    reasons = np.bincount(result.reason, minlength=len(REASONS))
    console.print(
        "  " + " · ".join(f"{r}: {int(n):,}" for r, n in zip(REASONS, reasons, strict=True))
    )
    em = "hội tụ / converged" if m.em_converged else "chưa hội tụ / not converged"
    console.print(f"  EM: {m.em_iterations} vòng / iterations, {em}; λ = {m.lambda_blocked:.4f}, "
                  f"prior = {m.prior:.3g}")  # fmt: skip
    console.print("  " + " · ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items()))


def _print_evaluation(ev: Evaluation) -> None:
    table = RichTable(title="So với sự thật / against the truth")
    for col in ("", "cặp / pairs", "đúng / true", "precision", "recall", "F1"):
        table.add_column(col, justify="right")
    for label, s in (("link", ev.link), ("link+review", ev.link_or_review)):
        table.add_row(label, f"{s.predicted:,}", f"{s.true_positive:,}", f"{s.precision:.4f}",
                      f"{s.recall:.4f}", f"{s.f1:.4f}")  # fmt: skip
    out = Console()
    out.print(table)
    out.print(f"true pairs: {ev.true_pairs:,} · found by blocking: {ev.candidate_true:,} "
              f"({ev.blocking_recall:.4f}) · review queue: {ev.review_queue:,}")  # fmt: skip


@mpi_app.command("fhir-csv")
def fhir_csv(
    folder: Annotated[Path, typer.Argument(help="thư mục NDJSON / NDJSON folder")],
    out: Annotated[Path, typer.Argument(help="CSV")],
) -> None:
    """Bệnh nhân FHIR → CSV / Patients of a `benhan synth --out` folder → a CSV for dedupe."""
    from benhan.identity.fhir_csv import field_options, patients_in, write_csv

    if not folder.is_dir():
        raise _fail([f"{folder}: không tìm thấy / not found"])
    n = write_csv(patients_in(folder), out)
    console.print(f"{n:,} bệnh nhân / patients → {out}")
    console.print("--id patient_id " + " ".join(f"--field {f}" for f in field_options()))


@mpi_app.command()
def relink(
    link_threshold: Annotated[float, typer.Option(help="tự động liên kết / auto-link")] = 0.99,
    review_threshold: Annotated[float, typer.Option(help="cần xem xét / review")] = 0.80,
) -> None:
    """Liên kết lại mọi bệnh nhân / link every Patient of the repository anew (Person resources)."""
    from benhan.config import Settings
    from benhan.identity.persons import relink as run
    from benhan.store.database import open_store

    try:
        th = Thresholds(link=link_threshold, review=review_threshold)
    except ValueError as e:
        raise _fail([str(e)]) from None
    cfg = Settings.from_env()
    store = open_store(cfg.database_url)
    store.create_schema()
    start = time.perf_counter()
    with _steps() as step:
        done = run(store, cfg.facility, thresholds=th, step=step)
    store.dispose()
    console.print(
        f"{done.records:,} bệnh nhân / patients → {done.persons:,} người / persons "
        f"(mới / new {done.created:,}, sửa / updated {done.updated:,}, giữ / unchanged "
        f"{done.unchanged:,}, xoá / deleted {done.deleted:,}); cần xem xét / review queue "
        f"{done.review:,}; xung đột / conflicts {done.conflicts:,}, liên kết bị từ chối / "
        f"links refused {done.refused:,}; {time.perf_counter() - start:.1f} s"
    )


@mpi_app.command()
def drain() -> None:
    """Đối chiếu bệnh nhân mới ghi / match the Patients written since the last match."""
    from benhan.config import Settings
    from benhan.store.database import open_store

    cfg = Settings.from_env()
    store = open_store(cfg.database_url)
    store.create_schema()
    match_arrivals(store, cfg.facility)
    store.dispose()


def match_arrivals(store: Store, facility: str) -> None:
    """Drain the index's inbox with a progress bar and say what changed (also after import)."""
    from benhan.identity.online import drain as run
    from benhan.store.schema import mpi_inbox

    with store.read() as conn:
        waiting = conn.execute(sa.select(sa.func.count()).select_from(mpi_inbox)).scalar_one()
    if not waiting:
        console.print("không có bệnh nhân chờ đối chiếu / no patients waiting to be matched")
        return
    start = time.perf_counter()
    with _steps() as step:
        done = run(store, facility, progress=step("đối chiếu / matching", waiting))
    p = done.linked
    how = "liên kết lại toàn bộ / full relink (first model)" if done.trained else "online"
    console.print(
        f"{done.records:,} bản ghi đã đối chiếu / records matched ({how}): người / persons "
        f"mới / new {p.created:,}, sửa / updated {p.updated:,}, xoá / deleted {p.deleted:,}; "
        f"cần xem xét / in review {done.review:,}; {time.perf_counter() - start:.1f} s"
    )
