"""Turning input records into the normalized values the engine compares.

A record is a mapping (a CSV row, a dict from another system) or a crmkit
:class:`~crmkit.Contact` / :class:`~crmkit.Account`. :func:`prepare` reads it into a
:class:`Prepared` record: per field, a tuple of match keys (emails through
:func:`~crmkit.normalize.email_match_key`, phones to E.164 through
:func:`~crmkit.normalize.normalize_phone`, names through
:func:`~crmkit.normalize.name_match_key`). A value that cannot be read is skipped, never
raised: deduplication has to work on dirty data, which is where duplicates live.

:class:`FeatureTable` stores many prepared records column by column: each field's values
are interned to integer codes in one vocabulary (first and last names share one, so
swapped names compare), kept in compact ``array`` buffers, so that a million records fit
in a few hundred megabytes and pairs are compared with numpy and rapidfuzz in bulk.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from crmkit import normalize
from crmkit.entities.account import Account
from crmkit.entities.contact import Contact
from crmkit.errors import ValidationError

__all__ = ["COMPANY_NOISE", "FeatureTable", "Prepared", "RecordId", "prepare", "vocabulary_of"]

RecordId = str | int

# At most this many values of one field are kept per record: a contact with 40 phone
# numbers is a data problem, and comparing all combinations would be quadratic.
MAX_VALUES: Final = 5

# Which prepared fields share one vocabulary (and so can be compared with each other).
_SHARED_VOCABULARY: Final = {"first_name": "name", "last_name": "name"}

_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "first_name": ("first_name", "firstname", "given_name", "first"),
    "last_name": ("last_name", "lastname", "surname", "family_name", "last"),
    "email": ("emails", "email", "email_address", "work_email", "personal_email"),
    "phone": ("phones", "phone", "phone_number", "mobile", "telephone", "work_phone"),
    "company": ("company", "company_name", "account", "account_name", "organization"),
    "domain": ("domain", "website", "url", "web"),
    "city": ("city", "town", "locality"),
    "postal_code": ("postal_code", "postcode", "zip", "zip_code", "postalcode"),
    "country": ("country", "country_code"),
}

# Legal forms and filler words that say nothing about which company it is.
COMPANY_NOISE: Final = frozenset(
    [
        "the",
        "and",
        "of",
        "&",
        "inc",
        "incorporated",
        "llc",
        "ltd",
        "limited",
        "plc",
        "corp",
        "corporation",
        "co",
        "company",
        "gmbh",
        "ag",
        "kg",
        "mbh",
        "ug",
        "sa",
        "sas",
        "sarl",
        "srl",
        "spa",
        "sl",
        "bv",
        "nv",
        "oy",
        "ab",
        "as",
        "aps",
        "sp",
        "zoo",
        "group",
        "holding",
        "holdings",
        "international",
    ]
)

# E.164 as crmkit stores it: parsing it again would give it back unchanged.
_E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")


def vocabulary_of(field: str) -> str:
    """The vocabulary a prepared field's values are interned in."""
    return _SHARED_VOCABULARY.get(field, field)


@attrs.frozen
class Prepared:
    """One record, normalized for matching: its id and, per field, its match keys."""

    id: RecordId
    values: Mapping[str, tuple[str, ...]]

    def get(self, field: str) -> tuple[str, ...]:
        """The match keys of ``field`` (empty when the record has none)."""
        return self.values.get(field, ())

    def first(self, field: str) -> str:
        """The first match key of ``field``, or ``""``."""
        values = self.values.get(field, ())
        return values[0] if values else ""


def _as_mapping(record: Any) -> Mapping[str, Any]:
    if isinstance(record, Contact):
        address = record.address
        return {
            "id": record.id,
            "first_name": record.first_name,
            "last_name": record.last_name,
            "emails": record.emails,
            "phones": record.phones,
            "account_id": record.account_id,
            "city": address.city if address else None,
            "postal_code": address.postal_code if address else None,
            "country": address.country if address else None,
        }
    if isinstance(record, Account):
        address = record.address
        return {
            "id": record.id,
            "company": record.name,
            "domain": record.domain or record.website,
            "phones": record.phones,
            "city": address.city if address else None,
            "postal_code": address.postal_code if address else None,
            "country": address.country if address else None,
        }
    if isinstance(record, Mapping):
        return record
    raise TypeError(
        f"a record must be a mapping, a Contact or an Account, not {type(record).__name__}"
    )


