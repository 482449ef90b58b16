"""Entities as plain JSON documents, for the snapshots a merge record keeps.

One cattrs converter (the ``json`` preconfiguration: datetimes and dates as ISO text)
with hooks for the few types JSON lacks: ``Decimal`` becomes its exact text, ``timedelta``
its seconds, :class:`~crmkit.entities.FrozenDict` a plain object. Restoring builds the
entity through its own constructor, whose field converters accept exactly these forms, so
a restored record is validated like any other.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import attrs
from cattrs.preconf.json import JsonConverter, make_converter

from crmkit.entities import Entity, FrozenDict
from crmkit.errors import ValidationError

__all__ = [
    "from_document",
    "mask_snapshot",
    "plain",
    "snapshot_ids",
    "to_document",
    "without_paths",
]

E = TypeVar("E", bound=Entity)


@functools.cache
def _converter() -> JsonConverter:
    converter = make_converter()
    converter.register_unstructure_hook(Decimal, str)
    converter.register_unstructure_hook(dt.timedelta, lambda value: value.total_seconds())
    converter.register_unstructure_hook(
        FrozenDict, lambda value: {k: converter.unstructure(v) for k, v in value.items()}
    )
    return converter


def to_document(entity: Entity) -> dict[str, Any]:
    """Every field of ``entity`` (storage fields included) as JSON-ready plain data."""
    return {a.name: plain(getattr(entity, a.name)) for a in attrs.fields(type(entity))}


def plain(value: Any) -> Any:
    """One field value as JSON-ready plain data."""
    if isinstance(value, enum.Enum):
        # A StrEnum is also a str, which cattrs' dispatch passes through before any hook.
        return value.value
    return _converter().unstructure(value)


def from_document(entity: type[E], document: Any) -> E:
    """Rebuild an ``entity`` from :func:`to_document`'s output (storage fields included).

    Raises ``ValidationError`` when the document does not make a valid entity.
    """
    names = {a.name for a in attrs.fields(entity)}
    data = {k: _thaw(v) for k, v in dict(document).items() if k in names}
    try:
        return entity(**data)
    except TypeError as exc:
        raise ValidationError("snapshot", dict(document), f"is not a {entity.__name__}") from exc


def _thaw(value: Any) -> Any:
    """Frozen JSON (FrozenDict, tuples) from a stored document back to dicts and lists."""
    if isinstance(value, FrozenDict | dict):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


def mask_snapshot(
    snapshot: Any,
    collection: str,
    hidden: Callable[[str], frozenset[str]],
    readable: Callable[[str, Mapping[str, Any]], bool],
) -> Any:
    """A merge snapshot (:class:`~crmkit.entities.MergeRecord`) without what a user may not
    see: ``hidden(c)`` names the field paths hidden from them in collection ``c``, and
    ``readable(c, document)`` says whether they may read the record a document is of (a
    whole record: the merged ones and the removed ones; or a re-pointed record's entry,
    with its ``id``). Of a record the user may not read only its id is left.

    The merged records (``survivor``, ``duplicates``) are of ``collection``; a re-pointed
    record's earlier values (``related[].before``) and a record the merge removed
    (``removed[]``) are of the collection each one names.
    """
    if not isinstance(snapshot, Mapping):
        return snapshot

    def record(document: Any, of: str) -> Any:
        if not isinstance(document, Mapping):
            return document
        if not readable(of, document):
            return {k: document[k] for k in ("collection", "id") if k in document}
        return without_paths(document, hidden(of))

    out = dict(snapshot)
    out["survivor"] = record(out.get("survivor"), collection)
    if isinstance(out.get("duplicates"), list | tuple):
        out["duplicates"] = [record(d, collection) for d in out["duplicates"]]
    if isinstance(out.get("related"), list | tuple):
        out["related"] = [_related(r, hidden, readable) for r in out["related"]]
    if isinstance(out.get("removed"), list | tuple):
        out["removed"] = [
            record(r, r["collection"]) if _names_collection(r) else r for r in out["removed"]
        ]
    return out


def _related(
    entry: Any,
    hidden: Callable[[str], frozenset[str]],
    readable: Callable[[str, Mapping[str, Any]], bool],
) -> Any:
    """A re-pointed record's entry with its earlier values masked as its record's."""
    if not _names_collection(entry):
        return entry
    of = entry["collection"]
    if not readable(of, entry):
        return {**entry, "before": {}}
    return {**entry, "before": without_paths(entry.get("before"), hidden(of))}


def snapshot_ids(snapshot: Any, collection: str) -> dict[str, set[str]]:
    """The ids of the records a merge snapshot holds documents of, by collection (the
    merged records are of ``collection``)."""
    found: dict[str, set[str]] = {}
    if not isinstance(snapshot, Mapping):
        return found

    def add(of: str, document: Any) -> None:
        if isinstance(document, Mapping) and isinstance(document.get("id"), str):
            found.setdefault(of, set()).add(document["id"])

    add(collection, snapshot.get("survivor"))
    for part in ("duplicates", "related", "removed"):
        items = snapshot.get(part)
        if isinstance(items, list | tuple):
            for item in items:
                if part == "duplicates":
                    add(collection, item)
                elif _names_collection(item):
                    add(item["collection"], item)
    return found


def _names_collection(item: Any) -> bool:
    return isinstance(item, Mapping) and isinstance(item.get("collection"), str)


def without_paths(doc: Any, hidden: frozenset[str]) -> Any:
    """A document (a record's plain values) without the ``hidden`` field paths: a name
    drops its key, ``column.key`` one key of a mapping or value object."""
    if not isinstance(doc, Mapping):
        return doc
    out = dict(doc)
    for path in hidden:
        column, _, key = path.partition(".")
        if not key:
            out.pop(column, None)
        elif isinstance(out.get(column), Mapping):
            out[column] = {k: v for k, v in out[column].items() if k != key}
    return out
