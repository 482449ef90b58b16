"""Conformance tests of purchases and satisfaction: orders (idempotent upserts, refunds and
cancellations as status changes), customer value, RFM over orders, frequently bought
together, purchase filters in segments, the timeline, and CSAT/NPS reports. Mixed into
:class:`crmkit.testing.conformance.ConformanceSuite`, so every backend runs them through
its ``crm`` fixture.

The numbers are checked against small datasets computed by hand (see :func:`_shop`).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import attrs
import pytest

from crmkit import CRM, Account, Contact, Money, Order, OrderLine, Role, Segment, Ticket, User
from crmkit.commerce import bought, bought_but_not, no_order_within, spent_more_than
from crmkit.entities import OrderStatus, Priority, SurveyKind, SurveyResponse
from crmkit.entities.ticket import Channel
from crmkit.errors import NotFound, PermissionDenied, TransitionError, ValidationError
from crmkit.query import F
from crmkit.timeline import TimelineKind

__all__ = ["CommerceConformance"]

UTC = dt.UTC
DAY = dt.timedelta(days=1)


def _line(sku: str, category: str, quantity: int, price: int | str) -> OrderLine:
    return OrderLine(
        sku=sku,
        name=sku.title(),
        category=category,
        quantity=quantity,
        unit_price=Money(amount=Decimal(price), currency="EUR"),
    )


def _orders(ids: dict[str, str], as_of: dt.datetime) -> list[Order]:
    """The hand-computed dataset (EUR; ``days`` before ``as_of``):

    ======  =======  ====  ===============================  ======  =========
    order   contact  days  lines                            total   status
    ======  =======  ====  ===============================  ======  =========
    a1      A        10    CAM cameras 1x80, STRAP acc 1x20  100    paid
    a2      A        40    LENS lenses 1x50                    50    paid
    a3      A        70    BAG bags 1x30                       30    fulfilled
    b1      B        200   CAM 4x100, LENS 2x50               500    paid
    c1      C        30    BAG 2x15                            30    paid
    c2      C        50    STRAP accessories 1x30              30    paid
    c3      C        5     CAM 9x100, LENS 2x50              1000    refunded
    d1      D        400   LENS 1x70                           70    paid
    e1-e4   E (K)    1, 20, 60, 100  STRAP 1x10 each           10    paid
    p1      -  (P)   15    CAM 1x100, LENS 2x50               200    paid
    ======  =======  ====  ===============================  ======  =========

    Account K is a child of account P; E's orders name no account.
    """

    def order(ext: str, who: str | None, days: int, lines: list[OrderLine], **kw: Any) -> Order:
        return Order(
            external_id=ext,
            contact_id=None if who is None else ids[who],
            placed_at=as_of - days * DAY,
            lines=tuple(lines),
            customer_name=None if who is None else f"Customer {who}",
            customer_email=None if who is None else f"{who.lower()}@example.com",
            **kw,
        )

    strap = [_line("STRAP", "accessories", 1, 10)]
    return [
        order(
            "a1", "A", 10, [_line("CAM", "cameras", 1, 80), _line("STRAP", "accessories", 1, 20)]
        ),
        order("a2", "A", 40, [_line("LENS", "lenses", 1, 50)]),
        order("a3", "A", 70, [_line("BAG", "bags", 1, 30)], status="fulfilled"),
        order("b1", "B", 200, [_line("CAM", "cameras", 4, 100), _line("LENS", "lenses", 2, 50)]),
        order("c1", "C", 30, [_line("BAG", "bags", 2, 15)]),
        order("c2", "C", 50, [_line("STRAP", "accessories", 1, 30)]),
        order(
            "c3",
            "C",
            5,
            [_line("CAM", "cameras", 9, 100), _line("LENS", "lenses", 2, 50)],
            status="refunded",
        ),
        order("d1", "D", 400, [_line("LENS", "lenses", 1, 70)]),
        order("e1", "E", 1, strap),
        order("e2", "E", 20, strap),
        order("e3", "E", 60, strap),
        order("e4", "E", 100, strap),
        order(
            "p1",
            None,
            15,
            [_line("CAM", "cameras", 1, 100), _line("LENS", "lenses", 2, 50)],
            account_id=ids["P"],
        ),
    ]


def _shop(crm: CRM) -> tuple[dict[str, str], dt.datetime]:
    """Accounts P > K, contacts A-E (E in K) and the orders of :func:`_orders`."""
    as_of = crm.now()
    parent = crm.accounts.add(Account(name="Parent"))
    child = crm.accounts.add(Account(name="Kid", parent_id=parent.id))
    ids = {"P": parent.id or "", "K": child.id or ""}
    for name in "ABCDE":
        c = crm.contacts.add(Contact(first_name=name, account_id=child.id if name == "E" else None))
        ids[name] = c.id or ""
    crm.orders.upsert_many(_orders(ids, as_of))
    return ids, as_of


class CommerceConformance:
    """Orders, customer value, RFM, cross-sell, purchase filters and satisfaction reports."""

    # --- orders ---------------------------------------------------------------------------

    def test_commerce_order_derives_total_skus_and_categories(self) -> None:
        order = Order(
            external_id="x1",
            placed_at=dt.datetime(2024, 1, 1, tzinfo=UTC),
            lines=(_line("CAM", "cameras", 2, "9.5"), _line("BAG", "bags", 1, 1)),
        )
        assert order.total == Money(amount=Decimal("20.0"), currency="EUR")
        assert order.skus == ("CAM", "BAG")
        assert order.categories == ("cameras", "bags")
        with pytest.raises(ValidationError):
            Order(external_id="x2", placed_at=dt.datetime(2024, 1, 1, tzinfo=UTC))
        with pytest.raises(ValidationError):
            Order(
                external_id="x3",
                placed_at=dt.datetime(2024, 1, 1, tzinfo=UTC),
                total=Money(amount=Decimal(1), currency="USD"),
                lines=(_line("CAM", "cameras", 1, 1),),
            )

    def test_commerce_reimporting_orders_is_idempotent(self, crm: CRM) -> None:
        ids, as_of = _shop(crm)
        before = {o.external_id: o for o in crm.orders.find()}
        assert len(before) == 13
        again = crm.orders.upsert_many(_orders(ids, as_of))
        assert [o.version for o in again] == [1] * 13
        assert {o.external_id: o for o in crm.orders.find()} == before
        # a changed feed updates in place; the same change again writes nothing
        changed = [
            o if o.external_id != "a2" else Order(**{**_fields(o), "status": "refunded"})
            for o in _orders(ids, as_of)
        ]
        first = {o.external_id: o for o in crm.orders.upsert_many(changed)}
        assert first["a2"].version == 2
        assert first["a2"].status is OrderStatus.REFUNDED
        assert first["a2"].refunded_at is not None
        assert first["a1"].version == 1
        second = {o.external_id: o for o in crm.orders.upsert_many(changed)}
        assert second["a2"] == crm.orders.get(first["a2"].id or "")
        assert second["a2"].version == 2
        assert crm.orders.count() == 13

    def test_commerce_upsert_keeps_crm_links_and_is_all_or_nothing(self, crm: CRM) -> None:
        ids, as_of = _shop(crm)
        bare = Order(
            external_id="a1",
            placed_at=as_of - 10 * DAY,
            total=Money(amount=Decimal(1), currency="EUR"),
        )
        updated = crm.orders.upsert(bare)
        assert updated.contact_id == ids["A"]
        assert updated.version == 2
        assert crm.orders.by_external_id("a1") == updated
        assert crm.orders.by_external_id("nope") is None
        with pytest.raises(ValidationError):
            crm.orders.upsert_many(
                [
                    Order(
                        external_id="n1",
                        placed_at=as_of,
                        total=Money(amount=Decimal(1), currency="EUR"),
                    ),
                    {
                        "external_id": "n2",
                        "placed_at": as_of,
                        "total": {"amount": 1, "currency": "XXY"},
                    },
                ]
            )
        with pytest.raises(ValidationError):
            crm.orders.upsert_many(
                [
                    Order(
                        external_id="n1",
                        placed_at=as_of,
                        total=Money(amount=Decimal(1), currency="EUR"),
                    ),
                    Order(
                        external_id="n1",
                        placed_at=as_of,
                        total=Money(amount=Decimal(2), currency="EUR"),
                    ),
                ]
            )
        assert crm.orders.by_external_id("n1") is None
        assert crm.orders.count() == 13

    def test_commerce_refund_and_cancel_are_status_changes(self, crm: CRM) -> None:
        ids, as_of = _shop(crm)
        a2 = crm.orders.by_external_id("a2")
        assert a2 is not None
        refunded = crm.orders.refund(a2.id or "", reason="damaged")
        assert refunded.status is OrderStatus.REFUNDED
        assert refunded.refunded_at is not None
        assert refunded.status_reason == "damaged"
        assert refunded.total == a2.total
        assert crm.orders.refund(a2.id or "") == refunded  # already refunded: unchanged
        with pytest.raises(TransitionError):
            crm.orders.cancel(a2.id or "")
        a3 = crm.orders.by_external_id("a3")
        assert a3 is not None
        cancelled = crm.orders.cancel(a3.id or "")
        assert cancelled.status is OrderStatus.CANCELLED
        assert cancelled.cancelled_at is not None
        value = crm.orders.value(contact_id=ids["A"], as_of=as_of)
        assert value.orders == 1
        assert value.lifetime_value == Decimal(100)
        assert crm.orders.count() == 13  # nothing deleted
        with pytest.raises(NotFound):
            crm.orders.refund("missing")

    # --- customer value -------------------------------------------------------------------

    def test_commerce_customer_value_of_a_contact(self, crm: CRM) -> None:
        ids, as_of = _shop(crm)
        v = crm.orders.value(contact_id=ids["A"], as_of=as_of)
        assert (v.currency, v.orders, v.lifetime_value) == ("EUR", 3, Decimal(180))
        assert v.average_order_value == Decimal(60)
        assert v.first_order_at == as_of - 70 * DAY
        assert v.last_order_at == as_of - 10 * DAY
        assert v.days_since_last_order == 10
        assert v.purchase_frequency == Decimal(3 * 365) / Decimal(70)
        c = crm.orders.value(contact_id=ids["C"], as_of=as_of)  # the refund does not count
        assert (c.orders, c.lifetime_value, c.days_since_last_order) == (2, Decimal(60), 30)
        empty = crm.orders.value(contact_id=ids["A"], as_of=as_of - 100 * DAY)
        assert (empty.orders, empty.lifetime_value, empty.average_order_value) == (
            0,
            Decimal(0),
            None,
        )
        with pytest.raises(NotFound):
            crm.orders.value(contact_id="missing")
        with pytest.raises(ValidationError):
            crm.orders.value(contact_id=ids["A"], account_id=ids["P"])

    def test_commerce_customer_value_rolls_up_the_account_hierarchy(self, crm: CRM) -> None:
        ids, as_of = _shop(crm)
        parent = crm.orders.value(account_id=ids["P"], as_of=as_of)
        assert (parent.orders, parent.lifetime_value) == (5, Decimal(240))
        assert parent.average_order_value == Decimal(48)
        assert parent.days_since_last_order == 1
        assert parent.purchase_frequency == Decimal(5 * 365) / Decimal(100)
        child = crm.orders.value(account_id=ids["K"], as_of=as_of)
        assert (child.orders, child.lifetime_value) == (4, Decimal(40))

    def test_commerce_customer_value_needs_a_currency_when_several(self, crm: CRM) -> None:
        ids, as_of = _shop(crm)
        crm.orders.upsert(
            Order(
                external_id="usd",
                contact_id=ids["A"],
                placed_at=as_of - DAY,
                total=Money(amount=Decimal(7), currency="USD"),
            )
        )
        with pytest.raises(ValidationError):
            crm.orders.value(contact_id=ids["A"], as_of=as_of)
        usd = crm.orders.value(contact_id=ids["A"], currency="usd", as_of=as_of)
        assert (usd.currency, usd.orders, usd.lifetime_value) == ("USD", 1, Decimal(7))

    def test_commerce_rfm_scores_by_quintile(self, crm: CRM) -> None:
        ids, as_of = _shop(crm)
        rows = crm.orders.rfm(as_of=as_of)
        by_name = {name: ids[name] for name in "ABCDE"}
        got = {
            name: (r.recency_days, r.frequency, r.monetary, r.r, r.f, r.m)
            for name, cid in by_name.items()
            for r in rows
            if r.customer_id == cid
        }
        assert got == {
            "A": (10, 3, Decimal(180), 4, 4, 4),
            "B": (200, 1, Decimal(500), 2, 1, 5),
            "C": (30, 2, Decimal(60), 3, 3, 2),
            "D": (400, 1, Decimal(70), 1, 1, 3),
            "E": (1, 4, Decimal(40), 5, 5, 1),
        }
        assert [r.customer_id for r in rows[:2]] == [ids["A"], ids["E"]]
        assert rows[0].score == "444"
        accounts = crm.orders.rfm(per="account", as_of=as_of)
        assert [(r.customer_id, r.frequency, r.monetary) for r in accounts] == [
            (ids["P"], 1, Decimal(200))
        ]

    # --- cross-sell -----------------------------------------------------------------------

    def test_commerce_frequently_bought_together(self, crm: CRM) -> None:
        _shop(crm)
        pairs = crm.orders.bought_together(min_count=2)
        assert [(p.a, p.b, p.count, p.count_a, p.count_b, p.orders) for p in pairs] == [
            ("CAM", "LENS", 2, 3, 4, 12)
        ]
        assert pairs[0].lift == Decimal(2)
        assert pairs[0].confidence == Decimal(2) / Decimal(3)
        assert pairs[0].support == Decimal(2) / Decimal(12)
        every = crm.orders.bought_together(min_count=1)
        assert [(p.a, p.b, p.count) for p in every] == [("CAM", "LENS", 2), ("CAM", "STRAP", 1)]
        assert every[1].lift == Decimal(12) / Decimal(18)
        categories = crm.orders.bought_together(level="category", min_count=1)
        assert [(p.a, p.b, p.count) for p in categories] == [
            ("cameras", "lenses", 2),
            ("accessories", "cameras", 1),
        ]
        with pytest.raises(ValidationError):
            crm.orders.bought_together(level="brand")  # type: ignore[arg-type]

    # --- purchase filters -----------------------------------------------------------------

    def test_commerce_purchase_filters_in_queries_and_segments(self, crm: CRM) -> None:
        ids, as_of = _shop(crm)

        def names(expr: Any) -> set[str]:
            found = {c.id for c in crm.contacts.find(expr)}
            return {n for n in "ABCDE" if ids[n] in found}

        assert names(bought(category="cameras")) == {"A", "B"}  # C's camera was refunded
        assert names(bought_but_not("lenses", "cameras")) == {"D"}
        assert names(bought_but_not("accessories", "cameras")) == {"C", "E"}
        assert names(no_order_within(dt.timedelta(days=180))) == {"B", "D"}
        assert names(bought(sku="LENS", within=dt.timedelta(days=100))) == {"A"}
        assert names(spent_more_than(100, "EUR", as_of=as_of)) == {"A", "B"}
        assert names(spent_more_than(100, "EUR", as_of=as_of, within=100 * DAY)) == {"A"}
        accounts = spent_more_than(100, "EUR", as_of=as_of)
        assert [a.id for a in crm.accounts.find(accounts)] == [ids["P"]]
        assert [a.id for a in crm.accounts.find(bought(category="lenses"))] == [ids["P"]]
        # a live rule: a stored segment follows orders added or refunded after it was made
        spenders = crm.segments.add(
            Segment(name="spenders", rule=spent_more_than(100, "EUR").to_dict())
        )

        def spending() -> set[str]:
            found = {c.id for c in crm.segments.iterate_members(spenders.id or "")}
            return {n for n in "ABCDE" if ids[n] in found}

        assert spending() == {"A", "B"}
        crm.orders.upsert(
            Order(
                external_id="e5",
                contact_id=ids["E"],
                placed_at=crm.now() - DAY,
                lines=(_line("CAM", "cameras", 1, 70),),
            )
        )
        assert spending() == {"A", "B", "E"}  # E: 4 x 10 + 70 = 110
        a1 = crm.orders.first(F.external_id == "a1")
        assert a1 is not None
        crm.orders.refund(a1.id or "", reason="returned")
        assert spending() == {"B", "E"}  # A: 50 + 30 = 80
        assert names(spent_more_than(110, "EUR")) == {"B"}  # more than, not equal
        assert names(spent_more_than(0, "USD")) == set()  # no order in USD
        assert names(~spent_more_than(100, "EUR")) == {"A", "C", "D"}
        winback = crm.segments.add(
            Segment(name="win-back", rule=no_order_within(dt.timedelta(days=180)).to_dict())
        )
        members = {c.id for c in crm.segments.iterate_members(winback.id or "")}
        assert members == {ids["B"], ids["D"]}

    # --- timeline and permissions ---------------------------------------------------------

    def test_commerce_orders_in_the_timeline(self, crm: CRM) -> None:
        ids, _ = _shop(crm)
        items = [i for i in crm.timeline(ids["A"]).items if i.kind is TimelineKind.ORDER]
        assert [i.record.external_id for i in items] == ["a1", "a2", "a3"]  # type: ignore[attr-defined]
        account = crm.timeline(account_id=ids["P"], limit=100)
        got = sorted(
            i.record.external_id  # type: ignore[attr-defined]
            for i in account.items
            if i.kind is TimelineKind.ORDER
        )
        assert got == ["e1", "e2", "e3", "e4", "p1"]

    def test_commerce_orders_follow_owner_permissions(self, crm: CRM) -> None:
        ids, as_of = _shop(crm)
        role = crm.roles.add(
            Role(
                name="shop",
                permissions={
                    "orders": {"read": "own", "update": "own", "create": "own"},
                    "contacts": {"read": "all"},
                },
            )
        )
        user = crm.users.add(User(name="Uma", role_ids=(role.id or "",)))
        for ext in ("a1", "a2"):
            o = crm.orders.by_external_id(ext)
            assert o is not None
            crm.orders.update(Order(**{**_fields(o), "owner_id": user.id}))
        view = crm.as_user(user)
        v = view.orders.value(contact_id=ids["A"], as_of=as_of)
        assert (v.orders, v.lifetime_value) == (2, Decimal(150))
        assert {o.external_id for o in view.orders.find()} == {"a1", "a2"}
        assert view.orders.by_external_id("b1") is None
        a2 = view.orders.by_external_id("a2")
        assert a2 is not None
        assert view.orders.refund(a2.id or "").status is OrderStatus.REFUNDED
        b1 = next(o for o in _orders(ids, as_of) if o.external_id == "b1")
        with pytest.raises((PermissionDenied, NotFound)):
            view.orders.upsert(attrs.evolve(b1, owner_id=user.id, status_reason="mine now"))
        assert crm.orders.count(F.external_id == "b1") == 1
        mine = view.orders.upsert(
            Order(
                external_id="u1",
                placed_at=as_of,
                total=Money(amount=Decimal(5), currency="EUR"),
                owner_id=user.id,
            )
        )
        assert view.orders.upsert(mine) == mine

    # --- satisfaction ---------------------------------------------------------------------

    def test_survey_responses_validate_scores(self, crm: CRM) -> None:
        at = crm.now()
        for kind, score in (
            (SurveyKind.CSAT, 0),
            (SurveyKind.CSAT, 6),
            (SurveyKind.NPS, 11),
            (SurveyKind.NPS, -1),
            (SurveyKind.NPS, None),
        ):
            with pytest.raises(ValidationError):
                crm.survey_responses.add(SurveyResponse(kind=kind, score=score, responded_at=at))
        assert crm.survey_responses.count() == 0

    def test_survey_csat_by_ticket_priority_assignee_and_channel(self, crm: CRM) -> None:
        at = crm.now()
        t1 = crm.tickets.add(
            Ticket(subject="1", priority=Priority.HIGH, assignee_id="u1", channel=Channel.EMAIL)
        )
        t2 = crm.tickets.add(
            Ticket(subject="2", priority=Priority.LOW, assignee_id="u2", channel=Channel.PHONE)
        )
        t3 = crm.tickets.add(
            Ticket(subject="3", priority=Priority.HIGH, assignee_id="u2", channel=Channel.CHAT)
        )
        scores = [(t1, 5), (t1, 4), (t2, 2), (t3, 3), (t3, 5), (None, 1)]
        crm.survey_responses.add_many(
            SurveyResponse(
                kind=SurveyKind.CSAT,
                score=s,
                ticket_id=None if t is None else t.id,
                responded_at=at,
            )
            for t, s in scores
        )

        def table(by: Any) -> list[tuple[Any, int, int, int]]:
            return [
                (r.key, r.responses, r.total, r.satisfied) for r in crm.satisfaction.csat(by=by)
            ]

        assert table(None) == [(None, 6, 20, 3)]
        overall = crm.satisfaction.csat()[0]
        assert overall.csat == Decimal("0.5")
        assert overall.average == Decimal(20) / Decimal(6)
        assert table("priority") == [("high", 4, 17, 3), ("low", 1, 2, 0)]
        assert table("assignee") == [("u1", 2, 9, 2), ("u2", 3, 10, 1)]
        assert table("channel") == [("chat", 2, 8, 1), ("email", 2, 9, 2), ("phone", 1, 2, 0)]
        assert crm.satisfaction.csat(since=at + DAY) == [crm.satisfaction.csat(since=at + DAY)[0]]
        assert crm.satisfaction.csat(since=at + DAY)[0].responses == 0

    def test_survey_nps_over_time(self, crm: CRM) -> None:
        jan = dt.datetime(2024, 1, 15, tzinfo=UTC)
        feb = dt.datetime(2024, 2, 3, tzinfo=UTC)
        crm.survey_responses.add_many(
            [SurveyResponse(kind=SurveyKind.NPS, score=s, responded_at=jan) for s in (10, 9, 8, 3)]
            + [SurveyResponse(kind=SurveyKind.NPS, score=s, responded_at=feb) for s in (6, 5, 10)]
            + [SurveyResponse(kind=SurveyKind.CSAT, score=5, responded_at=feb)]
        )
        trend = crm.satisfaction.nps(period="month")
        assert [(r.period, r.promoters, r.passives, r.detractors) for r in trend] == [
            (dt.date(2024, 1, 1), 2, 1, 1),
            (dt.date(2024, 2, 1), 1, 0, 2),
        ]
        assert trend[0].nps == Decimal(25)
        assert trend[1].nps == Decimal(-100) / Decimal(3)
        overall = crm.satisfaction.nps()
        assert [(r.period, r.responses, r.nps) for r in overall] == [(None, 7, Decimal(0))]
        assert crm.satisfaction.nps(since=feb)[0].responses == 3


def _fields(order: Order) -> dict[str, Any]:
    return {a.name: getattr(order, a.name) for a in attrs.fields(Order)}
