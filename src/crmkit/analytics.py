"""Analytics reports, computed by the database (``Repository.aggregate``) on every backend.

``crm.analytics`` (or ``crm.as_user(u).analytics``, which aggregates only what the user
may read):

- :meth:`Analytics.interactions_by_channel` - interactions per week or month, by kind
  (channel) and direction;
- :meth:`Analytics.lifecycle_over_time` - how many contacts are in each lifecycle stage at
  the end of each week or month, from the contacts' lifecycle history;
- :meth:`Analytics.rfm` - recency, frequency and monetary value of contacts from their
  interactions and won deals, each scored 1-5 (see :func:`quintile_scores`);
- :meth:`Analytics.tickets_by_priority` - ticket volume and SLA compliance by priority.

Periods are UTC; a week starts on Monday (``trunc="week"`` of
:class:`crmkit.aggregation.Group`). Ranges are half-open: ``since <= t < until``.

Lifecycle history: every write that sets or changes a contact's ``lifecycle_stage``
stores a :class:`crmkit.entities.StageChange` with ``record_collection="contacts"``
(``from_stage`` ``None`` when the contact had no stage; ``to_stage`` :data:`NO_STAGE` when
the stage is cleared), written in the write's transaction by :class:`LifecycleHistory`.
Deleting a contact records nothing (its last stage keeps counting), and contacts stored
before the history existed are not counted. History rows carry the contact's owner and
team, so a view counts them by its ``stage_changes`` read permission.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from crmkit.aggregation import Group, Metric, week_start
from crmkit.entities import Contact, PipelineKind, StageChange, StageKind
from crmkit.errors import ValidationError
from crmkit.query import And, Expr, F, Or

if TYPE_CHECKING:
    from crmkit.crm import CRM

__all__ = [
    "NO_STAGE",
    "Analytics",
    "ChannelRow",
    "LifecycleHistory",
    "LifecycleRow",
    "PriorityRow",
    "RfmRow",
    "period_starts",
    "quintile_scores",
]

Period = Literal["week", "month"]

#: ``to_stage`` of a lifecycle history row whose contact's stage was cleared.
NO_STAGE = "none"


class _Source(Protocol):
    """A CRM or a user's view of one."""

    @property
    def contacts(self) -> Any: ...

    @property
    def interactions(self) -> Any: ...

    @property
    def deals(self) -> Any: ...

    @property
    def pipelines(self) -> Any: ...

    @property
    def tickets(self) -> Any: ...

    @property
    def stage_changes(self) -> Any: ...

    def now(self) -> dt.datetime: ...


@attrs.frozen
class ChannelRow:
    """Interactions of one kind and direction (``None``: not set) in the period starting
    on ``period`` (a Monday or the first of a month)."""

    period: dt.date
    kind: str
    direction: str | None
    count: int


@attrs.frozen
class LifecycleRow:
    """``count`` contacts were in ``stage`` at the end of the period starting ``period``."""

    period: dt.date
    stage: str
    count: int


@attrs.frozen
class RfmRow:
    """A contact's RFM values and 1-5 scores (5 is best: most recent, most frequent, most
    valuable). ``recency_days`` is whole days from the last interaction or won deal to the
    report's ``as_of``; ``frequency`` counts interactions plus won deals; ``monetary`` sums
    the won deals' amounts in the report's currency."""

    contact_id: str
    last_activity: dt.datetime
    recency_days: int
    frequency: int
    monetary: Decimal
    r: int
    f: int
    m: int

    @property
    def score(self) -> str:
        """The three scores as one code, like ``"545"``."""
        return f"{self.r}{self.f}{self.m}"


@attrs.frozen
class PriorityRow:
    """Tickets of one priority created in the period, and their SLA targets.

    ``*_met``: done without a breach; ``*_breached``: the due time was missed (done late,
    or still open past it once noticed - see :meth:`crmkit.tickets.TicketRepository`);
    tickets neither met nor breached are still running or have no target.
    """

    priority: str
    tickets: int
    first_response_met: int
    first_response_breached: int
    resolution_met: int
    resolution_breached: int

    @property
    def first_response_compliance(self) -> Decimal | None:
        """``met / (met + breached)`` of first responses (``None``: none decided)."""
        return _ratio(self.first_response_met, self.first_response_breached)

    @property
    def resolution_compliance(self) -> Decimal | None:
        """``met / (met + breached)`` of resolutions (``None``: none decided)."""
        return _ratio(self.resolution_met, self.resolution_breached)


def _ratio(met: int, breached: int) -> Decimal | None:
    total = met + breached
    return None if total == 0 else Decimal(met) / Decimal(total)


