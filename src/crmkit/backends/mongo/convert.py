"""Entity <-> BSON document conversion, one cattrs converter for every entity type.

Storage forms (chosen so that MongoDB's comparisons and sort order agree with Python's):

- ``id`` is the document's ``_id``; every other attribute keeps its name;
- ``datetime``: a BSON date (UTC, milliseconds, which is all crmkit ever stores);
- ``date``: a BSON date at midnight UTC, so dates compare and sort as dates;
- ``Decimal``: ``Decimal128`` (exact, numeric for anyone aggregating the collection), plus an
  order-preserving text key under ``_dec`` that queries and sorts use (see
  :func:`decimal_key`);
- ``timedelta``: whole milliseconds as an integer;
- tuples: arrays; ``FrozenDict``: embedded documents; ``StrEnum``: the plain string;
- ``Money``, ``Address``, ``Stage``: embedded documents;
- free-form JSON documents (``Segment.rule``): JSON text, because their keys are arbitrary
  strings (``$``-prefixed or dotted keys are not safe field names in every MongoDB version);
- ``_lc`` holds ``str.lower()`` of each text value whose lower-cased form differs, so
  ``icontains`` folds case exactly as Python (and the memory backend) does, for all of
  Unicode;
- ``_geo`` holds, for each value object with coordinates (``address``), the float
  coordinates, their unit vector (``within_km``'s exact test) and a GeoJSON point (the
  ``2dsphere`` index); see :func:`geo_shadow`.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, DecimalException
from typing import Any, TypeVar

import attrs
import cattrs
from bson.decimal128 import Decimal128
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.bson import make_converter

from crmkit import geo
from crmkit.entities import Entity
from crmkit.entities.schema import queryable_fields
from crmkit.errors import BackendError, ValidationError

__all__ = [
    "DECIMAL",
    "GEO",
    "LOWER",
    "SHADOW_FIELDS",
    "DocumentConverter",
    "bson_date",
    "bson_duration",
    "decimal_key",
    "geo_fields",
    "geo_shadow",
    "geo_shadow_of_document",
    "stale_geo_filter",
    "to_decimal128",
]

E = TypeVar("E", bound=Entity)

#: Shadow sub-document holding lower-cased text (``icontains``).
LOWER = "_lc"
#: Shadow sub-document holding order-preserving decimal keys (comparisons, sorting).
DECIMAL = "_dec"
#: Shadow sub-document of value objects with coordinates (``address``): float ``lat``/``lon``,
#: the unit vector ``x``/``y``/``z`` of :mod:`crmkit.geo` and a GeoJSON ``point``
#: (``within_km``; see :func:`geo_shadow`).
GEO = "_geo"
#: Fields of a stored document that are not entity attributes.
SHADOW_FIELDS = (LOWER, DECIMAL, GEO)

_MIDNIGHT = dt.time(0, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def bson_date(value: dt.date) -> dt.datetime:
    """A calendar date as the BSON date at its midnight UTC."""
    return dt.datetime.combine(value, _MIDNIGHT)


def bson_duration(value: dt.timedelta) -> int:
    """A duration as whole milliseconds (crmkit stores durations at that precision)."""
    return round(value / _MS)


def to_decimal128(value: Decimal, where: str = "decimal") -> Decimal128:
    """``value`` as ``Decimal128``; raises ``ValidationError`` when it does not fit exactly
    (more than 34 significant digits, or an exponent beyond Decimal128's range)."""
    try:
        return Decimal128(value)
    except (DecimalException, ValueError, TypeError):
        raise ValidationError(
            where, value, "cannot be stored exactly in MongoDB (Decimal128: 34 digits)"
        ) from None


# Decimal128 values cannot be compared or sorted by mongomock at all, and one code path must
# serve mongomock and real servers alike, so decimal fields are compared through this text
# key (binary string order == numeric order). No library provides an order-preserving decimal
# encoding, hence these few lines.
_EXP_OFFSET = 100_000
_EXP_LIMIT = 99_999


def decimal_key(value: Decimal) -> str:
    """An ASCII string whose byte order is the numeric order of finite decimals.

    Equal numbers give equal keys (``Decimal("1.50")`` and ``Decimal("1.5")``). Layout: a
    sign class (``0`` negative, ``1`` zero, ``2`` positive), the decimal exponent of the
    leading digit as six digits, then the significant digits; for negative numbers exponent
    and digits are complemented and ``~`` ends the digits, so larger magnitudes sort first.
    """
    if not value.is_finite():
        raise ValidationError("decimal", value, "must be a finite number")
    if value.is_zero():
        return "1"
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).lstrip("0")
    stripped = text.rstrip("0")
    # value == 0.<stripped> * 10**adjusted
    adjusted = exponent + len(text)
    # query values may be beyond anything storable: clamping keeps their order against
    # every stored value (Decimal128 exponents are within +-6200)
    adjusted = max(-_EXP_LIMIT, min(_EXP_LIMIT, adjusted))
    if not sign:
        return f"2{adjusted + _EXP_OFFSET:06d}{stripped}"
    complement = stripped.translate(_COMPLEMENT)
    return f"0{999_999 - (adjusted + _EXP_OFFSET):06d}{complement}~"


