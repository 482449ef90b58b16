"""Business calendars: working hours, holidays and business-time arithmetic.

A :class:`BusinessCalendar` says when a support team works: local wall-clock intervals per
weekday in one IANA time zone, minus holidays. It answers four questions about real
instants (timezone-aware datetimes): is the team working now (:meth:`~BusinessCalendar.is_open`),
when does it next work (:meth:`~BusinessCalendar.next_open`), when will a given amount of
business time have elapsed (:meth:`~BusinessCalendar.add`), and how much business time lies
between two instants (:meth:`~BusinessCalendar.between`).

>>> import datetime as dt
>>> cal = BusinessCalendar.standard("Europe/London", hours="09:00-17:00")
>>> friday_4pm = dt.datetime(2024, 3, 8, 16, 0, tzinfo=dt.UTC)
>>> cal.add(friday_4pm, dt.timedelta(hours=2))  # 1h on Friday, 1h on Monday
datetime.datetime(2024, 3, 11, 10, 0, tzinfo=datetime.timezone.utc)
>>> cal.between(friday_4pm, dt.datetime(2024, 3, 11, 10, 0, tzinfo=dt.UTC))
datetime.timedelta(seconds=7200)

Rules (each chosen so that the arithmetic is exact and ``add`` / ``between`` are inverse):

- Business time is a set of half-open real-time intervals ``[open, close)``; ``between``
  measures it and ``add`` walks it, one working interval at a time (never minute by minute),
  so 10,000 business hours cost about two thousand interval steps.
- ``add(start, d)`` is the earliest instant ``t >= start`` with ``between(start, t) == d``.
  A start outside working hours therefore counts from the next opening; a duration that
  runs out exactly at a closing time gives that closing time (17:00, not 09:00 next
  morning); and a zero duration gives ``start`` itself, open or closed (nothing has to
  elapse; use :meth:`~BusinessCalendar.next_open` for "the next working moment").
- Daylight-saving time: working hours are local wall-clock times. An interval opens the
  first time the local clock reaches its start and closes the first time it reaches its end.
  On a spring-forward day an interval that spans the jump is shorter in real time (London
  01:00-03:00 lasts one hour), and a start that falls in the skipped hour opens at the jump;
  on a fall-back day it is longer (01:00-03:00 lasts three hours), and an interval ending
  inside the repeated hour closes at its first pass (the repeat is not business time).
  This keeps intervals ordered and non-overlapping whatever the zone does.

No maintained package does this: ``businesstime`` and ``business-calendar`` count whole days
or ignore time zones and DST, and ``workalendar``/``holidays`` only list holidays (which a
caller can pass in as ``holidays``). Hence the hand-written walk below.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from crmkit.entities import _fields as f
from crmkit.errors import ValidationError

__all__ = ["BusinessCalendar", "Interval"]

#: One working interval of a day, ``(start, end)`` in local wall-clock time. An ``end`` of
#: ``datetime.time.max`` means midnight at the end of the day (written ``"24:00"``).
Interval = tuple[dt.time, dt.time]

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LONG_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MIDNIGHT = dt.time(0, 0)
_END_OF_DAY = dt.time.max
_ZERO = dt.timedelta(0)
_ONE_DAY = dt.timedelta(days=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


# --- converters (value, where) -> stored form ---------------------------------------------


def _to_zone_name(value: Any, where: str) -> str:
    if isinstance(value, zoneinfo.ZoneInfo):
        value = value.key
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            where, value, "must be an IANA time zone name such as 'Europe/London'"
        )
    name = value.strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            where, value, "is not a known IANA time zone (such as 'Europe/London')"
        ) from None
    return name


def _to_clock(value: Any, where: str, *, end: bool) -> dt.time:
    if isinstance(value, dt.time):
        if value.tzinfo is not None:
            raise ValidationError(where, value, "must be a local wall-clock time (no tzinfo)")
        return value
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValidationError(where, value, "is not a time of day such as '09:00'")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if end and (hour, minute, second) == (24, 0, 0):
        return _END_OF_DAY
    if hour > 23 or minute > 59 or second > 59:
        reason = "is not a time of day (00:00 to 24:00)" if end else "is not a time of day"
        raise ValidationError(where, value, reason)
    return dt.time(hour, minute, second)


def _to_interval(value: Any, where: str) -> Interval:
    if isinstance(value, str):
        start, sep, end = value.partition("-")
        if not sep:
            raise ValidationError(where, value, "is not an interval such as '09:00-17:00'")
        pair: tuple[Any, Any] = (start, end)
    elif isinstance(value, tuple | list) and len(value) == 2:
        pair = (value[0], value[1])
    else:
        raise ValidationError(where, value, "is not an interval such as '09:00-17:00'")
    interval = (_to_clock(pair[0], where, end=False), _to_clock(pair[1], where, end=True))
    if interval[0] >= interval[1]:
        raise ValidationError(
            where, value, "must start before it ends (split overnight hours across two days)"
        )
    return interval


def _to_day_hours(value: Any, where: str) -> tuple[Interval, ...]:
    """``"09:00-12:30, 13:30-17:30"``, a list of intervals, one ``(time, time)`` or None."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = [part for part in value.split(",") if part.strip()]
    elif (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, dt.time) for v in value)
    ):
        items = [value]
    elif isinstance(value, tuple | list):
        items = list(value)
    else:
        raise ValidationError(where, value, "must be intervals such as '09:00-17:00'")
    intervals = sorted(_to_interval(item, f"{where}[{i}]") for i, item in enumerate(items))
    merged: list[Interval] = []
    for start, end in intervals:
        if merged and start < merged[-1][1]:
            raise ValidationError(where, value, "has overlapping intervals")
        if merged and start == merged[-1][1]:  # touching intervals are one interval
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def _day_number(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    if isinstance(value, str):
        name = value.strip().lower()
        for names in (_DAY_NAMES, _LONG_DAY_NAMES):
            if name in names:
                return names.index(name)
    raise ValidationError(where, value, "is not a weekday (0=Monday..6=Sunday, or 'mon'..'sun')")


def _to_days(value: Any, where: str) -> tuple[int, ...]:
    """``"mon-fri"``, ``"mon,wed,fri"``, ``"fri-mon"`` (wraps) or weekday numbers."""
    if isinstance(value, int | str) and not isinstance(value, bool):
        parts: list[Any] = value.split(",") if isinstance(value, str) else [value]
    elif isinstance(value, Iterable):
        parts = list(value)
    else:
        raise ValidationError(where, value, "must be weekdays such as 'mon-fri'")
    days: list[int] = []
    for part in parts:
        if isinstance(part, str) and "-" in part:
            first, _, last = part.partition("-")
            start, stop = _day_number(first, where), _day_number(last, where)
            span = [(start + i) % 7 for i in range((stop - start) % 7 + 1)]
        else:
            span = [_day_number(part, where)]
        days.extend(d for d in span if d not in days)
    if not days:
        raise ValidationError(where, value, "names no weekday")
    return tuple(sorted(days))


def _to_working_hours(value: Any, where: str) -> tuple[tuple[Interval, ...], ...]:
    week: list[tuple[Interval, ...] | None] = [None] * 7
    if isinstance(value, Mapping):
        for key, hours in value.items():
            for day in _to_days(key, f"{where} key"):
                if week[day] is not None:
                    raise ValidationError(
                        f"{where}[{_DAY_NAMES[day]}]", key, "is given more than once"
                    )
                week[day] = _to_day_hours(hours, f"{where}[{_DAY_NAMES[day]}]")
    elif isinstance(value, tuple | list) and len(value) == 7:
        for day, hours in enumerate(value):
            week[day] = _to_day_hours(hours, f"{where}[{_DAY_NAMES[day]}]")
    else:
        raise ValidationError(
            where, value, "must map weekdays to intervals, or list 7 days from Monday"
        )
    out = tuple(hours or () for hours in week)
    if not any(out):
        raise ValidationError(where, value, "has no working hours (it must open at least weekly)")
    return out


def _to_holidays(value: Any, where: str) -> tuple[dt.date, ...]:
    if value is None:
        return ()
    if isinstance(value, str | bytes | dt.date) or not isinstance(value, Iterable):
        raise ValidationError(where, value, "must be a list of dates")
    days = {f.to_date(item, f"{where}[{i}]", required=True) for i, item in enumerate(value)}
    return tuple(sorted(days))


def _aware(value: Any, where: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ValidationError(where, value, "must be a timezone-aware datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            where, value, "must be timezone-aware (naive datetimes are ambiguous)"
        )
    return value.astimezone(dt.UTC)


def _duration(value: Any, where: str) -> dt.timedelta:
    if not isinstance(value, dt.timedelta):
        raise ValidationError(where, value, "must be a duration (timedelta)")
    if value < _ZERO:
        raise ValidationError(where, value, "must not be negative")
    return value


# --- local wall-clock time -> real instants ------------------------------------------------


def _first_instant(zone: zoneinfo.ZoneInfo, local: dt.datetime) -> dt.datetime:
    """The first instant (UTC) at which the local clock of ``zone`` reads ``local`` or later.

    Normal times have one instant. An ambiguous time (fall-back) gives its first
    occurrence. A time skipped by a spring-forward jump gives the jump itself.
    """
    before = local.replace(tzinfo=zone, fold=0).utcoffset()
    after = local.replace(tzinfo=zone, fold=1).utcoffset()
    assert before is not None  # a ZoneInfo always has an offset
    assert after is not None
    if after <= before:  # normal, or ambiguous: fold=0 is the first occurrence
        return (local - before).replace(tzinfo=dt.UTC)
    # In a gap: the jump lies in (local - after, local - before]. Transitions in tz data are
    # whole seconds, so bisect on whole seconds (at most ~17 steps for a skipped day).
    lo = math.floor(((local - after).replace(tzinfo=dt.UTC) - _EPOCH).total_seconds())
    hi = math.ceil(((local - before).replace(tzinfo=dt.UTC) - _EPOCH).total_seconds())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (_EPOCH + dt.timedelta(seconds=mid)).astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return _EPOCH + dt.timedelta(seconds=hi)


# --- the calendar --------------------------------------------------------------------------


# Named converters (not attrs.Converter objects) so that mypy's attrs plugin types __init__.
def _convert_timezone(value: Any) -> str:
    return _to_zone_name(value, "businesscalendar.timezone")


def _convert_working_hours(value: Any) -> tuple[tuple[Interval, ...], ...]:
    return _to_working_hours(value, "businesscalendar.working_hours")


def _convert_holidays(value: Any) -> tuple[dt.date, ...]:
    return _to_holidays(value, "businesscalendar.holidays")


def _zone_of(calendar: BusinessCalendar) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(calendar.timezone)


def _holiday_set(calendar: BusinessCalendar) -> frozenset[dt.date]:
    return frozenset(calendar.holidays)


def _is_24x7(calendar: BusinessCalendar) -> bool:
    whole_day = ((_MIDNIGHT, _END_OF_DAY),)
    return not calendar.holidays and all(day == whole_day for day in calendar.working_hours)


@attrs.frozen(kw_only=True)
class BusinessCalendar:
    """When a team works: weekly local working hours in one time zone, minus holidays.

    - ``timezone``: an IANA name (``"Europe/London"``; a ``ZoneInfo`` is accepted).
    - ``working_hours``: for each weekday (0 = Monday .. 6 = Sunday) a tuple of
      ``(start, end)`` local times, sorted and non-overlapping; ``end`` may be
      ``datetime.time.max``, meaning 24:00. Accepted input: a mapping from weekdays
      (``0``, ``"mon"``, ``"mon-fri"``) to intervals, or a list of 7 days from Monday; a
      day's intervals are a string (``"09:00-12:30, 13:30-17:30"``), a list of strings or
      of ``(time, time)`` pairs, or ``None`` (closed). Touching intervals are joined.
      Overnight hours are split across two days (``"22:00-24:00"`` and ``"00:00-06:00"``).
    - ``holidays``: local dates (in ``timezone``) on which the team does not work.

    Raises :class:`crmkit.ValidationError` for an unknown zone, a malformed or overlapping
    interval, an interval that does not start before it ends, or a week with no hours.

    >>> cal = BusinessCalendar(
    ...     timezone="Asia/Kolkata",
    ...     working_hours={"mon-fri": "09:30-13:00, 14:00-18:30", "sat": "10:00-14:00"},
    ...     holidays=["2024-08-15"],
    ... )
    >>> cal.working_hours[5]
    ((datetime.time(10, 0), datetime.time(14, 0)),)
    """

    timezone: str = attrs.field(default="UTC", converter=_convert_timezone)
    working_hours: tuple[tuple[Interval, ...], ...] = attrs.field(converter=_convert_working_hours)
    holidays: tuple[dt.date, ...] = attrs.field(default=(), converter=_convert_holidays)
    _zone: zoneinfo.ZoneInfo = attrs.field(
        init=False, repr=False, eq=False, default=attrs.Factory(_zone_of, takes_self=True)
    )
    _holiday_lookup: frozenset[dt.date] = attrs.field(
        init=False, repr=False, eq=False, default=attrs.Factory(_holiday_set, takes_self=True)
    )
    _always_open: bool = attrs.field(
        init=False, repr=False, eq=False, default=attrs.Factory(_is_24x7, takes_self=True)
    )

    # --- constructors ----------------------------------------------------------------------

    @classmethod
    def standard(
        cls,
        timezone: str,
        *,
        days: Any = "mon-fri",
        hours: Any = "09:00-17:00",
        holidays: Iterable[dt.date | str] = (),
    ) -> BusinessCalendar:
        """The same ``hours`` on each of ``days`` (``"mon-fri"``, ``"sun-thu"``, ``[0, 2]``).

        >>> BusinessCalendar.standard("America/New_York", hours="08:00-12:00,13:00-17:00")
        ... # doctest: +ELLIPSIS
        BusinessCalendar(timezone='America/New_York', working_hours=(((datetime.time(8, 0), ...
        """
        return cls(timezone=timezone, working_hours={days: hours}, holidays=holidays)

    @classmethod
    def always(cls, timezone: str = "UTC") -> BusinessCalendar:
        """A 24x7 calendar: all time is business time (``add`` is plain addition)."""
        return cls(timezone=timezone, working_hours={"mon-sun": "00:00-24:00"})

    # --- queries ---------------------------------------------------------------------------

    def is_open(self, at: dt.datetime) -> bool:
        """Whether ``at`` (timezone-aware) falls in working hours; a closing time is closed.

        Raises :class:`crmkit.ValidationError` for a naive datetime.
        """
        at = _aware(at, "at")
        if self._always_open:
            return True
        opens, _ = next(self._intervals(at))
        return opens <= at

    def next_open(self, at: dt.datetime) -> dt.datetime:
        """``at`` (in UTC) when open, else the next opening instant (aware UTC).

        Raises :class:`crmkit.ValidationError` for a naive datetime, or when the next opening
        lies beyond the year 9999.
        """
        at = _aware(at, "at")
        if self._always_open:
            return at
        opens, _ = next(self._intervals(at))
        return max(opens, at)

    def add(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        """The instant (aware UTC) at which ``duration`` of business time has elapsed.

        Counting starts at ``start``, or at the next opening when ``start`` is closed. The
        result is the earliest ``t`` with ``between(start, t) == duration``: a duration that
        ends exactly at a closing time gives the closing time, and a zero duration gives
        ``start`` unchanged (in UTC) even when closed.

        Raises :class:`crmkit.ValidationError` for a naive ``start``, a negative or
        non-``timedelta`` duration, or a result beyond the year 9999.

        >>> cal = BusinessCalendar.standard("Europe/London")
        >>> saturday = dt.datetime(2024, 3, 9, 12, 0, tzinfo=dt.UTC)
        >>> cal.add(saturday, dt.timedelta(minutes=30))
        datetime.datetime(2024, 3, 11, 9, 30, tzinfo=datetime.timezone.utc)
        """
        start = _aware(start, "start")
        remaining = _duration(duration, "duration")
        if remaining == _ZERO:
            return start
        if self._always_open:
            try:
                return start + remaining
            except OverflowError:
                raise ValidationError(
                    "duration", duration, "reaches beyond the year 9999"
                ) from None
        for opens, closes in self._intervals(start):
            opens = max(opens, start)
            available = closes - opens
            if remaining <= available:
                return opens + remaining
            remaining -= available
        raise AssertionError("unreachable: _intervals() never ends")  # pragma: no cover

    def between(self, a: dt.datetime, b: dt.datetime) -> dt.timedelta:
        """Business time in ``[a, b)``; negative when ``b`` is before ``a``.

        ``between(a, b) == -between(b, a)``, and ``between(a, a)`` is zero, so
        ``between(now, due)`` is the business time left (negative once overdue).

        Raises :class:`crmkit.ValidationError` for a naive datetime.

        >>> cal = BusinessCalendar.standard("Europe/London", hours="09:00-12:30,13:30-17:30")
        >>> noon = dt.datetime(2024, 3, 4, 12, 0, tzinfo=dt.UTC)
        >>> cal.between(noon, noon + dt.timedelta(hours=2))  # lunch 12:30-13:30 excluded
        datetime.timedelta(seconds=3600)
        """
        a = _aware(a, "a")
        b = _aware(b, "b")
        if b < a:
            return -self.between(b, a)
        if self._always_open:
            return b - a
        total = _ZERO
        for opens, closes in self._intervals(a):
            if opens >= b:
                break
            total += min(closes, b) - max(opens, a)
        return total

    # --- the walk --------------------------------------------------------------------------

    def _intervals(self, after: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Working intervals ``(opens, closes)`` in UTC, in order, with ``closes > after``.

        Never ends: a calendar opens at least weekly and holidays are finite. Starts a day
        early so an interval of the previous local day still open at ``after`` is included.
        """
        zone = self._zone
        day = after.astimezone(zone).date() - _ONE_DAY
        while True:
            if day >= dt.date.max - _ONE_DAY:
                raise ValidationError("duration", after, "reaches beyond the year 9999")
            hours = self.working_hours[day.weekday()]
            if hours and day not in self._holiday_lookup:
                for start, end in hours:
                    opens = _first_instant(zone, dt.datetime.combine(day, start))
                    if end == _END_OF_DAY:
                        closes = _first_instant(
                            zone, dt.datetime.combine(day + _ONE_DAY, _MIDNIGHT)
                        )
                    else:
                        closes = _first_instant(zone, dt.datetime.combine(day, end))
                    if closes > opens and closes > after:
                        yield opens, closes
            day += _ONE_DAY
