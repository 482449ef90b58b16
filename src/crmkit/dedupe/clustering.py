"""Duplicate groups: scoring candidate pairs in bulk and linking them without chaining.

:func:`cluster` reads the records once (any iterable: a CSV reader, a backend's stream,
a list of contacts), keeps only their match keys in a :class:`FeatureTable`, blocks,
scores the candidate pairs a chunk at a time and links them into groups.

Linking is *agglomerative with a complete-linkage guard*: candidate pairs at or above
``threshold`` are taken strongest first; two groups merge only if **every** pair across
them reaches ``link_threshold`` (pairs that blocking did not propose are scored on the
spot) and the result stays within ``max_group_size``. So ``A~B`` and ``B~C`` never put
``A`` and ``C`` together unless ``A~C`` holds too: a shared switchboard number or a
typo-level similarity cannot snowball into one giant group, as plain connected
components would.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any, Final

import attrs
import numpy as np

from crmkit.dedupe.blocking import BlockIndex, BlockingStats
from crmkit.dedupe.compare import Match, compare_pairs, explain_pair
from crmkit.dedupe.records import FeatureTable, RecordId, prepare
from crmkit.dedupe.rules import Rules, default_rules
from crmkit.errors import ValidationError

__all__ = [
    "ClusterRun",
    "DuplicateGroup",
    "build_table",
    "candidates",
    "cluster",
    "cluster_run",
    "cluster_table",
    "score_pair",
    "with_threshold",
]

# Pairs scored per batch: bounds the temporary arrays (~200 bytes a pair) whatever the
# number of records.
_CHUNK: Final = 500_000


@attrs.frozen
class DuplicateGroup:
    """Records that are one person (or company), with the evidence.

    ``ids`` are the records' ids (their ``id`` key or attribute, else their position in
    the input), ``rows`` their positions in the input; ``matches`` explains every pair of
    the group, strongest first; ``probability`` is the weakest pair's probability.
    """

    ids: tuple[RecordId, ...]
    rows: tuple[int, ...]
    matches: tuple[Match, ...]
    probability: float

    def __len__(self) -> int:
        return len(self.ids)

    def explain(self) -> str:
        """Readable lines: the group, then each pair's explanation."""
        head = f"{len(self.ids)} records {list(self.ids)!r}, weakest pair p={self.probability:.3f}"
        return "\n".join([head, *(m.explain() for m in self.matches)])


def _resolve(records: Iterable[Any], rules: Rules | None) -> tuple[Iterator[Any], Rules]:
    iterator = iter(records)
    if rules is not None:
        return iterator, rules
    try:
        first = next(iterator)
    except StopIteration:
        return iter(()), Rules.contacts()
    return itertools.chain((first,), iterator), default_rules(first)


def with_threshold(rules: Rules, threshold: float | None) -> Rules:
    """``rules`` with the match threshold ``threshold`` (``link_threshold`` lowered to it
    when higher); the rules unchanged when it is None. Raises ``ValidationError`` for a
    threshold outside (0, 1)."""
    if threshold is None:
        return rules
    if not 0.0 < threshold < 1.0:
        raise ValidationError("threshold", threshold, "must be between 0 and 1")
    return rules.evolve(threshold=threshold, link_threshold=min(rules.link_threshold, threshold))


def build_table(
    records: Iterable[Any], rules: Rules, *, default_region: str = "US", blocks: bool = True
) -> tuple[FeatureTable, BlockIndex]:
    """Read ``records`` into a feature table (and their blocking keys into an index)."""
    fields = [rule.field for rule in rules.fields]
    table = FeatureTable(fields)
    index = BlockIndex(rules)
    for position, record in enumerate(records):
        prepared = prepare(
            record, kind=rules.kind, fields=fields, default_region=default_region, index=position
        )
        row = table.add(prepared)
        if blocks:
            index.add(row, prepared)
    return table, index


