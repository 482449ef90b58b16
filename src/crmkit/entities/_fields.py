"""Field declarations shared by every entity: converters that validate at the boundary.

Each factory returns an ``attrs.field`` whose converter turns acceptable input into the
stored form (tuples for lists, :class:`FrozenDict` for mappings, UTC datetimes truncated to
milliseconds, ``StrEnum`` members) and raises :class:`crmkit.ValidationError` naming the
entity, the field, the value and the reason for anything else.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import attrs

from crmkit.errors import ValidationError

__all__ = ["FrozenDict"]

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")

#: Scalars a custom field may hold (lists of them become tuples). Typed custom fields
#: (dates, decimals) are stored in these plain forms so every backend can query them alike.
JSON_SCALARS = (str, int, float, bool)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class FrozenDict(Mapping[str, Any]):
    """An immutable, hashable mapping used for ``custom`` and ``external_ids``.

    The standard library has no immutable mapping (``MappingProxyType`` wraps a mutable
    dict and is not hashable), and entities must never share mutable state with storage.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data) if data else {}
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        """Return a plain (mutable) ``dict`` copy, recursively thawing nested values."""
        return {k: thaw(v) for k, v in self._data.items()}


#: The one empty mapping every record's unset ``custom``/``external_ids`` shares: it is
#: immutable, and one object per record would be one more for the garbage collector to
#: track (a bulk write holds a batch of records at once).
EMPTY: FrozenDict = FrozenDict()


def same(a: Any, b: Any) -> bool:
    """``a == b`` as storage sees it: a boolean never equals a number, at any depth of a
    mapping or a list (``True == 1`` in Python, not in a JSON document nor in a query)."""
    return a is b or (a == b and _no_bool_mix(a, b))


def _no_bool_mix(a: Any, b: Any) -> bool:
    """For values already equal: whether they also agree on which ones are booleans."""
    if type(a) is str:
        return True
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b)
    if isinstance(a, dict | FrozenDict) and isinstance(b, Mapping):
        return all(_no_bool_mix(v, b[k]) for k, v in a.items())
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return all(_no_bool_mix(x, y) for x, y in zip(a, b, strict=True))
    return True


def same_record(a: Any, b: Any) -> bool:
    """Two records of one type are equal as storage sees them (see :func:`same`): only
    free-form mappings can hold a boolean where the other holds a number."""
    if a != b:
        return False
    return all(
        _no_bool_mix(getattr(a, f.name), getattr(b, f.name))
        for f in attrs.fields(type(a))
        if f.metadata.get("kind") in ("mapping", "json")
    )


def thaw(value: Any) -> Any:
    """Turn frozen containers back into plain ``dict`` / ``list`` (for serialization)."""
    if isinstance(value, FrozenDict):
        return value.to_dict()
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def _where(instance: Any, field: attrs.Attribute[Any]) -> str:
    return f"{type(instance).__name__.lower()}.{field.name}"


def _fail(instance: Any, field: attrs.Attribute[Any], value: Any, reason: str) -> ValidationError:
    return ValidationError(_where(instance, field), value, reason)


def _converter(
    fn: Callable[[Any, str], Any], *, optional: bool = False, empty: type | None = None
) -> attrs.Converter[Any, Any]:
    """Wrap ``fn(value, where)`` as an attrs converter that knows its entity and field.

    attrs runs a converter on every field of every record built, defaults included, and
    most fields of a record are left at their default. ``optional`` (``None`` is a valid
    value) and ``empty`` (an empty value of exactly this type, the factory's, is valid)
    return those values without calling ``fn``: they are valid by construction, and this
    is the hot path of bulk writes and imports.
    """

    # the error location ("contact.emails") is the same for every instance of a class:
    # built once per class instead of on every conversion (a hot path of bulk writes)
    wheres: dict[type, str] = {}

    def convert(value: Any, instance: Any, field: attrs.Attribute[Any]) -> Any:
        if value is None:
            if optional:
                return None
        elif empty is not None and type(value) is empty and not value:
            return value
        where = wheres.get(type(instance))
        if where is None:
            where = wheres[type(instance)] = _where(instance, field)
        return fn(value, where)

    return attrs.Converter(convert, takes_self=True, takes_field=True)


# --- scalar conversions, each ``(value, where) -> stored value`` ---------------------------


