"""HTTP: the FHIR REST routes, errors as OperationOutcome, content negotiation."""

from __future__ import annotations

from benhan.api.app import create_app

__all__ = ["create_app"]
