"""Reading the CSV files shipped in benhan/catalog/data (plain or gzip-compressed)."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from importlib import resources


def rows(name: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row of a packaged CSV; line 1 is the header."""
    raw = resources.files("benhan.catalog").joinpath("data", name).read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    for row in reader:
        yield reader.line_num, row
