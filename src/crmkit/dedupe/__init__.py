"""Deduplication: find, score and explain duplicate contacts and accounts.

Storage-independent: everything here works on plain records (dicts, CSV rows) as well as
on crmkit :class:`~crmkit.Contact` and :class:`~crmkit.Account` entities.

- :class:`Rules` / :class:`FieldRule`: what counts as a duplicate, readable and
  serializable (``Rules.contacts().to_dict()``).
- :func:`blocking_keys`: the keys under which a record's candidates are found.
- :func:`score_pair`: compare two records, with a per-field :class:`Match` explanation.
- :func:`candidates`: check one new record against others.
- :func:`cluster`: group a whole collection into :class:`DuplicateGroup` s.
- :func:`estimate_weights`: fit the rules' weights to a data set (Fellegi-Sunter EM).
- :func:`survive` / :class:`Override`: survivorship, the values a merged record keeps.
- :class:`DedupeService`: ``crm.dedupe``, the same on a CRM's stored records, with merge,
  unmerge and the duplicate rule on add (:class:`DuplicateFound`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crmkit.dedupe.blocking import blocking_keys
    from crmkit.dedupe.clustering import DuplicateGroup, candidates, cluster, score_pair
    from crmkit.dedupe.compare import FieldScore, Match
    from crmkit.dedupe.estimate import estimate_weights
    from crmkit.dedupe.merge import Override, survive
    from crmkit.dedupe.rules import FieldRule, Rules
    from crmkit.dedupe.service import DedupeService, DuplicateFound, DuplicateRule

# Where each public name lives. They load on first use: the engine needs numpy, rapidfuzz
# and jellyfish, which a CRM that never deduplicates should not pay for at import time.
_HOME = {
    "blocking_keys": "blocking",
    "DuplicateGroup": "clustering",
    "candidates": "clustering",
    "cluster": "clustering",
    "score_pair": "clustering",
    "FieldScore": "compare",
    "Match": "compare",
    "estimate_weights": "estimate",
    "Override": "merge",
    "survive": "merge",
    "FieldRule": "rules",
    "Rules": "rules",
    "DedupeService": "service",
    "DuplicateFound": "service",
    "DuplicateRule": "service",
}


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first access."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'crmkit.dedupe' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"crmkit.dedupe.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DedupeService",
    "DuplicateFound",
    "DuplicateGroup",
    "DuplicateRule",
    "FieldRule",
    "FieldScore",
    "Match",
    "Override",
    "Rules",
    "blocking_keys",
    "candidates",
    "cluster",
    "estimate_weights",
    "score_pair",
    "survive",
]
