"""Master patient index: normalisation, blocking, comparisons, Fellegi–Sunter model, decisions."""

from __future__ import annotations

from benhan.identity.decide import Thresholds
from benhan.identity.dedupe import Linkage, link
from benhan.identity.model import Model, explain
from benhan.identity.normalise import Person, parse_birth_date, parse_name

__all__ = ["Linkage", "Model", "Person", "Thresholds", "explain", "link", "parse_birth_date",
           "parse_name"]  # fmt: skip
