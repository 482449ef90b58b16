"""The base every stored entity shares, and the value objects several entities embed."""

from __future__ import annotations

import datetime as dt
import enum
import functools
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import attrs
import pycountry

from crmkit.entities import _fields as f
from crmkit.errors import ValidationError

__all__ = ["Address", "Entity", "Money", "Priority"]

EntityT = TypeVar("EntityT", bound="Entity")


@attrs.frozen(kw_only=True)
class Entity:
    """Base of every stored record.

    ``id``, ``version``, ``created_at`` and ``updated_at`` are storage fields: the repository
    sets them on ``add`` (a time-ordered string id, version 1, UTC timestamps) and on
    ``update`` (version + 1); values a caller passes for them on ``add`` are ignored.
    Entities are immutable: change one with ``attrs.evolve(entity, field=new)``.
    """

    #: Name of the collection (repository attribute on :class:`crmkit.CRM`) of this type.
    collection: ClassVar[str] = ""
    #: Fields looked up often enough that every backend indexes them (references to other
    #: records are indexed anyway).
    lookups: ClassVar[tuple[str, ...]] = ()
    #: Sets of fields whose values no two records of the collection may share (an account
    #: link's contact and account). ``add_many`` checks its items against each other; the
    #: collection's write hook checks each write against the stored records.
    unique_together: ClassVar[tuple[tuple[str, ...], ...]] = ()

    id: str | None = f.ref()
    version: int = f.integer(minimum=0, default=0)
    created_at: dt.datetime | None = f.timestamp()
    updated_at: dt.datetime | None = f.timestamp()


def stamped(
    entity: EntityT, *, id: str, version: int, created_at: dt.datetime, updated_at: dt.datetime
) -> EntityT:
    """Copy ``entity`` with new storage fields, without re-running field converters.

    The entity was validated when it was built; only the four storage fields change and the
    repository produces them already valid. This is the hot path of every write.
    """
    clone = object.__new__(type(entity))
    setter = object.__setattr__
    for name in _slot_names(type(entity)):
        setter(clone, name, getattr(entity, name))
    setter(clone, "id", id)
    setter(clone, "version", version)
    setter(clone, "created_at", created_at)
    setter(clone, "updated_at", updated_at)
    return clone


def stamp_new(
    entity: EntityT, *, id: str, version: int, created_at: dt.datetime, updated_at: dt.datetime
) -> EntityT:
    """Set the storage fields of an entity built a moment ago and held by nobody else, in
    place (what :func:`stamped` does without copying every other field). Returns it."""
    setter = object.__setattr__
    setter(entity, "id", id)
    setter(entity, "version", version)
    setter(entity, "created_at", created_at)
    setter(entity, "updated_at", updated_at)
    return entity


_SLOTS: dict[type[Any], tuple[str, ...]] = {}


def _slot_names(cls: type[Any]) -> tuple[str, ...]:
    names = _SLOTS.get(cls)
    if names is None:
        names = _SLOTS[cls] = tuple(a.name for a in attrs.fields(cls))
    return names


class Priority(enum.StrEnum):
    """Priority of a task or ticket."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


@attrs.frozen(kw_only=True)
class Address:
    """A postal address; ``country`` is an ISO 3166-1 alpha-2 code once normalized.

    ``latitude`` / ``longitude`` are optional and only ever given by the caller (crmkit
    calls no geocoding service).
    """

    street: str | None = f.text()
    city: str | None = f.text()
    region: str | None = f.text()
    postal_code: str | None = f.text(max_length=32)
    country: str | None = f.text(max_length=64)
    latitude: Decimal | None = f.decimal(minimum=Decimal(-90), maximum=Decimal(90))
    longitude: Decimal | None = f.decimal(minimum=Decimal(-180), maximum=Decimal(180))

    def __attrs_post_init__(self) -> None:
        if (self.latitude is None) != (self.longitude is None):
            raise ValidationError(
                "address.latitude", self.latitude, "and longitude must be given together"
            )


def _currency(value: Any, where: str) -> str:
    code = value.strip().upper() if isinstance(value, str) else None
    if code is None or code not in _iso_4217():
        raise ValidationError(where, value, "is not an ISO 4217 currency code")
    return code


@functools.cache
def _iso_4217() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.currencies)


@attrs.frozen(kw_only=True)
class Money:
    """An amount in one currency: ``Money(amount=Decimal("1200.00"), currency="EUR")``.

    ``amount`` accepts ``Decimal``, ``int`` or a numeric string (floats are accepted and
    converted through their shortest repr). ``currency`` must be an active ISO 4217 code.
    """

    amount: Decimal = f.decimal(required=True)
    currency: str = f.converted(_currency, kind="text")

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
