"""Privacy: export everything about a person, erase it, and keep it from coming back.

Fields that hold personal data carry a sensitivity tag (``"personal"`` or ``"sensitive"``,
:func:`sensitivity_of`) on the entity classes: a contact's names, emails, phones, title,
address, custom fields and external ids, an interaction's subject and body, a ticket's and
a task's description. Custom fields follow their definitions in ``crm.schema`` when the
CRM has one (a definition with ``sensitivity=None`` is not personal); without definitions
every custom field of a contact counts as personal.

``crm.privacy.export(contact_id)`` returns one JSON-serializable document with everything
the CRM holds about the person: the contact, its account links, and the interactions,
tasks, tickets, deals, campaign memberships, orders and survey responses linked to it
(also through one of its tickets or deals, as a deal's ``contact_roles``, or as an
order's ``customer_email``), the knowledge-base articles linked to its tickets, the
stage history of the contact and those records, the audit entries of all those records,
the merge records that involved the contact and the static segments listing it.

``crm.privacy.erase(contact_id)``, in one transaction:

- turns the contact into an anonymous tombstone (``erased_at`` set, every personal field
  emptied) so deals, tickets and links keep pointing at a record; its consent history
  stays (purpose, decision and time are the legal record of consent) with the person's
  identifiers redacted from each ``source``;
- empties the personal fields of interactions, orders and survey responses that are the
  person's alone (linked to them, or naming no contact and tied to their ticket, deal or
  email address), and elsewhere (other interactions, orders and survey responses, tasks,
  tickets, deals, articles of their tickets, attachment names, the stage-change reasons
  of the contact and those records, segment rules) replaces the person's email
  addresses, phone numbers and names (also joined by ``_``) by ``[erased]``, including
  interactions that only mention them: their email address or
  phone number, in any case, in a subject, body, quoted text or signature, or in a
  participant's address or name (a participant at one of their addresses is wiped).
  Phone numbers are found in national or international form, with any separators and
  an extension. An enum custom value is a choice, not text: it is kept, or cleared when
  it holds the person's identifiers (and segment rules keep their conditions on enum
  fields), so erasure never writes a value outside the choices;
- removes the personal values from the audit entries of every record touched (the
  ``changes`` of personal fields lose their old and new values; the fact that a field
  changed stays) and from merge snapshots and survivorship rules (the duplicates folded
  into the contact are the same person: their addresses and numbers are erased too, and
  so are the override values of personal fields);
- drops the contact from static segment snapshots;
- suppresses every email address and phone number of the person that normalizes (a
  participant's address that is not a valid email is wiped but cannot be suppressed):
  only a keyed hash is stored (:class:`~crmkit.entities.Suppression`), and adding or
  importing a contact with one of them raises :class:`crmkit.Suppressed` (imports report
  the row as rejected). An order written with a suppressed ``customer_email`` is stored
  without its customer's name, email and shipping address (an order is a business fact:
  a shop feed must not fail).

Business facts stay: a deal's amount and stage, an account's name, a ticket's status.
Backends rewrite their indexes with the rows; on SQLite crmkit turns on
``secure_delete``, merges the FTS5 index of articles when it rewrote some, and
checkpoints the write-ahead log after an erasure, so the old bytes are overwritten.
PostgreSQL keeps dead row versions until ``VACUUM`` and MongoDB's storage engine until
it reuses the space: run those after erasures where that matters.

The suppression key: HMAC-SHA256 with the CRM's privacy key. Pass one to
``crmkit.connect(url, privacy_key=...)`` (bytes or text, from your secret store) so that
the database alone does not allow testing guesses against the hashes. Without it crmkit
generates a random key on the first erasure and keeps it in the ``suppressions``
collection (a record of kind ``key``): the hashes still never reveal a value, but someone
holding the whole database can check a guess.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from crmkit.dedupe.snapshot import plain, to_document
from crmkit.entities import (
    AccountContact,
    Article,
    AuditAction,
    AuditEntry,
    CampaignMember,
    Consent,
    Contact,
    Deal,
    Entity,
    FieldDefinition,
    FieldType,
    FrozenDict,
    Interaction,
    InteractionKind,
    MergeRecord,
    Order,
    Segment,
    SegmentKind,
    StageChange,
    Suppression,
    SuppressionKind,
    SurveyResponse,
    Task,
    Ticket,
)
from crmkit.entities._base import stamped
from crmkit.entities._fields import EMPTY, sensitivity_of
from crmkit.errors import CRMError, Suppressed, ValidationError
from crmkit.query import Expr, F, Query

if TYPE_CHECKING:
    from crmkit.crm import CRM

__all__ = [
    "ERASED",
    "KEY_ID",
    "CheckpointIncomplete",
    "Privacy",
    "personal_fields",
    "sensitivity_of",
]

#: What erased text is replaced by.
ERASED = "[erased]"


class CheckpointIncomplete(UserWarning):
    """Warned after an erasure on SQLite when the write-ahead log could not be copied into
    the database file (another connection held an older snapshot): the erased values stay
    in the file's old pages until a later checkpoint (``PRAGMA wal_checkpoint``)."""


#: Suppression lists up to this size are read once per transaction by bulk writes.
CACHE_LIMIT = 50_000
#: The id of the generated privacy key's record in ``suppressions``.
KEY_ID = "privacy-key"
_BATCH = 500


_MACS: dict[bytes, hmac.HMAC] = {}


def personal_fields(entity: type[Entity]) -> dict[str, str]:
    """The tagged fields of an entity type: field name -> ``"personal"``/``"sensitive"``."""
    out: dict[str, str] = {}
    for a in attrs.fields(entity):
        tag = sensitivity_of(a)
        if tag is not None:
            out[a.name] = tag
    return out


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(set(ids))
    for i in range(0, len(items), _BATCH):
        yield items[i : i + _BATCH]


#: Separators between the digits of a written phone number.
_SEP = r"[\s\-.()]*"
#: An extension written after a number (``ext. 12``, ``x12``, ``#12``, ``;ext=12``).
_EXTENSION = rf"(?:{_SEP}(?:;ext=|extension|ext\.?|x|#){_SEP}\d+)?"


#: National numbers shorter than this (some small countries' have 4 to 6 digits) are only
#: recognized after their country code (``+683 4002``): alone they read like any number.
_NATIONAL_ALONE = 7


def _phone_pattern(phone: str) -> str | None:
    """A pattern for a stored phone number however it is written: its national significant
    number, after the country code (``+1``, ``001``, ``1``), a trunk prefix (``0``, also
    ``(0)`` after the country code) or nothing, with any separators and an optional
    extension, and not inside a longer run of digits."""
    import phonenumbers

    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        digits = [d for d in phone if d.isdigit()]
        return r"\+?" + _SEP.join(digits) if len(digits) >= 5 else None
    significant: str = phonenumbers.national_significant_number(number)
    national = _SEP.join(significant)
    region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    trunk = re.escape(getattr(metadata, "national_prefix", None) or "")
    country = rf"(?:\+|00)?{number.country_code}{_SEP}"
    if len(significant) < _NATIONAL_ALONE:  # a short number alone could be any count or code
        prefix = rf"(?:\+|00){number.country_code}{_SEP}"
    elif trunk:
        prefix = rf"(?:{country}(?:{trunk}{_SEP})?|{trunk}{_SEP})?"
    else:
        prefix = rf"(?:{country})?"
    return rf"(?<!\d)\(?{prefix}{national}{_EXTENSION}(?!\d)"


