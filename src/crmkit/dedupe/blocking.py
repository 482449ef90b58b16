"""Blocking: which records are worth comparing at all.

Comparing every pair of a million records is half a trillion comparisons; blocking
compares only records that share a *blocking key*. Each key family catches a different
kind of duplicate:

- ``email``: ``email:<email match key>`` for every address (aliases folded).
- ``phone``: ``phone:<E.164>`` for every number.
- ``name``: ``name:<metaphone of last name>:<first initial>`` and the same with first and
  last name exchanged, so a typo in either name, an abbreviated first name or swapped
  names still share a key.
- ``postal_code``: ``zip:<country>:<postcode>:<initial>`` for each name initial.
- ``domain``: ``domain:<domain>`` (accounts) or ``domain:<domain>:<metaphone of last
  name>`` (contacts).
- ``company``: ``company:<metaphone of the first two significant words>``; for contacts
  with the last name's metaphone added.

:func:`blocking_keys` gives a record's keys as strings, so a backend can store them in an
indexed column and find the candidates of a new record with one query.
:class:`BlockIndex` does the same in memory for a batch: keys become 64-bit hashes,
records are grouped with one numpy sort, small blocks yield all their pairs and a block
larger than ``Rules.max_block_size`` (``info@``, a switchboard number, a very common
name) is walked as a *sorted neighbourhood*: each member is compared with its
``Rules.window`` neighbours in name order. The work is therefore at most about
``keys x window`` pairs: near-linear in the number of records.
"""

from __future__ import annotations

import functools
from array import array
from typing import Any, Final

import attrs
import jellyfish
import numpy as np
import numpy.typing as npt

from crmkit.dedupe.records import COMPANY_NOISE, Prepared, prepare
from crmkit.dedupe.rules import Rules, default_rules

__all__ = ["BlockIndex", "BlockingStats", "blocking_keys", "record_keys"]

IntArray = npt.NDArray[np.int64]

_PHONETIC_LENGTH: Final = 5


@functools.lru_cache(maxsize=65_536)
def _phonetic(key: str) -> str:
    """A short phonetic code of a name match key (the key itself outside Latin script)."""
    squeezed = key.replace(" ", "")
    if not squeezed.isascii():
        return squeezed[:8]
    # jellyfish's metaphone: a well-kept Rust implementation of the classic algorithm.
    code = jellyfish.metaphone(squeezed)[:_PHONETIC_LENGTH]
    return code or squeezed[:8]


def _company_code(company: str) -> str:
    words = [w for w in company.split() if w not in COMPANY_NOISE] or company.split()
    return "".join(_phonetic(w)[:3] for w in words[:2])


def record_keys(prepared: Prepared, rules: Rules) -> set[str]:
    """The blocking keys of an already prepared record under ``rules``."""
    keys: set[str] = set()
    first = prepared.first("first_name")
    last = prepared.first("last_name")
    for family in rules.blocking:
        if family == "email":
            keys.update(f"email:{e}" for e in prepared.get("email"))
        elif family == "phone":
            keys.update(f"phone:{p}" for p in prepared.get("phone"))
        elif family == "name":
            if first and last:
                keys.add(f"name:{_phonetic(last)}:{first[0]}")
                keys.add(f"name:{_phonetic(first)}:{last[0]}")
        elif family == "postal_code":
            initials = {name[0] for name in (first, last) if name}
            if rules.kind == "account":
                initials = {c[0] for c in prepared.get("company")}
            country = prepared.first("country")
            for code in prepared.get("postal_code"):
                keys.update(f"zip:{country}:{code}:{initial}" for initial in initials)
        elif family == "domain":
            for domain in prepared.get("domain"):
                if rules.kind == "account":
                    keys.add(f"domain:{domain}")
                elif last:
                    keys.add(f"domain:{domain}:{_phonetic(last)}")
        elif family == "company":
            for company in prepared.get("company"):
                code = _company_code(company)
                if rules.kind == "account":
                    keys.add(f"company:{code}")
                elif last:
                    keys.add(f"company:{code}:{_phonetic(last)}")
    return keys


