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
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

import attrs
from cattrs.preconf.json import JsonConverter, make_converter

from crmkit.entities import Entity, FrozenDict
from crmkit.errors import ValidationError

__all__ = ["from_document", "mask_snapshot", "plain", "to_document", "without_paths"]

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


def mask_snapshot(snapshot: Any, hidden: frozenset[str]) -> Any:
    """A merge snapshot (:class:`~crmkit.entities.MergeRecord`) with the ``hidden`` field
    paths left out of the merged records' documents (``survivor``, ``duplicates``)."""
    if not isinstance(snapshot, Mapping):
        return snapshot
    out = dict(snapshot)
    if isinstance(out.get("survivor"), Mapping):
        out["survivor"] = without_paths(out["survivor"], hidden)
    if isinstance(out.get("duplicates"), list | tuple):
        out["duplicates"] = [without_paths(d, hidden) for d in out["duplicates"]]
    return out


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