class _Redactor:
    """Replaces a person's identifiers in text and JSON documents.

    Hand-written (a few regular expressions) because what counts as "the person" here is
    crmkit's own data: their emails, phones (:func:`_phone_pattern`: national or
    international form, any separators, an extension) and names (whole words, any case,
    ``_`` counting as a separator as in file names).
    """

    def __init__(
        self,
        emails: Iterable[str],
        phones: Iterable[str],
        names: Iterable[str],
        person: str | None = None,
    ):
        #: The erased contact's id: embedded values linked to it (an email's participant)
        #: lose their personal fields entirely.
        self.person = person
        self._emails = {e.casefold() for e in emails}
        parts: list[str] = [re.escape(e) for e in sorted(set(emails), key=len, reverse=True)]
        parts += filter(None, map(_phone_pattern, sorted(set(phones))))
        words = sorted({n for n in names if n and len(n) >= 2}, key=len, reverse=True)
        # not inside a longer word; unlike \b, "_" separates (passport_grace_hopper.jpg)
        parts += [rf"(?<![^\W_]){re.escape(n)}(?![^\W_])" for n in words]
        self._pattern = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def text(self, value: str) -> str:
        """``value`` with every identifier replaced by ``[erased]``."""
        if self._pattern is None:
            return value
        return self._pattern.sub(ERASED, value)

    def finds(self, value: str) -> bool:
        """Whether ``value`` holds one of the identifiers."""
        return self._pattern is not None and self._pattern.search(value) is not None

    def is_person(self, value: Any) -> bool:
        """Whether an embedded value (an email's participant) is the person: linked to the
        erased contact, or at one of their addresses."""
        address = getattr(value, "address", None)
        return (self.person is not None and getattr(value, "contact_id", None) == self.person) or (
            isinstance(address, str) and address.casefold() in self._emails
        )

    def deep(self, value: Any) -> Any:
        """A JSON-like value (frozen or plain) with identifiers redacted at every level."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, tuple):
            return tuple(self.deep(v) for v in value)
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value


def _empty(value: Any) -> Any:
    if isinstance(value, tuple):
        return ()
    if isinstance(value, FrozenDict):
        return EMPTY
    return None


class Privacy:
    """Export and erasure of a person's data, and the suppression list (``crm.privacy``).

    See the module documentation for what is covered.
    """

    def __init__(self, crm: CRM, *, key: bytes | str | None = None) -> None:
        self._crm = crm
        self._key: bytes | None = key.encode() if isinstance(key, str) else key
        # per thread: (the open transaction's event list, its key, the digests it has seen)
        self._local = threading.local()
        if self._key is not None and len(self._key) < 16:
            raise ValidationError("privacy_key", "…", "must be at least 16 bytes long")

    # --- suppression ------------------------------------------------------------------

    # Suppression records are keyed by their digest (and the generated key by a fixed id)
    # and read with the store's primary-key lookups: the check on every contact write is
    # one indexed read, and it needs neither a filter nor the clock.

    def _store(self) -> Any:
        return self._crm.backend.store(Suppression)

    def _insert(self, records: list[Suppression]) -> None:
        now = self._crm.now()
        self._store().insert(
            [
                stamped(
                    r,
                    id=r.digest if r.kind is not SuppressionKind.KEY else KEY_ID,
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
                for r in records
            ]
        )

    def _stored_key(self, *, create: bool) -> bytes | None:
        if self._key is not None:
            return self._key
        pending = getattr(self._crm._local, "pending", None)
        cached = getattr(self._local, "key", None)
        if pending is not None and cached is not None and cached[0] is pending:
            cached_key: bytes | None = cached[1]
            if cached_key is not None or not create:
                return cached_key
        found = self._store().get_many([KEY_ID])
        if found:
            record = found[0]
        elif not create:
            if pending is not None:  # no key yet: nothing is suppressed in this transaction
                self._local.key = (pending, None)
            return None
        else:
            record = Suppression(
                kind=SuppressionKind.KEY, digest=secrets.token_hex(32), reason="privacy key"
            )
            self._insert([record])
        key = bytes.fromhex(record.digest)
        if pending is not None:
            self._local.key = (pending, key)
        elif found:  # a key read or made in a transaction is kept only for it: it may roll back
            self._key = key
        return key

    def _transaction_digests(self, *, load: bool = True) -> set[str] | None:
        """From the second contact check of a transaction on (a bulk write: every
        ``add_many`` runs in one), the whole suppression list, read once, so that each row
        is checked in memory instead of by one query per row. The first check of a
        transaction (a single add or update) and lists longer than :data:`CACHE_LIMIT` are
        checked with a primary-key read. ``None`` means: read the store."""
        pending = getattr(self._crm._local, "pending", None)
        if pending is None:
            return None
        cached = getattr(self._local, "cache", None)
        # the transaction's own list object identifies it (kept alive here, so its
        # identity cannot be reused by a later transaction)
        if cached is None or cached[0] is not pending:
            if load:
                self._local.cache = (pending, "first")
            return None
        state = cached[1]
        if isinstance(state, set):
            return state
        if state == "first" and load:
            store = self._store()
            state = "large"
            if store.count(None) <= CACHE_LIMIT:
                state = {r.id or "" for r in store.iterate(Query(), 5000)}
            self._local.cache = (pending, state)
            return state if isinstance(state, set) else None
        return None

    @staticmethod
    def _normalized(kind: SuppressionKind, value: str) -> str:
        return value.strip().lower() if kind is SuppressionKind.EMAIL else value.strip()

    @staticmethod
    def _mac(key: bytes) -> hmac.HMAC:
        """The keyed HMAC state, prepared once per key and copied per value."""
        mac = _MACS[key] = hmac.new(key, digestmod=hashlib.sha256)
        return mac

    def digest(self, kind: SuppressionKind | str, value: str, *, key: bytes) -> str:
        """The keyed hash stored for ``value`` (an email or E.164 phone)."""
        kind = SuppressionKind(kind)
        message = f"{kind.value}:{self._normalized(kind, value)}".encode()
        mac = (_MACS.get(key) or self._mac(key)).copy()
        mac.update(message)
        return mac.hexdigest()

    def suppress(self, *, emails: Iterable[str] = (), phones: Iterable[str] = ()) -> int:
        """Add email addresses and phone numbers to the suppression list (idempotent).

        Values are normalized like a contact's. Returns how many new entries were stored.
        """
        norm = self._crm.normalizer
        with self._crm.transaction():
            key = self._stored_key(create=True)
            assert key is not None
            wanted: dict[str, SuppressionKind] = {}
            for e in emails:
                wanted[self.digest("email", norm.email(e), key=key)] = SuppressionKind.EMAIL
            for p in phones:
                wanted[self.digest("phone", norm.phone(p), key=key)] = SuppressionKind.PHONE
            if not wanted:
                return 0
            have = {x.id for x in self._store().get_many(list(wanted))}
            now = self._crm.now()
            new = [
                Suppression(kind=k, digest=d, reason="erased", at=now)
                for d, k in wanted.items()
                if d not in have
            ]
            self._insert(new)
            known = self._transaction_digests(load=False)
            if known is not None:
                known.update(r.digest for r in new)
        return len(new)

    def is_suppressed(self, value: str) -> bool:
        """True when an email address or phone number is on the suppression list."""
        key = self._stored_key(create=False)
        if key is None:
            return False
        kind = SuppressionKind.EMAIL if "@" in value else SuppressionKind.PHONE
        norm = self._crm.normalizer
        try:
            plain = norm.email(value) if kind is SuppressionKind.EMAIL else norm.phone(value)
        except ValidationError:
            return False
        return bool(self._store().get_many([self.digest(kind, plain, key=key)]))

    def __call__(self, entity: Any, previous: Any | None, /) -> Any:
        """Write hook: refuse a contact carrying a suppressed email address or phone number
        (raises :class:`crmkit.Suppressed`), and store an order whose ``customer_email`` is
        suppressed without its customer's personal data (see :meth:`_order`)."""
        if type(entity) is Order:
            return self._order(entity, previous)
        if type(entity) is not Contact or not (entity.emails or entity.phones):
            return entity
        # the hot path of every contact write: values are already normalized here (the
        # normalizer runs first), so the keyed hash is computed directly
        old = () if previous is None else (*previous.emails, *previous.phones)
        values = [("email", e) for e in entity.emails if e not in old]
        values += [("phone", p) for p in entity.phones if p not in old]
        if not values:
            return entity
        key = self._stored_key(create=False)
        if key is None:
            return entity
        base = _MACS.get(key) or self._mac(key)
        digests: dict[str, tuple[str, str]] = {}
        for kind, v in values:
            mac = base.copy()
            mac.update(f"{kind}:{v}".encode())
            digests[mac.hexdigest()] = (kind, v)
        known = self._transaction_digests()
        if known is not None:
            hit = next((d for d in digests if d in known), None)
        else:
            found = self._store().get_many(list(digests))
            hit = found[0].digest if found else None
        if hit is not None:
            kind, value = digests[hit]
            field = "contact.emails" if kind == "email" else "contact.phones"
            raise Suppressed(field, value, "belongs to an erased person and may not be added again")
        return entity

    def _order(self, order: Order, previous: Order | None) -> Order:
        """``order`` without the fields erasure empties on a person's orders (customer
        name, email and shipping address, custom fields defined personal or sensitive
        unless required) when its ``customer_email`` is suppressed: an order is a business
        fact, so a shop feed storing it again must neither fail nor bring the erased
        person's data back."""
        email = order.customer_email
        if not email or (previous is not None and previous.customer_email == email):
            return order
        key = self._stored_key(create=False)
        if key is None:
            return order
        try:
            digest = self.digest("email", self._crm.normalizer.email(email), key=key)
        except ValidationError:  # not an address: it cannot be suppressed
            return order
        known = self._transaction_digests()
        found = digest in known if known is not None else self._store().get_many([digest])
        if not found:
            return order
        changes: dict[str, Any] = {n: _empty(getattr(order, n)) for n in personal_fields(Order)}
        kept = self._keep_custom(Order.collection, order.custom, keep_undefined=True)
        # a required field keeps its value: without it the order could not be stored
        required = {d.name for d in self._definitions(Order.collection) or () if d.required}
        changes["custom"] = {**kept, **{k: v for k, v in order.custom.items() if k in required}}
        return attrs.evolve(order, **changes)

    # --- export -----------------------------------------------------------------------

    def _definitions(self, collection: str) -> list[FieldDefinition] | None:
        """The custom field definitions of ``collection`` (``None``: the CRM has none)."""
        schema = getattr(self._crm, "schema", None)
        if schema is None:
            return None
        try:
            defs: list[FieldDefinition] = schema.fields(collection)
        except CRMError:  # no definitions for this collection
            return None
        return defs

    def _custom_tags(self, collection: str) -> dict[str, str | None] | None:
        defs = self._definitions(collection)
        if defs is None:
            return None
        return {d.name: getattr(d, "sensitivity", "personal") for d in defs}

    def _related(self, contact_id: str) -> dict[str, list[Any]]:
        """The records tied to the contact: linked to it (``contact_id``, ``contact_ids``,
        a deal's ``contact_roles``), or to one of its tickets or deals (interactions, tasks
        and survey responses by ``ticket_id``/``deal_id``, articles by ``ticket_ids``).
        Guest orders at the person's addresses are added by :meth:`_guest_orders`."""
        crm = self._crm
        tickets = list(crm.tickets.iterate(F.contact_id == contact_id))
        deals = list(crm.deals.iterate(_deals_of(contact_id)))
        parents = {"ticket_id": [t.id for t in tickets], "deal_id": [d.id for d in deals]}
        return {
            "account_links": crm.account_contacts.find(F.contact_id == contact_id),
            "interactions": _tied(crm.interactions, F.contact_ids.contains(contact_id), parents),
            "tasks": _tied(crm.tasks, F.contact_id == contact_id, parents),
            "tickets": tickets,
            "deals": deals,
            "campaign_memberships": crm.campaign_members.find(F.contact_id == contact_id),
            "merges": crm.repository(MergeRecord).find(
                (F.survivor_id == contact_id) | F.merged_ids.contains(contact_id)
            ),
            "orders": list(crm.orders.iterate(F.contact_id == contact_id)),
            "survey_responses": _tied(crm.survey_responses, F.contact_id == contact_id, parents),
            "articles": _tied(crm.articles, None, {"ticket_ids": parents["ticket_id"]}),
        }

    def _guest_orders(self, emails: Iterable[str], known: Iterable[Order]) -> list[Order]:
        """The orders placed at one of ``emails`` (a guest checkout) that are not among
        ``known``. ``customer_email`` is stored as given and is not indexed: each address is
        searched in any case (a scan of the orders), then compared whole."""
        wanted = {e.strip().casefold() for e in emails if "@" in e}
        where: Expr | None = None
        for email in sorted(wanted):
            part = F.customer_email.icontains(email)
            where = part if where is None else where | part
        if where is None:
            return []
        seen = {o.id for o in known}
        return [
            o
            for o in self._crm.orders.iterate(where)
            if o.id not in seen and (o.customer_email or "").strip().casefold() in wanted
        ]

    def _identifiers_of(
        self, contact: Contact, related: Mapping[str, list[Any]]
    ) -> tuple[set[str], set[str], set[str]]:
        """The person's emails, phones and names: the contact's, those of the documents of
        their merges, those their record held before (its audit entries) and those of the
        participants linked to them."""
        contact_id = contact.id or ""
        emails, phones = set(contact.emails), set(contact.phones)
        names = {contact.first_name or "", contact.last_name or "", contact.name}
        for merge in related["merges"]:
            only = _only(merge, contact_id)
            self._identifiers(merge.snapshot, emails, phones, names, only=only)
        # the emails and phones the person's record held before (not those an undone
        # merge had brought from someone else)
        others = _others_identifiers(related["merges"], contact_id)
        self._identifiers_in_audit(
            {contact_id} | _same_person(related["merges"]), emails, phones, others
        )
        for item in related["interactions"]:
            for who in getattr(item, "participants", ()):
                if getattr(who, "contact_id", None) == contact_id:
                    emails.add(getattr(who, "address", "") or "")
                    names.add(getattr(who, "name", "") or "")
        emails.discard("")
        return emails, phones, names

    def _audit(self, ids: Iterable[str]) -> list[AuditEntry]:
        out: list[AuditEntry] = []
        for chunk in _chunks(ids):
            out += self._crm.audit_log.find(F.record_id.in_(chunk), order_by="at")
        return self._crm.audit.filled(out)

    def export(self, contact_id: str) -> dict[str, Any]:
        """Everything the CRM holds about a person, as one JSON-serializable document.

        Keys: ``contact``, ``account_links``, ``accounts`` (the linked accounts),
        ``interactions``, ``tasks``, ``tickets``, ``deals``, ``campaign_memberships``,
        ``orders``, ``survey_responses``, ``articles`` (knowledge-base articles linked to
        the person's tickets), ``stage_changes`` (the stage history of the contact, its
        deals, tickets and campaign memberships), ``audit_entries`` (of the contact and
        every record listed), ``merges`` (with their snapshots), ``segments`` (static
        segments listing the contact), ``exported_at``. Records tied to the person through
        one of their tickets or deals, deals naming them in ``contact_roles`` and orders
        placed at one of their email addresses are listed with the linked ones.
        Raises ``NotFound`` for an unknown contact.
        """
        crm = self._crm
        contact = crm.contacts.get(contact_id)
        related = self._related(contact_id)
        emails, _, _ = self._identifiers_of(contact, related)
        related["orders"] += self._guest_orders(emails, related["orders"])
        merged = _same_person(related["merges"]) - {contact_id}
        people = {contact_id} | merged
        related["stage_changes"] = self._stage_changes(
            {
                "contacts": people,
                "deals": {d.id or "" for d in related["deals"]},
                "tickets": {t.id or "" for t in related["tickets"]},
                "campaign_members": {m.id or "" for m in related["campaign_memberships"]},
            }
        )
        account_ids = {x.account_id for x in related["account_links"]}
        if contact.account_id:
            account_ids.add(contact.account_id)
        records = [r for rows in related.values() for r in rows]
        links = self._deleted_links(people, related)
        deleted = [i for ids in links.values() for i in sorted(ids)]
        ids = [contact_id, *sorted(merged), *(r.id or "" for r in records), *deleted]
        audit = self._audit(dict.fromkeys(ids))
        segments = crm.segments.find(
            (F.kind == SegmentKind.STATIC) & F.member_ids.contains(contact_id)
        )
        doc: dict[str, Any] = {"contact": to_document(contact)}
        doc["accounts"] = [to_document(a) for a in crm.accounts.get_many(sorted(account_ids))]
        for name, rows in related.items():
            doc[name] = [to_document(r) for r in rows]
        # an undone merge's snapshots hold other people: only the contact's own document
        doc["merges"] = [
            {**d, "snapshot": _others_left_out(d["snapshot"], contact_id)}
            if m.unmerged_at is not None
            else d
            for m, d in zip(related["merges"], doc["merges"], strict=True)
        ]
        undone = {m.id for m in related["merges"] if m.unmerged_at is not None}
        others = _others_identifiers(related["merges"], contact_id)
        # what the person's record held while merged with someone since parted again
        theirs = _undone_values(related["merges"], lambda i: i != contact_id)
        doc["audit_entries"] = [
            _others_left_out(to_document(a), contact_id)
            if a.record_collection == MergeRecord.collection and a.record_id in undone
            else _values_left_out(_audit_left_out(to_document(a), theirs), others)
            for a in audit
        ]
        doc["segments"] = [
            {"id": s.id, "name": s.name, "snapshot_at": to_document(s).get("snapshot_at")}
            for s in segments
        ]
        doc["exported_at"] = crm.now().isoformat()
        return doc

    # --- erasure ----------------------------------------------------------------------

    def erase(self, contact_id: str, *, reason: str | None = None) -> Contact:
        """Erase a person's personal data everywhere, all or nothing; returns the tombstone.

        See the module documentation for what is erased and what stays. Erasing an
        already erased contact erases what was added since. Raises ``NotFound``.
        """
        crm = self._crm
        local = self._local
        with crm.transaction(), crm.acting(crm.acting_user, reason=reason or "erasure"):
            # only the erasure's own writes: not those of subscribers to the events its
            # transaction publishes when it commits
            local.erasing = getattr(local, "erasing", 0) + 1
            try:
                tombstone = self._erase(contact_id)
            finally:
                local.erasing -= 1
        self._purge_storage()
        return tombstone

    @property
    def erasing(self) -> bool:
        """Whether this thread is inside :meth:`erase` (the custom fields' ``required``
        rule gives way to it)."""
        return bool(getattr(self._local, "erasing", 0))

    def _erase(self, contact_id: str) -> Contact:
        """The writes of :meth:`erase`, inside its transaction; returns the tombstone."""
        crm = self._crm
        contact = crm.contacts.get(contact_id)
        related = self._related(contact_id)
        emails, phones, names = self._identifiers_of(contact, related)
        related["orders"] += self._guest_orders(emails, related["orders"])
        redactor = _Redactor(emails, phones, names, contact_id)
        # who the person's tickets and deals are about: a record tied to the person only
        # through one of them is theirs alone when no one else is (see _owned)
        parents = {
            "ticket_id": {t.id or "": {t.contact_id} for t in related["tickets"]},
            "deal_id": {d.id or "": {*d.contact_ids, *d.contact_roles} for d in related["deals"]},
        }
        # the duplicates merged into the contact were the same person (their records
        # are gone; their audit entries are not); a merge that was undone said they
        # were not
        merged = _same_person(related["merges"])
        touched: dict[str, set[str]] = {"contacts": {contact_id} | merged}

        def touch(collection: str, entity: Entity) -> None:
            touched.setdefault(collection, set()).add(entity.id or "")

        # mentions of the person in interactions they are not linked to: an email address
        # (any case) or phone number in a text, or among an email's participants
        terms = sorted(emails | phones)
        mention: Expr | None = None
        for term in terms:
            for field in ("subject", "body", "quoted_text", "signature"):
                part = F(field).icontains(term) if term in emails else F(field).contains(term)
                mention = part if mention is None else mention | part
        interactions = {i.id: i for i in related["interactions"]}
        tied = set(interactions)
        for item in [] if mention is None else crm.interactions.find(mention):
            interactions.setdefault(item.id, item)
        # participants are embedded values no backend filters on: the email interactions
        # are scanned, as an index for this rare request would cost every write (a
        # participant linked to the contact counts, like one at their address)
        folded = [t.lower() for t in terms]
        for item in crm.interactions.iterate(F.kind == InteractionKind.EMAIL):
            texts = [t.lower() for p in item.participants for t in (p.address, p.name) if t]
            if item.id not in interactions and (
                any(p.contact_id == contact_id for p in item.participants)
                or any(f in t for f in folded for t in texts)
            ):
                interactions[item.id] = item
        owned: set[str] = set()  # the records that are the person's alone
        for item in interactions.values():
            wipe = item.id in tied and _owned(item, contact_id, parents)
            self._rewrite(crm.interactions, item, redactor, wipe=wipe)
            touch("interactions", item)
            if wipe:
                owned.add(item.id or "")
        for name in (
            "tasks",
            "tickets",
            "deals",
            "account_links",
            "campaign_memberships",
            "articles",
        ):
            repo = crm.repository(_TYPES[name])
            for record in related[name]:
                own = _owned(record, contact_id, parents)
                self._rewrite(repo, record, redactor, wipe=False, own=own)
                touch(repo.entity.collection, record)
                if own:
                    owned.add(record.id or "")
        # the person's own orders and survey answers: the personal fields (name, email,
        # address, comment) are emptied; amounts, lines, dates and scores stay. Those of
        # someone else too (a guest order at the person's address linked to another
        # contact, an answer on the person's ticket by another) are only redacted.
        for name in ("orders", "survey_responses"):
            repo = crm.repository(_TYPES[name])
            for record in related[name]:
                wipe = _owned(record, contact_id, parents)
                self._rewrite(repo, record, redactor, wipe=wipe)
                touch(repo.entity.collection, record)
                if wipe:
                    owned.add(record.id or "")
        if related["articles"]:
            self._compact_text_index()
        for change in self._stage_changes(touched):
            self._rewrite(crm.stage_changes, change, redactor, wipe=False)
            touch("stage_changes", change)
        snapshots: dict[str, str | None] = {}  # merge id -> whose documents to erase
        for merge in related["merges"]:
            only = snapshots[merge.id or ""] = _only(merge, contact_id)
            snapshot = self._erase_document(merge.snapshot, redactor, only=only)
            rules = self._erase_rules(merge.rules, redactor, only=only)
            if snapshot != merge.snapshot or rules != merge.rules:
                crm.repository(MergeRecord).update(
                    attrs.evolve(merge, snapshot=snapshot, rules=rules)
                )
            touch("merges", merge)
        for segment in crm.segments.iterate():
            members = tuple(m for m in segment.member_ids if m != contact_id)
            rule = self._redact_rule(segment.entity, segment.rule, redactor)
            if members != segment.member_ids or rule != segment.rule:
                crm.segments.update(attrs.evolve(segment, member_ids=members, rule=rule))
                touch("segments", segment)
        tombstone = self._tombstone(crm.contacts.get(contact_id), redactor)
        tombstone = crm.contacts.update(tombstone)
        # an address or number that does not normalize (a participant's display text) is
        # wiped above but cannot be suppressed
        norm = crm.normalizer
        self.suppress(
            emails=_normalizing(norm.email, emails), phones=_normalizing(norm.phone, phones)
        )
        # records tied to the person and deleted before: their audit entries remain
        for collection, ids in self._deleted_links({contact_id} | merged, related).items():
            touched.setdefault(collection, set()).update(ids)
        # last: the audit entries of every write above included
        for collection, ids in touched.items():
            self._scrub_audit(collection, ids, redactor, snapshots=snapshots, owned=owned)
        # the other contacts of merges that were undone: their history holds the person's
        # values from the time they were one record
        self._scrub_others(related["merges"], contact_id, {contact_id} | merged, redactor)
        return tombstone

    def _scrub_others(
        self, merges: Iterable[MergeRecord], contact_id: str, people: set[str], redactor: _Redactor
    ) -> None:
        """Take the person's personal values (as their documents in the snapshots of undone
        merges hold them) and identifiers out of the audit entries of the other contacts of
        those merges; the other contacts' own values stay."""
        mine = _undone_values(merges, lambda i: i == contact_id)
        others = {
            i
            for m in merges
            if m.unmerged_at is not None
            for i in (m.survivor_id, *m.merged_ids)
            if i not in people
        }
        repo = self._crm.audit_log
        for chunk in _chunks(sorted(others)):
            where = (F.record_collection == Contact.collection) & F.record_id.in_(chunk)
            for entry in repo.find(where):
                changes = redactor.deep(_left_out(entry.changes or {}, mine))
                if changes != (entry.changes or {}):
                    repo.update(attrs.evolve(entry, changes=changes))

    @staticmethod
    def _identifiers(
        doc: Any, emails: set[str], phones: set[str], names: set[str], *, only: str | None
    ) -> None:
        """Collect the identifiers of the contact documents in a merge snapshot (only the
        document of contact ``only``, when given)."""
        if isinstance(doc, Mapping):
            if _is_person(doc, only):
                emails.update(e for e in doc.get("emails") or () if isinstance(e, str))
                phones.update(p for p in doc.get("phones") or () if isinstance(p, str))
                for key in ("first_name", "last_name"):
                    if isinstance(doc.get(key), str):
                        names.add(doc[key])
            for value in doc.values():
                Privacy._identifiers(value, emails, phones, names, only=only)
        elif isinstance(doc, list | tuple):
            for value in doc:
                Privacy._identifiers(value, emails, phones, names, only=only)

    def _identifiers_in_audit(
        self, ids: set[str], emails: set[str], phones: set[str], others: set[str]
    ) -> None:
        """Collect the emails and phones the contacts ``ids`` held at any time (the old and
        new values of their audit entries), except ``others`` (the other people's of undone
        merges) and those another contact holds now (an address passed on)."""
        found: dict[str, set[str]] = {"emails": set(), "phones": set()}
        for chunk in _chunks(ids):
            where = (F.record_collection == Contact.collection) & F.record_id.in_(chunk)
            for entry in self._crm.audit_log.iterate(where):
                for field, into in found.items():
                    for value in _sides(entry, field):
                        if isinstance(value, list | tuple):
                            into.update(v for v in value if isinstance(v, str))
        for field, into in found.items():
            into -= emails if field == "emails" else phones
            into -= others
            for chunk in _chunks(into):
                for other in self._crm.contacts.find(F(field).in_(chunk)):
                    if other.id not in ids:
                        into.difference_update(getattr(other, field))
        emails |= found["emails"]
        phones |= found["phones"]

    def _erase_document(self, doc: Any, redactor: _Redactor, *, only: str | None) -> Any:
        """A merge snapshot with contact documents' personal fields emptied (only the
        document of contact ``only``, when given) and the person's identifiers redacted."""
        personal = personal_fields(Contact)
        if isinstance(doc, Mapping):
            is_person = _is_person(doc, only)
            out: dict[str, Any] = {}
            for key, value in doc.items():
                if is_person and key in personal:
                    out[key] = _empty_json(value)
                else:
                    out[key] = self._erase_document(value, redactor, only=only)
            return out
        if isinstance(doc, list | tuple):
            return [self._erase_document(v, redactor, only=only) for v in doc]
        return redactor.deep(doc)

    def _erase_rules(self, rules: Any, redactor: _Redactor, *, only: str | None) -> Any:
        """A merge's survivorship rules erased like its snapshot: the override values
        (``{"value": ...}``) of personal fields emptied while the merge stands (they are the
        person's), the person's identifiers redacted in the others and in all the values of
        an undone merge (``only`` given); strategy names are kept."""
        if not isinstance(rules, Mapping):
            return redactor.deep(rules)
        personal = personal_fields(Contact)
        out: dict[str, Any] = {}
        for field, rule in rules.items():
            if isinstance(rule, Mapping) and "value" in rule:
                value = rule["value"]
                mine = only is None and field in personal
                rule = {**rule, "value": _empty_json(value) if mine else redactor.deep(value)}
            out[field] = rule
        return out

    def _deleted_links(
        self, people: set[str], related: Mapping[str, list[Any]]
    ) -> dict[str, set[str]]:
        """The ids of records that were tied to one of the contacts ``people`` (one person)
        when they were deleted, by collection: linked to them (a deal also by its
        ``contact_roles``) or to one of their tickets or deals in ``related``. Their audit
        entries still hold what they said about the person. A scan of the delete entries
        of the linked collections: an index for this rare request would cost every write."""
        tickets = {t.id or "" for t in related["tickets"]}
        parents = {"ticket_id": tickets, "ticket_ids": tickets}
        parents["deal_id"] = {d.id or "" for d in related["deals"]}
        found: dict[str, set[str]] = {}
        collections = sorted({*_LINKS, Article.collection})
        deletes = (F.action == AuditAction.DELETE) & F.record_collection.in_(collections)
        for entry in self._crm.audit_log.iterate(deletes):
            changes = entry.changes or {}
            link = _LINKS.get(entry.record_collection or "", "")
            wanted = {link: people, "contact_roles": people, **parents}
            if any(_old_ids(changes.get(field)) & ids for field, ids in wanted.items()):
                found.setdefault(entry.record_collection or "", set()).add(entry.record_id or "")
        return found

    def _stage_changes(self, touched: Mapping[str, set[str]]) -> list[StageChange]:
        """The stage history of these contacts (lifecycle), deals, tickets and campaign
        memberships (``touched``: collection -> ids)."""
        out: list[StageChange] = []
        for collection in ("contacts", "deals", "tickets", "campaign_members"):
            for chunk in _chunks(touched.get(collection, ())):
                out += self._crm.stage_changes.find(
                    (F.record_collection == collection) & F.record_id.in_(chunk)
                )
        return out

    def _rewrite(
        self, repo: Any, record: Entity, redactor: _Redactor, *, wipe: bool, own: bool = False
    ) -> None:
        """Store ``record`` with the person's identifiers redacted (personal fields emptied
        when ``wipe``; custom fields defined personal or sensitive dropped when ``wipe`` or
        the record is the person's ``own``); nothing is written when nothing changes."""
        current = repo.get(record.id)
        personal = personal_fields(type(current))
        changes: dict[str, Any] = {}
        for a in attrs.fields(type(current)):
            if a.name in ("id", "version", "created_at", "updated_at") or a.metadata.get("ref"):
                continue
            value = getattr(current, a.name)
            if value is None:
                continue
            if wipe and a.name in personal and a.default is not attrs.NOTHING:
                new = _empty(value)
            elif a.name == "custom":
                collection = repo.entity.collection
                mine = wipe or own
                kept = self._keep_custom(collection, value, keep_undefined=True) if mine else value
                new = self._redact_custom(collection, kept, redactor)
            else:
                new = self._redact_value(value, redactor)
            new = _fit(a, new)
            if new != value:
                changes[a.name] = new
        if changes:
            repo.update(attrs.evolve(current, **changes))

    def _redact_value(self, value: Any, redactor: _Redactor) -> Any:
        if isinstance(value, str):
            return redactor.text(value)
        if isinstance(value, tuple):
            if all(isinstance(v, str) for v in value):
                return tuple(dict.fromkeys(redactor.text(v) for v in value))
            return tuple(self._redact_value(v, redactor) for v in value)
        if isinstance(value, Mapping):
            return redactor.deep(value)
        if attrs.has(type(value)):
            if redactor.is_person(value):
                wiped = {
                    a.name: ERASED if a.default is attrs.NOTHING else None
                    for a in attrs.fields(type(value))
                    if sensitivity_of(a) is not None
                }
                value = attrs.evolve(value, **wiped)
            changes = {
                a.name: _fit(a, self._redact_value(getattr(value, a.name), redactor))
                for a in attrs.fields(type(value))
                if isinstance(getattr(value, a.name), str)
            }
            return attrs.evolve(value, **changes) if changes else value
        return value

    def _redact_custom(
        self, collection: str, custom: Mapping[str, Any], redactor: _Redactor
    ) -> dict[str, Any]:
        """``custom`` with the person's identifiers redacted. An enum choice is business
        data, not text: it is kept, or cleared when it holds an identifier (a multi-enum
        loses those choices), so the value stays one of the field's choices."""
        types = {d.name: d.type for d in self._definitions(collection) or ()}
        out: dict[str, Any] = {}
        for key, value in custom.items():
            kind = types.get(key)
            if kind is FieldType.ENUM and isinstance(value, str):
                if not redactor.finds(value):
                    out[key] = value
            elif kind is FieldType.MULTI_ENUM and isinstance(value, list | tuple):
                kept = [v for v in value if not (isinstance(v, str) and redactor.finds(v))]
                if kept:
                    out[key] = type(value)(kept)
            else:
                out[key] = redactor.deep(value)
        return out

    def _redact_rule(self, collection: str, rule: Any, redactor: _Redactor) -> Any:
        """A segment rule with the person's identifiers redacted, except in the conditions
        on enum custom fields: their values are choices (kept, as on records), and a value
        outside the choices would make the rule fail."""
        enums = {
            f"custom.{d.name}"
            for d in self._definitions(collection) or ()
            if d.type in (FieldType.ENUM, FieldType.MULTI_ENUM)
        }

        def redact(node: Any) -> Any:
            if isinstance(node, Mapping):
                if node.get("field") in enums:
                    return node
                return {k: redact(v) for k, v in node.items()}
            if isinstance(node, list | tuple):
                return type(node)(redact(v) for v in node)
            return redactor.deep(node)

        return redact(rule)

    def _keep_custom(
        self, collection: str, custom: Mapping[str, Any], *, keep_undefined: bool
    ) -> FrozenDict:
        """``custom`` without the fields defined as personal or sensitive (and without the
        undefined ones unless ``keep_undefined``)."""
        tags = self._custom_tags(collection) or {}
        return FrozenDict(
            {
                k: v
                for k, v in custom.items()
                if (k in tags and tags[k] is None) or (k not in tags and keep_undefined)
            }
        )

    def _tombstone(self, contact: Contact, redactor: _Redactor) -> Contact:
        personal = personal_fields(Contact)
        changes: dict[str, Any] = {
            name: _empty(getattr(contact, name)) for name in personal if name != "custom"
        }
        changes["custom"] = self._redact_custom(
            "contacts",
            self._keep_custom("contacts", contact.custom, keep_undefined=False),
            redactor,
        )
        # the consent history is the legal record of consent: only its free text is redacted
        source = attrs.fields(Consent).source
        changes["consents"] = tuple(
            attrs.evolve(c, source=_fit(source, redactor.text(c.source))) if c.source else c
            for c in contact.consents
        )
        changes.update({name: _empty(getattr(contact, name)) for name in _ALSO_EMPTIED})
        changes["erased_at"] = contact.erased_at or self._crm.now()
        return attrs.evolve(contact, **changes)

    def _scrub_audit(
        self,
        collection: str,
        ids: Iterable[str],
        redactor: _Redactor,
        *,
        snapshots: Mapping[str, str | None],
        owned: Collection[str] = (),
    ) -> None:
        """Empty the personal values of the audit entries of these records and redact the
        person's identifiers in the rest; a merge's snapshots are erased as the merge
        record's own (``snapshots``: merge id -> whose documents). Custom fields defined
        personal or sensitive lose their values only in the history of the records that
        are the person's alone (``owned``), as on the records themselves."""
        entity = _COLLECTIONS.get(collection)
        personal = set(personal_fields(entity)) if entity is not None else set()
        if entity is Contact:  # emptied on the tombstone: in its history too
            personal.update(_ALSO_EMPTIED)
        tags = self._custom_tags(collection)
        repo = self._crm.audit_log
        for chunk in _chunks(ids):
            where = (F.record_collection == collection) & F.record_id.in_(chunk)
            for entry in repo.find(where):
                changes: dict[str, Any] = {}
                for field, change in (entry.changes or {}).items():
                    root = field.split(".")[0]
                    custom_key = (
                        field.split(".", 1)[1] if root == "custom" and "." in field else None
                    )
                    if custom_key is None:
                        is_personal = root in personal
                    elif root in personal:  # a contact's: personal unless defined otherwise
                        is_personal = tags is None or tags.get(custom_key, "p") is not None
                    else:  # another record's: when defined personal or sensitive
                        is_personal = (
                            entry.record_id in owned
                            and tags is not None
                            and tags.get(custom_key) is not None
                        )
                    if is_personal and isinstance(change, Mapping):
                        changes[field] = dict.fromkeys(change)
                    elif (
                        field == "custom"
                        and tags
                        and entry.record_id in owned
                        and isinstance(change, Mapping)
                    ):
                        # the whole mapping changed: its fields defined personal or
                        # sensitive go, the rest is redacted
                        changes[field] = {
                            side: redactor.deep(
                                self._keep_custom(collection, value, keep_undefined=True)
                                if isinstance(value, Mapping)
                                else value
                            )
                            for side, value in change.items()
                        }
                    elif collection == "merges" and root == "snapshot":
                        only = snapshots.get(entry.record_id or "")
                        changes[field] = self._erase_document(change, redactor, only=only)
                    elif (
                        collection == "merges" and field == "rules" and isinstance(change, Mapping)
                    ):
                        only = snapshots.get(entry.record_id or "")
                        changes[field] = {
                            side: self._erase_rules(rules, redactor, only=only)
                            for side, rules in change.items()
                        }
                    else:
                        changes[field] = redactor.deep(change)
                reason = redactor.text(entry.reason) if entry.reason else entry.reason
                if changes != (entry.changes or {}) or reason != entry.reason:
                    repo.update(attrs.evolve(entry, changes=changes, reason=reason))

    def _compact_text_index(self) -> None:
        """Merge the segments of SQLite's FTS5 index of articles, in the erasure's
        transaction. FTS5 keeps a rewritten article's old words in its segments (and writes
        them again as delete markers) until segments are merged; merged, the pages that
        held them are freed, and ``secure_delete`` zeroes them. This rewrites the whole
        index, so it runs only when the erasure rewrote articles. Other backends rewrite
        their index entries with the rows."""
        backend = self._crm.backend
        if getattr(backend, "dialect", None) != "sqlite":
            return
        table = f"{backend.prefix}articles_search"  # type: ignore[attr-defined]
        with backend.writing() as conn:  # type: ignore[attr-defined]
            found = conn.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).scalar()
            if found:  # missing when the host's own migrations left search objects out
                name = '"' + table.replace('"', '""') + '"'
                conn.exec_driver_sql(f"INSERT INTO {name} ({name}) VALUES ('optimize')")

    def _purge_storage(self) -> None:
        """Make the storage overwrite what was erased where it can, once the erasure is
        committed (:meth:`crmkit.CRM.after_commit`: inside a caller's transaction, when
        that commits). SQLite: checkpoint the write-ahead log; ``secure_delete`` already
        zeroes freed space."""
        engine = getattr(self._crm.backend, "engine", None)
        if engine is not None and engine.dialect.name == "sqlite":
            self._crm.after_commit(self._checkpoint)

    def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and empty it. It waits (the busy
        timeout) for readers of older snapshots; when one still holds its snapshot, the old
        pages stay until a later checkpoint and ``CheckpointIncomplete`` is warned."""
        with self._crm.backend.reading() as conn:  # type: ignore[attr-defined]
            busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
        if busy is not None and busy[0]:
            warnings.warn(
                "erased data may remain in the SQLite database file until the next "
                "checkpoint: another connection was reading an older snapshot",
                CheckpointIncomplete,
                stacklevel=4,
            )


def _empty_json(value: Any) -> Any:
    """The empty value of a JSON value's kind (a list, a document, else ``None``)."""
    if isinstance(value, list | tuple):
        return []
    return {} if isinstance(value, Mapping) else None


