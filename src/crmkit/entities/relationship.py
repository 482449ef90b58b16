"""Contact-account links and privacy suppressions."""

from __future__ import annotations

import datetime as dt
import enum
from typing import ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity
from crmkit.errors import ValidationError

__all__ = ["AccountContact", "AccountRole", "Suppression", "SuppressionKind"]


class AccountRole(enum.StrEnum):
    """Common roles of a contact at an account (``other`` with a free ``label`` for the rest)."""

    EMPLOYEE = "employee"
    CONSULTANT = "consultant"
    CONTRACTOR = "contractor"
    BOARD_MEMBER = "board_member"
    OWNER = "owner"
    PARTNER = "partner"
    FORMER_EMPLOYEE = "former_employee"
    OTHER = "other"


@attrs.frozen(kw_only=True)
class AccountContact(Entity):
    """One link between a contact and an account, with the contact's role there.

    A contact may be linked to several accounts; at most one link is ``is_primary`` and the
    contact's ``account_id`` names that account (``crm.relationships`` keeps both in sync).
    ``label`` is free text for the role (``"Advisor, EMEA"``); ``started`` and ``ended``
    optionally date the relationship (``ended`` not before ``started``).
    """

    collection: ClassVar[str] = "account_contacts"
    unique_together: ClassVar[tuple[tuple[str, ...], ...]] = (("contact_id", "account_id"),)

    contact_id: str = f.ref(required=True)
    account_id: str = f.ref(required=True)
    role: AccountRole = f.choice(AccountRole, default=AccountRole.EMPLOYEE)
    label: str | None = f.text(max_length=200)
    is_primary: bool = f.flag()
    started: dt.date | None = f.day()
    ended: dt.date | None = f.day()

    def __attrs_post_init__(self) -> None:
        if self.started is not None and self.ended is not None and self.ended < self.started:
            raise ValidationError("accountcontact.ended", self.ended, "is before started")


class SuppressionKind(enum.StrEnum):
    """What a suppression's digest was computed from."""

    EMAIL = "email"
    PHONE = "phone"
    #: The generated privacy key (kept only when none is configured, see crmkit.privacy).
    KEY = "key"


@attrs.frozen(kw_only=True)
class Suppression(Entity):
    """An email address or phone number that must not come back into the CRM.

    Only a keyed hash is stored (``digest``: hex HMAC-SHA256 of the normalized value with
    the CRM's privacy key, see :mod:`crmkit.privacy`), never the value itself. crmkit
    stores each entry with its digest as id, so a lookup is a primary-key read.
    """

    collection: ClassVar[str] = "suppressions"

    kind: SuppressionKind = f.choice(SuppressionKind, required=True)
    digest: str = f.text(required=True, max_length=200)
    reason: str | None = f.text(max_length=200)
    at: dt.datetime | None = f.timestamp()