def _all(*parts: Expr | None) -> Expr | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else And(tuple(present))


def _range(field: str, since: dt.datetime | None, until: dt.datetime | None) -> Expr | None:
    for name, value in (("since", since), ("until", until)):
        if value is not None and (not isinstance(value, dt.datetime) or value.tzinfo is None):
            raise ValidationError(name, value, "must be a timezone-aware datetime")
    return _all(
        None if since is None else F(field) >= since, None if until is None else F(field) < until
    )


def _period(period: str) -> Period:
    if period not in ("week", "month"):
        raise ValidationError("period", period, "is not 'week' or 'month'")
    return period  # type: ignore[return-value]


def _start(day: dt.date, period: Period) -> dt.date:
    return week_start(day) if period == "week" else day.replace(day=1)


def _next(start: dt.date, period: Period) -> dt.date:
    if period == "week":
        return start + dt.timedelta(days=7)
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def period_starts(since: dt.datetime, until: dt.datetime, period: Period) -> list[dt.date]:
    """The first days (UTC) of the periods that overlap ``[since, until)``.

    >>> utc = dt.UTC
    >>> period_starts(dt.datetime(2024, 1, 31, tzinfo=utc), dt.datetime(2024, 3, 1, tzinfo=utc),
    ...               "month")
    [datetime.date(2024, 1, 1), datetime.date(2024, 2, 1)]
    """
    first = _start(since.astimezone(dt.UTC).date(), period)
    out: list[dt.date] = []
    day = first
    while _utc(day) < until:
        out.append(day)
        day = _next(day, period)
    return out


def _utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def quintile_scores(values: Mapping[str, Any], *, higher_is_better: bool = True) -> dict[str, int]:
    """Scores 1-5 by quintile: ``1 + floor(5 * worse / n)``, where ``n`` is the number of
    values and ``worse`` how many of them are strictly worse than this one.

    Ties share a score (the one of the lowest rank they occupy), so equal values never get
    different scores; with ``n`` distinct values, each fifth of them gets one score.

    >>> quintile_scores({"a": 1, "b": 2, "c": 2, "d": 9})
    {'a': 1, 'b': 2, 'c': 2, 'd': 4}
    """
    ordered = sorted(values.values())
    n = len(ordered)
    out: dict[str, int] = {}
    for key, value in values.items():
        if higher_is_better:
            worse = bisect.bisect_left(ordered, value)
        else:
            worse = n - bisect.bisect_right(ordered, value)
        out[key] = 1 + (5 * worse) // n
    return out


def rfm_scores(
    recency: Mapping[str, int], frequency: Mapping[str, int], monetary: Mapping[str, Decimal]
) -> dict[str, tuple[int, int, int]]:
    """The ``(r, f, m)`` quintile scores of each key: recent (few days), frequent and high
    spending is best (see :func:`quintile_scores`)."""
    r = quintile_scores(recency, higher_is_better=False)
    f = quintile_scores(frequency)
    m = quintile_scores(monetary)
    return {key: (r[key], f[key], m[key]) for key in recency}


class LifecycleHistory:
    """The after-write hook of contacts that records lifecycle-stage changes as
    :class:`StageChange` rows (``record_collection="contacts"``)."""

    def __init__(self, crm: CRM) -> None:
        self._crm = crm

    def changed(self, stored: Any, previous: Any | None, /) -> bool:
        """Whether the write set or changed the contact's lifecycle stage."""
        if not isinstance(stored, Contact):
            return False
        before = None if previous is None else previous.lifecycle_stage
        return stored.lifecycle_stage != before

    def after_write(self, stored: Any, previous: Any | None, /) -> None:
        """Store the history row of the change (inside the write's transaction)."""
        self.after_write_many([(stored, previous)])

    def after_write_many(self, pairs: Sequence[tuple[Any, Any | None]], /) -> None:
        """Store the history rows of many writes with one bulk insert."""
        crm = self._crm
        rows: list[StageChange] = []
        for stored, previous in pairs:
            if not self.changed(stored, previous):
                continue
            at = stored.updated_at or crm.now()
            before = None if previous is None else previous.lifecycle_stage
            stage = stored.lifecycle_stage
            entered = None
            if before is not None:
                last = crm.stage_changes.first(
                    (F.record_collection == "contacts") & (F.record_id == (stored.id or "")),
                    order_by="-at",
                )
                entered = last.at if last is not None else None
            rows.append(
                StageChange(
                    record_collection="contacts",
                    record_id=stored.id,
                    from_stage=None if before is None else before.value,
                    to_stage=NO_STAGE if stage is None else stage.value,
                    at=at,
                    by=crm.acting_user,
                    reason=crm.acting_reason,
                    time_in_previous=(
                        None if entered is None else max(at - entered, dt.timedelta(0))
                    ),
                    owner_id=stored.owner_id,
                    team_id=stored.team_id,
                )
            )
        if rows:
            crm.stage_changes.add_many(rows)


