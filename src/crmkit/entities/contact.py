"""Contacts: the people an organization has a relationship with."""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Address, Entity
from crmkit.errors import ValidationError

__all__ = ["Contact", "LifecycleStage"]


class LifecycleStage(enum.StrEnum):
    """Where a contact stands in the customer lifecycle."""

    SUBSCRIBER = "subscriber"
    LEAD = "lead"
    MARKETING_QUALIFIED = "marketing_qualified"
    SALES_QUALIFIED = "sales_qualified"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    EVANGELIST = "evangelist"
    OTHER = "other"


@attrs.frozen(kw_only=True)
class Contact(Entity):
    """A person.

    ``emails`` and ``phones`` are lists whose first item is the primary one; the repository
    stores them normalized (lower-case emails, E.164 phones). A contact needs at least a
    name, an email or a phone.

    Raises :class:`crmkit.ValidationError` for a value of the wrong type, an unknown
    lifecycle stage, or a contact with nothing to identify it.
    """

    collection: ClassVar[str] = "contacts"
    lookups: ClassVar[tuple[str, ...]] = ("emails", "phones", "last_name")

    first_name: str | None = f.text(max_length=200)
    last_name: str | None = f.text(max_length=200)
    emails: tuple[str, ...] = f.text_list()
    phones: tuple[str, ...] = f.text_list()
    title: str | None = f.text(max_length=200)
    account_id: str | None = f.ref()
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()
    lifecycle_stage: LifecycleStage | None = f.choice(LifecycleStage)
    lead_source: str | None = f.text(max_length=200)
    address: Address | None = f.value_object(Address)
    do_not_contact: bool = f.flag()
    tags: tuple[str, ...] = f.text_list()
    custom: Any = f.mapping()
    external_ids: Any = f.text_mapping()

    def __attrs_post_init__(self) -> None:
        if not (self.first_name or self.last_name or self.emails or self.phones):
            raise ValidationError(
                "contact", None, "needs at least a first name, last name, email or phone"
            )

    @property
    def name(self) -> str:
        """First and last name joined by a space (may be empty)."""
        return " ".join(p for p in (self.first_name, self.last_name) if p)

    @property
    def email(self) -> str | None:
        """The primary email address, if any."""
        return self.emails[0] if self.emails else None
