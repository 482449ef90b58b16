"""Purchases: orders from a shop or ERP, customer value, RFM and cross-sell.

``crm.orders`` is the repository of :class:`~crmkit.entities.Order` records with verbs of
its own (also on a user's view, ``crm.as_user(u).orders``, where they read and write only
what the user may):

- :meth:`OrderOperations.upsert` / :meth:`OrderOperations.upsert_many` store orders by
  their ``external_id`` (the shop's order id): a new id adds the order, a known one
  updates it, and the same data again changes nothing (no new version, no event), so
  re-importing a feed is idempotent. Orders missing from a feed are never deleted;
- :meth:`OrderOperations.cancel` and :meth:`OrderOperations.refund` are status changes
  (``cancelled_at`` / ``refunded_at`` set): the order, its lines and amounts stay stored,
  and only stop counting as a purchase (:data:`~crmkit.entities.COUNTED_STATUSES`);
- :meth:`OrderOperations.value` - historic lifetime value, order count, average order
  value, purchase frequency and days since the last order of a contact, or of an account
  with its child accounts (every level) and their contacts;
- :meth:`OrderOperations.rfm` - recency, frequency and monetary value per contact (or
  account) over orders, each scored 1-5 by quintile (:func:`crmkit.analytics.quintile_scores`,
  the same method as :meth:`crmkit.analytics.Analytics.rfm` over interactions and deals);
- :meth:`OrderOperations.bought_together` - product (or category) pairs bought in the same
  order: pair counts, support, confidence and lift, for cross-selling.

Every figure is computed by the database (``Repository.aggregate``: one aggregate per
report, grouped by customer, or one per frequent product for pairs); only the final
scoring and ratios are done in Python.

Purchase filters for segments and campaigns, usable on every backend (see
:data:`crmkit.query.RELATIONS`: contacts and accounts have an ``orders`` relation):
:func:`bought`, :func:`bought_but_not`, :func:`no_order_within` and :func:`spent_more_than`
(a related aggregate: ``F.related("orders", ...).sum("total.amount") > amount``). All are
live rules: evaluated each time they are used, so a stored segment follows new orders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal, cast

import attrs

from crmkit.aggregation import Group, Metric
from crmkit.analytics import rfm_scores
from crmkit.entities import COUNTED_STATUSES, Money, Order, OrderStatus
from crmkit.errors import TransitionError, ValidationError
from crmkit.permissions import ScopedRepository
from crmkit.query import And, Expr, F
from crmkit.repository import Repository, Verbs

__all__ = [
    "CustomerValue",
    "OrderOperations",
    "OrderRepository",
    "OrderRfm",
    "ProductPair",
    "ScopedOrderRepository",
    "account_tree",
    "bought",
    "bought_but_not",
    "counted",
    "no_order_within",
    "spent_more_than",
]

#: Fields the CRM may have set on a stored order that a shop's feed does not know: an
#: upsert without them keeps the stored values.
_KEPT = ("contact_id", "account_id", "owner_id", "team_id")
_STORAGE = ("id", "version", "created_at", "updated_at")
_CHUNK = 500


def counted() -> Expr:
    """The filter of orders that count as purchases (not cancelled or refunded)."""
    return F.status.in_([s.value for s in COUNTED_STATUSES])


def _all(*parts: Expr | None) -> Expr | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else And(tuple(present))


def _range(field: str, since: dt.datetime | None, until: dt.datetime | None) -> Expr | None:
    return _all(
        None if since is None else F(field) >= since,
        None if until is None else F(field) < until,
    )


def _currency_code(code: str) -> str:
    """``code`` checked and normalized as an ISO 4217 currency (``ValidationError``)."""
    return Money(amount=Decimal(0), currency=code).currency


def _days(delta: dt.timedelta) -> int:
    return max(0, delta.days)


# --- segment filters ----------------------------------------------------------------------


def bought(
    *,
    category: str | None = None,
    sku: str | None = None,
    within: dt.timedelta | None = None,
) -> Expr:
    """Contacts (or accounts) with a counted order holding a product of ``category`` (or
    product ``sku``; neither: any order), placed within the last ``within`` if given.

    A relative filter: stored in a segment, "the last 90 days" moves with the clock.

    >>> bought(category="books").to_dict()["related"]
    'orders'
    """
    inner: Expr = counted()
    if category is not None:
        inner = inner & F.categories.contains(category)
    if sku is not None:
        inner = inner & F.skus.contains(sku)
    if within is not None:
        inner = inner & F.placed_at.within_last(within)
    return F.related("orders", inner)


def bought_but_not(category: str, never: str) -> Expr:
    """Bought a product in category ``category`` but never one in category ``never``
    (cross-sell: "bought a camera, never a lens")."""
    return bought(category=category) & ~bought(category=never)


def no_order_within(period: dt.timedelta = dt.timedelta(days=180)) -> Expr:
    """Customers to win back: at least one counted order, but none in the last ``period``
    (default 180 days). A relative filter, evaluated at query time."""
    return bought() & ~bought(within=period)


def spent_more_than(
    amount: Decimal | int | str,
    currency: str,
    *,
    within: dt.timedelta = dt.timedelta(days=365),
    as_of: dt.datetime | None = None,
) -> Expr:
    """Contacts (or accounts: both have an ``orders`` relation) whose counted orders in
    ``currency`` placed within ``within`` (default: the last 12 months) before ``as_of``
    add up to more than ``amount``.

    A live rule, evaluated by the database each time it is used (on every backend):
    ``F.related("orders", ...).sum("total.amount") > amount``. Without ``as_of`` the period
    is relative (``placed_at.within_last(within)``): stored in a segment, "the last 12
    months" moves with the clock, and a new, cancelled or refunded order changes the
    members at once. An explicit ``as_of`` fixes the period to ``[as_of - within, as_of)``.
    Through a user's view the rule sums only the orders the user may read.
    Raises ``ValidationError`` for a bad amount, currency or period.

    >>> rule = spent_more_than(1000, "EUR")
    >>> rule.aggregate.op, rule.aggregate.value
    ('sum', Decimal('1000'))
    """
    limit = Money(amount=cast(Any, amount), currency=currency)
    if not isinstance(within, dt.timedelta) or within < dt.timedelta(0):
        raise ValidationError("within", within, "must be a positive timedelta")
    period = (
        F.placed_at.within_last(within)
        if as_of is None
        else _range("placed_at", as_of - within, as_of)
    )
    orders = _all(counted(), F.total.currency == limit.currency, period)
    return F.related("orders", orders).sum("total.amount") > limit.amount


# --- results ------------------------------------------------------------------------------


@attrs.frozen
class CustomerValue:
    """What a contact or an account has bought, from its counted orders in one currency.

    ``lifetime_value`` is the sum of their totals (historic, not predicted);
    ``average_order_value`` is ``lifetime_value / orders``; ``purchase_frequency`` is
    orders per year: ``orders x 365 / days`` from the first order to ``as_of`` (at least
    one day); ``days_since_last_order`` is whole days from the last order to ``as_of``.
    Averages and dates are ``None`` without orders.
    """

    currency: str | None
    orders: int
    lifetime_value: Decimal
    average_order_value: Decimal | None
    first_order_at: dt.datetime | None
    last_order_at: dt.datetime | None
    days_since_last_order: int | None
    purchase_frequency: Decimal | None


@attrs.frozen
class OrderRfm:
    """A customer's (contact's or account's) RFM values over counted orders and their 1-5
    scores (5 is best: most recent, most frequent, highest spend).

    ``recency_days`` is whole days from the last order to the report's ``as_of``,
    ``frequency`` the number of orders and ``monetary`` the sum of their totals in the
    report's currency.
    """

    customer_id: str
    last_order_at: dt.datetime
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
class ProductPair:
    """Two products (or categories) bought in the same order.

    ``count`` orders hold both; ``count_a`` / ``count_b`` hold each; ``orders`` is the
    number of orders considered. ``support`` is ``count / orders``, ``confidence`` the
    share of orders with ``a`` that also hold ``b`` (``count / count_a``) and ``lift`` how
    much more often they come together than if independent:
    ``count x orders / (count_a x count_b)``.
    """

    a: str
    b: str
    count: int
    count_a: int
    count_b: int
    orders: int

    @property
    def support(self) -> Decimal:
        """Share of all orders that hold both."""
        return Decimal(self.count) / Decimal(self.orders)

    @property
    def confidence(self) -> Decimal:
        """Share of orders with ``a`` that also hold ``b``."""
        return Decimal(self.count) / Decimal(self.count_a)

    @property
    def lift(self) -> Decimal:
        """``support / (P(a) x P(b))``: above 1, bought together more than by chance."""
        return Decimal(self.count * self.orders) / Decimal(self.count_a * self.count_b)


# --- the verbs ----------------------------------------------------------------------------


class OrderOperations(Verbs[Order]):
    """The order verbs of ``crm.orders`` and of a user's view of it."""

    def _orders(self) -> Any:
        return self._source().orders

    def _now(self) -> dt.datetime:
        return self._operations_crm().now()

    # --- writes ---------------------------------------------------------------------------

    def by_external_id(self, external_id: str) -> Order | None:
        """The order with ``external_id`` (``None`` when there is none)."""
        found = self.find(F.external_id == external_id, limit=2)
        if len(found) > 1:
            raise ValidationError("external_id", external_id, "matches several orders")
        return found[0] if found else None

    def upsert(self, order: Order | Mapping[str, Any]) -> Order:
        """Add ``order``, or update the stored order with the same ``external_id``.

        An update replaces the stored fields with the given ones, except that ``contact_id``,
        ``account_id``, ``owner_id`` and ``team_id`` keep their stored values when not given,
        and ``cancelled_at`` / ``refunded_at`` keep theirs while the status stays (a status
        of cancelled or refunded without a time gets the current time). When nothing
        changes, nothing is written and the stored order is returned as it is.
        Raises ``ValidationError`` for bad input; through a user's view, an order with the
        same ``external_id`` outside the user's scope is refused (``PermissionDenied`` or
        ``NotFound``), never stored twice.
        """
        return self.upsert_many([order])[0]

    def upsert_many(self, orders: Iterable[Order | Mapping[str, Any]]) -> list[Order]:
        """:meth:`upsert` each order, all or nothing (one transaction); returns them in
        input order. Raises ``ValidationError`` (nothing is written) for bad input, or an
        ``external_id`` given twice."""
        built = [self._built(o) for o in orders]
        seen: set[str] = set()
        for o in built:
            if o.external_id in seen:
                raise ValidationError("external_id", o.external_id, "is given twice")
            seen.add(o.external_id)
        repo = self._orders()
        now = self._now()
        out: list[Order] = []
        with self._transaction():
            stored: dict[str, Order] = {}
            keys = sorted(seen)
            # matched among all orders, not only those a view may read: an order outside the
            # view's scope is then refused by the view's update instead of added twice
            every = self._operations_crm().orders
            for i in range(0, len(keys), _CHUNK):
                for o in every.find(F.external_id.in_(keys[i : i + _CHUNK])):
                    if o.external_id in stored:
                        raise ValidationError(
                            "external_id", o.external_id, "matches several orders"
                        )
                    stored[o.external_id] = o
            for o in built:
                previous = stored.get(o.external_id)
                if previous is None:
                    out.append(repo.add(_status_times(o, None, now)))
                    continue
                merged = _merged(o, previous, now)
                out.append(previous if _same(merged, previous) else repo.update(merged))
        return out

    def _transaction(self) -> Any:
        source = self._source()
        return source.transaction()

    @staticmethod
    def _built(order: Order | Mapping[str, Any]) -> Order:
        if isinstance(order, Order):
            return order
        if isinstance(order, Mapping):
            try:
                return Order(**order)
            except TypeError as exc:
                raise ValidationError("order", dict(order), f"has unknown fields ({exc})") from None
        raise ValidationError("orders", order, "must be an Order or a mapping of its fields")

    def cancel(self, order_id: str, *, reason: str | None = None) -> Order:
        """Cancel an order: a status change (``cancelled_at`` set, ``reason`` kept in
        ``status_reason``); the order stays stored but no longer counts as a purchase.

        Cancelling a cancelled order returns it unchanged. Raises ``TransitionError`` for a
        refunded order, ``NotFound``.
        """
        return self._change(order_id, OrderStatus.CANCELLED, reason)

    def refund(self, order_id: str, *, reason: str | None = None) -> Order:
        """Refund an order: a status change (``refunded_at`` set, ``reason`` kept in
        ``status_reason``); amounts and lines stay, the order no longer counts.

        Refunding a refunded order returns it unchanged. Raises ``TransitionError`` for a
        cancelled order, ``NotFound``.
        """
        return self._change(order_id, OrderStatus.REFUNDED, reason)

    def _change(self, order_id: str, status: OrderStatus, reason: str | None) -> Order:
        order = self.get(order_id)
        if order.status is status:
            return order
        if order.status not in COUNTED_STATUSES:
            raise TransitionError(
                f"order {order_id} is {order.status.value}: it cannot be {status.value}"
            )
        changed = attrs.evolve(order, status=status, status_reason=reason or order.status_reason)
        return self.update(_status_times(changed, order, self._now()))

    # --- customer value -------------------------------------------------------------------

    def _customer(self, contact_id: str | None, account_id: str | None) -> Expr:
        source = self._source()
        if (contact_id is None) == (account_id is None):
            raise ValidationError(
                "value", [contact_id, account_id], "takes exactly one contact_id or account_id"
            )
        if contact_id is not None:
            source.contacts.get(contact_id)
            return F.contact_id == contact_id
        tree = account_tree(source, account_id or "")
        contacts = [c.id or "" for c in source.contacts.iterate(F.account_id.in_(tree))]
        cond: Expr = F.account_id.in_(tree)
        if contacts:
            # orders of the accounts' contacts that name no account belong to them too
            cond = cond | (F.contact_id.in_(contacts) & ~F.account_id.exists())
        return cond

    def value(
        self,
        *,
        contact_id: str | None = None,
        account_id: str | None = None,
        currency: str | None = None,
        as_of: dt.datetime | None = None,
    ) -> CustomerValue:
        """The customer value of a contact, or of an account rolled up its hierarchy (the
        account, its child accounts at every level, and orders of their contacts that name
        no account), from counted orders placed before ``as_of`` (default: now).

        ``currency`` picks the currency when the orders use several. Raises ``NotFound``
        for an unknown contact or account, ``ValidationError`` when several currencies are
        used and none is given, or when not exactly one of the ids is given.
        """
        as_of = as_of or self._now()
        where = _all(self._customer(contact_id, account_id), counted(), F.placed_at < as_of)
        rows = self._orders().aggregate(
            where,
            group_by=[Group("total.currency", name="currency")],
            metrics=[
                Metric.count(name="n"),
                Metric.sum("total.amount", name="amount"),
                Metric.min("placed_at", name="first"),
                Metric.max("placed_at", name="last"),
            ],
        )
        by_currency = {r["currency"]: r for r in rows if r["currency"] is not None}
        if currency is None and len(by_currency) > 1:
            raise ValidationError(
                "currency", None, f"is needed: the orders use {sorted(by_currency)}"
            )
        if currency is not None:
            currency = _currency_code(currency)
        chosen = currency or next(iter(by_currency), None)
        row = by_currency.get(chosen) if chosen is not None else None
        if row is None or not row["n"]:
            return CustomerValue(chosen, 0, Decimal(0), None, None, None, None, None)
        n, total = int(row["n"]), Decimal(row["amount"])
        first, last = row["first"], row["last"]
        span = max(1, _days(as_of - first))
        return CustomerValue(
            currency=chosen,
            orders=n,
            lifetime_value=total,
            average_order_value=total / n,
            first_order_at=first,
            last_order_at=last,
            days_since_last_order=_days(as_of - last),
            purchase_frequency=Decimal(n * 365) / Decimal(span),
        )

    def rfm(
        self,
        *,
        per: Literal["contact", "account"] = "contact",
        as_of: dt.datetime | None = None,
        since: dt.datetime | None = None,
        currency: str | None = None,
        where: Expr | None = None,
    ) -> list[OrderRfm]:
        """RFM of every contact (``per="account"``: every account, by the orders' own
        ``account_id``) with a counted order in ``[since, as_of)``, best first (highest
        ``r + f + m``, then id).

        Recency, frequency and monetary value come from one database aggregate grouped by
        customer; each is scored 1-5 by :func:`crmkit.analytics.quintile_scores` among the
        customers in the report (ties share a score). ``where`` narrows the orders.
        Raises ``ValidationError`` when orders use several currencies and none is given.
        """
        if per not in ("contact", "account"):
            raise ValidationError("per", per, "is not 'contact' or 'account'")
        as_of = as_of or self._now()
        field = f"{per}_id"
        rows = self._orders().aggregate(
            _all(counted(), _range("placed_at", since, as_of), F(field).exists(), where),
            group_by=[field, Group("total.currency", name="currency")],
            metrics=[
                Metric.count(name="n"),
                Metric.sum("total.amount", name="amount"),
                Metric.max("placed_at", name="last"),
            ],
        )
        currencies = {r["currency"] for r in rows if r["currency"] is not None}
        if currency is not None:
            currency = _currency_code(currency)
        elif len(currencies) > 1:
            raise ValidationError("currency", None, f"is needed: orders use {sorted(currencies)}")
        stats: dict[str, dict[str, Any]] = {}
        for r in rows:
            cid = r[field]
            if cid is None:
                continue
            s = stats.setdefault(cid, {"n": 0, "last": None, "money": Decimal(0)})
            s["n"] += int(r["n"])
            if s["last"] is None or r["last"] > s["last"]:
                s["last"] = r["last"]
            if currency is None or r["currency"] == currency:
                s["money"] += Decimal(r["amount"])
        if not stats:
            return []
        recency = {cid: _days(as_of - s["last"]) for cid, s in stats.items()}
        frequency = {cid: int(s["n"]) for cid, s in stats.items()}
        monetary = {cid: Decimal(s["money"]) for cid, s in stats.items()}
        scores = rfm_scores(recency, frequency, monetary)
        out = [
            OrderRfm(cid, stats[cid]["last"], recency[cid], frequency[cid], monetary[cid], *score)
            for cid, score in scores.items()
        ]
        out.sort(key=lambda row: (-(row.r + row.f + row.m), row.customer_id))
        return out

    # --- cross-sell -----------------------------------------------------------------------

    def bought_together(
        self,
        *,
        level: Literal["sku", "category"] = "sku",
        min_count: int = 2,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int | None = 50,
    ) -> list[ProductPair]:
        """Product pairs (``level="category"``: category pairs) held by at least
        ``min_count`` counted orders placed in ``[since, until)``, most frequent first (then
        highest lift, then names).

        Counts come from the database: one aggregate of orders per product, then one per
        product held by ``min_count`` orders or more (only those can be in a pair).
        Raises ``ValidationError`` for a bad ``level``, ``min_count`` or ``limit``.
        """
        if level not in ("sku", "category"):
            raise ValidationError("level", level, "is not 'sku' or 'category'")
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValidationError("min_count", min_count, "must be a whole number >= 1")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ValidationError("limit", limit, "must be a whole number or None")
        field = "skus" if level == "sku" else "categories"
        repo = self._orders()
        base = _all(counted(), _range("placed_at", since, until), F(field).exists())
        total = repo.aggregate(base, metrics=[Metric.count(name="n")])[0]["n"]
        singles = {
            r[field]: int(r["n"])
            for r in repo.aggregate(base, group_by=[field], metrics=[Metric.count(name="n")])
            if r[field] is not None
        }
        frequent = sorted(k for k, n in singles.items() if n >= min_count)
        pairs: list[ProductPair] = []
        for a in frequent:
            rows = repo.aggregate(
                _all(base, F(field).contains(a)),
                group_by=[field],
                metrics=[Metric.count(name="n")],
            )
            for r in rows:
                b = r[field]
                if b is None or b <= a or int(r["n"]) < min_count:
                    continue
                pairs.append(ProductPair(a, b, int(r["n"]), singles[a], singles[b], int(total)))
        pairs.sort(key=lambda p: (-p.count, -p.lift, p.a, p.b))
        return pairs if limit is None else pairs[:limit]


