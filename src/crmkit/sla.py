"""Service-level targets for tickets and the clock that turns them into due times.

An :class:`SlaPolicy` holds, per ticket priority, an :class:`SlaTarget`: how much *business
time* (see :class:`crmkit.calendars.BusinessCalendar`) support may take to first respond and
to resolve. Four pure functions apply a policy:

- :func:`due_times` - when the first response and the resolution are due;
- :func:`business_time_elapsed` - how much of the resolution clock has run so far;
- :func:`breached` - whether a due time was missed.

The resolution clock pauses while the ticket is in one of the policy's
``pausing_statuses`` (``pending`` and ``on_hold`` by default: support waits for the
customer). The first-response clock never pauses. A ticket's history is a list of
``(at, status)`` changes: the ticket is in ``status`` from ``at`` until the next change;
before its first change (and at ``opened_at`` when no change precedes it) it is running.

>>> import datetime as dt
>>> from crmkit.calendars import BusinessCalendar
>>> cal = BusinessCalendar.standard("Europe/London", hours="09:00-17:00")
>>> policy = SlaPolicy(high={"first_response": dt.timedelta(hours=1), "resolution": 8 * 3600})
>>> opened = dt.datetime(2024, 3, 8, 16, 0, tzinfo=dt.UTC)  # a Friday, 16:00
>>> due = due_times(policy, cal, "high", opened)
>>> due.first_response, due.resolution
(datetime.datetime(2024, 3, 8, 17, 0, tzinfo=datetime.timezone.utc), \
datetime.datetime(2024, 3, 11, 16, 0, tzinfo=datetime.timezone.utc))
>>> breached(due.first_response, done_at=None, now=opened + dt.timedelta(hours=2))
True
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import attrs

from crmkit.calendars import BusinessCalendar
from crmkit.entities import _fields as f
from crmkit.entities._base import Priority
from crmkit.errors import ValidationError

__all__ = [
    "DEFAULT_PAUSING_STATUSES",
    "DueTimes",
    "SlaPolicy",
    "SlaTarget",
    "StatusChange",
    "breached",
    "business_time_elapsed",
    "due_times",
]

#: ``(at, status)``: the ticket entered ``status`` at the aware datetime ``at``.
StatusChange = tuple[dt.datetime, str]

#: Statuses in which the resolution clock stops by default: support waits on the customer.
DEFAULT_PAUSING_STATUSES: frozenset[str] = frozenset({"pending", "on_hold"})

_ZERO = dt.timedelta(0)


@attrs.frozen(kw_only=True)
class SlaTarget:
    """Business time allowed for one priority; ``None`` means no SLA for that part.

    Durations are ``timedelta`` (numbers are seconds), non-negative, kept to milliseconds.
    Raises :class:`crmkit.ValidationError` otherwise.

    >>> SlaTarget(first_response=dt.timedelta(hours=1))
    SlaTarget(first_response=datetime.timedelta(seconds=3600), resolution=None)
    """

    first_response: dt.timedelta | None = f.duration()
    resolution: dt.timedelta | None = f.duration()


def _to_target(value: Any, where: str) -> SlaTarget:
    if value is None:
        return SlaTarget()
    if isinstance(value, SlaTarget):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(where, value, "must be an SlaTarget or a mapping of its fields")
    try:
        return SlaTarget(**value)
    except TypeError as exc:
        raise ValidationError(where, value, f"has unknown or missing parts ({exc})") from None
    except ValidationError as exc:  # slatarget.resolution -> slapolicy.high.resolution
        raise ValidationError(
            f"{where}.{exc.field.partition('.')[2]}", exc.value, exc.reason
        ) from None


# One named converter per field, so that mypy's attrs plugin types __init__ (it cannot see
# through attrs.Converter objects) and errors name the priority.
def _low(value: Any) -> SlaTarget:
    return _to_target(value, "slapolicy.low")


def _normal(value: Any) -> SlaTarget:
    return _to_target(value, "slapolicy.normal")


def _high(value: Any) -> SlaTarget:
    return _to_target(value, "slapolicy.high")


def _urgent(value: Any) -> SlaTarget:
    return _to_target(value, "slapolicy.urgent")


def _to_statuses(value: Any) -> frozenset[str]:
    where = "slapolicy.pausing_statuses"
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError(where, value, "must be a set of status keys")
    return frozenset(f.to_id(v, f"{where}[{i}]", required=True) for i, v in enumerate(value))


@attrs.frozen(kw_only=True)
class SlaPolicy:
    """Targets per priority, and the statuses that pause the resolution clock.

    ``low``, ``normal``, ``high`` and ``urgent`` each take an :class:`SlaTarget` or a
    mapping of its fields; a missing priority has no targets. ``pausing_statuses``
    defaults to :data:`DEFAULT_PAUSING_STATUSES`; add ``"solved"`` to stop the clock while a
    ticket waits solved, so that a reopened ticket is not charged for that time.

    Raises :class:`crmkit.ValidationError` for a bad duration or status.

    >>> policy = SlaPolicy(urgent={"first_response": 900, "resolution": 4 * 3600})
    >>> policy.target("urgent").resolution
    datetime.timedelta(seconds=14400)
    >>> policy.target("low")
    SlaTarget(first_response=None, resolution=None)
    """

    low: SlaTarget = attrs.field(factory=SlaTarget, converter=_low)
    normal: SlaTarget = attrs.field(factory=SlaTarget, converter=_normal)
    high: SlaTarget = attrs.field(factory=SlaTarget, converter=_high)
    urgent: SlaTarget = attrs.field(factory=SlaTarget, converter=_urgent)
    pausing_statuses: frozenset[str] = attrs.field(
        default=DEFAULT_PAUSING_STATUSES, converter=_to_statuses
    )

    def target(self, priority: Priority | str) -> SlaTarget:
        """The targets for ``priority`` (a :class:`Priority` or its value).

        Raises :class:`crmkit.ValidationError` for an unknown priority.
        """
        level: Priority = f.to_enum(Priority, priority, "priority", required=True)
        target: SlaTarget = getattr(self, level.value)
        return target


class DueTimes(NamedTuple):
    """When the first response and the resolution are due (aware UTC), if at all."""

    first_response: dt.datetime | None
    resolution: dt.datetime | None


def due_times(
    policy: SlaPolicy,
    calendar: BusinessCalendar,
    priority: Priority | str,
    opened_at: dt.datetime,
    history: Iterable[StatusChange] = (),
) -> DueTimes:
    """Due times of a ticket opened at ``opened_at``, given its status ``history``.

    ``first_response`` is ``calendar.add(opened_at, target.first_response)``: it never
    pauses. ``resolution`` is the earliest instant at which the resolution clock, running
    in business time except while paused, reaches ``target.resolution`` - so each pause
    before the due time shifts it by the business time paused, and a pause that starts
    after the due time changes nothing (a breach stays a breach). The last status is
    assumed to last forever: while a not-yet-breached ticket is paused ``resolution`` is
    ``None`` (no due time while paused; to see the due time "if resumed now", append
    ``(now, "open")`` to the history). ``None`` also means "no target".

    ``history`` is ``(at, status)`` pairs, sorted here by ``at`` (stable for equal
    times); changes at or before ``opened_at`` set the status the ticket opens in.

    Raises :class:`crmkit.ValidationError` for naive datetimes, an unknown priority or a
    malformed history entry.

    >>> cal = BusinessCalendar.standard("Europe/London")
    >>> monday = dt.datetime(2024, 3, 4, 9, 0, tzinfo=dt.UTC)
    >>> policy = SlaPolicy(normal={"resolution": dt.timedelta(hours=8)})
    >>> waiting = [(monday.replace(hour=10), "pending"), (monday.replace(hour=12), "open")]
    >>> due_times(policy, cal, "normal", monday, waiting).resolution  # 17:00 + 2h paused
    datetime.datetime(2024, 3, 5, 11, 0, tzinfo=datetime.timezone.utc)
    """
    target = policy.target(priority)
    opened_at = _aware(opened_at, "opened_at")
    changes = _changes(history)
    first = None
    if target.first_response is not None:
        first = calendar.add(opened_at, target.first_response)
    resolution = None
    if target.resolution is not None:
        resolution = _resolution_due(
            calendar, opened_at, changes, policy.pausing_statuses, target.resolution
        )
    return DueTimes(first, resolution)


def business_time_elapsed(
    policy: SlaPolicy,
    calendar: BusinessCalendar,
    opened_at: dt.datetime,
    history: Iterable[StatusChange],
    until: dt.datetime,
) -> dt.timedelta:
    """Business time the resolution clock ran between ``opened_at`` and ``until``.

    Time spent in the policy's pausing statuses does not count; ``until`` at or before
    ``opened_at`` gives zero. With :func:`due_times`, ``target.resolution - elapsed`` is
    the business time left. Raises :class:`crmkit.ValidationError` like :func:`due_times`.

    >>> cal = BusinessCalendar.standard("Europe/London")
    >>> monday = dt.datetime(2024, 3, 4, 9, 0, tzinfo=dt.UTC)
    >>> history = [(monday.replace(hour=10), "pending"), (monday.replace(hour=12), "open")]
    >>> business_time_elapsed(SlaPolicy(), cal, monday, history, monday.replace(hour=13))
    datetime.timedelta(seconds=7200)
    """
    opened_at = _aware(opened_at, "opened_at")
    until = _aware(until, "until")
    total = _ZERO
    for start, end, paused in _segments(opened_at, _changes(history), policy.pausing_statuses):
        if start >= until:
            break
        if not paused:
            total += calendar.between(start, until if end is None else min(end, until))
    return total


def breached(due: dt.datetime | None, done_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether the target due at ``due`` was missed.

    Done (``done_at`` given): breached when done strictly after ``due``. Not done: breached
    when ``now`` is strictly after ``due``. Meeting a target exactly at its due time is on
    time, and ``due=None`` (no target, or the clock is paused) is never breached.
    Raises :class:`crmkit.ValidationError` for naive datetimes.

    >>> due = dt.datetime(2024, 3, 4, 17, 0, tzinfo=dt.UTC)
    >>> breached(due, done_at=due, now=due + dt.timedelta(days=1))
    False
    """
    now = _aware(now, "now")
    if due is None:
        return False
    due = _aware(due, "due")
    if done_at is not None:
        return _aware(done_at, "done_at") > due
    return now > due