def to_text(value: Any, where: str, *, required: bool = False, max_length: int = 10_000) -> Any:
    if value is None:
        if required:
            raise ValidationError(where, value, "is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(where, value, "must be text")
    if value == "" or value.isspace():
        if required:
            raise ValidationError(where, value, "is required and must not be blank")
        return None
    if len(value) > max_length:
        raise ValidationError(where, value, f"is longer than {max_length} characters")
    check_storable(value, where)
    return value


def check_storable(value: str, where: str) -> None:
    """Reject text no backend can store: NUL characters and lone surrogates (not UTF-8)."""
    if "\x00" in value:
        raise ValidationError(where, value, "must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(
                where, value, "is not valid Unicode text (it holds a lone surrogate)"
            ) from None


def to_text_tuple(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if type(value) not in (list, tuple) and (
        isinstance(value, str | bytes) or not _iterable(value)
    ):
        raise ValidationError(where, value, "must be a list of text values")
    out: list[str] = []
    for i, item in enumerate(value):
        try:  # the item's location is spelled out only for an error (a hot path)
            text = to_text(item, where, required=True)
        except ValidationError as exc:
            raise _at(exc, where, f"{where}[{i}]") from None
        if text not in out:  # lists of emails, phones, tags never hold duplicates
            out.append(text)
    return tuple(out)


def _at(exc: ValidationError, where: str, place: str) -> ValidationError:
    """``exc`` raised for ``where`` (or inside it), re-rooted at ``place``."""
    return ValidationError(place + exc.field[len(where) :], exc.value, exc.reason)


def to_id(value: Any, where: str, *, required: bool = False) -> Any:
    text = to_text(value, where, required=required, max_length=200)
    if text is not None and text != text.strip():
        raise ValidationError(where, value, "is not a valid id (surrounding whitespace)")
    return text


def to_id_tuple(value: Any, where: str) -> tuple[str, ...]:
    items = to_text_tuple(value, where)
    for i, item in enumerate(items):
        to_id(item, f"{where}[{i}]")
    return items


def to_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(where, value, "must be true or false")
    return value


def to_int(value: Any, where: str, *, minimum: int | None = None, required: bool = False) -> Any:
    if value is None:
        if required:
            raise ValidationError(where, value, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(where, value, "must be a whole number")
    if minimum is not None and value < minimum:
        raise ValidationError(where, value, f"must be at least {minimum}")
    check_int64(value, where)
    return value


def check_int64(value: int, where: str) -> None:
    """Reject a whole number beyond 64 bits: BSON and SQL integers are 64-bit, so it could
    neither be stored nor compared with stored numbers everywhere."""
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValidationError(where, value, "is too large (64-bit whole numbers only)")


def to_decimal(
    value: Any,
    where: str,
    *,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
    required: bool = False,
) -> Any:
    if value is None:
        if required:
            raise ValidationError(where, value, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValidationError(where, value, "must be a decimal number")
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ValidationError(where, value, "must be a decimal number") from None
    if not number.is_finite():
        raise ValidationError(where, value, "must be a finite number")
    if minimum is not None and number < minimum:
        raise ValidationError(where, value, f"must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise ValidationError(where, value, f"must be at most {maximum}")
    return number


def to_datetime(value: Any, where: str, *, required: bool = False) -> Any:
    """Aware datetimes (or ISO strings with an offset) -> UTC, truncated to milliseconds.

    Millisecond precision is what every backend can store (BSON dates are milliseconds), so
    a value reads back exactly as it was written on every backend.
    """
    if value is None:
        if required:
            raise ValidationError(where, value, "is required")
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(where, value, "is not an ISO 8601 date and time") from None
    if not isinstance(value, dt.datetime):
        raise ValidationError(where, value, "must be a timezone-aware datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            where, value, "must be timezone-aware (naive datetimes are ambiguous)"
        )
    try:
        value = value.astimezone(dt.UTC)
    except OverflowError:  # its UTC time falls before year 1 or after 9999
        raise ValidationError(where, value, "is out of range in UTC") from None
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def to_date(value: Any, where: str, *, required: bool = False) -> Any:
    if value is None:
        if required:
            raise ValidationError(where, value, "is required")
        return None
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError(where, value, "is not an ISO 8601 date (YYYY-MM-DD)") from None
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise ValidationError(where, value, "must be a date")
    return value


def to_timedelta(value: Any, where: str) -> Any:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValidationError(where, value, "must be a finite duration")
        try:
            value = dt.timedelta(seconds=value)
        except OverflowError:
            raise ValidationError(where, value, "is too long a duration") from None
    if not isinstance(value, dt.timedelta):
        raise ValidationError(where, value, "must be a duration (timedelta or seconds)")
    if value < dt.timedelta(0):
        raise ValidationError(where, value, "must not be negative")
    # whole milliseconds, like datetimes, so every backend stores it exactly
    return dt.timedelta(milliseconds=round(value / dt.timedelta(milliseconds=1)))


def to_enum(enum_type: type[E], value: Any, where: str, *, required: bool = False) -> Any:
    if value is None:
        if required:
            raise ValidationError(where, value, "is required")
        return None
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in enum_type)
        raise ValidationError(where, value, f"is not one of: {choices}") from None


def to_plain(value: Any, where: str) -> Any:
    """A JSON-like value (scalar, list, mapping), frozen; anything else is rejected."""
    if value is None or isinstance(value, JSON_SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(where, value, "must be a finite number")
        if isinstance(value, int) and not isinstance(value, bool):
            check_int64(value, where)
        if isinstance(value, str):
            check_storable(value, where)
        return value
    if isinstance(value, list | tuple):
        items = tuple(to_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
        if any(v is None or isinstance(v, tuple) for v in items):
            raise ValidationError(where, value, "lists may only hold text, numbers or booleans")
        return items
    # the values a typed custom field accepts (crmkit.customfields), in the forms it stores
    # them in: a date, an aware datetime (ISO text in UTC, milliseconds), a decimal (a
    # whole number, else a float: what a decimal field stores)
    if isinstance(value, dt.datetime):
        when = to_datetime(value, where)
        return when.isoformat(timespec="milliseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValidationError(where, value, "must be a finite number")
        whole = (
            value.adjusted() < 19
            and value == value.to_integral_value()
            and -(2**63) <= value < 2**63
        )
        return to_plain(int(value) if whole else float(value), where)
    raise ValidationError(
        where, value, "must be text, a number, a boolean, a date, a datetime or a list of those"
    )


def to_json(value: Any, where: str) -> Any:
    """Any JSON document (nested mappings and lists), deeply frozen; keys are text."""
    if value is None or isinstance(value, JSON_SCALARS):
        return to_plain(value, where)
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise ValidationError(where, key, "is not a text key")
            check_storable(key, f"{where} key")
        return FrozenDict({k: to_json(v, f"{where}.{k}") for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(to_json(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise ValidationError(where, value, f"has a value of unsupported type {type(value).__name__}")


_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def check_key(key: Any, where: str) -> str:
    """Keys of free-form mappings become query paths and storage keys: keep them plain."""
    if key in _GOOD_KEYS:  # records repeat the same few keys ("tier", "shop")
        return key  # type: ignore[no-any-return]
    if not isinstance(key, str) or not key or not set(key) <= _KEY_CHARS or len(key) > 64:
        raise ValidationError(
            where, key, "is not a valid key (letters, digits, '_' and '-', at most 64)"
        )
    if len(_GOOD_KEYS) < 4096:
        _GOOD_KEYS.add(key)
    return key


_GOOD_KEYS: set[str] = set()


def to_mapping(value: Any, where: str) -> FrozenDict:
    if value is None:
        return EMPTY
    if isinstance(value, FrozenDict):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(where, value, "must be a mapping of names to values")
    out: dict[str, Any] = {}
    for k, v in value.items():
        key = check_key(k, f"{where} key") if k not in _GOOD_KEYS else k
        try:  # the value's location is spelled out only for an error (a hot path)
            out[key] = to_plain(v, where)
        except ValidationError as exc:
            raise _at(exc, where, f"{where}.{k}") from None
    return FrozenDict(out) if out else EMPTY


def to_text_mapping(value: Any, where: str) -> FrozenDict:
    data = to_mapping(value, where)
    for key, item in data.items():
        to_id(item, f"{where}.{key}", required=True)
    return data


def _within(exc: ValidationError, where: str) -> ValidationError:
    """Re-root a value object's error (``money.currency``) at its field.

    ``money.currency`` raised inside ``Deal.amount`` becomes ``deal.amount.currency``.
    """
    _, _, rest = exc.field.partition(".")
    return ValidationError(f"{where}.{rest}" if rest else where, exc.value, exc.reason)


def _iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return not isinstance(value, Mapping)


# --- attrs field factories -----------------------------------------------------------------

#: The sensitivity tags a field may carry: personal data, and its special categories.
SENSITIVITIES = ("personal", "sensitive")


def _tagged(meta: dict[str, Any], sensitivity: str | None) -> dict[str, Any]:
    """Add the ``sensitivity`` tag (checked) to a field's metadata."""
    if sensitivity is not None:
        if sensitivity not in SENSITIVITIES:
            raise ValueError(f"sensitivity must be one of {SENSITIVITIES}, not {sensitivity!r}")
        meta["sensitivity"] = sensitivity
    return meta


def sensitivity_of(field: attrs.Attribute[Any]) -> str | None:
    """The sensitivity tag of an entity field: ``"personal"``, ``"sensitive"`` or ``None``."""
    tag: str | None = field.metadata.get("sensitivity")
    return tag


def converted(fn: Callable[[Any, str], Any], *, kind: str) -> Any:
    """A required field converted by ``fn(value, where)``, queried as ``kind``."""
    return attrs.field(converter=_converter(fn), metadata={"kind": kind})


def text(
    *, required: bool = False, max_length: int = 10_000, sensitivity: str | None = None
) -> Any:
    """An optional (or required) text field; blank text is stored as ``None``.

    ``sensitivity`` (``"personal"``, ``"sensitive"``) tags fields that hold personal data
    (see :func:`sensitivity_of`)."""
    conv = _converter(
        lambda v, w: to_text(v, w, required=required, max_length=max_length), optional=not required
    )
    meta = _tagged({"kind": "text", "max_length": max_length}, sensitivity)
    if required:
        return attrs.field(converter=conv, metadata=meta)
    return attrs.field(default=None, converter=conv, metadata=meta)


def ref(*, required: bool = False, default: str | None = None) -> Any:
    """The id of another record (or another short identifier such as a stage key)."""
    conv = _converter(lambda v, w: to_id(v, w, required=required), optional=not required)
    meta = {"kind": "text", "ref": True}
    if default is not None:
        return attrs.field(default=default, converter=conv, metadata=meta)
    if required:
        return attrs.field(converter=conv, metadata=meta)
    return attrs.field(default=None, converter=conv, metadata=meta)


def text_list(*, sensitivity: str | None = None, filterable: bool = True) -> Any:
    """A list of distinct text values, stored as a tuple (first is primary).

    ``filterable=False`` keeps the list with its record only: it cannot be used in filters,
    and backends keep no per-element index of it (SQL: no child table), which makes writes
    of records with long lists (an audit entry's changed fields) cheaper.
    """
    meta: dict[str, Any] = {"kind": "text_list"}
    if not filterable:
        meta["filterable"] = False
    return attrs.field(
        factory=tuple,
        converter=_converter(to_text_tuple, empty=tuple),
        metadata=_tagged(meta, sensitivity),
    )


def ref_list() -> Any:
    """A list of distinct record ids, stored as a tuple."""
    return attrs.field(
        factory=tuple,
        converter=_converter(to_id_tuple, empty=tuple),
        metadata={"kind": "text_list", "ref": True},
    )


def flag(default: bool = False) -> Any:
    """A boolean field."""
    return attrs.field(
        default=default, converter=_converter(to_bool, empty=bool), metadata={"kind": "bool"}
    )


def integer(*, minimum: int | None = None, default: int | None = None) -> Any:
    """A whole number; optional unless it has a default."""
    required = default is not None
    return attrs.field(
        default=default,
        converter=_converter(
            lambda v, w: to_int(v, w, minimum=minimum, required=required), optional=not required
        ),
        metadata={"kind": "int"},
    )


def decimal(
    *, minimum: Decimal | None = None, maximum: Decimal | None = None, required: bool = False
) -> Any:
    """An optional decimal number."""
    conv = _converter(
        lambda v, w: to_decimal(v, w, minimum=minimum, maximum=maximum, required=required),
        optional=not required,
    )
    meta = {"kind": "decimal"}
    if required:
        return attrs.field(converter=conv, metadata=meta)
    return attrs.field(default=None, converter=conv, metadata=meta)


def timestamp(*, required: bool = False) -> Any:
    """A timezone-aware datetime, stored in UTC with millisecond precision."""
    conv = _converter(lambda v, w: to_datetime(v, w, required=required), optional=not required)
    meta = {"kind": "datetime"}
    if required:
        return attrs.field(converter=conv, metadata=meta)
    return attrs.field(default=None, converter=conv, metadata=meta)


def day(*, sensitivity: str | None = None) -> Any:
    """An optional calendar date."""
    return attrs.field(
        default=None,
        converter=_converter(to_date, optional=True),
        metadata=_tagged({"kind": "date"}, sensitivity),
    )


def duration() -> Any:
    """An optional non-negative duration (``timedelta``; numbers are seconds)."""
    return attrs.field(
        default=None,
        converter=_converter(to_timedelta, optional=True),
        metadata={"kind": "duration"},
    )


def choice(enum_type: type[E], *, default: Any = None, required: bool = False) -> Any:
    """A value from ``enum_type`` (a ``StrEnum``: the plain string is accepted too)."""
    conv = _converter(
        lambda v, w: to_enum(enum_type, v, w, required=required), optional=not required
    )
    meta = {"kind": "text", "choices": enum_type}
    if required and default is None:
        return attrs.field(converter=conv, metadata=meta)
    return attrs.field(default=default, converter=conv, metadata=meta)


def mapping(*, sensitivity: str | None = None) -> Any:
    """A free-form mapping of names to JSON-like values (``custom``)."""
    return attrs.field(
        default=EMPTY,
        converter=_converter(to_mapping, empty=FrozenDict),
        metadata=_tagged({"kind": "mapping"}, sensitivity),
    )


def json_document(*, sensitivity: str | None = None) -> Any:
    """A nested JSON document (a stored query rule); not queryable."""
    return attrs.field(
        default=EMPTY,
        converter=_converter(to_json, empty=FrozenDict),
        metadata=_tagged({"kind": "json"}, sensitivity),
    )


def text_mapping(*, sensitivity: str | None = None) -> Any:
    """A mapping of names to text values (``external_ids``: source -> id)."""
    return attrs.field(
        default=EMPTY,
        converter=_converter(to_text_mapping, empty=FrozenDict),
        metadata=_tagged({"kind": "text_mapping"}, sensitivity),
    )


def value_object(
    cls: type[T], *, factory: Callable[[], T] | None = None, sensitivity: str | None = None
) -> Any:
    """An optional embedded value object (``Address``, ``Money``); mappings are accepted."""

    def conv(value: Any, where: str) -> Any:
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            try:
                return cls(**value)
            except TypeError as exc:
                raise ValidationError(
                    where, value, f"has unknown or missing parts ({exc})"
                ) from None
            except ValidationError as exc:
                raise _within(exc, where) from None
        raise ValidationError(where, value, f"must be a {cls.__name__}")

    meta = _tagged({"kind": "object", "type": cls}, sensitivity)
    if factory is not None:
        return attrs.field(
            factory=factory, converter=_converter(conv, optional=True), metadata=meta
        )
    return attrs.field(default=None, converter=_converter(conv, optional=True), metadata=meta)


def value_list(cls: type[T]) -> Any:
    """A list of embedded value objects (``Stage`` in a ``Pipeline``), stored as a tuple."""

    def conv(value: Any, where: str) -> tuple[T, ...]:
        if value is None:
            return ()
        if isinstance(value, str | bytes | Mapping) or not _iterable(value):
            raise ValidationError(where, value, f"must be a list of {cls.__name__}")
        out: list[T] = []
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                try:
                    item = cls(**item)
                except ValidationError as exc:
                    raise _within(exc, f"{where}[{i}]") from None
                except TypeError as exc:
                    raise ValidationError(
                        f"{where}[{i}]", item, f"is not a {cls.__name__} ({exc})"
                    ) from None
            if not isinstance(item, cls):
                raise ValidationError(f"{where}[{i}]", item, f"must be a {cls.__name__}")
            out.append(item)
        return tuple(out)

    return attrs.field(
        factory=tuple,
        converter=_converter(conv, empty=tuple),
        metadata={"kind": "objects", "type": cls},
    )
