"""Fixtures for the page tests: an app on a fresh SQLite repository, and a way to add resources."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from benhan.api import create_app
from benhan.config import Secret, Settings
from benhan.store.database import Store, open_store
from benhan.store.repository import Repo

FACILITY = "27001"
AddResources = Callable[..., list[str]]  # add(*resources) -> their new ids, in one transaction


def settings_for(url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=Secret(url),
        facility=FACILITY,
        base_url="http://127.0.0.1:8000/fhir",
        max_body_bytes=10 * 1024 * 1024,
        export_dir=tmp_path / "export",
    )


@pytest.fixture
def web_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path}/db.sqlite3")
    yield store
    store.dispose()


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[[Store], FastAPI]:
    """create_app on a given store (which it migrates), with settings that point at it."""

    def _make(store: Store) -> FastAPI:
        url = store.engine.url.render_as_string(hide_password=False)
        return create_app(settings=settings_for(url, tmp_path), store=store)

    return _make


@pytest.fixture
def app(web_store: Store, make_app: Callable[[Store], FastAPI]) -> FastAPI:
    return make_app(web_store)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def add(web_store: Store, app: FastAPI) -> AddResources:
    """Store resources through the repository, as an import would (`app` made the schema)."""

    def _add(*resources: dict[str, Any]) -> list[str]:
        with web_store.begin() as conn:
            repo = Repo(conn, FACILITY)
            return [repo.create(res).id for res in resources]

    return _add