def _normalizing(normalize: Callable[[str], str], values: Iterable[str]) -> list[str]:
    """The ``values`` that ``normalize`` (the normalizer's ``email`` or ``phone``) accepts."""
    out: list[str] = []
    for value in values:
        try:
            normalize(value)
        except ValidationError:
            continue
        out.append(value)
    return out


def _tied(repo: Any, where: Expr | None, parents: Mapping[str, list[str | None]]) -> list[Any]:
    """The records of ``repo`` matching ``where`` or referring to one of the person's
    tickets or deals (``parents``: reference field -> ids; the fields the entity does not
    have are skipped), each once. References are indexed: these are index lookups."""
    fields = attrs.fields_dict(repo.entity)
    found = {} if where is None else {r.id: r for r in repo.iterate(where)}
    for field, ids in parents.items():
        if field not in fields:
            continue
        for chunk in _chunks(i for i in ids if i):
            for record in repo.iterate(F(field).in_(chunk)):
                found.setdefault(record.id, record)
    return list(found.values())


#: The keys a mapping can hold (:func:`crmkit.entities._fields.check_key`).
_MAPPING_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _deals_of(contact_id: str) -> Expr:
    """The deals naming the contact: in ``contact_ids`` or only in ``contact_roles`` (a
    role for someone outside the buying committee is accepted). A mapping's entries are
    indexed by key and value together, not by key alone, so the role part reads every
    deal."""
    where = F.contact_ids.contains(contact_id)
    if _MAPPING_KEY.fullmatch(contact_id) is None:  # no role can name it
        return where
    return where | F(f"contact_roles.{contact_id}").exists()


