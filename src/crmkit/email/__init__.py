"""Email capture: RFC 822 messages, mbox files, Maildir folders and IMAP mailboxes become
email interactions linked to contacts, threads and support tickets (``crm.email``).

See :class:`EmailCapture` for the service and :func:`parse_message` for the reading of
one message on its own.
"""

from crmkit.email.capture import (
    EmailCapture,
    EmailSettings,
    IngestReport,
    IngestResult,
    RejectedMessage,
)
from crmkit.email.parse import Automatic, MessageError, ParsedAddress, ParsedMessage, parse_message

__all__ = [
    "Automatic",
    "EmailCapture",
    "EmailSettings",
    "IngestReport",
    "IngestResult",
    "MessageError",
    "ParsedAddress",
    "ParsedMessage",
    "RejectedMessage",
    "parse_message",
]
