"""Pure logic of orders, survey responses and their report rows (no storage)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs
import pytest

from crmkit import Money, Order, OrderLine
from crmkit.commerce import ProductPair, bought, bought_but_not, no_order_within
from crmkit.entities import COUNTED_STATUSES, OrderStatus, SurveyKind, SurveyResponse
from crmkit.entities._fields import sensitivity_of
from crmkit.errors import ValidationError
from crmkit.query import Related, from_dict
from crmkit.satisfaction import CsatRow, NpsRow, nps_score

AT = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


def test_order_line_amount_and_required_price() -> None:
    line = OrderLine(sku="CAM", quantity=3, unit_price=eur("19.99"))
    assert line.amount == eur("59.97")
    with pytest.raises(ValidationError):
        OrderLine(sku="CAM")
    with pytest.raises(ValidationError):
        OrderLine(sku="CAM", quantity=0, unit_price=eur("1"))
    with pytest.raises(ValidationError):
        OrderLine(sku=" ", unit_price=eur("1"))


def test_order_total_lines_and_derived_fields() -> None:
    order = Order(
        external_id="S-1",
        placed_at=AT,
        lines=(
            OrderLine(sku="CAM", category="cameras", unit_price=eur("100")),
            OrderLine(sku="CAM", category="cameras", unit_price=eur("90")),
            OrderLine(sku="LENS", unit_price=eur("50")),
        ),
    )
    assert order.total == eur("240")
    assert order.currency == "EUR"
    assert order.skus == ("CAM", "LENS")
    assert order.categories == ("cameras",)
    assert order.counted
    # derived fields follow the lines, whatever was passed
    changed = attrs.evolve(order, lines=(OrderLine(sku="BAG", unit_price=eur("5")),), skus=("X",))
    assert changed.skus == ("BAG",)
    assert changed.total == eur("240")  # a given total stays
    with pytest.raises(ValidationError, match="currency"):
        Order(
            external_id="S-2",
            placed_at=AT,
            lines=(
                OrderLine(sku="A", unit_price=eur("1")),
                OrderLine(sku="B", unit_price=Money(amount=Decimal(1), currency="USD")),
            ),
        )
    with pytest.raises(ValidationError):
        Order(external_id="S-3", placed_at=AT, total=eur("1"), status="lost")


def test_counted_statuses_and_personal_fields() -> None:
    assert OrderStatus.REFUNDED not in COUNTED_STATUSES
    assert OrderStatus.CANCELLED not in COUNTED_STATUSES
    personal = {a.name for a in attrs.fields(Order) if sensitivity_of(a) == "personal"}
    assert personal == {"customer_name", "customer_email", "shipping_address"}
    survey = {a.name for a in attrs.fields(SurveyResponse) if sensitivity_of(a) == "personal"}
    assert survey == {"comment"}


def test_survey_response_score_ranges() -> None:
    assert SurveyResponse(kind=SurveyKind.CSAT, score=5, responded_at=AT).score == 5
    assert SurveyResponse(kind=SurveyKind.NPS, score=0, responded_at=AT).score == 0
    for kind, score in ((SurveyKind.CSAT, 0), (SurveyKind.CSAT, 6), (SurveyKind.NPS, 11)):
        with pytest.raises(ValidationError):
            SurveyResponse(kind=kind, score=score, responded_at=AT)


def test_report_rows_arithmetic() -> None:
    assert nps_score(0, 0, 0) is None
    assert nps_score(3, 1, 8) == Decimal(25)
    row = NpsRow(None, promoters=6, passives=2, detractors=2)
    assert (row.responses, row.nps) == (10, Decimal(40))
    csat = CsatRow("high", responses=4, total=17, satisfied=3)
    assert (csat.average, csat.csat) == (Decimal("4.25"), Decimal("0.75"))
    assert CsatRow(None, 0, 0, 0).csat is None
    pair = ProductPair("CAM", "LENS", count=2, count_a=3, count_b=4, orders=12)
    assert pair.lift == Decimal(2)
    assert pair.confidence == Decimal(2) / Decimal(3)


def test_purchase_filters_are_storable_related_filters() -> None:
    rule = bought_but_not("cameras", "lenses")
    assert from_dict(rule.to_dict()) == rule
    assert isinstance(bought(sku="CAM"), Related)
    winback = no_order_within(dt.timedelta(days=180)).to_dict()
    assert from_dict(winback) == no_order_within(dt.timedelta(days=180))
