"""Deal reports, computed by the database (``Repository.aggregate``) on every backend.

``crm.reports`` (or ``crm.as_user(u).reports``, which sees only the user's deals):

- :meth:`DealReports.forecast` - the weighted pipeline: the sum of ``amount x probability``
  (each deal's ``expected_revenue``) of open deals by close month and/or owner, per currency;
- :meth:`DealReports.win_rate` - won / (won + lost) among deals closed in a period;
- :meth:`DealReports.sales_cycle` - the average time from creation to winning;
- :meth:`DealReports.funnel` - how many deals entered each stage of a pipeline in a period
  and the conversion from each stage to the next, from the stage history.

Only deals governed by a stored pipeline carry the fields these use (see
:mod:`crmkit.pipelines`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal, Protocol

import attrs

from crmkit.aggregation import Group, Metric
from crmkit.entities import Pipeline, PipelineKind, StageKind
from crmkit.errors import ValidationError
from crmkit.query import And, Expr, F, Or

__all__ = ["DealReports", "ForecastRow", "FunnelStep", "SalesCycle", "WinRate"]


class _Source(Protocol):
    """A CRM or a user's view of one."""

    @property
    def deals(self) -> Any: ...

    @property
    def pipelines(self) -> Any: ...

    @property
    def stage_changes(self) -> Any: ...


@attrs.frozen
class ForecastRow:
    """One line of the weighted forecast: ``weighted`` is the sum of amount x probability,
    ``amount`` the unweighted sum, ``deals`` how many open deals; ``month`` (first day of
    the close month) and ``owner_id`` are ``None`` when not grouped by them or not set."""

    currency: str | None
    month: dt.date | None
    owner_id: str | None
    weighted: Decimal
    amount: Decimal
    deals: int


@attrs.frozen
class WinRate:
    """Deals won and lost in a period; ``rate`` is ``won / (won + lost)`` (``None``: none
    closed)."""

    won: int
    lost: int

    @property
    def rate(self) -> Decimal | None:
        """The share of closed deals that were won."""
        total = self.won + self.lost
        return None if total == 0 else Decimal(self.won) / Decimal(total)


@attrs.frozen
class SalesCycle:
    """The average time from creation to winning (``None`` when no deal was won)."""

    average: dt.timedelta | None
    deals: int


@attrs.frozen
class FunnelStep:
    """A stage of the funnel: ``entered`` is how many times deals entered it in the period,
    ``conversion`` the entries of the next stage divided by these (``None`` for the last
    stage or when nothing entered)."""

    stage: str
    entered: int
    conversion: Decimal | None


def _period(field: str, since: dt.datetime | None, until: dt.datetime | None) -> Expr | None:
    parts: list[Expr] = []
    if since is not None:
        parts.append(F(field) >= since)
    if until is not None:
        parts.append(F(field) < until)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _all(*parts: Expr | None) -> Expr | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else And(tuple(present))


