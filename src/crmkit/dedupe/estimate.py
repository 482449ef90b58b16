"""Fitting the rules' weights to the data: Fellegi-Sunter m/u probabilities by EM.

The candidate pairs of a data set (pairs that share a blocking key) are a mixture of
duplicates and non-duplicates. Each pair's comparison is a vector of levels, one per
field; under the Fellegi-Sunter model the fields are independent given the class, so
expectation-maximization recovers, without any labelled pair, how often each level
occurs among duplicates (``m``), among non-duplicates (``u``) and the share of
duplicates among candidates (``prior``). Identical level vectors are counted once, so
an iteration costs patterns x fields, not pairs.

Starting from the given rules keeps EM in the intended solution (duplicates = the
class where emails and phones agree), and a light pull towards them (``strength`` pseudo
pairs) keeps a level that the data never shows from getting an infinite weight.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from crmkit.dedupe.clustering import build_table
from crmkit.dedupe.compare import compare_pairs
from crmkit.dedupe.rules import FieldRule, Rules, default_rules
from crmkit.errors import ValidationError

__all__ = ["estimate_weights"]

_FLOOR = 1e-5


def estimate_weights(
    records: Iterable[Any],
    rules: Rules | None = None,
    *,
    max_pairs: int = 1_000_000,
    iterations: int = 50,
    strength: float = 20.0,
    seed: int = 0,
    default_region: str = "US",
) -> Rules:
    """Return ``rules`` with ``m``, ``u`` and ``prior`` estimated from ``records``.

    Up to ``max_pairs`` candidate pairs (a seeded random sample beyond that) are compared
    and EM runs for at most ``iterations`` rounds (it stops earlier once the estimates
    move by less than 1e-6). Level cut-offs, methods, blocking and thresholds are kept.
    A ``required`` field's ``different`` level keeps its given probabilities: those pairs
    are never duplicates, so the data says nothing about them.

    Raises ValidationError when the records yield no candidate pair to learn from.
    """
    items = iter(records)
    if rules is None:
        first = next(items, None)
        rules = default_rules(first)
        items = iter(() if first is None else [first, *items])
    table, index = build_table(items, rules, default_region=default_region)
    ia, ib = index.candidate_pairs()
    del index
    if ia.size == 0:
        raise ValidationError("records", None, "give no candidate pairs to estimate weights from")
    if ia.size > max_pairs:
        chosen = np.sort(np.random.default_rng(seed).choice(ia.size, max_pairs, replace=False))
        ia, ib = ia[chosen], ib[chosen]
    levels = compare_pairs(table, ia, ib, rules).levels
    patterns, counts = np.unique(levels, axis=0, return_counts=True)
    weights = counts.astype(np.float64)

    sizes = [len(rule.level_names) for rule in rules.fields]
    m = [np.array(rule.m, dtype=np.float64) for rule in rules.fields]
    u = [np.array(rule.u, dtype=np.float64) for rule in rules.fields]
    m0 = [x.copy() for x in m]
    u0 = [x.copy() for x in u]
    vetoed = np.zeros(len(patterns), dtype=np.bool_)
    for f, rule in enumerate(rules.fields):
        if rule.required:
            vetoed |= patterns[:, f] == sizes[f] - 1
    prior = rules.prior
    for _ in range(iterations):
        # E step: probability that each pattern is a duplicate.
        log_odds = np.full(len(patterns), np.log(prior / (1.0 - prior)))
        for f in range(len(sizes)):
            present = patterns[:, f] < sizes[f]
            observed = patterns[present, f]
            log_odds[present] += np.log(m[f][observed]) - np.log(u[f][observed])
        match = 1.0 / (1.0 + np.exp(-np.clip(log_odds, -500.0, 500.0)))
        match[vetoed] = 0.0
        # M step: level frequencies in each class, pulled lightly towards the start.
        new_m, new_u = [], []
        for f in range(len(sizes)):
            present = patterns[:, f] < sizes[f]
            observed = patterns[present, f]
            in_match = np.bincount(observed, weights[present] * match[present], sizes[f])
            in_other = np.bincount(observed, weights[present] * (1 - match[present]), sizes[f])
            mf = (in_match + strength * m0[f]) / (in_match.sum() + strength)
            uf = (in_other + strength * u0[f]) / (in_other.sum() + strength)
            if rules.fields[f].required:
                # Vetoed pairs teach nothing about duplicates' "different" level.
                mf[-1] = m0[f][-1]
                mf[:-1] *= (1.0 - mf[-1]) / mf[:-1].sum()
            new_m.append(np.clip(mf, _FLOOR, 1 - _FLOOR))
            new_u.append(np.clip(uf, _FLOOR, 1 - _FLOOR))
        new_prior = float(np.clip((weights * match).sum() / weights.sum(), _FLOOR, 0.5))
        change = max(
            abs(new_prior - prior),
            *(float(np.abs(a - b).max()) for a, b in zip(new_m, m, strict=True)),
            *(float(np.abs(a - b).max()) for a, b in zip(new_u, u, strict=True)),
        )
        m, u, prior = new_m, new_u, new_prior
        if change < 1e-6:
            break

    fields = tuple(
        FieldRule.from_dict(
            {
                **rule.to_dict(),
                "m": [round(float(x), 6) for x in m[f]],
                "u": [round(float(x), 6) for x in u[f]],
            }
        )
        for f, rule in enumerate(rules.fields)
    )
    return rules.evolve(fields=fields, prior=round(prior, 6))
