"""``crm.email``: messages, mailboxes and IMAP folders become linked email interactions.

Each message is stored once (keyed by :attr:`Interaction.message_id`), grouped into a
thread, linked to the contacts of its participants and, by the routing rules of
:class:`EmailSettings`, to a support ticket. Everything goes through the repositories, so
it works on every backend and, on a user's view (``crm.as_user(u).email``), within that
user's permissions.
"""

from __future__ import annotations

import email.message
import imaplib
import mailbox
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from crmkit.email.parse import (
    MessageError,
    ParsedAddress,
    ParsedMessage,
    base_subject,
    parse_message,
)
from crmkit.entities import (
    Channel,
    Contact,
    Direction,
    Interaction,
    InteractionKind,
    LifecycleStage,
    Participant,
    ParticipantRole,
    Ticket,
)
from crmkit.errors import CRMError, ValidationError
from crmkit.query import F

if TYPE_CHECKING:
    from crmkit.crm import CRM
    from crmkit.permissions import UserView

__all__ = ["EmailCapture", "EmailSettings", "IngestReport", "IngestResult", "RejectedMessage"]

_TICKET_REF = re.compile(r"\[#\s*([A-Za-z0-9][A-Za-z0-9_.-]{0,60})\s*\]")
_SUBJECT_PREFIXES = ("", "Re: ", "RE: ", "Fwd: ", "FW: ", "Fw: ", "AW: ", "WG: ", "SV: ")


def _addresses(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.strip().casefold() for v in values if v and v.strip())


@attrs.frozen(kw_only=True)
class EmailSettings:
    """How messages are read: the organization's own addresses and domains (a message from
    them is outbound), the support addresses (a message to one opens or joins a ticket),
    and whether unknown senders become lead contacts."""

    own_addresses: frozenset[str] = attrs.field(factory=frozenset, converter=_addresses)
    own_domains: frozenset[str] = attrs.field(factory=frozenset, converter=_addresses)
    support_addresses: frozenset[str] = attrs.field(factory=frozenset, converter=_addresses)
    create_leads: bool = False
    lead_source: str = "email"

    def is_own(self, address: str) -> bool:
        """Whether ``address`` belongs to the organization."""
        folded = address.casefold()
        domain = folded.rpartition("@")[2]
        return (
            folded in self.own_addresses
            or folded in self.support_addresses
            or (domain in self.own_domains)
        )


@attrs.frozen
class RejectedMessage:
    """A message that was not stored: where it came from and why."""

    source: str
    reason: str


@attrs.frozen
class IngestResult:
    """The outcome of one message: ``status`` is ``"created"``, ``"duplicate"`` (stored
    before: nothing changed) or ``"rejected"`` (``reason`` says why). ``ticket`` is the
    ticket it was linked to (``ticket_opened``: one it opened); ``automatic`` names an
    automatic message (``"auto_reply"``, ``"bounce"``)."""

    status: str
    source: str
    interaction: Interaction | None = None
    ticket: Ticket | None = None
    reason: str | None = None
    automatic: str | None = None
    ticket_opened: bool = False


@attrs.define
class IngestReport:
    """The outcome of a mailbox: counts and every rejected message with its reason."""

    created: int = 0
    duplicates: int = 0
    automatic: int = 0
    tickets_opened: int = 0
    rejected: list[RejectedMessage] = attrs.field(factory=list)
    last_uid: int | None = None

    @property
    def total(self) -> int:
        """Every message seen."""
        return self.created + self.duplicates + len(self.rejected)

    def add(self, result: IngestResult) -> None:
        """Count ``result``."""
        if result.status == "created":
            self.created += 1
            if result.automatic:
                self.automatic += 1
            if result.ticket_opened:
                self.tickets_opened += 1
        elif result.status == "duplicate":
            self.duplicates += 1
        else:
            self.rejected.append(RejectedMessage(result.source, result.reason or "unknown"))