_COMPLEMENT = str.maketrans("0123456789", "9876543210")


def _to_utc(value: Any, _: Any = None) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a BSON date, got {type(value).__name__}")
    if value.tzinfo is None:  # pymongo without tz_aware, and mongomock, return naive UTC
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _structure_date(value: Any, _: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return _to_utc(value).date()
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    raise TypeError(f"expected a BSON date, got {type(value).__name__}")


def _structure_decimal(value: Any, _: Any) -> Decimal:
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    raise TypeError(f"expected Decimal128, got {type(value).__name__}")


def _structure_duration(value: Any, _: Any) -> dt.timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected milliseconds, got {type(value).__name__}")
    return dt.timedelta(milliseconds=value)


def _enum_value(value: enum.Enum) -> Any:
    return value.value


def _json_text(value: Any) -> str:
    return json.dumps(_thaw(value), ensure_ascii=False, separators=(",", ":"))


def _from_json_text(value: Any, _: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value)
    return value  # written by hand as a document: the field's converter freezes it


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


def _make_cattrs_converter() -> cattrs.Converter:
    conv = make_converter()
    conv.register_unstructure_hook(dt.datetime, lambda v: v)
    conv.register_structure_hook(dt.datetime, _to_utc)
    conv.register_unstructure_hook(dt.date, bson_date)
    conv.register_structure_hook(dt.date, _structure_date)
    conv.register_unstructure_hook(Decimal, to_decimal128)
    conv.register_structure_hook(Decimal, _structure_decimal)
    conv.register_unstructure_hook(dt.timedelta, bson_duration)
    conv.register_structure_hook(dt.timedelta, _structure_duration)
    # StrEnum before Enum: single dispatch would otherwise find ``str`` (identity) first
    conv.register_unstructure_hook(enum.StrEnum, _enum_value)
    conv.register_unstructure_hook(enum.Enum, _enum_value)
    return conv


# --- shadow fields ------------------------------------------------------------------------

Getter = Callable[[Any], Any]


def _path_getter(column: str, key: str | None) -> Getter:
    if key is None:
        return lambda e: getattr(e, column)

    def nested(e: Any) -> Any:
        obj = getattr(e, column)
        if obj is None:
            return None
        if isinstance(obj, Mapping):
            return obj.get(key)
        return getattr(obj, key)

    return nested


def geo_fields(entity: type[Any]) -> tuple[str, ...]:
    """The value-object fields of ``entity`` with coordinates (``address``), which get a
    :data:`GEO` shadow."""
    fields = queryable_fields(entity)
    return tuple(
        info.path
        for info in fields.values()
        if info.kind == "object"
        and f"{info.path}.latitude" in fields
        and f"{info.path}.longitude" in fields
    )


def geo_shadow(latitude: float | Decimal, longitude: float | Decimal) -> dict[str, Any]:
    """The :data:`GEO` shadow of one point: ``lat``/``lon`` as floats (the bounding box),
    the unit vector ``x``/``y``/``z`` (the exact test of :mod:`crmkit.geo`) and ``point``,
    a GeoJSON point (longitude first) for the ``2dsphere`` index."""
    lat, lon = float(latitude), float(longitude)
    x, y, z = geo.unit_vector(lat, lon)
    point = {"type": "Point", "coordinates": [lon, lat]}
    return {"lat": lat, "lon": lon, "x": x, "y": y, "z": z, "point": point}


def stale_geo_filter(entity: type[Any]) -> dict[str, Any] | None:
    """The documents of ``entity`` with coordinates but no current :data:`GEO` shadow
    (stored by a crmkit without it, or with an older one lacking ``point``); None when
    the entity has no value object with coordinates."""
    fields = geo_fields(entity)
    if not fields:
        return None
    return {
        "$or": [
            {f"{name}.latitude": {"$ne": None}, f"{GEO}.{name}.point": {"$exists": False}}
            for name in fields
        ]
    }


def geo_shadow_of_document(entity: type[Any], document: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`GEO` shadow a stored document of ``entity`` should have (empty when it has
    no coordinates), computed from its stored coordinates exactly as :meth:`to_document`
    does; coordinates that are not valid numbers in range get no shadow."""
    places: dict[str, Any] = {}
    for name in geo_fields(entity):
        place = document.get(name)
        if not isinstance(place, Mapping):
            continue
        try:
            lat = _structure_decimal(place.get("latitude"), None)
            lon = _structure_decimal(place.get("longitude"), None)
        except (TypeError, ArithmeticError, ValueError):
            continue
        if lat.is_finite() and lon.is_finite() and abs(lat) <= 90 and abs(lon) <= 180:
            places[name] = geo_shadow(lat, lon)
    return places


@attrs.frozen
class _ShadowPlan:
    """Which paths of one entity type get a lower-cased or a decimal-key shadow."""

    text: tuple[tuple[str, str | None, Getter], ...]
    mappings: tuple[str, ...]
    decimals: tuple[tuple[str, str | None, Getter], ...]
    places: tuple[str, ...] = ()

    @classmethod
    def of(cls, entity: type[Any]) -> _ShadowPlan:
        text = []
        decimals = []
        for info in queryable_fields(entity).values():
            entry = (info.column, info.key, _path_getter(info.column, info.key))
            if info.kind in ("text", "text_list"):
                text.append(entry)
            elif info.kind == "decimal":
                decimals.append(entry)
        mappings = tuple(
            a.name
            for a in attrs.fields(entity)
            if a.metadata.get("kind") in ("mapping", "text_mapping")
        )
        return cls(tuple(text), mappings, tuple(decimals), geo_fields(entity))


def _lowered(value: Any) -> Any:
    """The shadow of one value, or None when lower-casing changes nothing."""
    if isinstance(value, str):
        low = value.lower()
        return low if low != value else None
    if isinstance(value, tuple | list):
        texts = [v for v in value if isinstance(v, str)]
        lows = [v.lower() for v in texts]
        return lows if lows != texts else None
    return None


def _put(target: dict[str, Any], column: str, key: str | None, value: Any) -> None:
    if key is None:
        target[column] = value
    else:
        target.setdefault(column, {})[key] = value


# --- the converter --------------------------------------------------------------------------


class DocumentConverter:
    """Turns any crmkit entity into a BSON-ready document and back.

    ``to_document`` raises ``ValidationError`` for a value MongoDB cannot store exactly (a
    decimal with more than 34 digits); ``from_document`` raises ``BackendError`` for a
    stored document that is not a valid entity (edited outside crmkit).
    """

    def __init__(self) -> None:
        self._conv = _make_cattrs_converter()
        self._dump: dict[type[Any], Callable[[Any], dict[str, Any]]] = {}
        self._load: dict[type[Any], Callable[[Mapping[str, Any], Any], Any]] = {}
        self._shadows: dict[type[Any], _ShadowPlan] = {}

    def _prepare(self, entity: type[Any]) -> None:
        overrides: dict[str, Any] = {"id": override(rename="_id")}
        load_overrides: dict[str, Any] = {"id": override(rename="_id")}
        for a in attrs.fields(entity):
            if a.metadata.get("kind") == "json":
                overrides[a.name] = override(unstruct_hook=_json_text)
                load_overrides[a.name] = override(struct_hook=_from_json_text)
        self._dump[entity] = make_dict_unstructure_fn(entity, self._conv, **overrides)
        self._load[entity] = make_dict_structure_fn(
            entity,
            self._conv,
            _cattrs_detailed_validation=False,
            **load_overrides,
        )
        self._shadows[entity] = _ShadowPlan.of(entity)

    def to_document(self, entity: Entity) -> dict[str, Any]:
        """The document stored for ``entity``, shadow fields included."""
        cls = type(entity)
        dump = self._dump.get(cls)
        if dump is None:
            self._prepare(cls)
            dump = self._dump[cls]
        try:
            doc = dump(entity)
        except ValidationError as exc:
            raise exc.prefixed(cls.__name__.lower()) from None
        plan = self._shadows[cls]
        lower: dict[str, Any] = {}
        for column, key, get in plan.text:
            low = _lowered(get(entity))
            if low is not None:
                _put(lower, column, key, low)
        for column in plan.mappings:
            for key, value in getattr(entity, column).items():
                low = _lowered(value)
                if low is not None:
                    _put(lower, column, key, low)
        if lower:
            doc[LOWER] = lower
        decimals: dict[str, Any] = {}
        for column, key, get in plan.decimals:
            value = get(entity)
            if value is not None:
                _put(decimals, column, key, decimal_key(value))
        if decimals:
            doc[DECIMAL] = decimals
        places: dict[str, Any] = {}
        for column in plan.places:
            place = getattr(entity, column)
            if place is not None and place.latitude is not None:
                places[column] = geo_shadow(place.latitude, place.longitude)
        if places:
            doc[GEO] = places
        return doc

    def from_document(self, entity: type[E], document: Mapping[str, Any]) -> E:
        """The entity stored as ``document`` (shadow fields are ignored)."""
        load = self._load.get(entity)
        if load is None:
            self._prepare(entity)
            load = self._load[entity]
        try:
            result: E = load(document, entity)
        except (ValidationError, TypeError, ValueError, KeyError, ArithmeticError) as exc:
            raise BackendError(
                f"stored {entity.collection} document {document.get('_id')!r} is not a valid "
                f"{entity.__name__}: {exc}"
            ) from exc
        return result

    def from_documents(self, entity: type[E], documents: Iterable[Mapping[str, Any]]) -> list[E]:
        """Every document of ``documents`` as an entity, in order."""
        return [self.from_document(entity, d) for d in documents]