class _Linker:
    """Union of groups under the complete-linkage guard."""

    def __init__(self, table: FeatureTable, rules: Rules, known: dict[int, float]) -> None:
        self.table = table
        self.rules = rules
        self.known = known  # pair code -> probability
        self.count = len(table)
        self.group_of: dict[int, list[int]] = {}

    def _code(self, a: int, b: int) -> int:
        return a * self.count + b if a < b else b * self.count + a

    def _members(self, row: int) -> list[int]:
        return self.group_of.get(row) or [row]

    def offer(self, a: int, b: int) -> None:
        group_a, group_b = self._members(a), self._members(b)
        if group_a is group_b:
            return
        if len(group_a) + len(group_b) > self.rules.max_group_size:
            return
        if len(group_a) > 1 or len(group_b) > 1:
            cross = [self._code(x, y) for x in group_a for y in group_b]
            missing = [code for code in cross if code not in self.known]
            if missing:
                codes = np.array(missing, dtype=np.int64)
                scores = compare_pairs(
                    self.table, codes // self.count, codes % self.count, self.rules
                )
                self.known.update(zip(missing, scores.probability.tolist(), strict=True))
            if min(self.known[code] for code in cross) < self.rules.link_threshold:
                return
        merged = group_a + group_b
        for row in merged:
            self.group_of[row] = merged

    def groups(self) -> list[list[int]]:
        seen: set[int] = set()
        found = []
        for members in self.group_of.values():
            if id(members) not in seen:
                seen.add(id(members))
                found.append(sorted(members))
        return sorted(found)


def _explain_groups(
    table: FeatureTable, rules: Rules, groups: list[list[int]]
) -> list[DuplicateGroup]:
    pairs = [(a, b) for members in groups for a, b in itertools.combinations(members, 2)]
    if not pairs:
        return []
    ia = np.array([a for a, _ in pairs], dtype=np.int64)
    ib = np.array([b for _, b in pairs], dtype=np.int64)
    matches: dict[tuple[int, int], Match] = {}
    for start in range(0, len(pairs), _CHUNK):
        scores = compare_pairs(table, ia[start : start + _CHUNK], ib[start : start + _CHUNK], rules)
        for row in range(scores.ia.size):
            key = (int(scores.ia[row]), int(scores.ib[row]))
            matches[key] = explain_pair(table, scores, row, rules)
    result = []
    for members in groups:
        explained = sorted(
            (matches[pair] for pair in itertools.combinations(members, 2)),
            key=lambda m: -m.weight,
        )
        result.append(
            DuplicateGroup(
                ids=tuple(table.ids[row] for row in members),
                rows=tuple(members),
                matches=tuple(explained),
                probability=min(m.probability for m in explained),
            )
        )
    return result


@attrs.frozen
class ClusterRun:
    """A clustering with its working numbers (for benchmarks and diagnostics)."""

    groups: list[DuplicateGroup]
    blocking: BlockingStats
    scored_pairs: int
    proposed_pairs: int


def cluster_run(
    records: Iterable[Any],
    rules: Rules | None = None,
    threshold: float | None = None,
    *,
    default_region: str = "US",
) -> ClusterRun:
    """:func:`cluster`, also returning blocking and scoring statistics."""
    iterator, rules = _resolve(records, rules)
    rules = with_threshold(rules, threshold)
    table, index = build_table(iterator, rules, default_region=default_region)
    return cluster_table(table, index, rules)


def cluster_table(table: FeatureTable, index: BlockIndex, rules: Rules) -> ClusterRun:
    """Score, link and explain the records of a built table (see :func:`cluster`)."""
    ia, ib = index.candidate_pairs()
    stats = index.stats
    del index
    count = len(table)
    known: dict[int, float] = {}
    edge_a: list[np.ndarray[Any, Any]] = []
    edge_b: list[np.ndarray[Any, Any]] = []
    edge_w: list[np.ndarray[Any, Any]] = []
    for start in range(0, ia.size, _CHUNK):
        scores = compare_pairs(table, ia[start : start + _CHUNK], ib[start : start + _CHUNK], rules)
        linked = np.flatnonzero(scores.probability >= rules.link_threshold)
        codes = scores.ia[linked] * count + scores.ib[linked]
        known.update(zip(codes.tolist(), scores.probability[linked].tolist(), strict=True))
        edges = np.flatnonzero(scores.probability >= rules.threshold)
        edge_a.append(scores.ia[edges])
        edge_b.append(scores.ib[edges])
        edge_w.append(scores.weight[edges])
    scored = int(ia.size)
    del ia, ib

    linker = _Linker(table, rules, known)
    if edge_a:
        a, b, w = np.concatenate(edge_a), np.concatenate(edge_b), np.concatenate(edge_w)
        for row in np.lexsort((b, a, -w)).tolist():
            linker.offer(int(a[row]), int(b[row]))
        proposed = int(a.size)
    else:
        proposed = 0
    groups = _explain_groups(table, rules, linker.groups())
    return ClusterRun(groups, stats, scored, proposed)


