"""Deal reports on a hand-computed dataset (weighted forecast, win rate, cycle, funnel)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import crmkit
from crmkit import Deal, Money, Pipeline, Stage
from crmkit.entities import StageKind

T0 = dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def build() -> tuple[crmkit.CRM, Clock, str]:
    clock = Clock()
    crm = crmkit.connect("memory://", clock=clock)
    pid = crm.pipelines.add(
        Pipeline(
            name="Sales",
            lost_reasons=["price"],
            stages=[
                Stage(key="qualify", name="Qualify", probability="0.2"),
                Stage(key="proposal", name="Proposal", probability="0.6"),
                Stage(key="won", name="Won", kind=StageKind.WON, probability=1),
                Stage(key="lost", name="Lost", kind=StageKind.LOST, probability=0),
            ],
        )
    ).id
    assert pid is not None
    return crm, clock, pid


def test_forecast_win_rate_cycle_and_funnel() -> None:
    crm, clock, pid = build()

    def add(name: str, owner: str, amount: str, currency: str, close: str) -> str:
        money = Money(amount=Decimal(amount), currency=currency)
        deal = crm.deals.add(
            Deal(name=name, pipeline_id=pid, owner_id=owner, amount=money, close_date=close)
        )
        return deal.id or ""

    a = add("a", "ann", "1000.00", "EUR", "2024-02-10")  # stays qualify: 200.000
    b = add("b", "ann", "250.50", "EUR", "2024-02-20")  # proposal: 150.300
    c = add("c", "bob", "4000", "EUR", "2024-03-01")  # proposal: 2400.0
    d = add("d", "bob", "99.99", "USD", "2024-02-01")  # qualify: 19.998
    e = add("e", "ann", "500", "EUR", "2024-01-15")  # won after 10 days
    f = add("f", "bob", "700", "EUR", "2024-01-20")  # proposal, won after 30 days
    g = add("g", "bob", "300", "EUR", "2024-01-25")  # lost
    for deal in (b, c, f):
        crm.deals.move(deal, "proposal")
    clock.now = T0 + 10 * DAY
    crm.deals.move(e, "won")
    crm.deals.move(g, "lost", reason="price")
    clock.now = T0 + 30 * DAY
    crm.deals.move(f, "won")
    assert a
    assert d

    by_month = [
        (r.currency, r.month, r.weighted, r.amount, r.deals)
        for r in crm.reports.forecast(by="month")
    ]
    assert by_month == [
        ("EUR", dt.date(2024, 2, 1), Decimal("350.300"), Decimal("1250.50"), 2),
        ("EUR", dt.date(2024, 3, 1), Decimal("2400.0"), Decimal("4000"), 1),
        ("USD", dt.date(2024, 2, 1), Decimal("19.998"), Decimal("99.99"), 1),
    ]
    by_owner = [(r.currency, r.owner_id, r.weighted) for r in crm.reports.forecast(by="owner")]
    assert by_owner == [
        ("EUR", "ann", Decimal("350.300")),
        ("EUR", "bob", Decimal("2400.0")),
        ("USD", "bob", Decimal("19.998")),
    ]
    both = [(r.currency, r.month, r.owner_id, r.deals) for r in crm.reports.forecast()]
    assert both == [
        ("EUR", dt.date(2024, 2, 1), "ann", 2),
        ("EUR", dt.date(2024, 3, 1), "bob", 1),
        ("USD", dt.date(2024, 2, 1), "bob", 1),
    ]

    rate = crm.reports.win_rate()
    assert (rate.won, rate.lost, rate.rate) == (2, 1, Decimal(2) / 3)
    early = crm.reports.win_rate(until=T0 + 20 * DAY)
    assert (early.won, early.lost) == (1, 1)

    cycle = crm.reports.sales_cycle()
    assert (cycle.average, cycle.deals) == (20 * DAY, 2)  # (10 + 30) / 2
    assert crm.reports.sales_cycle(since=T0 + 20 * DAY).average == 30 * DAY

    funnel = [(s.stage, s.entered, s.conversion) for s in crm.reports.funnel(pid)]
    assert funnel == [
        ("qualify", 7, Decimal(3) / 7),
        ("proposal", 3, Decimal(2) / 3),
        ("won", 2, None),
    ]
    late = [(s.stage, s.entered) for s in crm.reports.funnel(pid, since=T0 + DAY)]
    assert late == [("qualify", 0), ("proposal", 0), ("won", 2)]
