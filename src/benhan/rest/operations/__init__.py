"""FHIR operations run through the router, one module each: $validate, Patient/$everything,
Patient/$match and Bundle/$verify.

Bulk Data $export is asynchronous and lives in benhan.bulk (jobs) and api/bulk_routes.py.
"""

from __future__ import annotations

from collections.abc import Callable

from benhan.rest.message import Request, Response
from benhan.rest.operations.everything import everything
from benhan.rest.operations.match import match_op
from benhan.rest.operations.validate import validate_op
from benhan.rest.operations.verify import verify_op
from benhan.rest.router import Context

Operation = Callable[[Context, Request, list[str]], Response]

OPERATIONS: dict[str, Operation] = {
    "$validate": validate_op,
    "$everything": everything,
    "$match": match_op,
    "$verify": verify_op,
}

__all__ = ["OPERATIONS", "Operation"]
