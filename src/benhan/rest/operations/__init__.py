"""FHIR operations, one module each: $validate, Patient/$everything, Bulk Data $export."""

from __future__ import annotations

from collections.abc import Callable

from benhan.rest.message import Request, Response
from benhan.rest.operations.everything import everything
from benhan.rest.operations.validate import validate_op
from benhan.rest.router import Context

Operation = Callable[[Context, Request, list[str]], Response]

OPERATIONS: dict[str, Operation] = {"$validate": validate_op, "$everything": everything}

__all__ = ["OPERATIONS", "Operation"]