def cluster(
    records: Iterable[Any],
    rules: Rules | None = None,
    threshold: float | None = None,
    *,
    default_region: str = "US",
) -> list[DuplicateGroup]:
    """Find groups of duplicate records, each with its explanation.

    ``records`` is any iterable of mappings (CSV rows, dicts with ``first_name``,
    ``last_name``, ``emails``, ``phones``, ``company``, ``city``, ``postal_code``,
    ``country``, ...), :class:`~crmkit.Contact` or :class:`~crmkit.Account` entities; it is
    read once. ``rules`` default to :meth:`Rules.contacts` (or :meth:`Rules.accounts` when
    the first record is an Account); ``threshold`` overrides ``rules.threshold``.
    National phone numbers are read in the record's country, else ``default_region``.
    Values that cannot be read are ignored.

    Returns the groups of two or more records, ordered by their first row. Raises
    ValidationError for a threshold outside (0, 1) and TypeError for a record that is
    not a mapping, Contact or Account.

    >>> groups = cluster([
    ...     {"id": 1, "first_name": "Ada", "last_name": "Lovelace", "emails": ["ada@x.org"]},
    ...     {"id": 2, "first_name": "ada", "last_name": "Lovelace", "emails": ["ADA@x.org"]},
    ...     {"id": 3, "first_name": "Charles", "last_name": "Babbage"},
    ... ])
    >>> len(groups), groups[0].ids
    (1, (1, 2))
    """
    return cluster_run(records, rules, threshold, default_region=default_region).groups


def score_pair(a: Any, b: Any, rules: Rules | None = None, *, default_region: str = "US") -> Match:
    """Compare two records and explain the result, exactly as :func:`cluster` would.

    Raises TypeError for a record that is not a mapping, Contact or Account.

    >>> match = score_pair({"first_name": "Ada", "last_name": "Lovelace"},
    ...                    {"first_name": "Lovelace", "last_name": "Ada"})
    >>> next(f.swapped_with for f in match.fields if f.field == "first_name")
    'last_name'
    """
    rules = rules or default_rules(a)
    table, _ = build_table((a, b), rules, default_region=default_region, blocks=False)
    one, two = np.array([0], dtype=np.int64), np.array([1], dtype=np.int64)
    return explain_pair(table, compare_pairs(table, one, two, rules), 0, rules)


def candidates(
    record: Any,
    others: Iterable[Any],
    rules: Rules | None = None,
    threshold: float | None = None,
    *,
    default_region: str = "US",
) -> list[Match]:
    """Score one (new) record against others and return the likely duplicates.

    ``others`` are typically the records a backend found by :func:`blocking_keys`. Each
    :class:`Match` has ``a`` = the record's id and ``b`` = the other's; matches at or
    above ``threshold`` (default ``rules.threshold``) are returned, most likely first.
    Raises as :func:`cluster` does.
    """
    rules = with_threshold(rules or default_rules(record), threshold)
    table, _ = build_table(
        itertools.chain((record,), others), rules, default_region=default_region, blocks=False
    )
    if len(table) < 2:
        return []
    ib = np.arange(1, len(table), dtype=np.int64)
    matches: list[Match] = []
    for start in range(0, ib.size, _CHUNK):
        part = ib[start : start + _CHUNK]
        scores = compare_pairs(table, np.zeros(part.size, dtype=np.int64), part, rules)
        for row in np.flatnonzero(scores.probability >= rules.threshold).tolist():
            matches.append(explain_pair(table, scores, row, rules))
    return sorted(matches, key=lambda m: -m.weight)
