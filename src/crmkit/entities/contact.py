"""Contacts: the people an organization has a relationship with."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Address, Entity
from crmkit.errors import ValidationError

__all__ = ["Consent", "Contact", "LawfulBasis", "LifecycleStage"]


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


class LawfulBasis(enum.StrEnum):
    """The legal ground on which a contact's personal data is processed (GDPR art. 6)."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTERESTS = "legitimate_interests"


@attrs.frozen(kw_only=True)
class Consent:
    """One consent decision of a contact: for ``purpose`` (``"newsletter"``...), granted or
    withdrawn, when (timezone-aware) and where it was given (``source``: a form, a call)."""

    purpose: str = f.text(required=True, max_length=200)
    granted: bool = f.flag()
    at: dt.datetime = f.timestamp(required=True)
    source: str | None = f.text(max_length=500)


@attrs.frozen(kw_only=True)
class Contact(Entity):
    """A person.

    ``emails`` and ``phones`` are lists whose first item is the primary one; the repository
    stores them normalized (lower-case emails, E.164 phones). A contact needs at least a
    name, an email or a phone.

    Raises :class:`crmkit.ValidationError` for a value of the wrong type, an unknown
    lifecycle stage, or a contact with nothing to identify it.

    Fields holding personal data carry a ``sensitivity`` tag (see :mod:`crmkit.privacy`).
    ``consents`` is the history of consent decisions (latest per purpose wins, see
    :meth:`consent`) and ``lawful_basis`` the ground for processing the data at all.
    ``erased_at`` is set when the person's data was erased (``crm.privacy.erase``): the
    record stays as an anonymous tombstone so deals and tickets keep their links.
    """

    collection: ClassVar[str] = "contacts"
    lookups: ClassVar[tuple[str, ...]] = ("emails", "phones", "last_name")

    first_name: str | None = f.text(max_length=200, sensitivity="personal")
    last_name: str | None = f.text(max_length=200, sensitivity="personal")
    emails: tuple[str, ...] = f.text_list(sensitivity="personal")
    phones: tuple[str, ...] = f.text_list(sensitivity="personal")
    title: str | None = f.text(max_length=200, sensitivity="personal")
    account_id: str | None = f.ref()
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()
    lifecycle_stage: LifecycleStage | None = f.choice(LifecycleStage)
    lead_source: str | None = f.text(max_length=200)
    address: Address | None = f.value_object(Address, sensitivity="personal")
    do_not_contact: bool = f.flag()
    tags: tuple[str, ...] = f.text_list()
    custom: Any = f.mapping(sensitivity="personal")
    external_ids: Any = f.text_mapping(sensitivity="personal")
    consents: tuple[Consent, ...] = f.value_list(Consent)
    lawful_basis: LawfulBasis | None = f.choice(LawfulBasis)
    erased_at: dt.datetime | None = f.timestamp()

    def __attrs_post_init__(self) -> None:
        named = self.first_name or self.last_name or self.emails or self.phones
        if self.erased_at is None and not named:
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

    def consent(self, purpose: str) -> bool | None:
        """Whether the latest decision for ``purpose`` granted consent (``None``: never asked)."""
        decisions = [c for c in self.consents if c.purpose == purpose]
        return max(decisions, key=lambda c: c.at).granted if decisions else None
