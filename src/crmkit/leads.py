"""Lead conversion: a lead becomes a customer relationship (account, lifecycle, deal).

``crm.leads.convert(contact_id)`` runs in one transaction: when anything fails (a deal
breaking its pipeline's rules, a permission, a conflict) nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from crmkit.entities import Account, Contact, Deal, LifecycleStage
from crmkit.errors import ValidationError
from crmkit.normalize import account_domain_for_email
from crmkit.query import F

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


__all__ = ["LeadConversion", "LeadConverter"]

_CONVERTED = frozenset({LifecycleStage.CUSTOMER, LifecycleStage.EVANGELIST})


class _Source(Protocol):
    """A CRM or a user's view of one."""

    @property
    def contacts(self) -> Any: ...

    @property
    def accounts(self) -> Any: ...

    @property
    def deals(self) -> Any: ...

    def transaction(self) -> AbstractContextManager[None]: ...


@attrs.frozen
class LeadConversion:
    """What :meth:`LeadConverter.convert` wrote: the updated contact, its account (and
    whether it was created) and the new deal, if any."""

    contact: Contact
    account: Account | None
    deal: Deal | None
    account_created: bool


def _work_domain(contact: Contact) -> str | None:
    for email in contact.emails:
        try:
            domain = account_domain_for_email(email)
        except ValidationError:
            continue
        if domain is not None:
            return domain
    return None


class LeadConverter:
    """Converts leads of a CRM (``crm.leads``) or of a user's view (``view.leads``)."""

    def __init__(self, source: _Source) -> None:
        self._source = source

    def convert(
        self,
        contact_id: str,
        *,
        account: Account | Mapping[str, Any] | str | None = None,
        deal: Deal | Mapping[str, Any] | None = None,
        lifecycle_stage: LifecycleStage | str | None = None,
    ) -> LeadConversion:
        """Convert the contact ``contact_id`` in one transaction.

        ``account`` is the id of an existing account, a new :class:`Account` (or mapping)
        to create, or ``None``: keep the contact's account, else attach the account whose
        ``domain`` is the contact's work-email domain, else create one named after that
        domain (a contact with free-mail addresses only gets no account). ``deal`` (a
        :class:`Deal` or mapping) is created for the account with the contact in its
        buying committee and the contact's owner as default owner. ``lifecycle_stage``
        defaults to ``opportunity`` with a deal and ``customer`` without.

        Raises ``NotFound``, ``ValidationError`` (already a customer, bad values),
        ``TransitionError`` (the deal breaks its pipeline's rules), ``PermissionDenied``;
        on any error nothing is written.
        """
        src = self._source
        built = None
        if deal is not None:
            if isinstance(deal, Deal):
                built = deal
            else:
                try:
                    built = Deal(**deal)
                except TypeError as exc:
                    raise ValidationError(
                        "deal", dict(deal), f"has unknown fields ({exc})"
                    ) from None
        crm: Any = getattr(src, "crm", src)  # a user's view acts through its CRM
        user = getattr(getattr(src, "user", None), "id", None)  # a view's writes are its user's
        with src.transaction(), crm.acting(user, reason=crm.acting_reason or "lead conversion"):
            contact = src.contacts.get(contact_id)
            if contact.lifecycle_stage in _CONVERTED:
                raise ValidationError(
                    "contact.lifecycle_stage", contact.lifecycle_stage, "is already converted"
                )
            stored_account, created = self._account(contact, account)
            stage = lifecycle_stage or (
                LifecycleStage.OPPORTUNITY if deal is not None else LifecycleStage.CUSTOMER
            )
            contact = src.contacts.update(
                attrs.evolve(
                    contact,
                    lifecycle_stage=stage,
                    account_id=stored_account.id if stored_account is not None else None,
                )
            )
            new_deal = None
            if built is not None:
                changes: dict[str, Any] = {}
                if built.account_id is None and stored_account is not None:
                    changes["account_id"] = stored_account.id
                if contact.id not in built.contact_ids:
                    changes["contact_ids"] = (*built.contact_ids, contact.id)
                if built.owner_id is None and contact.owner_id is not None:
                    changes["owner_id"] = contact.owner_id
                new_deal = src.deals.add(attrs.evolve(built, **changes) if changes else built)
        return LeadConversion(contact, stored_account, new_deal, created)

    def _account(
        self, contact: Contact, account: Account | Mapping[str, Any] | str | None
    ) -> tuple[Account | None, bool]:
        src = self._source
        if isinstance(account, str):
            return src.accounts.get(account), False
        if account is not None:
            return src.accounts.add(account), True
        if contact.account_id is not None:
            return src.accounts.get(contact.account_id), False
        domain = _work_domain(contact)
        if domain is None:
            return None, False
        found = src.accounts.first(F.domain == domain, order_by="created_at")
        if found is not None:
            return found, False
        name = domain.split(".", 1)[0].replace("-", " ").title()
        return (
            src.accounts.add(Account(name=name, domain=domain, owner_id=contact.owner_id)),
            True,
        )
