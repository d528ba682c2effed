"""A clock the tests move by hand: keys, tokens, codes, sessions and grants all read
benhan.fhir.primitives.now(), frozen here at FROZEN."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from benhan.fhir import primitives
from benhan.store.database import Store
from tests.conftest import FROZEN


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock(FROZEN)
    monkeypatch.setattr(primitives, "now", c)
    return c


@pytest.fixture
def conn(store: Store, clock: Clock) -> Iterator[sa.Connection]:
    """A write transaction at the frozen moment."""
    with store.begin() as c:
        yield c
