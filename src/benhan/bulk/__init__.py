"""Bulk data: the FHIR Bulk Data $export jobs and the NDJSON writer behind `benhan export`."""

from __future__ import annotations

from benhan.bulk.export import (
    ExportFile,
    ExportParams,
    Job,
    delete_job,
    job_file,
    kick_off,
    parse_params,
    status,
    write_ndjson,
)

__all__ = [
    "ExportFile",
    "ExportParams",
    "Job",
    "delete_job",
    "job_file",
    "kick_off",
    "parse_params",
    "status",
    "write_ndjson",
]