def account_tree(source: Any, account_id: str) -> list[str]:
    """The account and its descendants (every level; a cycle in ``parent_id`` stops).
    Raises ``NotFound`` for an unknown (or unreadable) account."""
    source.accounts.get(account_id)
    seen = [account_id]
    frontier = [account_id]
    while frontier:
        children = source.accounts.iterate(F.parent_id.in_(frontier))
        frontier = [a.id or "" for a in children if a.id not in seen]
        seen += frontier
    return seen


def _status_times(order: Order, previous: Order | None, now: dt.datetime) -> Order:
    """Set ``cancelled_at`` / ``refunded_at`` for a cancelled / refunded order (kept from
    the stored order, else now), and clear them when the status says otherwise."""
    changes: dict[str, Any] = {}
    for status, field in (
        (OrderStatus.CANCELLED, "cancelled_at"),
        (OrderStatus.REFUNDED, "refunded_at"),
    ):
        current = getattr(order, field)
        if order.status is status:
            if current is None:
                kept = getattr(previous, field) if previous is not None else None
                changes[field] = kept or now
        elif current is not None:
            changes[field] = None
    return attrs.evolve(order, **changes) if changes else order


def _merged(order: Order, previous: Order, now: dt.datetime) -> Order:
    changes: dict[str, Any] = {name: getattr(previous, name) for name in _STORAGE}
    for name in _KEPT:
        if getattr(order, name) is None:
            changes[name] = getattr(previous, name)
    return _status_times(attrs.evolve(order, **changes), previous, now)


def _same(a: Order, b: Order) -> bool:
    return all(
        getattr(a, f.name) == getattr(b, f.name)
        for f in attrs.fields(Order)
        if f.name not in _STORAGE
    )


class OrderRepository(Repository[Order], OrderOperations):
    """``crm.orders``: the order repository with the order verbs."""


class ScopedOrderRepository(ScopedRepository[Order], OrderOperations):
    """Orders as one user sees them: the order verbs read, write and aggregate only the
    orders the user may, checked and audited."""