def _texts(value: Any) -> list[str]:
    """The non-blank strings of a value that may be one string or a list of them."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value and not value.isspace() else []
    if isinstance(value, tuple | list) and all(type(v) is str for v in value):
        return [v for v in value if v and not v.isspace()]
    items: Iterable[Any]
    if isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
        items = value
    else:
        items = (value,)
    texts = []
    for item in items:
        if item is None or isinstance(item, bool):
            continue
        text = item if isinstance(item, str) else str(item)
        if text.strip():
            texts.append(text)
    return texts


_FIELD_OF_KEY: Final = {key: field for field, keys in _ALIASES.items() for key in keys}


def _gather(record: Mapping[str, Any], extra: Iterable[str]) -> dict[str, list[str]]:
    """The texts of every known field (under any of its names) and of ``extra`` fields.

    One pass over the record's keys: a record has a handful of keys, the aliases are many.
    """
    wanted = set(extra)
    found: dict[str, list[str]] = {}
    for key, value in record.items():
        field = _FIELD_OF_KEY.get(key)
        if field is None:
            if key not in wanted:
                continue
            field = key
        texts = _texts(value)
        if texts:
            found.setdefault(field, []).extend(texts)
    return found


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        if value and value not in out:
            out.append(value)
            if len(out) == MAX_VALUES:
                break
    return tuple(out)


def _name_key(value: str) -> str:
    try:
        return normalize.name_match_key(value)
    except ValidationError:
        return ""


def _company_key(value: str) -> str:
    """The name key of a company without its legal form ("Acme Corp" -> "acme")."""
    key = _name_key(value)
    words = [w for w in key.split() if w not in COMPANY_NOISE]
    return " ".join(words) if words else key


def _email_key(value: str) -> str:
    try:
        return normalize.email_match_key(value)
    except ValidationError:
        return ""


# Separators people put between the digits of an international number.
_PHONE_SEPARATORS: Final = str.maketrans("", "", " -./\u00a0")


def _phone_key(value: str, country: str | None, default_region: str) -> str:
    text = value.strip()
    if _E164.fullmatch(text):
        return text
    if text[:1] == "+" or text[:2] == "00":
        # "+44 20 7946 0958" and "0044-20-7946-0958": an international number whose digits
        # already are its E.164 form. Taking them as they are is ~20x cheaper than a full
        # parse, and a match key needs no more (numbers with a "(0)" still go to the parser).
        compact = text.translate(_PHONE_SEPARATORS)
        if compact[:2] == "00":
            compact = "+" + compact[2:]
        if _E164.fullmatch(compact):
            return compact
    try:
        e164 = normalize.normalize_phone(text, region=country, default_region=default_region)
    except ValidationError:
        return ""
    # The extension reaches a desk behind the same line: the line is what identifies.
    return e164.partition(";")[0]


def _country(value: str) -> str:
    try:
        return normalize.normalize_country(value)
    except ValidationError:
        return ""


def _postal_code(value: str) -> str:
    try:
        code = normalize.normalize_postal_code(value)
    except ValidationError:
        return ""
    # "SW1A 1AA" and "SW1A1AA" are the same code; the compact form compares them.
    return code.replace(" ", "").replace("-", "")


def _domain(value: str) -> str:
    try:
        return normalize.registrable_domain(value)
    except ValidationError:
        return ""


def _email_domain(value: str) -> str:
    try:
        return normalize.account_domain_for_email(value) or ""
    except ValidationError:
        return ""


def prepare(
    record: Any,
    *,
    kind: str = "contact",
    fields: Iterable[str] = (),
    default_region: str = "US",
    index: int = 0,
) -> Prepared:
    """Read one record into its match keys.

    ``kind`` says how a bare ``name`` is read: a person's full name (split into first and
    last name) for ``"contact"``, the company for ``"account"``. ``fields`` names extra
    keys to keep as case-folded text (for custom field rules). National phone numbers are
    read in the record's country, else in ``default_region``. The record's ``id`` is
    used as its id, else ``index``.

    Unreadable values are skipped. Raises TypeError for a record that is not a mapping,
    a Contact or an Account.
    """
    data = _as_mapping(record)
    raw_id = data.get("id")
    record_id: RecordId = raw_id if isinstance(raw_id, str | int) else index
    fields = tuple(fields)
    raw = _gather(data, fields)
    nothing: list[str] = []

    countries = _unique(_country(v) for v in raw.get("country", nothing))
    country = countries[0] if countries else None
    firsts = [_name_key(v) for v in raw.get("first_name", nothing)]
    lasts = [_name_key(v) for v in raw.get("last_name", nothing)]
    company = [_company_key(v) for v in raw.get("company", nothing)]
    names = _texts(data.get("name")) + _texts(data.get("full_name"))
    if kind == "account":
        company += [_company_key(v) for v in names]
    elif names and not (any(firsts) or any(lasts)):
        parts = _name_key(names[0]).split()
        if parts:
            lasts = [parts[-1]]
            firsts = [" ".join(parts[:-1])]

    emails = raw.get("email", nothing)
    domains = _unique(_domain(v) for v in raw.get("domain", nothing))
    if kind == "account" and not domains:
        domains = _unique(_email_domain(v) for v in emails)
    values: dict[str, tuple[str, ...]] = {
        "first_name": _unique(firsts[:1]),
        "last_name": _unique(lasts[:1]),
        "email": _unique(_email_key(v) for v in emails),
        "phone": _unique(_phone_key(v, country, default_region) for v in raw.get("phone", nothing)),
        "company": _unique(company),
        "domain": domains,
        "city": _unique(_name_key(v) for v in raw.get("city", nothing)),
        "postal_code": _unique(_postal_code(v) for v in raw.get("postal_code", nothing)),
        "country": countries,
    }
    for field in fields:
        if field not in values:
            values[field] = _unique(t.strip().casefold() for t in raw.get(field, nothing))
    return Prepared(record_id, {k: v for k, v in values.items() if v})


IntArray = npt.NDArray[np.int64]


class _Column:
    """One field of many records: CSR offsets into a flat buffer of vocabulary codes."""

    __slots__ = ("codes", "offsets", "vocabulary")

    def __init__(self, vocabulary: _Vocabulary) -> None:
        self.offsets = array("q", [0])
        self.codes = array("i")
        self.vocabulary = vocabulary

    def append(self, values: tuple[str, ...]) -> None:
        intern = self.vocabulary.intern
        for value in values:
            self.codes.append(intern(value))
        self.offsets.append(len(self.codes))


class _Vocabulary:
    """Distinct values of one vocabulary, each with an integer code."""

    __slots__ = ("codes", "values")

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.values: list[str] = []

    def intern(self, value: str) -> int:
        code = self.codes.get(value)
        if code is None:
            code = self.codes[value] = len(self.values)
            self.values.append(value)
        return code


class FeatureTable:
    """Prepared records stored column by column, for comparing pairs in bulk."""

    def __init__(self, fields: Iterable[str]) -> None:
        self.ids: list[RecordId] = []
        self.vocabularies: dict[str, _Vocabulary] = {}
        self.columns: dict[str, _Column] = {}
        for field in fields:
            name = vocabulary_of(field)
            vocabulary = self.vocabularies.setdefault(name, _Vocabulary())
            self.columns[field] = _Column(vocabulary)
        self._frozen: dict[str, tuple[IntArray, IntArray]] = {}
        self._frequencies: dict[str, tuple[npt.NDArray[np.float64], float]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, prepared: Prepared) -> int:
        """Append one prepared record; returns its row number."""
        self._frozen.clear()
        self._frequencies.clear()
        for field, column in self.columns.items():
            column.append(prepared.values.get(field, ()))
        self.ids.append(prepared.id)
        return len(self.ids) - 1

    def arrays(self, field: str) -> tuple[IntArray, IntArray]:
        """``(offsets, codes)`` of ``field`` as numpy arrays (offsets has len(self) + 1)."""
        found = self._frozen.get(field)
        if found is None:
            column = self.columns[field]
            found = (
                np.frombuffer(column.offsets, dtype=np.int64).astype(np.int64),
                np.frombuffer(column.codes, dtype=np.int32).astype(np.int64),
            )
            self._frozen[field] = found
        return found

    def frequencies(self, field: str) -> tuple[npt.NDArray[np.float64], float]:
        """Per vocabulary code, the share of records whose ``field`` holds that value; and
        the chance that two random records share a value (the sum of squared shares)."""
        key = f"frequency:{field}"
        found = self._frequencies.get(key)
        size = len(self.strings(field))
        if found is None or found[0].size != size:
            offsets, codes = self.arrays(field)
            holders = max(int(np.count_nonzero(np.diff(offsets))), 1)
            share = np.bincount(codes, minlength=size).astype(np.float64) / holders
            found = self._frequencies[key] = (share, float(np.square(share).sum()))
        return found

    def strings(self, field: str) -> list[str]:
        """The vocabulary of ``field``: code ``c`` stands for ``strings(field)[c]``."""
        return self.columns[field].vocabulary.values

    def values(self, row: int, field: str) -> tuple[str, ...]:
        """The match keys of ``field`` in row ``row``."""
        column = self.columns[field]
        start, end = column.offsets[row], column.offsets[row + 1]
        strings = column.vocabulary.values
        return tuple(strings[c] for c in column.codes[start:end])
