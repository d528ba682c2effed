"""The reference server of bench/access.py: `benhan serve` with every caller taken for a trusted
local job, so no token is checked, no row rule is added and no AuditEvent is written.

For measuring only: the program has no switch that does this, on purpose.
"""

from __future__ import annotations

import os

from benhan.access import Actor
from benhan.api import deps
from benhan.cli import app

FACILITY = os.environ.get("BENHAN_FACILITY", "27001")


def _as_job(_http: object) -> object:
    return lambda _conn: Actor.job(FACILITY, "bench-reference")


deps.authenticate = _as_job  # type: ignore[assignment]

if __name__ == "__main__":
    app()
