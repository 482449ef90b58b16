"""What can be queried on each entity: field paths and their kinds.

Derived once per entity type from the attrs field declarations, so the query validator,
every backend and the reference evaluator agree on what ``F.address.city`` or
``F.custom.tier`` means.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

import attrs

from crmkit.errors import ValidationError

__all__ = ["FieldInfo", "Kind", "field_info", "indexed_fields", "queryable_fields"]

#: ``any`` is a custom field (``custom.tier``): its values may be text, numbers, booleans,
#: dates, datetimes or lists of those, and are compared only with values of the same kind.
Kind = Literal[
    "text", "bool", "int", "decimal", "datetime", "date", "duration", "text_list", "any", "object"
]


@attrs.frozen
class FieldInfo:
    """A queryable path of an entity type.

    ``column`` is the top-level attribute holding it and ``key`` the part below it
    (``address.city`` -> ``("address", "city")``; ``custom.tier`` -> ``("custom", "tier")``).
    """

    path: str
    kind: Kind
    column: str
    key: str | None = None
    choices: type[enum.Enum] | None = None

    @property
    def is_list(self) -> bool:
        """True for list fields (``emails``), whose operators act on elements."""
        return self.kind == "text_list"


_QUERYABLE: dict[type[Any], dict[str, FieldInfo]] = {}
_MAPPINGS: dict[type[Any], dict[str, str]] = {}
_INDEXED: dict[type[Any], tuple[str, ...]] = {}


def queryable_fields(entity: type[Any]) -> dict[str, FieldInfo]:
    """Every fixed queryable path of ``entity`` (custom and external-id keys are open-ended)."""
    cached = _QUERYABLE.get(entity)
    if cached is not None:
        return cached
    out: dict[str, FieldInfo] = {}
    for a in attrs.fields(entity):
        kind = a.metadata.get("kind")
        if kind in ("object",):
            out[a.name] = FieldInfo(a.name, "object", a.name)
            for sub in attrs.fields(a.metadata["type"]):
                path = f"{a.name}.{sub.name}"
                out[path] = FieldInfo(
                    path, sub.metadata["kind"], a.name, sub.name, sub.metadata.get("choices")
                )
        elif (
            kind in ("mapping", "text_mapping", "objects", "json")
            or kind is None
            or a.metadata.get("filterable", True) is False
        ):
            continue
        else:
            out[a.name] = FieldInfo(a.name, kind, a.name, None, a.metadata.get("choices"))
    _QUERYABLE[entity] = out
    return out


def _mapping_columns(entity: type[Any]) -> dict[str, str]:
    cached = _MAPPINGS.get(entity)
    if cached is None:
        cached = _MAPPINGS[entity] = {
            a.name: a.metadata["kind"]
            for a in attrs.fields(entity)
            if a.metadata.get("kind") in ("mapping", "text_mapping")
        }
    return cached


def field_info(entity: type[Any], path: str) -> FieldInfo:
    """Resolve ``path`` on ``entity``; raises :class:`crmkit.ValidationError` if unknown."""
    info = queryable_fields(entity).get(path)
    if info is not None:
        return info
    column, _, key = path.partition(".")
    mapping_kind = _mapping_columns(entity).get(column)
    if mapping_kind is not None and key and "." not in key:
        from crmkit.entities._fields import check_key

        check_key(key, f"{entity.collection}.{column} key")
        return FieldInfo(path, "text" if mapping_kind == "text_mapping" else "any", column, key)
    raise ValidationError(
        "field", path, f"is not a queryable field of {getattr(entity, 'collection', entity)}"
    )


def indexed_fields(entity: type[Any]) -> tuple[str, ...]:
    """Fields every backend indexes for fast lookups: references to other records (``*_id``,
    ``*_ids``) and the entity's ``lookups`` (emails, phones, domain ...), id excluded."""
    cached = _INDEXED.get(entity)
    if cached is not None:
        return cached
    names = [a.name for a in attrs.fields(entity) if a.metadata.get("ref") and a.name != "id"]
    names += [n for n in getattr(entity, "lookups", ()) if n not in names]
    _INDEXED[entity] = tuple(names)
    return _INDEXED[entity]