# --- the resolution clock ------------------------------------------------------------------


def _aware(value: Any, where: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ValidationError(where, value, "must be a timezone-aware datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            where, value, "must be timezone-aware (naive datetimes are ambiguous)"
        )
    return value.astimezone(dt.UTC)


def _changes(history: Iterable[StatusChange]) -> list[StatusChange]:
    if isinstance(history, str | bytes | Mapping) or not isinstance(history, Iterable):
        raise ValidationError("history", history, "must be a list of (at, status) pairs")
    out: list[StatusChange] = []
    for i, item in enumerate(history):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise ValidationError(f"history[{i}]", item, "must be an (at, status) pair")
        status = f.to_id(item[1], f"history[{i}].status", required=True)
        out.append((_aware(item[0], f"history[{i}].at"), status))
    out.sort(key=lambda change: change[0])  # stable: equal times keep their given order
    return out


def _segments(
    opened_at: dt.datetime, changes: list[StatusChange], pausing: frozenset[str]
) -> Iterator[tuple[dt.datetime, dt.datetime | None, bool]]:
    """``(start, end, paused)`` runs from ``opened_at`` on; the last has ``end=None``."""
    paused = False
    start = opened_at
    for at, status in changes:
        now_paused = status in pausing
        if at <= opened_at:
            paused = now_paused
        elif now_paused != paused:
            yield start, at, paused
            start, paused = at, now_paused
    yield start, None, paused


def _resolution_due(
    calendar: BusinessCalendar,
    opened_at: dt.datetime,
    changes: list[StatusChange],
    pausing: frozenset[str],
    target: dt.timedelta,
) -> dt.datetime | None:
    if target == _ZERO:
        return opened_at  # nothing has to elapse, even if the ticket opened paused
    remaining = target
    for start, end, paused in _segments(opened_at, changes, pausing):
        if paused:
            if end is None:
                return None  # paused for now, with target time left: no due time
            continue
        if end is None:
            return calendar.add(start, remaining)
        ran = calendar.between(start, end)
        if remaining <= ran:
            return calendar.add(start, remaining)
        remaining -= ran
    raise AssertionError("unreachable: the last segment is open-ended")  # pragma: no cover
