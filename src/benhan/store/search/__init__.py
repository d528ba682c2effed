"""FHIR search → SQLAlchemy Core SELECTs over `resource` and the index tables."""

from benhan.store.search.plan import (
    SearchRequest,
    SearchResult,
    parse_search,
    run_search,
    supported_params,
)

__all__ = ["SearchRequest", "SearchResult", "parse_search", "run_search", "supported_params"]
