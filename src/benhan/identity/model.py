"""The Fellegi–Sunter model: m and u per comparison level, the prior, term-frequency adjustment
for exact names, and match weights (log2 Bayes factors) that explain themselves field by field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from benhan.identity.columns import Columns, Floats, Ints
from benhan.identity.compare import ALL, Comparison, Levels, compare

_FLOOR = 1e-6  # no level is impossible: one unseen case must not be infinitely strong evidence


@dataclass(slots=True)
class Model:
    """m and u of every level (index 0, "null", is unused), λ among candidate pairs, the prior
    over all pairs, and how EM went. Saved as JSON with `to_json`, so a link can be reproduced."""

    comparisons: tuple[Comparison, ...]
    m: list[Floats]
    u: list[Floats]
    lambda_blocked: float = 0.01
    prior: float = 1e-5  # P(match) for a random pair of records
    # A name's frequency is estimated as freq(family)·freq(middle)·freq(given); below 1/100 of
    # the level's u that product is noise, so no name gains more than log2(100) ≈ 6.6 bits.
    tf_max_gain: float = 100.0
    em_iterations: int = 0
    em_converged: bool = False
    history: list[float] = field(default_factory=list)  # λ after each EM iteration

    def weights(self) -> list[Floats]:
        """log2(m/u) per level; 0 for "null", which says nothing either way."""
        out = []
        for m, u in zip(self.m, self.u, strict=True):
            w = np.log2(np.maximum(m, _FLOOR) / np.maximum(u, _FLOOR))
            w[0] = 0.0
            out.append(w)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "comparisons": [
                {
                    "name": c.name,
                    "levels": [
                        {"label": lab, "m": float(m), "u": float(u), "tf": i in c.tf_levels}
                        for i, (lab, m, u) in enumerate(zip(c.labels, mm, uu, strict=True))
                        if i > 0
                    ],
                }
                for c, mm, uu in zip(self.comparisons, self.m, self.u, strict=True)
            ],
            "lambda_blocked": self.lambda_blocked,
            "prior": self.prior,
            "em": {"iterations": self.em_iterations, "converged": self.em_converged},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Model:
        """The model `to_json` saved (the online index scores with the one relink trained)."""
        by_name = {c.name: c for c in ALL}
        comps, ms, us = [], [], []
        for item in data["comparisons"]:
            c = by_name[item["name"]]
            if [lv["label"] for lv in item["levels"]] != list(c.labels[1:]):
                raise ValueError(f"mô hình cũ / model levels differ from the code: {c.name}")
            comps.append(c)
            ms.append(np.asarray([1.0] + [lv["m"] for lv in item["levels"]], np.float64))
            us.append(np.asarray([1.0] + [lv["u"] for lv in item["levels"]], np.float64))
        em = data.get("em", {})
        return cls(
            tuple(comps), ms, us, lambda_blocked=data["lambda_blocked"], prior=data["prior"],
            em_iterations=em.get("iterations", 0), em_converged=em.get("converged", False),
        )  # fmt: skip


def _distribution(levels: npt.NDArray[np.int8], n_levels: int, weights: Floats | None) -> Floats:
    """Share of each non-null level (index 0 left at 1.0: null has m = u)."""
    counts = np.bincount(levels, weights=weights, minlength=n_levels).astype(np.float64)
    counts[0] = 0.0
    counts[1:] += 0.5  # add-half smoothing: a level never seen is rare, not impossible
    out: Floats = counts / counts[1:].sum()
    out[0] = 1.0
    return out


def random_pairs(n: int, size: int, rng: np.random.Generator) -> tuple[Ints, Ints]:
    """`size` uniformly random pairs of distinct records."""
    a = rng.integers(0, n, size, dtype=np.int64)
    b = rng.integers(0, n - 1, size, dtype=np.int64)
    b[b >= a] += 1  # never a record with itself
    return a.astype(np.int32), b.astype(np.int32)


def estimate_u(
    comps: Sequence[Comparison], cols: Columns, size: int = 1_000_000, seed: int = 0
) -> list[Floats]:
    """u per level from random pairs: nearly all of them are non-matches."""
    n = len(cols)
    size = min(size, n * (n - 1) // 2)
    a, b = random_pairs(n, size, np.random.default_rng(seed))
    levels = compare(comps, cols, a, b)
    return [_distribution(levels[:, k], len(c.labels), None) for k, c in enumerate(comps)]


def _initial_m(comps: Sequence[Comparison]) -> list[Floats]:
    """A start for EM: most matches agree exactly (level 1), the rest spread over the others."""
    out = []
    for c in comps:
        m = np.full(len(c.labels), 0.1 / max(len(c.labels) - 2, 1))
        m[0], m[1] = 1.0, 0.9
        out.append(m)
    return out


def _em(
    model: Model, levels: Levels, active: Sequence[bool], *, update_m: bool, max_iter: int = 100
) -> tuple[list[Floats], float, int, bool]:
    """EM over the distinct comparison vectors with their counts, not over every pair (a
    million pairs hold a few thousand patterns). Only `active` comparisons count as evidence
    and have their m re-estimated; u stays fixed. Returns m, λ, iterations, converged."""
    m, lam = [x.copy() for x in model.m], model.lambda_blocked
    if not len(levels):  # nothing to learn from (a handful of records): keep the start
        return m, lam, 0, True
    patterns, counts = np.unique(levels, axis=0, return_counts=True)
    counts = counts.astype(np.float64)
    ks = [k for k, on in enumerate(active) if on]
    weights = model.weights()
    for it in range(1, max_iter + 1):
        if update_m:
            weights = Model(model.comparisons, m, model.u).weights()
        w = np.zeros(len(patterns), np.float64)
        for k in ks:
            w += weights[k][patterns[:, k]]
        post = counts / (1.0 + np.exp2(-np.clip(np.log2(lam / (1 - lam)) + w, -60, 60)))
        new_lam = float(np.clip(post.sum() / counts.sum(), 1e-9, 1 - 1e-9))
        delta = abs(new_lam - lam)
        if update_m:
            for k in ks:
                new = _distribution(patterns[:, k], len(model.comparisons[k].labels), post)
                delta = max(delta, float(np.abs(new - m[k]).max()))
                m[k] = new
        lam = new_lam
        if delta < 1e-6:
            return m, lam, it, True
    return m, lam, max_iter, False


def train(
    comps: Sequence[Comparison],
    cols: Columns,
    levels: Levels,
    training: Sequence[tuple[Levels, frozenset[str]]],
    not_match: npt.NDArray[np.bool_],
    *,
    u_sample: int = 1_000_000,
    seed: int = 0,
) -> Model:
    """u by random sampling; m by EM on pairs blocked by each training rule, leaving out the
    comparisons the rule blocked on (their agreement there is forced, not evidence: Splink's
    method), each m the mean over the rules that estimated it; then λ among the candidate
    pairs by EM with m and u fixed, and the prior over all pairs from λ. `not_match` marks
    candidate pairs the rules call two people: they count as non-matches for λ, or a household
    (same phone, commune, family name) would pass for one person many times over."""
    model = Model(tuple(comps), _initial_m(comps), estimate_u(comps, cols, u_sample, seed))
    estimates: list[list[Floats]] = [[] for _ in comps]
    converged = True
    for rule_levels, blocked_on in training:
        if not len(rule_levels):
            continue
        active = [c.name not in blocked_on for c in comps]
        model.lambda_blocked = 0.1
        m, _, it, ok = _em(model, rule_levels, active, update_m=True)
        model.em_iterations += it
        converged &= ok
        for k, on in enumerate(active):
            if on:
                estimates[k].append(m[k])
    model.m = [np.mean(e, axis=0) if e else m0 for e, m0 in zip(estimates, model.m, strict=True)]
    model.lambda_blocked = 0.1
    _, lam, it, ok = _em(model, levels[~not_match], [True] * len(comps), update_m=False)
    lam *= float((~not_match).mean()) if len(levels) else 1.0
    model.lambda_blocked, model.em_converged = lam, converged and ok
    model.history.append(lam)
    n = len(cols)
    all_pairs = max(n * (n - 1) / 2, 1.0)
    # Matches outside the candidate pairs are few when blocking keeps recall high.
    model.prior = float(np.clip(lam * len(levels) / all_pairs, 1e-12, 0.5))
    return model


def match_weights(model: Model, cols: Columns, ia: Ints, levels: Levels) -> Floats:
    """log2 prior odds + Σ log2 Bayes factors, with exact names weighed by their frequency."""
    total = np.full(len(levels), np.log2(model.prior / (1 - model.prior)))
    for k, w in enumerate(model.weights()):
        total += w[levels[:, k]]
    total += tf_adjustment(model, cols, ia, levels)
    return total


def tf_adjustment(model: Model, cols: Columns, ia: Ints, levels: Levels) -> Floats:
    """For an exact name match on value v, u becomes the frequency of v instead of the average
    u of the level: a shared "Nguyễn Văn Nam" says little, a rare name much (Splink's
    term-frequency adjustment)."""
    out = np.zeros(len(levels), np.float64)
    for k, c in enumerate(model.comparisons):
        if not c.tf_levels:
            continue
        hit = np.isin(levels[:, k], list(c.tf_levels))
        u_level = model.u[k][levels[hit, k]]
        tf = np.maximum(cols.name_tf[ia[hit]], u_level / model.tf_max_gain)
        out[hit] += np.log2(u_level / tf)
    return out


def probability(weight: Floats) -> Floats:
    out: Floats = 1.0 / (1.0 + np.exp2(-np.clip(weight, -100, 100)))
    return out


@dataclass(frozen=True, slots=True)
class FieldWeight:
    """One line of an explanation: the level a field fell in and the evidence it gave."""

    comparison: str
    level: str
    weight: float  # log2 Bayes factor, term-frequency adjustment included
    tf_adjusted: bool


def explain(model: Model, cols: Columns, a: int, b: int) -> list[FieldWeight]:
    """Per comparison: the level and its weight, for one pair (the review page shows this)."""
    ia, ib = np.asarray([a], np.int32), np.asarray([b], np.int32)
    levels = compare(model.comparisons, cols, ia, ib)
    out = []
    weights = model.weights()
    for k, c in enumerate(model.comparisons):
        lv = int(levels[0, k])
        w = float(weights[k][lv])
        tf = lv in c.tf_levels
        if tf:
            u = float(model.u[k][lv])
            w += float(np.log2(u / max(float(cols.name_tf[a]), u / model.tf_max_gain)))
        out.append(FieldWeight(c.name, c.labels[lv], w, tf))
    return out
