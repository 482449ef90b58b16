"""Orders: purchases from a shop or ERP, with their lines."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any, ClassVar, cast

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Address, Entity, Money
from crmkit.errors import ValidationError

__all__ = ["COUNTED_STATUSES", "Order", "OrderLine", "OrderStatus"]


class OrderStatus(enum.StrEnum):
    """Where an order stands. A refund or cancellation is a status, never a deletion."""

    PENDING = "pending"
    PAID = "paid"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


#: The statuses of orders that count as purchases (customer value, RFM, segments):
#: cancelled and refunded orders stay stored but are left out.
COUNTED_STATUSES: tuple[OrderStatus, ...] = (
    OrderStatus.PENDING,
    OrderStatus.PAID,
    OrderStatus.FULFILLED,
)


@attrs.frozen(kw_only=True)
class OrderLine:
    """One line of an order: ``quantity`` units of product ``sku`` at ``unit_price``.

    ``name`` is the product name and ``category`` its category (both optional).
    :attr:`amount` is ``quantity x unit_price``.
    """

    sku: str = f.text(required=True, max_length=200)
    name: str | None = f.text(max_length=500)
    category: str | None = f.text(max_length=200)
    quantity: int = f.integer(minimum=1, default=1)
    unit_price: Money | None = f.value_object(Money)

    def __attrs_post_init__(self) -> None:
        if self.unit_price is None:
            raise ValidationError("orderline.unit_price", None, "is required")

    @property
    def amount(self) -> Money:
        """``quantity x unit_price``, in the unit price's currency."""
        price = self.unit_price
        assert price is not None  # checked on construction
        return Money(amount=price.amount * self.quantity, currency=price.currency)


@attrs.frozen(kw_only=True)
class Order(Entity):
    """A purchase: ``external_id`` is the order's id in the shop or ERP (unique per CRM:
    :meth:`crmkit.commerce.OrderOperations.upsert` matches on it).

    ``total`` is the amount charged (:class:`Money`, its ``currency`` the order's currency);
    when not given it is the sum of the lines' amounts. Lines must be in the order's
    currency. ``skus`` and ``categories`` are derived from the lines on construction (the
    distinct SKUs and categories, in line order) so that the database can filter and group
    orders by product (``F.categories.contains("books")``); values passed for them are
    replaced.

    ``customer_name``, ``customer_email`` and ``shipping_address`` are personal data
    (sensitivity ``"personal"``); amounts, products and dates are business facts.
    """

    collection: ClassVar[str] = "orders"
    lookups: ClassVar[tuple[str, ...]] = ("external_id", "placed_at")

    external_id: str = f.text(required=True, max_length=200)
    placed_at: dt.datetime = f.timestamp(required=True)
    contact_id: str | None = f.ref()
    account_id: str | None = f.ref()
    status: OrderStatus = f.choice(OrderStatus, default=OrderStatus.PAID)
    total: Money | None = f.value_object(Money)
    lines: tuple[OrderLine, ...] = f.value_list(OrderLine)
    skus: tuple[str, ...] = f.text_list()
    categories: tuple[str, ...] = f.text_list()
    status_reason: str | None = f.text(max_length=2000)
    cancelled_at: dt.datetime | None = f.timestamp()
    refunded_at: dt.datetime | None = f.timestamp()
    customer_name: str | None = f.text(max_length=500, sensitivity="personal")
    customer_email: str | None = f.text(max_length=500, sensitivity="personal")
    shipping_address: Address | None = f.value_object(Address, sensitivity="personal")
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()
    custom: Any = f.mapping()

    def __attrs_post_init__(self) -> None:
        currency = self.total.currency if self.total is not None else None
        for i, line in enumerate(self.lines):
            price = line.unit_price
            assert price is not None
            if currency is None:
                currency = price.currency
            elif price.currency != currency:
                raise ValidationError(
                    f"order.lines[{i}].unit_price.currency",
                    price.currency,
                    f"differs from the order's currency {currency}",
                )
        if self.total is None:
            if not self.lines:
                raise ValidationError("order.total", None, "is required (or give lines)")
            amount = sum((line.amount.amount for line in self.lines), Decimal(0))
            object.__setattr__(self, "total", Money(amount=amount, currency=cast(str, currency)))
        # derived, so that the database can query and group by product and category
        object.__setattr__(self, "skus", tuple(dict.fromkeys(line.sku for line in self.lines)))
        object.__setattr__(
            self,
            "categories",
            tuple(dict.fromkeys(line.category for line in self.lines if line.category)),
        )

    @property
    def currency(self) -> str:
        """The order's currency (that of ``total``)."""
        assert self.total is not None  # set on construction
        return self.total.currency

    @property
    def counted(self) -> bool:
        """True when the order counts as a purchase (not cancelled or refunded)."""
        return self.status in COUNTED_STATUSES
