"""Contacts in several accounts: links with a role, one of them primary.

``crm.relationships.link(contact_id, account_id, role="consultant")`` relates a contact to
an account; ``primary=True`` makes that account the contact's primary one, which is also
the contact's ``account_id`` (at most one primary link per contact; the previous primary
link is demoted in the same transaction). ``unlink`` removes a link (and clears
``account_id`` when it was the primary one). ``accounts_of(contact_id)`` and
``contacts_of(account_id)`` list the links, each one indexed query.

Changing a contact's ``account_id`` directly keeps stored links in sync: a link to the new
account becomes the primary one and the other links lose the flag (no link is created).

Permissions: through a user's view (``crm.as_user(u).relationships``) a link is listed
only when both its contact and its account are readable by the user, so a link never
reveals a record the user may not see. Writing links through a view needs the contact and
the account to be readable and the user's role to allow writing ``account_contacts``
(deny by default, like every collection; links have no owner, so that is the ``all``
scope or a share). Timelines of an account include the activity of linked contacts.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import attrs

from crmkit.entities import AccountContact, AccountRole, Contact
from crmkit.errors import NotFound
from crmkit.query import F

if TYPE_CHECKING:
    from crmkit.crm import CRM

__all__ = ["Relationships"]


class Relationships:
    """Links between contacts and accounts (``crm.relationships``); see the module docs."""

    def __init__(self, source: Any) -> None:
        self._source = source

    @property
    def _crm(self) -> CRM:
        crm: CRM = getattr(self._source, "crm", self._source)
        return crm

    def _links(self) -> Any:
        """The repository links are written through (the view's, when scoped)."""
        return self._source.account_contacts

    def link(
        self,
        contact_id: str,
        account_id: str,
        *,
        role: AccountRole | str = AccountRole.EMPLOYEE,
        label: str | None = None,
        primary: bool = False,
        started: dt.date | None = None,
        ended: dt.date | None = None,
    ) -> AccountContact:
        """Relate a contact to an account (or change the existing link) and return the link.

        ``primary=True`` makes the account the contact's primary one: the contact's
        ``account_id`` is set and any other primary link is demoted, all or nothing.
        Raises ``NotFound`` for an unknown (or unreadable) contact or account and
        ``ValidationError`` for a bad role or dates.
        """
        src = self._source
        with src.transaction():
            contact = src.contacts.get(contact_id)
            src.accounts.get(account_id)
            links = self._links()
            existing = self._crm.account_contacts.first(
                (F.contact_id == contact_id) & (F.account_id == account_id)
            )
            fields: dict[str, Any] = {
                "role": role,
                "label": label,
                "is_primary": primary or (existing is not None and existing.is_primary),
                "started": started,
                "ended": ended,
            }
            if existing is None:
                stored: AccountContact = links.add(
                    AccountContact(contact_id=contact_id, account_id=account_id, **fields)
                )
            else:
                stored = links.update(attrs.evolve(existing, **fields))
            if primary:
                self._demote(contact_id, keep=stored.id)
                if contact.account_id != account_id:
                    src.contacts.update(attrs.evolve(contact, account_id=account_id))
        return stored

    def unlink(self, contact_id: str, account_id: str) -> None:
        """Remove the link between a contact and an account (``NotFound`` if none).

        Removing the primary link clears the contact's ``account_id``.
        """
        src = self._source
        with src.transaction():
            contact = src.contacts.get(contact_id)
            src.accounts.get(account_id)
            existing = self._crm.account_contacts.first(
                (F.contact_id == contact_id) & (F.account_id == account_id)
            )
            if existing is None or existing.id is None:
                raise NotFound("account_contacts", f"{contact_id}/{account_id}")
            self._links().delete(existing.id)
            if contact.account_id == account_id:
                src.contacts.update(attrs.evolve(contact, account_id=None))

    def accounts_of(self, contact_id: str) -> list[AccountContact]:
        """The links of a contact (primary first), limited to readable accounts."""
        self._source.contacts.get(contact_id)
        links = self._crm.account_contacts.find(F.contact_id == contact_id)
        readable = {a.id for a in self._source.accounts.get_many([x.account_id for x in links])}
        found = [x for x in links if x.account_id in readable]
        return sorted(found, key=lambda x: (not x.is_primary, x.id or ""))

    def contacts_of(self, account_id: str) -> list[AccountContact]:
        """The links of an account (primary ones first), limited to readable contacts."""
        self._source.accounts.get(account_id)
        links = self._crm.account_contacts.find(F.account_id == account_id)
        readable = {c.id for c in self._source.contacts.get_many([x.contact_id for x in links])}
        found = [x for x in links if x.contact_id in readable]
        return sorted(found, key=lambda x: (not x.is_primary, x.id or ""))

    def _demote(self, contact_id: str, *, keep: str | None) -> None:
        links = self._links()
        for other in self._crm.account_contacts.find(
            (F.contact_id == contact_id) & (F.is_primary == True)  # noqa: E712
        ):
            if other.id != keep:
                links.update(attrs.evolve(other, is_primary=False))

    # --- keeping links in sync with ``Contact.account_id`` ---------------------------------

    @staticmethod
    def account_changed(stored: Any, previous: Any | None) -> bool:
        """True when an update changed a contact's primary account (cheap check)."""
        return previous is not None and stored.account_id != previous.account_id

    def after_contact_write(self, stored: Contact, previous: Contact | None) -> None:
        """Make the link to the contact's new ``account_id`` (if any) the only primary one."""
        crm = self._crm
        links = crm.account_contacts.find(F.contact_id == (stored.id or ""))
        for link in links:
            want = link.account_id == stored.account_id
            if link.is_primary != want:
                crm.account_contacts.update(attrs.evolve(link, is_primary=want))
