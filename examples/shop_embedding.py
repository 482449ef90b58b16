"""A shop that already runs on SQLAlchemy records its customers in crmkit, atomically.

The shop has its own ORM model (``Order``), its own engine (``shop.db`` in the current
folder) and its own transactions. Placing an order also creates or updates the customer's
CRM contact and logs an interaction: crmkit is connected to the shop's ``Session`` (or
``Connection``), so its writes join the shop's transaction. When the order fails, the
order and the CRM writes roll back together; when it succeeds, both commit.

Run: python examples/shop_embedding.py
"""

from __future__ import annotations

import datetime as dt
import pathlib
from decimal import Decimal

import attrs
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import crmkit
from crmkit import Contact, Interaction
from crmkit.query import F

# --- the existing shop application ----------------------------------------------------------


class Base(DeclarativeBase):
    """The shop's declarative base."""


class Order(Base):
    """An order in the shop's own table."""

    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str]
    total: Mapped[Decimal]
    status: Mapped[str] = mapped_column(default="placed")


class PaymentDeclined(Exception):
    """The card was refused: the whole order must not happen."""


def record_customer(crm: crmkit.CRM, order: Order, name: str) -> Contact:
    """Create or update the customer's contact and log the order as an interaction."""
    contact = crm.contacts.first(F.emails.contains(order.email))
    if contact is None:
        first, _, last = name.partition(" ")
        contact = crm.contacts.add(
            Contact(first_name=first, last_name=last or None, emails=[order.email])
        )
    if contact.lifecycle_stage != "customer":
        contact = crm.contacts.update(attrs.evolve(contact, lifecycle_stage="customer"))
    crm.interactions.add(
        Interaction(
            kind="note",
            subject=f"Order #{order.id}: {order.total} EUR",
            contact_ids=[contact.id],
            occurred_at=dt.datetime.now(dt.UTC),
        )
    )
    return contact


def place_order(
    engine: sa.Engine, email: str, name: str, total: str, *, card_ok: bool = True
) -> None:
    """One shop transaction: the order, the CRM contact and interaction, then payment."""
    with Session(engine) as session, session.begin():
        order = Order(email=email, total=Decimal(total))
        session.add(order)
        session.flush()  # the order gets its id
        crm = crmkit.connect(session, create_schema=False)  # joins this transaction
        record_customer(crm, order, name)
        if not card_ok:
            raise PaymentDeclined(f"card refused for order #{order.id}")
        # leaving the block commits the order and the CRM writes together


def cancel_orders(engine: sa.Engine, email: str, *, fail: bool) -> None:
    """A Core-style job on a ``Connection``: cancel a customer's orders, note it in the CRM."""
    with engine.begin() as conn:
        conn.execute(sa.update(Order).where(Order.email == email).values(status="cancelled"))
        crm = crmkit.connect(conn, create_schema=False)
        contact = crm.contacts.first(F.emails.contains(email))
        assert contact is not None
        crm.contacts.update(attrs.evolve(contact, lifecycle_stage="other"))
        if fail:
            raise RuntimeError("refund service unavailable")


# --- the demonstration ----------------------------------------------------------------------


def state(engine: sa.Engine) -> str:
    """What is stored now, read in fresh transactions (so only committed data shows)."""
    with Session(engine) as session:
        orders = session.scalars(sa.select(Order).order_by(Order.id)).all()
        summary = ", ".join(f"#{o.id} {o.email} {o.status}" for o in orders) or "none"
    crm = crmkit.connect(engine, create_schema=False)
    contacts = crm.contacts.find(order_by="first_name")
    people = ", ".join(f"{c.name} ({c.lifecycle_stage})" for c in contacts) or "none"
    notes = crm.interactions.count()
    crm.close()
    return f"orders: {summary}\n  contacts: {people}\n  interactions: {notes}"


def main() -> None:
    """Place a good order, a declined one and another good one; cancel with a failure."""
    path = pathlib.Path("shop.db")
    path.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{path}")  # the shop's engine, its own settings
    Base.metadata.create_all(engine)
    # crmkit's tables: created once, like any other deployment step (a host with its own
    # Alembic migrations adds crmkit.backends.sql.metadata to them instead)
    crmkit.connect(engine).close()

    place_order(engine, "ada@example.com", "Ada Lovelace", "120.00")
    print("after a successful order (both committed):\n ", state(engine))
    assert state(engine).count("interactions: 1") == 1

    before = state(engine)
    try:
        place_order(engine, "GRACE@example.com ", "Grace Hopper", "99.90", card_ok=False)
    except PaymentDeclined as exc:
        print(f"payment declined ({exc}): the order and the CRM writes rolled back")
    after = state(engine)
    print("after the declined order (nothing changed):\n ", after)
    assert after == before

    place_order(engine, "grace@example.com", "Grace Hopper", "99.90")
    place_order(engine, "ada@example.com", "Ada Lovelace", "35.50")  # same contact, updated
    print("after two more orders:\n ", state(engine))

    before = state(engine)
    try:
        cancel_orders(engine, "ada@example.com", fail=True)
    except RuntimeError as exc:
        print(f"cancellation failed ({exc}): the shop's and crmkit's updates rolled back")
    assert state(engine) == before
    cancel_orders(engine, "ada@example.com", fail=False)
    print("after a successful cancellation:\n ", state(engine))

    crm = crmkit.connect(engine, create_schema=False)
    ada = crm.contacts.first(F.emails.contains("ada@example.com"))
    assert ada is not None
    assert ada.lifecycle_stage == "other"
    assert crm.interactions.count() == 3
    crm.close()
    engine.dispose()


if __name__ == "__main__":
    main()
