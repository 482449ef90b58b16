"""Comparing pairs of records field by field, in bulk, and explaining the result.

Pairs are compared a batch at a time, never one by one in Python: for each field the
value combinations of all pairs are laid out in numpy arrays, identical values are
settled by their vocabulary codes, and only the distinct pairs of *different* values are
sent to :func:`rapidfuzz.process.cpdist` (all cores). A field's level is the best level
any combination of the two records' values reaches (a contact's second email may be
the one that matches). Levels turn into Fellegi-Sunter weights through the
:class:`~crmkit.dedupe.rules.Rules`, which also say which swapped fields to try crossed.

:class:`Match` is the explanation of one pair: per field the compared values, the
similarity, the level and the weight it added.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Final

import attrs
import jellyfish
import numpy as np
import numpy.typing as npt
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
from rapidfuzz import distance, fuzz, process

from crmkit.dedupe.records import FeatureTable, RecordId, vocabulary_of
from crmkit.dedupe.rules import MIN_FREQUENCY_RECORDS, FieldRule, Rules

__all__ = ["FieldScore", "Match", "PairScores", "compare_pairs"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
LevelArray = npt.NDArray[np.int8]

_SCORERS: Final[dict[str, tuple[Callable[..., float], float]]] = {
    # method: (rapidfuzz scorer, divisor that brings its result into [0, 1])
    "jaro_winkler": (distance.JaroWinkler.normalized_similarity, 1.0),
    "levenshtein": (distance.Levenshtein.normalized_similarity, 1.0),
    "email": (distance.Levenshtein.normalized_similarity, 1.0),
    "token_set": (fuzz.token_set_ratio, 100.0),
}


@attrs.frozen
class FieldScore:
    """How one field of a pair compared.

    ``level`` is one of the rule's level names or ``"blank"``; ``similarity`` is None for
    a blank comparison; ``a`` and ``b`` are the (normalized) values that compared best;
    ``weight`` is what the level added to the pair's match weight; ``swapped_with``
    names the other record's field when the crossed comparison was used.
    """

    field: str
    level: str
    similarity: float | None
    weight: float
    a: str | None
    b: str | None
    swapped_with: str | None = None

    def __str__(self) -> str:
        if self.level == "blank":
            return f"{self.field}: blank ({self.weight:+.1f})"
        crossed = f" (vs {self.swapped_with})" if self.swapped_with else ""
        similarity = self.similarity if self.similarity is not None else 0.0
        return (
            f"{self.field}{crossed}: {self.a!r} ~ {self.b!r} {self.level} "
            f"[{similarity:.2f}] ({self.weight:+.1f})"
        )


@attrs.frozen
class Match:
    """A scored pair of records and why it scored so.

    ``probability`` is the chance the two records are one person (or company) under the
    rules; ``weight`` its log2 odds (prior included). ``vetoed_by`` names a required field
    whose values clearly differ (the probability is then 0). ``fields`` explains each
    field; ``matched`` lists the fields that counted for the match.
    """

    a: RecordId
    b: RecordId
    probability: float
    weight: float
    fields: tuple[FieldScore, ...]
    vetoed_by: str | None = None

    @property
    def matched(self) -> tuple[str, ...]:
        """The fields whose comparison added weight, strongest first."""
        scored = sorted((s for s in self.fields if s.weight > 0), key=lambda s: -s.weight)
        return tuple(s.field for s in scored)

    def explain(self) -> str:
        """A few readable lines: the verdict, then one line per field."""
        head = f"{self.a!r} ~ {self.b!r}: p={self.probability:.3f} (weight {self.weight:+.1f})"
        if self.vetoed_by:
            head += f", ruled out: {self.vetoed_by} differs"
        return "\n".join([head, *(f"  {score}" for score in self.fields)])


@attrs.frozen
class PairScores:
    """The comparison of a batch of pairs (row ``k`` is pair ``(ia[k], ib[k])``).

    ``levels[k, f]`` is the level index of field ``f`` (``len(level_names)`` = blank),
    ``similarity`` is NaN where blank, ``best_a`` / ``best_b`` are the vocabulary codes of
    the values that compared best (-1 where blank), ``swapped[k, f]`` marks fields compared
    crossed, ``field_weights[k, f]`` is what field ``f`` added to the pair's weight.
    """

    ia: IntArray
    ib: IntArray
    levels: LevelArray
    similarity: FloatArray
    best_a: IntArray
    best_b: IntArray
    swapped: BoolArray
    field_weights: FloatArray
    weight: FloatArray
    vetoed: IntArray  # index of the vetoing field, or -1
    probability: FloatArray


def _weight_table(rule: FieldRule) -> FloatArray:
    """Weights indexed by level; the last entry is the blank level."""
    return np.array([*rule.weights, rule.blank_weight], dtype=np.float64)


@attrs.frozen
class _FieldResult:
    levels: LevelArray
    similarity: FloatArray
    best_a: IntArray
    best_b: IntArray


def _vocabulary_shape(table: FeatureTable, field: str) -> tuple[IntArray, IntArray]:
    """Per vocabulary code: the value's length and its first character (for initials)."""
    cache: dict[str, tuple[IntArray, IntArray]] = table.__dict__.setdefault("_shape_cache", {})
    strings = table.strings(field)
    name = vocabulary_of(field)
    found = cache.get(name)
    if found is None or len(found[0]) != len(strings):
        lengths = np.fromiter((len(s) for s in strings), dtype=np.int64, count=len(strings))
        firsts = np.fromiter(
            (ord(s[0]) if s else 0 for s in strings), dtype=np.int64, count=len(strings)
        )
        found = cache[name] = (lengths, firsts)
    return found