class DealReports:
    """Deal reports over a CRM or a user's view (every number comes from the database)."""

    def __init__(self, source: _Source) -> None:
        self._source = source

    def _pipelines(self, pipeline_id: str | None) -> list[Pipeline]:
        if pipeline_id is not None:
            return [self._source.pipelines.get(pipeline_id)]
        found: list[Pipeline] = self._source.pipelines.find(F.kind == PipelineKind.DEALS.value)
        return found

    def _closed_as(self, pipelines: Sequence[Pipeline], kind: StageKind) -> Expr | None:
        parts: list[Expr] = []
        for p in pipelines:
            keys = [s.key for s in p.stages if s.kind is kind]
            if keys:
                parts.append((F.pipeline_id == (p.id or "")) & F.stage.in_(keys))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def forecast(
        self,
        *,
        by: Literal["month", "owner"] | Sequence[Literal["month", "owner"]] = ("month", "owner"),
        pipeline_id: str | None = None,
        where: Expr | None = None,
    ) -> list[ForecastRow]:
        """The weighted forecast of open deals, per currency and by close month and/or owner.

        Raises ``ValidationError`` for an unknown grouping.
        """
        keys = [by] if isinstance(by, str) else list(by)
        groups: list[Group] = [Group("expected_revenue.currency", name="currency")]
        for key in keys:
            if key == "month":
                groups.append(Group("close_date", "month", "month"))
            elif key == "owner":
                groups.append(Group("owner_id", name="owner_id"))
            else:
                raise ValidationError("by", key, "is not 'month' or 'owner'")
        cond = _all(
            F.expected_revenue.exists(),
            ~F.closed_at.exists(),
            None if pipeline_id is None else F.pipeline_id == pipeline_id,
            where,
        )
        rows = self._source.deals.aggregate(
            cond,
            group_by=groups,
            metrics=[
                Metric.sum("expected_revenue.amount", name="weighted"),
                Metric.sum("amount.amount", name="amount"),
                Metric.count(name="deals"),
            ],
        )
        return [
            ForecastRow(
                currency=r["currency"],
                month=r.get("month"),
                owner_id=r.get("owner_id"),
                weighted=r["weighted"],
                amount=r["amount"],
                deals=r["deals"],
            )
            for r in rows
        ]

    def _count(self, cond: Expr | None) -> int:
        if cond is None:
            return 0
        rows = self._source.deals.aggregate(cond, metrics=[Metric.count(name="n")])
        return int(rows[0]["n"]) if rows else 0

    def win_rate(
        self,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        pipeline_id: str | None = None,
        where: Expr | None = None,
    ) -> WinRate:
        """Deals won and lost among those closed in ``[since, until)``."""
        pipelines = self._pipelines(pipeline_id)
        period = _period("closed_at", since, until)
        won = self._closed_as(pipelines, StageKind.WON)
        lost = self._closed_as(pipelines, StageKind.LOST)
        return WinRate(
            won=self._count(None if won is None else _all(won, period, where)),
            lost=self._count(None if lost is None else _all(lost, period, where)),
        )

    def sales_cycle(
        self,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        pipeline_id: str | None = None,
        where: Expr | None = None,
    ) -> SalesCycle:
        """The average ``cycle_time`` (creation to close) of deals won in ``[since, until)``."""
        won = self._closed_as(self._pipelines(pipeline_id), StageKind.WON)
        if won is None:
            return SalesCycle(None, 0)
        rows = self._source.deals.aggregate(
            _all(won, _period("closed_at", since, until), F.cycle_time.exists(), where),
            metrics=[Metric.avg("cycle_time", name="avg"), Metric.count(name="n")],
        )
        if not rows:
            return SalesCycle(None, 0)
        average: Any = rows[0]["avg"]
        return SalesCycle(average, int(rows[0]["n"]))

    def funnel(
        self,
        pipeline_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[FunnelStep]:
        """Entries into each stage of ``pipeline_id`` in ``[since, until)`` (lost stages
        left out) and the conversion from each stage to the next, in pipeline order."""
        pipeline = self._source.pipelines.get(pipeline_id)
        rows = self._source.stage_changes.aggregate(
            _all(
                F.record_collection == "deals",
                F.pipeline_id == pipeline_id,
                _period("at", since, until),
            ),
            group_by=["to_stage"],
            metrics=[Metric.count(name="n")],
        )
        entered = {r["to_stage"]: int(r["n"]) for r in rows}
        stages = [s.key for s in pipeline.stages if s.kind is not StageKind.LOST]
        out: list[FunnelStep] = []
        for i, key in enumerate(stages):
            n = entered.get(key, 0)
            conversion = None
            if i + 1 < len(stages) and n:
                conversion = Decimal(entered.get(stages[i + 1], 0)) / Decimal(n)
            out.append(FunnelStep(key, n, conversion))
        return out