class Analytics:
    """Analytics over a CRM or a user's view (every count and sum comes from the database)."""

    def __init__(self, source: _Source) -> None:
        self._source = source

    # --- interactions -------------------------------------------------------------------

    def interactions_by_channel(
        self,
        period: Period = "week",
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        where: Expr | None = None,
    ) -> list[ChannelRow]:
        """Interactions in ``[since, until)`` per ``period`` (``"week"``, ``"month"``), kind
        and direction, ordered by period, kind, direction (``None`` last).

        Raises ``ValidationError`` for another period or naive datetimes.
        """
        trunc = _period(period)
        rows = self._source.interactions.aggregate(
            _all(_range("occurred_at", since, until), where),
            group_by=[Group("occurred_at", trunc, "period"), "kind", "direction"],
            metrics=[Metric.count(name="n")],
        )
        return [ChannelRow(r["period"], r["kind"], r["direction"], r["n"]) for r in rows]

    # --- lifecycle ----------------------------------------------------------------------

    def lifecycle_over_time(
        self,
        period: Period = "month",
        *,
        since: dt.datetime,
        until: dt.datetime,
    ) -> list[LifecycleRow]:
        """How many contacts were in each lifecycle stage at the end of each period
        overlapping ``[since, until)`` (the end of the last period is capped at ``until``).

        Counts are entries into a stage minus exits from it up to the period's end,
        aggregated by the database from the lifecycle history (three aggregates, whatever
        the number of contacts). Stages with no contact in any period are left out; rows
        are ordered by period, then stage.
        """
        trunc = _period(period)
        starts = period_starts(since, until, trunc)
        base = F.record_collection == "contacts"
        history = self._source.stage_changes
        # (stage -> count) of everything before the first period, then deltas per period
        opening: dict[str, int] = {}
        first = _utc(starts[0]) if starts else since
        for field, sign in (("to_stage", 1), ("from_stage", -1)):
            for r in history.aggregate(
                _all(base, F.at < first, F(field).exists()),
                group_by=[field],
                metrics=[Metric.count(name="n")],
            ):
                opening[r[field]] = opening.get(r[field], 0) + sign * r["n"]
        deltas: dict[tuple[dt.date, str], int] = {}
        for field, sign in (("to_stage", 1), ("from_stage", -1)):
            for r in history.aggregate(
                _all(base, F.at >= first, F.at < until, F(field).exists()),
                group_by=[Group("at", trunc, "period"), field],
                metrics=[Metric.count(name="n")],
            ):
                key = (r["period"], r[field])
                deltas[key] = deltas.get(key, 0) + sign * r["n"]
        stages = sorted(
            ({s for s, n in opening.items() if n} | {s for _, s in deltas}) - {NO_STAGE}
        )
        out: list[LifecycleRow] = []
        running = dict(opening)
        for start in starts:
            for stage in stages:
                running[stage] = running.get(stage, 0) + deltas.get((start, stage), 0)
            out.extend(LifecycleRow(start, stage, running.get(stage, 0)) for stage in stages)
        return out

    # --- RFM ----------------------------------------------------------------------------

    def _won(self) -> Expr | None:
        parts: list[Expr] = []
        for p in self._source.pipelines.find(F.kind == PipelineKind.DEALS.value):
            keys = [s.key for s in p.stages if s.kind is StageKind.WON]
            if keys:
                parts.append((F.pipeline_id == (p.id or "")) & F.stage.in_(keys))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def rfm(
        self,
        *,
        as_of: dt.datetime | None = None,
        since: dt.datetime | None = None,
        currency: str | None = None,
        where: Expr | None = None,
    ) -> list[RfmRow]:
        """RFM values and scores of every contact with an interaction or a won deal in
        ``[since, as_of)`` (``as_of`` defaults to now), ordered by score (best first), then
        contact id.

        - recency: whole days from the latest interaction or won deal (``closed_at``) to
          ``as_of``; fewer is better;
        - frequency: interactions plus won deals;
        - monetary: the sum of won deals' amounts in ``currency`` (needed only when won
          deals use more than one currency; deals in other currencies count zero).

        Each is scored 1-5 by :func:`quintile_scores` among the contacts in the report.
        ``where`` narrows the contacts (a filter on contacts). Per-contact figures come from
        two aggregates grouped by ``contact_ids``; a view counts only the interactions and
        deals it may read, and reports only contacts it may read.
        Raises ``ValidationError`` when several currencies are won and none is given.
        """
        as_of = as_of or self._source.now()
        stats: dict[str, dict[str, Any]] = {}

        def slot(cid: str) -> dict[str, Any]:
            return stats.setdefault(cid, {"last": None, "n": 0, "money": {}})

        for r in self._source.interactions.aggregate(
            _all(_range("occurred_at", since, as_of), F.contact_ids.exists()),
            group_by=["contact_ids"],
            metrics=[Metric.count(name="n"), Metric.max("occurred_at", name="last")],
        ):
            if r["contact_ids"] is None:
                continue
            s = slot(r["contact_ids"])
            s["n"] += r["n"]
            s["last"] = _later(s["last"], r["last"])
        won = self._won()
        if won is not None:
            for r in self._source.deals.aggregate(
                _all(won, _range("closed_at", since, as_of), F.contact_ids.exists()),
                group_by=["contact_ids", Group("amount.currency", name="currency")],
                metrics=[
                    Metric.count(name="n"),
                    Metric.max("closed_at", name="last"),
                    Metric.sum("amount.amount", name="amount"),
                ],
            ):
                if r["contact_ids"] is None:
                    continue
                s = slot(r["contact_ids"])
                s["n"] += r["n"]
                s["last"] = _later(s["last"], r["last"])
                if r["currency"] is not None:
                    s["money"][r["currency"]] = s["money"].get(r["currency"], 0) + r["amount"]
        currencies = {c for s in stats.values() for c in s["money"]}
        if currency is None and len(currencies) > 1:
            raise ValidationError(
                "currency", None, f"is needed: won deals use {sorted(currencies)}"
            )
        chosen = currency or (next(iter(currencies)) if currencies else None)
        readable = self._readable(list(stats), where)
        stats = {cid: s for cid, s in stats.items() if cid in readable and s["last"] is not None}
        if not stats:
            return []
        recency = {cid: _days(as_of - s["last"]) for cid, s in stats.items()}
        frequency = {cid: int(s["n"]) for cid, s in stats.items()}
        monetary = {cid: Decimal(s["money"].get(chosen, 0)) for cid, s in stats.items()}
        scores = rfm_scores(recency, frequency, monetary)
        rows = [
            RfmRow(cid, stats[cid]["last"], recency[cid], frequency[cid], monetary[cid], *score)
            for cid, score in scores.items()
        ]
        rows.sort(key=lambda row: (-(row.r + row.f + row.m), row.contact_id))
        return rows

    def _readable(self, ids: list[str], where: Expr | None) -> set[str]:
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            # ids only: an aggregate grouped by id reads no record
            for r in self._source.contacts.aggregate(
                _all(F.id.in_(chunk), where), group_by=["id"], metrics=[]
            ):
                out.add(r["id"])
        return out

    # --- tickets ------------------------------------------------------------------------

    def tickets_by_priority(
        self,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        where: Expr | None = None,
    ) -> list[PriorityRow]:
        """Tickets created in ``[since, until)`` by priority, with how many met and
        breached their first-response and resolution targets (three aggregates), in
        priority order (low, normal, high, urgent)."""
        base = _all(_range("created_at", since, until), where)
        totals = self._source.tickets.aggregate(
            base,
            group_by=["priority"],
            metrics=[
                Metric.count(name="n"),
                Metric.count("first_response_breached_at", name="frb"),
                Metric.count("resolution_breached_at", name="rb"),
            ],
        )
        met: dict[str, dict[str, int]] = {}
        for name, done, breach in (
            ("fr", "first_response_at", "first_response_breached_at"),
            ("res", "resolved_at", "resolution_breached_at"),
        ):
            for r in self._source.tickets.aggregate(
                _all(base, F(done).exists(), ~F(breach).exists()),
                group_by=["priority"],
                metrics=[Metric.count(name="n")],
            ):
                met.setdefault(r["priority"], {})[name] = r["n"]
        order = ["low", "normal", "high", "urgent"]
        rows = [
            PriorityRow(
                r["priority"],
                r["n"],
                met.get(r["priority"], {}).get("fr", 0),
                r["frb"],
                met.get(r["priority"], {}).get("res", 0),
                r["rb"],
            )
            for r in totals
        ]
        rows.sort(key=lambda row: order.index(row.priority) if row.priority in order else 99)
        return rows


def _later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _days(delta: dt.timedelta) -> int:
    return max(0, math.floor(delta / dt.timedelta(days=1)))