def _email_parts(table: FeatureTable, field: str) -> tuple[IntArray, IntArray]:
    """Per vocabulary code: an id of the address's domain and of the digits before the @."""
    cache: dict[str, tuple[IntArray, IntArray]] = table.__dict__.setdefault("_email_cache", {})
    strings = table.strings(field)
    found = cache.get(field)
    if found is None or len(found[0]) != len(strings):
        domains: dict[str, int] = {}
        numbers: dict[str, int] = {}
        domain_ids = np.empty(len(strings), dtype=np.int64)
        number_ids = np.empty(len(strings), dtype=np.int64)
        for code, address in enumerate(strings):
            domain, digits = _email_mailbox(address)
            domain_ids[code] = domains.setdefault(domain, len(domains))
            number_ids[code] = numbers.setdefault(digits, len(numbers))
        found = cache[field] = (domain_ids, number_ids)
    return found


def _phonetic_code(value: str) -> str:
    # jellyfish's Metaphone (its Rust implementation); outside Latin script the value
    # itself, which then only "sounds like" itself.
    squeezed = value.replace(" ", "")
    return (jellyfish.metaphone(squeezed) or squeezed) if squeezed.isascii() else squeezed


def _phone_sections(number: str) -> tuple[str, str, str]:
    """(country calling code, middle digits, last four digits) of an E.164 number."""
    digits = number.lstrip("+").partition(";")[0]
    size = next((n for n in (1, 2, 3) if int(digits[:n] or 0) in COUNTRY_CODE_TO_REGION_CODE), 1)
    return digits[:size], digits[size:-4], digits[-4:]


def _derived_keys(table: FeatureTable, field: str, method: str) -> tuple[IntArray, ...]:
    """Per vocabulary code, integer ids of the keys ``method`` compares (cached per table)."""
    cache: dict[tuple[str, str], tuple[IntArray, ...]] = table.__dict__.setdefault(
        "_derived_cache", {}
    )
    strings = table.strings(field)
    found = cache.get((field, method))
    if found is None or len(found[0]) != len(strings):
        parts: list[tuple[str, ...]] = [
            (_phonetic_code(v),) if method == "phonetic" else _phone_sections(v) for v in strings
        ]
        width = len(parts[0]) if parts else 1
        columns: list[IntArray] = []
        for position in range(width):
            ids: dict[str, int] = {}
            columns.append(
                np.fromiter(
                    (ids.setdefault(p[position], len(ids)) for p in parts),
                    dtype=np.int64,
                    count=len(parts),
                )
            )
        found = cache[(field, method)] = tuple(columns)
    return found


def _derived_similarity(
    table: FeatureTable, field: str, method: str, va: IntArray, vb: IntArray
) -> FloatArray:
    """The share of derived keys (one phonetic code, or three phone sections) that agree."""
    columns = _derived_keys(table, field, method)
    agree: FloatArray = np.zeros(va.size, dtype=np.float64)
    for column in columns:
        agree += column[va] == column[vb]
    return agree / len(columns)


