"""Schemathesis against the published OpenAPI schema: whatever a signed-in client sends, and
whatever an anonymous one sends, no answer is a 500.

The cases come from schemathesis' strategies, one operation at a time, run by Hypothesis
(schemathesis' own pytest plugin does not load under pytest 9 yet).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from benhan.api import create_app
from benhan.store.database import Store, open_store
from tests.conftest import bearer, make_settings


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """The app on SQLite (the HTTP layer is what is fuzzed; the stores are tested elsewhere)."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{tmp / 'benhan.sqlite3'}"
    store: Store = open_store(url)
    store.create_schema()
    app = create_app(settings=make_settings(url, Path(tmp)), store=store)
    yield app, bearer(store)
    store.dispose()


def test_the_schema_lists_the_api(api: tuple[Any, str]) -> None:
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", api[0])
    labels = {r.ok().label for r in schema.get_all_operations()}
    assert {"GET /fhir/metadata", "POST /oauth/token", "DELETE /fhir/{path}"} <= labels


def test_no_500_signed_in_or_not(api: tuple[Any, str]) -> None:
    app, token = api
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()

        @settings(
            max_examples=20,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def run(case: Any) -> None:
            for headers in ({"Authorization": token}, {}):
                response = case.call(headers=headers)
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")

        run()
    assert failures == []
