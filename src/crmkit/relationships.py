"""Contacts in several accounts: links with a role, one of them primary.

``crm.relationships.link(contact_id, account_id, role="consultant")`` relates a contact to
an account; ``primary=True`` makes that account the contact's primary one, which is the
contact's ``account_id``. A link is primary exactly when its account is its contact's
``account_id``, so a contact has at most one primary link: ``link(..., primary=True)`` sets
``account_id`` and the flags follow, all or nothing. ``unlink`` removes a link (and clears
``account_id`` when it was the primary one). ``accounts_of(contact_id)`` and
``contacts_of(account_id)`` list the links, each one indexed query.

Changing a contact's ``account_id`` directly keeps stored links in sync: a link to the new
account becomes the primary one and the other links lose the flag. No link is created or
removed: an ``account_id`` without a link (a contact added with one) is the contact's
primary account all the same, and making another account primary replaces it.

Every write of a link, through ``crm.relationships`` or the ``crm.account_contacts``
repository, is checked (``ValidationError``, nothing written): a link that joins a contact
and an account anew (a new one, or one moved) names an existing contact and account that
no other link joins, and ``is_primary`` agrees with the contact's ``account_id``. A link
stored by an older crmkit can still be written: a flag that disagrees is put right, and a
link to a record deleted since is kept as it is (delete it, or let erasure rewrite it).
Deleting a contact or an account deletes its links; merging duplicates moves them to the
survivor (a link the survivor already has to the same record is kept, the duplicate's one
removed), and undoing the merge puts them back.

Permissions: through a user's view (``crm.as_user(u).relationships`` and
``crm.as_user(u).account_contacts``) a link is read, written or deleted only when both
its contact and its account are readable by the user, so a link never reveals a record
the user may not see. Writing links through a view also needs the user's role to allow
writing ``account_contacts`` (deny by default, like every collection; links have no
owner, so that is the ``all`` scope or a share). Timelines of an account include the
activity of linked contacts (in a view, of those the user may read).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any, Literal

import attrs

from crmkit.entities import Account, AccountContact, AccountRole, Contact
from crmkit.errors import NotFound, ValidationError
from crmkit.query import F

if TYPE_CHECKING:
    from crmkit.crm import CRM

__all__ = ["KEEP", "Relationships"]


class _Keep(enum.Enum):
    KEEP = "keep"


#: The default of :meth:`Relationships.link`'s ``role``, ``label``, ``started`` and
#: ``ended``: a new link gets the field's default, an existing link keeps its value.
KEEP: Literal[_Keep.KEEP] = _Keep.KEEP


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
        role: AccountRole | str | Literal[_Keep.KEEP] = KEEP,
        label: str | Literal[_Keep.KEEP] | None = KEEP,
        primary: bool = False,
        started: dt.date | Literal[_Keep.KEEP] | None = KEEP,
        ended: dt.date | Literal[_Keep.KEEP] | None = KEEP,
    ) -> AccountContact:
        """Relate a contact to an account, or change their link, and return the link.

        A new link gets the arguments given (``role`` defaults to ``employee``); an
        existing link changes only the ones given, so ``link(c, a, primary=True)`` keeps
        its role, label and dates. ``primary=True`` makes the account the contact's primary
        one: the contact's ``account_id`` is set and the link that was primary loses the
        flag, all or nothing (``primary=False`` demotes nothing: a link to the contact's
        ``account_id`` is its primary one). Raises ``NotFound`` for an unknown (or
        unreadable) contact or account and ``ValidationError`` for a bad role or dates.
        """
        if not isinstance(primary, bool):
            raise ValidationError("primary", primary, "must be true or false")
        _check_ids(contact_id, account_id)
        given = {"role": role, "label": label, "started": started, "ended": ended}
        changes: dict[str, Any] = {k: v for k, v in given.items() if v is not KEEP}
        src = self._source
        with src.transaction():
            contact = src.contacts.get(contact_id)
            src.accounts.get(account_id)
            if primary and contact.account_id != account_id:
                # the contact's update moves the flag of the links it has (see
                # after_contact_write); the link is read after it
                contact = src.contacts.update(attrs.evolve(contact, account_id=account_id))
            existing = self._crm.account_contacts.first(
                (F.contact_id == contact_id) & (F.account_id == account_id)
            )
            links = self._links()
            if existing is None:
                stored: AccountContact = links.add(
                    AccountContact(
                        contact_id=contact_id,
                        account_id=account_id,
                        is_primary=contact.account_id == account_id,
                        **changes,
                    )
                )
            elif changes or existing.is_primary != (contact.account_id == account_id):
                # (a flag that disagrees, stored by an older crmkit, is put right by the hook)
                stored = links.update(attrs.evolve(existing, **changes))
            else:
                stored = existing
        return stored

    def unlink(self, contact_id: str, account_id: str) -> None:
        """Remove the link between a contact and an account (``NotFound`` if none).

        Removing the primary link clears the contact's ``account_id``.
        """
        _check_ids(contact_id, account_id)
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

    # --- the rules of links, kept on every write --------------------------------------------

    def __call__(self, entity: Any, previous: Any | None, /) -> Any:
        """The write hook of links (``ValidationError`` otherwise, nothing written).

        A link that joins a contact and an account anew (a new link, or one moved to
        other records) must name an existing contact and account that no other stored
        link joins. ``is_primary`` must agree with the contact's ``account_id``: a write
        that sets a disagreeing flag is refused, and a write that leaves the flag as it
        was (a label changed on a link stored by an older crmkit) has it put right.
        """
        if not isinstance(entity, AccountContact):
            return entity
        crm = self._crm
        joins = self.pair_written(entity, previous)
        try:
            contact = crm.contacts.get(entity.contact_id)
        except NotFound:
            if not joins:  # a link left by an older crmkit: its rewrite (erasure) goes on
                return entity
            raise ValidationError(
                "accountcontact.contact_id", entity.contact_id, "names no contact"
            ) from None
        if joins:
            if not crm.accounts.exists(F.id == entity.account_id):
                raise ValidationError(
                    "accountcontact.account_id", entity.account_id, "names no account"
                )
            other = crm.account_contacts.first(
                (F.contact_id == entity.contact_id) & (F.account_id == entity.account_id)
            )
            if other is not None and other.id != entity.id:
                raise ValidationError(
                    "accountcontact",
                    {"contact_id": entity.contact_id, "account_id": entity.account_id},
                    f"joins a contact and an account another link joins already ({other.id})",
                )
        primary = contact.account_id == entity.account_id
        if entity.is_primary != primary:
            if previous is not None and entity.is_primary == previous.is_primary:
                return attrs.evolve(entity, is_primary=primary)
            raise ValidationError(
                "accountcontact.is_primary",
                entity.is_primary,
                "must be true exactly for the link to the contact's account_id "
                f"({contact.account_id!r}); crm.relationships.link(..., primary=True) "
                "changes both",
            )
        return entity

    def fitted(self, link: AccountContact) -> AccountContact:
        """``link`` with ``is_primary`` set from its contact's ``account_id`` (for a link
        moved to another contact or account, e.g. by a merge)."""
        contact = self._crm.contacts.get(link.contact_id)
        primary = contact.account_id == link.account_id
        return link if link.is_primary == primary else attrs.evolve(link, is_primary=primary)

    @staticmethod
    def pair_written(stored: Any, previous: Any | None) -> bool:
        """Whether a link write may have joined a contact and an account anew."""
        return previous is None or (stored.contact_id, stored.account_id) != (
            previous.contact_id,
            previous.account_id,
        )

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

    def after_delete(self, previous: Any) -> None:
        """A deleted contact's or account's links are deleted with it (each one audited)."""
        if not isinstance(previous, Contact | Account):
            return
        field = F.contact_id if isinstance(previous, Contact) else F.account_id
        links = self._crm.account_contacts
        for link in links.find(field == (previous.id or "")):
            links.delete(link.id or "")


def _check_ids(contact_id: Any, account_id: Any) -> None:
    for name, value in (("contact_id", contact_id), ("account_id", account_id)):
        if not isinstance(value, str) or not value:
            raise ValidationError(name, value, "must be a record id (text)")
