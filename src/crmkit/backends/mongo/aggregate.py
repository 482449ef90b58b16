"""``Store.aggregate`` on MongoDB: one ``$match`` + ``$group`` aggregation pipeline.

Groups become the fields of the ``$group`` ``_id`` (a date truncated with
``$dateToString``; for a week, after going back ``(dayOfWeek + 5) mod 7`` days to the
Monday, with date arithmetic every server flavour - mongomock too - knows, where
``$dateTrunc`` needs MongoDB 5; a list field is ``$unwind``-ed first, keeping records
with an empty list as the ``None`` group), metrics become accumulators: ``count`` is
``$sum`` of 1 (of a ``$cond`` on the value being set, for a path), ``sum`` is ``$sum``
(``Decimal128`` arithmetic for decimals: exact), ``min``/``max`` are ``$min``/``$max`` - of the
order-preserving decimal key (``_dec``) for decimal fields, decoded back to the exact
stored number, since ``Decimal128`` values are not ordered by every server flavour
(mongomock). Values are converted back to crmkit's types (aware UTC datetimes, dates,
``Decimal``, ``timedelta``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bson.decimal128 import Decimal128

from crmkit.aggregation import EXACT, custom_value
from crmkit.backends.mongo.convert import DECIMAL
from crmkit.entities.schema import field_info
from crmkit.errors import ValidationError
from crmkit.query import Expr

if TYPE_CHECKING:
    from crmkit.aggregation import Group, Metric

__all__ = ["aggregation_pipeline", "decode_decimal_key", "read_rows"]

_FORMATS = {"day": "%Y-%m-%d", "week": "%Y-%m-%d", "month": "%Y-%m-01", "year": "%Y-01-01"}
_DAY_MS = 86_400_000
_TEXT_TRUNC = {"day": (10, ""), "month": (7, "-01"), "year": (4, "-01-01")}
_COMPLEMENT = str.maketrans("0123456789", "9876543210")
_EXP_OFFSET = 100_000


def decode_decimal_key(key: str) -> Decimal:
    """The number behind a :func:`crmkit.backends.mongo.convert.decimal_key` (its inverse).

    Written here because the key is crmkit's own encoding; no library decodes it.
    """
    if key == "1":
        return Decimal(0)
    if key[0] == "2":
        adjusted = int(key[1:7]) - _EXP_OFFSET
        digits = key[7:]
        sign = ""
    else:
        adjusted = 999_999 - int(key[1:7]) - _EXP_OFFSET
        digits = key[7:-1].translate(_COMPLEMENT)
        sign = "-"
    return Decimal(f"{sign}0.{digits}").scaleb(adjusted, context=EXACT)  # not rounded


def _field(path: str) -> str:
    return "_id" if path == "id" else path


def aggregation_pipeline(
    entity: type[Any],
    match: dict[str, Any],
    group_by: Sequence[Group],
    metrics: Sequence[Metric],
) -> list[dict[str, Any]]:
    """The pipeline computing ``group_by``/``metrics`` over documents matching ``match``."""
    ids: dict[str, Any] = {}
    unwind: list[dict[str, Any]] = []
    for i, g in enumerate(group_by):
        ref = f"${_field(g.path)}"
        if (g.kind or field_info(entity, g.path).kind) == "text_list":
            unwind.append({"$unwind": {"path": ref, "preserveNullAndEmptyArrays": True}})
        if g.trunc is not None and g.kind is not None and g.trunc != "week":
            # a custom date is ISO text (in UTC): the period's start is a prefix plus a
            # constant
            length, suffix = _TEXT_TRUNC[g.trunc]
            prefix: dict[str, Any] = {"$concat": [{"$substr": [ref, 0, length]}, suffix]}
            missing = {"$eq": [{"$ifNull": [ref, None]}, None]}
            ids[f"g{i}"] = {"$cond": [missing, None, prefix]}
        elif g.trunc is not None:
            # null dates are guarded explicitly: mongomock's $dateToString fails on them
            date: Any = ref
            if g.kind is not None:  # a custom date's ISO text, as a date ($dateFromString
                # is not in mongomock; $dateFromParts of the text's numbers is everywhere)
                parts = {"year": (0, 4), "month": (5, 2), "day": (8, 2)}
                date = {
                    "$dateFromParts": {
                        k: {"$toInt": {"$substr": [ref, start, n]}}
                        for k, (start, n) in parts.items()
                    }
                }
            if g.trunc == "week":  # $dayOfWeek: 1 is Sunday, 2 Monday ... 7 Saturday
                back = {"$mod": [{"$add": [{"$dayOfWeek": date}, 5]}, 7]}
                date = {"$subtract": [date, {"$multiply": [back, _DAY_MS]}]}
            period = {"$dateToString": {"format": _FORMATS[g.trunc], "date": date}}
            missing = {"$eq": [{"$ifNull": [ref, None]}, None]}
            ids[f"g{i}"] = {"$cond": [missing, None, period]}
        else:
            ids[f"g{i}"] = {"$ifNull": [ref, None]}
    group: dict[str, Any] = {"_id": ids}
    for i, m in enumerate(metrics):
        if m.path is None:
            group[f"m{i}"] = {"$sum": 1}
            continue
        ref = f"${_field(m.path)}"
        if m.op == "sum" and m.kind == "decimal":
            # custom decimals are stored as doubles, whose $sum rounds: the values are
            # collected and added exactly as decimals (see read_rows)
            group[f"m{i}"] = {"$push": ref}
            continue
        kind = m.kind or field_info(entity, m.path).kind
        if m.op == "count":
            set_ = {"$ne": [{"$ifNull": [ref, None]}, None]}
            group[f"m{i}"] = {"$sum": {"$cond": [set_, 1, 0]}}
        elif m.op == "sum":
            group[f"m{i}"] = {"$sum": ref}
        elif m.op in ("min", "max"):
            decimal = kind == "decimal" and m.kind is None
            source = f"${DECIMAL}.{m.path}" if decimal else ref
            group[f"m{i}"] = {f"${m.op}": source}
        else:  # pragma: no cover - check_spec never lets another op through
            raise ValidationError("metrics", m.op, "is not supported")
    stages: list[dict[str, Any]] = []
    if match:
        stages.append({"$match": match})
    stages.extend(unwind)
    stages.append({"$group": group})
    return stages


def _value(kind: str, value: Any, *, decimal_key: bool = False) -> Any:
    if value is None:
        return None
    if kind == "decimal":
        if decimal_key:
            return decode_decimal_key(value)
        if isinstance(value, Decimal128):
            return value.to_decimal()
        return Decimal(value)
    if kind == "datetime" and isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    if kind == "date" and isinstance(value, dt.datetime):
        return value.date()
    if kind == "duration":
        return dt.timedelta(milliseconds=value)
    return value


def _custom_metric(m: Metric, value: Any) -> Any:
    assert m.kind is not None
    if m.op == "sum" and m.kind == "decimal":
        numbers = [custom_value("decimal", v) for v in value or () if v is not None]
        return functools.reduce(EXACT.add, numbers, Decimal(0)) if numbers else None
    return custom_value(m.kind, value)


def read_rows(
    entity: type[Any],
    documents: Sequence[dict[str, Any]],
    group_by: Sequence[Group],
    metrics: Sequence[Metric],
) -> list[dict[str, Any]]:
    """Rows in crmkit's types from the ``$group`` output ``documents``."""
    rows: list[dict[str, Any]] = []
    for doc in documents:
        key = doc.get("_id") or {}
        row: dict[str, Any] = {}
        for i, g in enumerate(group_by):
            value = key.get(f"g{i}")
            if g.trunc is not None:
                row[g.name] = None if value is None else dt.date.fromisoformat(value)
            elif g.kind is not None:
                row[g.name] = custom_value(g.kind, value)
            else:
                row[g.name] = _value(field_info(entity, g.path).kind, value)
        for i, m in enumerate(metrics):
            value = doc.get(f"m{i}")
            if m.op == "count" or m.path is None:
                row[m.name] = int(value or 0)
                continue
            if m.kind is not None:
                row[m.name] = _custom_metric(m, value)
                continue
            kind = field_info(entity, m.path).kind
            row[m.name] = _value(kind, value, decimal_key=kind == "decimal" and m.op != "sum")
        rows.append(row)
    return rows


def run(
    store: Any, where: Expr | None, group_by: Sequence[Group], metrics: Sequence[Metric]
) -> Any:
    """Helper for :meth:`MongoStore.aggregate`: the pipeline, ready for ``aggregate``."""
    return aggregation_pipeline(store.entity, store._compiler.compile(where), group_by, metrics)