def _fit(field: attrs.Attribute[Any], value: Any) -> Any:
    """``value`` cut to the text field's ``max_length``: ``[erased]`` is longer than a
    short name it replaces, and erasure must not fail on a text it made too long."""
    limit = field.metadata.get("max_length")
    if isinstance(value, str) and limit is not None and len(value) > limit:
        return value[:limit]
    return value


def _owned(record: Any, contact_id: str, parents: Mapping[str, Mapping[str, set[str]]]) -> bool:
    """Whether a record tied to the person is theirs alone: the contacts it names (a deal's
    ``contact_roles`` included), or when it names none, those of the person's ticket or
    deal it belongs to (``parents``: reference field -> id -> contacts), are only the
    person. A guest order names no one."""
    named = {
        *getattr(record, "contact_ids", ()),
        *getattr(record, "contact_roles", {}),
        getattr(record, "contact_id", None),
    }
    named.discard(None)
    if not named:
        for field, people in parents.items():
            named |= people.get(getattr(record, field, None) or "", set())
    return named <= {contact_id}


def _old_ids(change: Any) -> set[str]:
    """The ids an audit change's old value held: one id, a list of them, or the keys of a
    mapping (a deal's ``contact_roles``)."""
    old = change.get("old") if isinstance(change, Mapping) else None
    if isinstance(old, str):
        return {old}
    if isinstance(old, Mapping | list | tuple):
        return {i for i in old if isinstance(i, str)}
    return set()


