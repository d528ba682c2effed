"""Batch linkage of one table of person records: block, compare, train, score, decide."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from benhan.identity.blocking import (
    DEFAULT_RULES,
    TRAINING_RULES,
    BlockingReport,
    BlockingRule,
    candidate_pairs,
    training_pairs,
)
from benhan.identity.columns import Columns, Floats, Ints, to_columns
from benhan.identity.compare import Levels, compare, comparisons_for
from benhan.identity.decide import REASONS, Thresholds, apply_rules, rule_reasons
from benhan.identity.model import Model, match_weights, probability, train
from benhan.identity.normalise import Person

Step = Callable[[str, int], Callable[[int], None]]  # (label, total) → advance(n)
CHUNK = 1_000_000  # pairs compared at once: bounds memory at millions of pairs


def _quiet(label: str, total: int) -> Callable[[int], None]:
    return lambda n: None


@dataclass(slots=True)
class Linkage:
    """Every candidate pair with its final probability and the rule that set it."""

    cols: Columns
    model: Model
    ia: Ints
    ib: Ints
    levels: Levels
    probability: Floats
    reason: np.ndarray  # index into decide.REASONS
    blocking: BlockingReport
    seconds: dict[str, float] = field(default_factory=dict)


def link(
    people: Sequence[Person],
    *,
    thresholds: Thresholds | None = None,
    rules: Sequence[BlockingRule] = DEFAULT_RULES,
    block_cap: int = 1000,
    u_sample: int = 1_000_000,
    seed: int = 0,
    step: Step = _quiet,
) -> Linkage:
    th = thresholds or Thresholds()
    clock: dict[str, float] = {}
    t = time.perf_counter()
    cols = to_columns(people)
    clock["columns"] = time.perf_counter() - t
    t = time.perf_counter()
    ia, ib, report = candidate_pairs(cols, rules, block_cap, step("chặn / blocking", len(rules)))
    clock["blocking"] = time.perf_counter() - t
    t = time.perf_counter()
    comps = comparisons_for(cols)
    levels = np.empty((len(ia), len(comps)), np.int8)
    advance = step("so sánh / comparing", len(ia))
    for s in range(0, len(ia), CHUNK):
        levels[s : s + CHUNK] = compare(comps, cols, ia[s : s + CHUNK], ib[s : s + CHUNK])
        advance(len(ia[s : s + CHUNK]))
    clock["comparing"] = time.perf_counter() - t
    t = time.perf_counter()
    training = [
        (compare(comps, cols, a, b), blocked_on)
        for a, b, blocked_on in training_pairs(cols, TRAINING_RULES, block_cap, CHUNK, seed)
    ]
    names = tuple(c.name for c in comps)
    reason = rule_reasons(cols, ia, ib, names, levels)
    not_match = (reason == REASONS.index("different-person")) | (
        reason == REASONS.index("conflict")
    )
    model = train(comps, cols, levels, training, not_match, u_sample=u_sample, seed=seed)
    clock["training"] = time.perf_counter() - t
    t = time.perf_counter()
    prob = probability(match_weights(model, cols, ia, levels))
    final = apply_rules(prob, reason, th)
    clock["scoring"] = time.perf_counter() - t
    return Linkage(cols, model, ia, ib, levels, final, reason, report, clock)