def blocking_keys(
    record: Any, rules: Rules | None = None, *, default_region: str = "US"
) -> set[str]:
    """Return the blocking keys of one record (a mapping, Contact or Account).

    Two records are candidate duplicates when they share a key. A backend stores these
    strings in an indexed multi-valued column and finds the candidates of a new record
    with ``keys && :keys`` (or ``$in``); the batch :func:`crmkit.dedupe.cluster` uses the
    very same keys. Unreadable values give no key. Raises TypeError for a record of
    another type.

    >>> sorted(blocking_keys({"first_name": "Ada", "last_name": "Lovelace",
    ...                       "emails": ["Ada@Example.com"]}))
    ['email:ada@example.com', 'name:AT:l', 'name:LFLS:a']
    """
    rules = rules or default_rules(record)
    fields = [rule.field for rule in rules.fields]
    prepared = prepare(record, kind=rules.kind, fields=fields, default_region=default_region)
    return record_keys(prepared, rules)


@attrs.frozen
class BlockingStats:
    """What blocking did: keys, blocks shared by two or more records, oversized blocks
    walked by sorted neighbourhood, and distinct candidate pairs produced."""

    keys: int
    blocks: int
    oversized_blocks: int
    pairs: int


class BlockIndex:
    """Blocking keys of a batch of records, grouped into candidate pairs with numpy."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self._hashes = array("q")
        self._rows = array("q")
        self._sort_keys: list[str] = []
        self.stats = BlockingStats(0, 0, 0, 0)

    def add(self, row: int, prepared: Prepared) -> None:
        """Record the keys of the prepared record stored at ``row``."""
        for key in record_keys(prepared, self.rules):
            # hash() of str is 64-bit; a collision only merges two blocks (more pairs to
            # score), never loses a pair, and the scores do not depend on it.
            self._hashes.append(hash(key))
            self._rows.append(row)
        self._sort_keys.append(
            f"{prepared.first('last_name')} {prepared.first('first_name')} "
            f"{prepared.first('company')} {prepared.first('email')}"
        )

    def candidate_pairs(self) -> tuple[IntArray, IntArray]:
        """Distinct pairs ``(ia, ib)`` with ``ia < ib`` that share a key, in row order."""
        count = len(self._sort_keys)
        hashes = np.frombuffer(self._hashes, dtype=np.int64)
        rows = np.frombuffer(self._rows, dtype=np.int64)
        empty = np.zeros(0, dtype=np.int64)
        if hashes.size == 0:
            return empty, empty.copy()
        order = sorted(range(count), key=self._sort_keys.__getitem__)
        rank = np.empty(count, dtype=np.int64)
        rank[np.array(order, dtype=np.int64)] = np.arange(count, dtype=np.int64)
        del order
        sort = np.lexsort((rank[rows], hashes))
        hashes = hashes[sort]
        rows = rows[sort]
        del sort
        starts = np.concatenate(([0], np.flatnonzero(hashes[1:] != hashes[:-1]) + 1))
        sizes = np.diff(np.concatenate((starts, [hashes.size])))
        del hashes

        firsts: list[IntArray] = []
        seconds: list[IntArray] = []
        cap, window = self.rules.max_block_size, self.rules.window
        for size in np.unique(sizes[(sizes >= 2) & (sizes <= cap)]).tolist():
            members = rows[starts[sizes == size][:, None] + np.arange(size)]
            upper_a, upper_b = np.triu_indices(size, 1)
            firsts.append(members[:, upper_a].ravel())
            seconds.append(members[:, upper_b].ravel())
            del members

        big = sizes > cap
        if big.any():
            # Sorted neighbourhood: entries of an oversized block sit together in name
            # order; pair each with the next `window` entries of the same block.
            big_starts, big_sizes = starts[big], sizes[big]
            positions = np.concatenate(
                [
                    np.arange(s, s + n, dtype=np.int64)
                    for s, n in zip(big_starts, big_sizes, strict=True)
                ]
            )
            ends = np.repeat(big_starts + big_sizes, big_sizes)
            for step in range(1, window + 1):
                valid = positions + step < ends
                firsts.append(rows[positions[valid]])
                seconds.append(rows[positions[valid] + step])

        if not firsts:
            self.stats = BlockingStats(len(self._hashes), 0, 0, 0)
            return empty, empty.copy()
        a = np.concatenate(firsts)
        b = np.concatenate(seconds)
        del firsts, seconds
        low = np.minimum(a, b)
        high = np.maximum(a, b)
        del a, b
        distinct = low != high
        codes = low[distinct] * count + high[distinct]
        del low, high, distinct
        # A sort and a neighbour comparison: cheaper than np.unique on tens of millions.
        codes.sort()
        codes = codes[np.concatenate(([True], codes[1:] != codes[:-1]))]
        self.stats = BlockingStats(
            keys=len(self._hashes),
            blocks=int((sizes >= 2).sum()),
            oversized_blocks=int(big.sum()),
            pairs=int(codes.size),
        )
        return codes // count, codes % count