class EmailCapture:
    """Email capture of a CRM (``crm.email``) or of a user's view (``view.email``)."""

    def __init__(self, source: CRM | UserView, settings: EmailSettings | None = None) -> None:
        self._source = source
        # a user's view follows the CRM's settings unless given its own
        self._settings = (
            settings if settings is not None or hasattr(source, "crm") else (EmailSettings())
        )

    @property
    def settings(self) -> EmailSettings:
        """The routing settings (a user's view uses its CRM's); change with :meth:`configure`."""
        if self._settings is not None:
            return self._settings
        crm: Any = getattr(self._source, "crm", None)
        shared: EmailSettings = crm.email.settings
        return shared

    @settings.setter
    def settings(self, value: EmailSettings) -> None:
        if not isinstance(value, EmailSettings):
            raise ValidationError("email settings", value, "must be EmailSettings")
        self._settings = value

    def configure(self, **options: Any) -> EmailSettings:
        """Set :class:`EmailSettings` fields (``own_domains=[...]``, ``create_leads=True``
        ...); returns the new settings. Raises ``ValidationError`` for an unknown option."""
        try:
            self.settings = attrs.evolve(self.settings, **options)
        except TypeError as exc:
            raise ValidationError("email settings", options, f"are not known ({exc})") from None
        return self.settings

    # --- one message ----------------------------------------------------------------------

    def ingest(
        self, message: bytes | str | email.message.Message, *, source: str = "message"
    ) -> IngestResult:
        """Store one RFC 822 message as an email interaction (see the module doc).

        Returns an :class:`IngestResult`; a message that cannot be read is ``"rejected"``
        with the reason (nothing stored), one stored before is a ``"duplicate"`` (nothing
        changed). Writes are all-or-nothing.
        """
        try:
            parsed = parse_message(message)
        except MessageError as exc:
            return IngestResult("rejected", source, reason=exc.reason)
        try:
            with self._source.transaction():
                return self._store(parsed, source)
        except CRMError as exc:
            return IngestResult("rejected", source, reason=str(exc))

    def _store(self, msg: ParsedMessage, source: str) -> IngestResult:
        src = self._source
        stored = src.interactions.first(F.message_id == msg.key)
        if stored is not None:
            return IngestResult("duplicate", source, interaction=stored)
        settings = self.settings
        sender = msg.sender
        outbound = sender is not None and settings.is_own(sender.address)
        direction: Direction | None = Direction.OUTBOUND if outbound else Direction.INBOUND
        if msg.automatic:
            direction = None  # not a customer's reply (nor ours)
        thread_id, thread = self._thread(msg)
        participants, contact_ids = self._participants(
            msg, create=not outbound and not msg.automatic
        )
        account_id = None
        if contact_ids:
            first = src.contacts.get(contact_ids[0])
            account_id = first.account_id
        ticket, opened = None, False
        if not msg.automatic:
            ticket = self._ticket_of(msg, thread)
            to_support = any(
                p.address.casefold() in settings.support_addresses for p in (*msg.to, *msg.cc)
            )
            if ticket is None and to_support and not outbound:
                ticket = src.tickets.add(
                    Ticket(
                        subject=msg.subject or "(no subject)",
                        description=msg.body,
                        channel=Channel.EMAIL,
                        contact_id=contact_ids[0] if contact_ids else None,
                        account_id=account_id,
                    )
                )
                opened = True
        interaction = src.interactions.add(
            Interaction(
                kind=InteractionKind.EMAIL,
                occurred_at=msg.sent_at,
                direction=direction,
                subject=msg.subject,
                body=msg.body,
                quoted_text=msg.quoted_text,
                signature=msg.signature,
                contact_ids=tuple(contact_ids),
                account_id=account_id,
                ticket_id=ticket.id if ticket is not None else None,
                message_id=msg.key,
                thread_id=thread_id,
                participants=tuple(participants),
                attachments=msg.attachments,
                outcome=msg.automatic,
            )
        )
        if ticket is not None and ticket.id is not None and not opened:
            ticket = src.tickets.get(ticket.id)  # the first response may have been recorded
        return IngestResult(
            "created",
            source,
            interaction=interaction,
            ticket=ticket if (opened or ticket is not None) else None,
            automatic=msg.automatic,
            ticket_opened=opened,
        )

    def _thread(self, msg: ParsedMessage) -> tuple[str, list[Interaction]]:
        """The thread key of ``msg`` and the stored messages of that thread."""
        src = self._source
        related = [*msg.references, *msg.in_reply_to]
        if related:
            known = src.interactions.find(F.message_id.in_(related), limit=50)
            thread_id = next((i.thread_id for i in known if i.thread_id), msg.thread_root)
        else:
            thread_id = msg.key
            base = base_subject(msg.subject)
            if base and base != (msg.subject or "").casefold().strip():
                # a reply without threading headers: the subject is all there is
                subject = " ".join((msg.subject or "").split())
                stem = subject[len(subject) - len(base) :]
                variants = [p + stem for p in _SUBJECT_PREFIXES]
                earlier = src.interactions.first(
                    (F.kind == InteractionKind.EMAIL) & F.subject.in_(variants),
                    order_by="occurred_at",
                )
                if earlier is not None and earlier.thread_id:
                    thread_id = earlier.thread_id
        thread = src.interactions.find(F.thread_id == thread_id, order_by="occurred_at")
        return thread_id, thread

    def _ticket_of(self, msg: ParsedMessage, thread: Sequence[Interaction]) -> Ticket | None:
        """The open ticket ``msg`` belongs to: its thread's, or the one its subject names."""
        src = self._source
        ids = [i.ticket_id for i in reversed(thread) if i.ticket_id]
        for ticket_id in ids:
            ticket = src.tickets.first(F.id == ticket_id)
            if ticket is not None and ticket.resolved_at is None:
                return ticket
        for ref in _TICKET_REF.findall(msg.subject or ""):
            ticket = src.tickets.first(F.external_ids.reference == ref) or src.tickets.first(
                F.id == ref
            )
            if ticket is not None and ticket.resolved_at is None:
                return ticket
        return None

    def _participants(
        self, msg: ParsedMessage, *, create: bool
    ) -> tuple[list[Participant], list[str]]:
        """The participants with their contacts, and the linked contact ids (sender first)."""
        src = self._source
        roles: list[tuple[ParticipantRole, ParsedAddress]] = []
        if msg.sender is not None:
            roles.append((ParticipantRole.FROM, msg.sender))
        roles += [(ParticipantRole.TO, a) for a in msg.to]
        roles += [(ParticipantRole.CC, a) for a in msg.cc]
        normalizer = self._normalizer()
        keys: dict[str, str] = {}
        for _, a in roles:
            try:
                keys[a.address] = normalizer.email(a.address)
            except ValidationError:
                keys[a.address] = a.address.casefold()
        wanted = sorted({keys[a.address] for _, a in roles if not self.settings.is_own(a.address)})
        by_email: dict[str, str] = {}
        if wanted:
            for contact in src.contacts.find(F.emails.in_(wanted), order_by="created_at"):
                for e in contact.emails:
                    by_email.setdefault(e.casefold(), contact.id or "")
        if create and msg.sender is not None and not self.settings.is_own(msg.sender.address):
            key = keys[msg.sender.address]
            if key not in by_email and self.settings.create_leads:
                by_email[key] = self._lead(msg.sender, key)
        participants: list[Participant] = []
        contact_ids: list[str] = []
        for role, a in roles:
            key = keys[a.address]
            contact_id = by_email.get(key.casefold()) or None
            participants.append(
                Participant(role=role, address=key, name=a.name, contact_id=contact_id)
            )
            if contact_id and contact_id not in contact_ids:
                contact_ids.append(contact_id)
        return participants, contact_ids

    def _lead(self, sender: ParsedAddress, address: str) -> str:
        """A new lead contact for an unknown sender (normalized, duplicate rule applied)."""
        from crmkit.dedupe import DuplicateFound

        first, last = None, None
        if sender.name and "@" not in sender.name:
            parts = sender.name.replace('"', "").split()
            if len(parts) > 1:
                first, last = " ".join(parts[:-1]), parts[-1]
            elif parts:
                first = parts[0]
        try:
            contact = self._source.contacts.add(
                Contact(
                    first_name=first,
                    last_name=last,
                    emails=(address,),
                    lifecycle_stage=LifecycleStage.LEAD,
                    lead_source=self.settings.lead_source,
                )
            )
        except DuplicateFound as exc:
            if exc.duplicate_id is None:
                raise
            return exc.duplicate_id
        return contact.id or ""

    def _normalizer(self) -> Any:
        crm: Any = getattr(self._source, "crm", self._source)
        return crm.normalizer

    # --- mailboxes ------------------------------------------------------------------------

    def ingest_many(
        self, messages: Iterable[tuple[str, Any]], *, batch_size: int = 200
    ) -> IngestReport:
        """Ingest ``(source, message)`` pairs; returns the :class:`IngestReport`.

        Messages are committed in batches of ``batch_size`` (each message in a savepoint of
        its own, so a rejected one leaves the others of its batch stored)."""
        report = IngestReport()
        batch: list[tuple[str, Any]] = []

        def flush() -> None:
            with self._source.transaction():
                for source, message in batch:
                    report.add(self.ingest(message, source=source))
            batch.clear()

        for item in messages:
            batch.append(item)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        return report

    def ingest_mailbox(self, path: str | os.PathLike[str]) -> IngestReport:
        """Ingest every message of an mbox file or a Maildir folder (``cur``/``new``/``tmp``
        inside); raises ``ValidationError`` when ``path`` is neither."""
        return self.ingest_many(_mailbox_messages(os.fspath(path)))

    def ingest_imap(
        self,
        client: imaplib.IMAP4,
        *,
        folder: str = "INBOX",
        since_uid: int | None = None,
    ) -> IngestReport:
        """Ingest the messages of an IMAP ``folder`` with a UID above ``since_uid`` (all
        of them when ``None``), read with ``BODY.PEEK[]`` (flags untouched). The report's
        ``last_uid`` is the highest UID seen: pass it as ``since_uid`` next time. The
        client must be logged in. Raises ``CRMError`` when the server refuses."""
        status, _ = client.select(_quote(folder), readonly=True)
        if status != "OK":
            raise CRMError(f"IMAP folder {folder!r} cannot be selected")
        low = (since_uid or 0) + 1
        status, data = client.uid("SEARCH", f"UID {low}:*")
        if status != "OK":
            raise CRMError(f"IMAP search failed in {folder!r}")
        uids = sorted(int(u) for u in (data[0] or b"").split() if int(u) >= low)
        report = IngestReport(last_uid=since_uid)
        for start in range(0, len(uids), 100):
            batch = uids[start : start + 100]
            status, fetched = client.uid("FETCH", ",".join(map(str, batch)), "(UID BODY.PEEK[])")
            if status != "OK":
                raise CRMError(f"IMAP fetch failed in {folder!r}")
            for item in fetched:
                if not isinstance(item, tuple):
                    continue
                match = re.search(rb"UID (\d+)", item[0])
                uid = int(match.group(1)) if match else 0
                report.add(self.ingest(item[1], source=f"imap:{folder}:{uid}"))
                report.last_uid = max(report.last_uid or 0, uid)
        return report


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mailbox_messages(path: str) -> Iterator[tuple[str, bytes]]:
    if os.path.isdir(path):
        if not all(os.path.isdir(os.path.join(path, d)) for d in ("cur", "new")):
            raise ValidationError("path", path, "is a folder but not a Maildir (no cur/new)")
        maildir = mailbox.Maildir(path, factory=None, create=False)
        for key in sorted(maildir.keys()):
            with maildir.get_file(key) as handle:
                yield f"{path}:{key}", handle.read()
        return
    if not os.path.isfile(path):
        raise ValidationError("path", path, "is neither an mbox file nor a Maildir folder")
    box = mailbox.mbox(path, factory=None, create=False)
    try:
        for i, key in enumerate(box.keys()):
            yield f"{path}:{i}", box.get_bytes(key)
    finally:
        box.close()