def _similarities(
    method: str,
    strings: Sequence[str],
    va: IntArray,
    vb: IntArray,
    cutoff: float,
    ruled_out: BoolArray | None = None,
) -> FloatArray:
    """Similarity in [0, 1] of each value pair (codes into ``strings``).

    Similarities below ``cutoff`` (the rule's lowest level) come back as 0: rapidfuzz then
    stops early, which is most of the speed on pairs of different values. Pairs marked in
    ``ruled_out`` are not scored at all (0).
    """
    same: BoolArray = np.equal(va, vb)
    sim: FloatArray = same.astype(np.float64)
    if method == "exact":
        return sim
    scored = ~same if ruled_out is None else ~same & ~ruled_out
    differ = np.flatnonzero(scored)
    if differ.size == 0:
        return sim
    lo = np.minimum(va[differ], vb[differ])
    hi = np.maximum(va[differ], vb[differ])
    # Every method is symmetric, so each distinct unordered pair is scored once.
    span = int(hi.max()) + 1
    keys, inverse = np.unique(lo * span + hi, return_inverse=True)
    first = [strings[c] for c in (keys // span).tolist()]
    second = [strings[c] for c in (keys % span).tolist()]
    scorer, divisor = _SCORERS[method]
    # Threads pay off only for big batches; a small one is done before they start.
    workers = -1 if len(first) >= 20_000 else 1
    scores = process.cpdist(
        first,
        second,
        scorer=scorer,
        workers=workers,
        dtype=np.float64,
        score_cutoff=max(0.0, cutoff - 1e-9) * divisor,
    )
    sim[differ] = np.asarray(scores, dtype=np.float64)[inverse.ravel()] / divisor
    return sim


def similarity(method: str, a: str, b: str) -> float:
    """The similarity in [0, 1] of two values under a comparison ``method``.

    The same scorers as the bulk comparison, without its cut-off (for explanations).
    """
    if a == b:
        return 1.0
    if method == "exact":
        return 0.0
    if method == "phonetic":
        return 1.0 if _phonetic_code(a) == _phonetic_code(b) else 0.0
    if method == "phone_sections":
        pairs = zip(_phone_sections(a), _phone_sections(b), strict=True)
        return sum(x == y for x, y in pairs) / 3
    scorer, divisor = _SCORERS[method]
    return float(scorer(a, b)) / divisor


def _typos(
    strings: Sequence[str],
    va: IntArray,
    vb: IntArray,
    level: LevelArray,
    different: int,
    lowest: int,
) -> LevelArray:
    """Lift ``different`` value pairs one typo apart to the ``lowest`` similar level.

    Jaro-Winkler is harsh on short words: "Noe"/"Ne" or "Leo"/"Elo" score about 0.6, yet
    are one deletion or one transposition apart (optimal string alignment distance 1).
    """
    rows = np.flatnonzero(level == different)
    if rows.size == 0:
        return level
    lo = np.minimum(va[rows], vb[rows])
    hi = np.maximum(va[rows], vb[rows])
    span = int(hi.max()) + 1
    keys, inverse = np.unique(lo * span + hi, return_inverse=True)
    first = [strings[c] for c in (keys // span).tolist()]
    second = [strings[c] for c in (keys % span).tolist()]
    workers = -1 if len(first) >= 20_000 else 1
    distances = process.cpdist(
        first, second, scorer=distance.OSA.distance, score_cutoff=1, workers=workers
    )
    shortest = np.minimum(
        np.fromiter((len(t) for t in first), dtype=np.int64, count=len(first)),
        np.fromiter((len(t) for t in second), dtype=np.int64, count=len(second)),
    )
    # One edit in a two-letter word is half the word: only longer values count as typos.
    typo = (np.asarray(distances) <= 1) & (shortest >= 2)
    lifted = level.copy()
    lifted[rows[typo[inverse.ravel()]]] = lowest
    return lifted


def _compare_field(
    table: FeatureTable,
    rule: FieldRule,
    field_a: str,
    field_b: str,
    ia: IntArray,
    ib: IntArray,
) -> _FieldResult:
    """Compare ``field_a`` of records ``ia`` with ``field_b`` of records ``ib``."""
    count = ia.size
    blank_level = len(rule.level_names)
    levels = np.full(count, blank_level, dtype=np.int8)
    similarity = np.full(count, np.nan, dtype=np.float64)
    best_a = np.full(count, -1, dtype=np.int64)
    best_b = np.full(count, -1, dtype=np.int64)
    off_a, codes_a = table.arrays(field_a)
    off_b, codes_b = table.arrays(field_b)
    start_a = off_a[ia]
    start_b = off_b[ib]
    count_a = off_a[ia + 1] - start_a
    count_b = off_b[ib + 1] - start_b
    combos = count_a * count_b
    present = np.flatnonzero(combos)
    if present.size == 0:
        return _FieldResult(levels, similarity, best_a, best_b)

    # Most pairs have one value on each side: those are compared directly. Pairs with
    # several values (two emails, three phones) lay out every combination and keep the
    # best one.
    many_mask = combos[present] > 1
    one = present[~many_mask]
    many = present[many_mask]
    va_parts = [codes_a[start_a[one]]]
    vb_parts = [codes_b[start_b[one]]]
    if many.size:
        sizes = combos[many]
        ends = np.cumsum(sizes)
        starts = ends - sizes
        pair = np.repeat(many, sizes)
        local = np.arange(int(ends[-1]), dtype=np.int64) - np.repeat(starts, sizes)
        width = count_b[pair]
        va_parts.append(codes_a[start_a[pair] + local // width])
        vb_parts.append(codes_b[start_b[pair] + local % width])
    va = np.concatenate(va_parts)
    vb = np.concatenate(vb_parts)

    strings = table.strings(field_a)
    ruled_out: BoolArray | None = None
    if rule.method == "email":
        # A typo stays within one mailbox provider, and john.smith1 is not john.smith2.
        domain_ids, number_ids = _email_parts(table, field_a)
        ruled_out = (domain_ids[va] != domain_ids[vb]) | (number_ids[va] != number_ids[vb])
    if rule.method in ("phonetic", "phone_sections"):
        sim = _derived_similarity(table, field_a, rule.method, va, vb)
    else:
        sim = _similarities(rule.method, strings, va, vb, min(rule.levels), ruled_out)
    cutoffs = np.array(rule.levels, dtype=np.float64)
    # Cut-offs decrease, so the number a value misses is the index of the level it reaches.
    level = (sim[:, None] < cutoffs[None, :] - 1e-9).sum(axis=1).astype(np.int8)
    different_level = len(rule.level_names) - 1
    level[level == len(rule.levels)] = different_level
    if rule.initials:
        lengths, first_chars = _vocabulary_shape(table, field_a)
        lone = ((lengths[va] == 1) | (lengths[vb] == 1)) & (va != vb)
        same_letter = first_chars[va] == first_chars[vb]
        initial_level = len(rule.levels)
        level = np.where(lone, np.where(same_letter, initial_level, different_level), level)
        level = level.astype(np.int8)
    if rule.typo and len(rule.levels) > 1:
        level = _typos(strings, va, vb, level, different_level, len(rule.levels) - 1)

    n_one = one.size
    levels[one] = level[:n_one]
    similarity[one] = sim[:n_one]
    best_a[one] = va[:n_one]
    best_b[one] = vb[:n_one]
    if many.size:
        # Best combination per pair: lowest level, then highest similarity.
        rest_level, rest_sim = level[n_one:], sim[n_one:]
        order = np.lexsort((-rest_sim, rest_level, pair))
        first_of_pair = order[np.concatenate(([0], ends[:-1]))]
        levels[many] = rest_level[first_of_pair]
        similarity[many] = rest_sim[first_of_pair]
        best_a[many] = va[n_one:][first_of_pair]
        best_b[many] = vb[n_one:][first_of_pair]
    return _FieldResult(levels, similarity, best_a, best_b)


def compare_pairs(table: FeatureTable, ia: IntArray, ib: IntArray, rules: Rules) -> PairScores:
    """Compare the pairs ``(ia[k], ib[k])`` of ``table`` under ``rules``, in bulk."""
    ia = np.asarray(ia, dtype=np.int64)
    ib = np.asarray(ib, dtype=np.int64)
    count = ia.size
    names = [rule.field for rule in rules.fields]
    results = {
        rule.field: _compare_field(table, rule, rule.field, rule.field, ia, ib)
        for rule in rules.fields
    }
    tables = {rule.field: _weight_table(rule) for rule in rules.fields}
    swapped = np.zeros((count, len(names)), dtype=np.bool_)
    for first, second in rules.swap:
        rule = rules.rule(first)
        crossed_1 = _compare_field(table, rule, first, second, ia, ib)
        crossed_2 = _compare_field(table, rules.rule(second), second, first, ia, ib)
        direct = tables[first][results[first].levels] + tables[second][results[second].levels]
        cross = tables[first][crossed_1.levels] + tables[second][crossed_2.levels]
        use = cross > direct
        if use.any():
            for field, crossed in ((first, crossed_1), (second, crossed_2)):
                kept = results[field]
                results[field] = _FieldResult(
                    np.where(use, crossed.levels, kept.levels).astype(np.int8),
                    np.where(use, crossed.similarity, kept.similarity),
                    np.where(use, crossed.best_a, kept.best_a),
                    np.where(use, crossed.best_b, kept.best_b),
                )
                swapped[:, names.index(field)] = use

    levels = np.stack([results[n].levels for n in names], axis=1)
    field_weights = np.empty((count, len(names)), dtype=np.float64)
    vetoed = np.full(count, -1, dtype=np.int64)
    for index, rule in enumerate(rules.fields):
        field_weights[:, index] = tables[rule.field][levels[:, index]]
        if rule.frequency and len(table) >= MIN_FREQUENCY_RECORDS:
            exact = np.flatnonzero(levels[:, index] == 0)
            if exact.size:
                share, average = table.frequencies(rule.field)
                codes = results[rule.field].best_a[exact]
                floor = 1.0 / len(table)
                shift = np.log2(average / np.maximum(share[codes], floor))
                field_weights[exact, index] += np.clip(shift, -5.0, 0.0)
        if rule.required:
            different = levels[:, index] == len(rule.level_names) - 1
            vetoed = np.where(different & (vetoed < 0), index, vetoed)
    weight = field_weights.sum(axis=1) + rules.prior_weight
    probability = 1.0 / (1.0 + np.exp2(-np.clip(weight, -60.0, 60.0)))
    probability[vetoed >= 0] = 0.0
    return PairScores(
        ia=ia,
        ib=ib,
        levels=levels,
        similarity=np.stack([results[n].similarity for n in names], axis=1),
        best_a=np.stack([results[n].best_a for n in names], axis=1),
        best_b=np.stack([results[n].best_b for n in names], axis=1),
        swapped=swapped,
        field_weights=field_weights,
        weight=weight,
        vetoed=vetoed,
        probability=probability,
    )


def _swap_partner(rules: Rules, field: str) -> str | None:
    for first, second in rules.swap:
        if field == first:
            return second
        if field == second:
            return first
    return None


def _email_mailbox(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return domain, "".join(ch for ch in local if ch.isdigit())


def _shown_similarity(rule: FieldRule, a: str, b: str) -> float:
    """The similarity an explanation shows: the real one, even below the lowest level."""
    if rule.method == "email" and a != b and _email_mailbox(a) != _email_mailbox(b):
        return 0.0
    return similarity(rule.method, a, b)


@functools.lru_cache(maxsize=256)
def _level_names(rule: FieldRule) -> tuple[str, ...]:
    return rule.level_names


def explain_pair(table: FeatureTable, scores: PairScores, row: int, rules: Rules) -> Match:
    """Build the :class:`Match` of row ``row`` of ``scores``."""
    fields: list[FieldScore] = []
    for index, rule in enumerate(rules.fields):
        level = int(scores.levels[row, index])
        names = _level_names(rule)
        weight = round(float(scores.field_weights[row, index]), 3)
        if level >= len(names):
            fields.append(FieldScore(rule.field, "blank", None, weight, None, None))
            continue
        swapped = bool(scores.swapped[row, index])
        partner = _swap_partner(rules, rule.field) if swapped else None
        strings = table.strings(rule.field)
        code_a, code_b = int(scores.best_a[row, index]), int(scores.best_b[row, index])
        fields.append(
            FieldScore(
                field=rule.field,
                level=names[level],
                similarity=round(_shown_similarity(rule, strings[code_a], strings[code_b]), 4),
                weight=weight,
                a=strings[code_a],
                b=strings[code_b],
                swapped_with=partner,
            )
        )
    veto = int(scores.vetoed[row])
    return Match(
        a=table.ids[int(scores.ia[row])],
        b=table.ids[int(scores.ib[row])],
        probability=float(scores.probability[row]),
        weight=round(float(scores.weight[row]), 3),
        fields=tuple(fields),
        vetoed_by=rules.fields[veto].field if veto >= 0 else None,
    )


def probability_of(weight: float) -> float:
    """The probability for a match weight (log2 odds)."""
    return 1.0 / (1.0 + math.pow(2.0, -max(-60.0, min(60.0, weight))))


def table_for(rules: Rules) -> FeatureTable:
    """An empty feature table with the columns ``rules`` compare."""
    return FeatureTable(rule.field for rule in rules.fields)


def extra_fields(rules: Rules) -> tuple[str, ...]:
    """Fields of ``rules`` that preparation must copy from the records as plain text."""
    return tuple(rule.field for rule in rules.fields)