def _sides(entry: AuditEntry, field: str) -> tuple[Any, ...]:
    """The old and new values of ``field`` in an audit entry (none if it did not change)."""
    change = (entry.changes or {}).get(field)
    return (change.get("old"), change.get("new")) if isinstance(change, Mapping) else ()


def _only(merge: MergeRecord, contact_id: str) -> str | None:
    """Whose documents of ``merge``'s snapshot are the person's: all of them (``None``)
    while the merge stands, only the contact's own once it was undone."""
    return None if merge.unmerged_at is None else contact_id


def _same_person(merges: Iterable[MergeRecord]) -> set[str]:
    """The contacts that merges still standing made one person."""
    return {i for m in merges if m.unmerged_at is None for i in (m.survivor_id, *m.merged_ids)}


def _others_left_out(doc: Any, contact_id: str) -> Any:
    """A snapshot with the documents of contacts other than ``contact_id`` cut to their id."""
    if isinstance(doc, Mapping):
        if _is_person(doc, None) and doc.get("id") != contact_id:
            return {"id": doc.get("id")}
        return {k: _others_left_out(v, contact_id) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [_others_left_out(v, contact_id) for v in doc]
    return doc


def _others_identifiers(merges: Iterable[MergeRecord], contact_id: str) -> set[str]:
    """The emails and phones of the other contacts of merges that were undone: a contact's
    history holds them from the time it was merged with them, and they are not its own."""
    theirs = _undone_values(merges, lambda i: i != contact_id)
    return {
        value
        for field in ("emails", "phones")
        for values in theirs.get(field, ())
        for value in values
        if isinstance(value, str)
    }


def _undone_values(
    merges: Iterable[MergeRecord], whose: Callable[[str], bool]
) -> dict[str, list[Any]]:
    """The personal values, by contact field, of the contact documents in the snapshots of
    merges that were undone whose id ``whose`` accepts (the person's, or the others')."""
    personal = set(personal_fields(Contact)) | set(_ALSO_EMPTIED)
    found: dict[str, list[Any]] = {}
    for merge in merges:
        if merge.unmerged_at is None:
            continue
        snapshot = merge.snapshot
        for doc in [snapshot.get("survivor"), *(snapshot.get("duplicates") or ())]:
            if not isinstance(doc, Mapping) or not whose(str(doc.get("id"))):
                continue
            for field, value in doc.items():
                if field in personal and value not in (None, "", [], {}):
                    found.setdefault(field, []).append(plain(value))
    return found


def _left_out(changes: Mapping[str, Any], values: Mapping[str, list[Any]]) -> dict[str, Any]:
    """Audit ``changes`` without ``values`` (by field): an old or new value equal to one of
    them is ``None``, a list loses the items the lists among them hold, and a mapping the
    entries their mappings hold. A value the record shared with the other contact goes
    too: it cannot be told apart."""
    out: dict[str, Any] = {}
    for field, change in changes.items():
        known = values.get(field.split(".")[0])
        if not known or not isinstance(change, Mapping):
            out[field] = change
            continue
        items = {json.dumps(i, sort_keys=True) for v in known if isinstance(v, list) for i in v}
        side: dict[str, Any] = {}
        for name, value in change.items():
            value = plain(value)
            if isinstance(value, list) and items:
                value = [i for i in value if json.dumps(i, sort_keys=True) not in items]
            elif isinstance(value, dict):  # custom, address: part by part
                parts = [k for k in known if isinstance(k, dict)]
                value = {
                    k: v for k, v in value.items() if not any(k in o and o[k] == v for o in parts)
                }
            elif value in known:
                value = None
            side[name] = value
        out[field] = side
    return out


def _audit_left_out(entry: Mapping[str, Any], values: Mapping[str, list[Any]]) -> Any:
    """An exported contact audit entry without ``values`` in its changes (see
    :func:`_left_out`); other entries as they are."""
    if not values or entry.get("record_collection") != Contact.collection:
        return entry
    return {**entry, "changes": _left_out(entry.get("changes") or {}, values)}


def _values_left_out(doc: Any, values: set[str]) -> Any:
    """A document with the text ``values`` taken out of its lists (``emails``, ``phones``
    of audit changes)."""
    if not values:
        return doc
    if isinstance(doc, Mapping):
        return {k: _values_left_out(v, values) for k, v in doc.items()}
    if isinstance(doc, list):
        return [
            _values_left_out(v, values) for v in doc if not (isinstance(v, str) and v in values)
        ]
    return doc


def _is_person(doc: Mapping[str, Any], only: str | None) -> bool:
    """Whether a snapshot document is a contact's (and contact ``only``'s, when given)."""
    return ("emails" in doc or "phones" in doc) and (only is None or doc.get("id") == only)


#: Fields of a contact that are not tagged personal but can say much about a person (a
#: programme, a referral): the tombstone empties them, and so does the scrub of its history.
_ALSO_EMPTIED = ("tags", "lead_source")

#: The field linking a record of each collection to contacts (deleted records included).
_LINKS: dict[str, str] = {
    "interactions": "contact_ids",
    "deals": "contact_ids",
    "tasks": "contact_id",
    "tickets": "contact_id",
    "account_contacts": "contact_id",
    "campaign_members": "contact_id",
    "orders": "contact_id",
    "survey_responses": "contact_id",
}

_TYPES: dict[str, type[Entity]] = {
    "articles": Article,
    "tasks": Task,
    "tickets": Ticket,
    "deals": Deal,
    "account_links": AccountContact,
    "campaign_memberships": CampaignMember,
    "orders": Order,
    "survey_responses": SurveyResponse,
}
_COLLECTIONS: dict[str, type[Entity]] = {
    t.collection: t
    for t in (
        Article,
        Contact,
        Interaction,
        Task,
        Ticket,
        Deal,
        AccountContact,
        CampaignMember,
        Segment,
        Order,
        SurveyResponse,
    )
}
