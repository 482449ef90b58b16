"""Custom field definitions: the declared name, type and rules of a key of ``custom``."""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity
from crmkit.errors import ValidationError

__all__ = ["FieldDefinition", "FieldType"]


class FieldType(enum.StrEnum):
    """The type of a custom field's values."""

    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    ENUM = "enum"
    MULTI_ENUM = "multi_enum"


@attrs.frozen(kw_only=True)
class FieldDefinition(Entity):
    """A declared custom field of one collection (``crm.schema.define_field``).

    ``record_collection`` is the collection whose ``custom`` mapping holds the values
    (``"contacts"``), ``name`` the key. ``options`` holds ``choices`` (enum and multi-enum
    fields) and ``default`` (in stored form); read them as :attr:`choices` and
    :attr:`default`. ``sensitivity`` is ``None``, ``"personal"`` or ``"sensitive"``.
    """

    collection: ClassVar[str] = "field_definitions"
    lookups: ClassVar[tuple[str, ...]] = ("record_collection",)

    record_collection: str = f.ref(required=True)
    name: str = f.ref(required=True)
    type: FieldType = f.choice(FieldType, required=True)
    required: bool = f.flag()
    indexed: bool = f.flag()
    label: str | None = f.text(max_length=200)
    sensitivity: str | None = f.text(max_length=20)
    options: Any = f.mapping()

    def __attrs_post_init__(self) -> None:
        if self.sensitivity is not None and self.sensitivity not in f.SENSITIVITIES:
            raise ValidationError(
                "field_definition.sensitivity",
                self.sensitivity,
                f"must be one of {', '.join(f.SENSITIVITIES)} or None",
            )

    @property
    def choices(self) -> tuple[str, ...]:
        """The allowed values of an enum or multi-enum field (empty for other types)."""
        return tuple(self.options.get("choices", ()))

    @property
    def default(self) -> Any:
        """The value a new record gets when it does not set the field (``None``: none)."""
        return self.options.get("default")
