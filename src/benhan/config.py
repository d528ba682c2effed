"""Settings from the environment: where the data lives, who this node is, and its limits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class Secret(str):
    """A string that never shows its value in repr, logs or tracebacks (a DSN with a password)."""

    def __repr__(self) -> str:
        return "Secret('**********')"


@dataclass(frozen=True)
class Settings:
    database_url: Secret
    facility: str  # MA_CSKCB of this node; owner of everything written through it
    base_url: str  # the public address of /fhir, for fullUrl and links
    max_body_bytes: int
    export_dir: Path
    # Seconds between two runs of the index's inbox drain in the server (identity/online.py);
    # 0 turns matching off in this process (another process, or `benhan mpi drain`, does it).
    match_every: float = 0.0

    @classmethod
    def from_env(cls) -> Settings:
        var = Path(os.environ.get("BENHAN_VAR", "var"))
        default_db = f"sqlite:///{var / 'benhan.sqlite3'}"
        return cls(
            database_url=Secret(os.environ.get("BENHAN_DATABASE_URL", default_db)),
            facility=os.environ.get("BENHAN_FACILITY", "27001"),
            base_url=os.environ.get("BENHAN_BASE_URL", "http://127.0.0.1:8000/fhir").rstrip("/"),
            max_body_bytes=int(os.environ.get("BENHAN_MAX_BODY_BYTES", str(50 * 1024 * 1024))),
            export_dir=Path(os.environ.get("BENHAN_EXPORT_DIR", str(var / "export"))),
            match_every=float(os.environ.get("BENHAN_MATCH_EVERY", "2")),
        )


def tune_gc() -> None:
    """Collect garbage less often in a long-running server or import.

    Parsing FHIR JSON allocates many small dicts and lists that die young; the default
    generation-0 threshold (700) makes Python walk them hundreds of times per request batch.
    Freezing what start-up allocated keeps it out of every later collection.
    """
    import gc

    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
