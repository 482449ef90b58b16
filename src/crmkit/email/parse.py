"""Reading one RFC 822 message into the parts crmkit keeps (no storage involved).

The standard library's :mod:`email` package (``policy.default``) decodes headers
(RFC 2047 encoded words), addresses, dates and bodies in any charset Python knows; HTML
bodies become text with ``inscriptis``. What is hand-written here is only the email
*conventions* no library covers in one place: where a quoted reply and a signature start,
and which messages are automatic (out-of-office replies, delivery failures).
"""

from __future__ import annotations

import datetime as dt
import email
import email.message
import email.policy
import email.utils
import hashlib
import re
from collections.abc import Iterator

import attrs

from crmkit.entities import Attachment

__all__ = ["Automatic", "MessageError", "ParsedAddress", "ParsedMessage", "parse_message"]


class MessageError(ValueError):
    """A message crmkit cannot read; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Automatic:
    """Kinds of automatic messages (never logged as a customer's reply)."""

    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"


@attrs.frozen
class ParsedAddress:
    """A mailbox of a header: its address (lower-cased domain) and display name."""

    address: str
    name: str | None = None


@attrs.frozen
class ParsedMessage:
    """What crmkit keeps of a message. ``key`` is its Message-ID (without angle brackets)
    or, when it has none, ``sha256:`` and a hash of its bytes."""

    key: str
    message_id: str | None
    subject: str | None
    sender: ParsedAddress | None
    to: tuple[ParsedAddress, ...]
    cc: tuple[ParsedAddress, ...]
    sent_at: dt.datetime
    body: str | None
    quoted_text: str | None
    signature: str | None
    attachments: tuple[Attachment, ...]
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    automatic: str | None

    @property
    def thread_root(self) -> str:
        """The key of the conversation's first message as far as this message tells."""
        if self.references:
            return self.references[0]
        if self.in_reply_to:
            return self.in_reply_to[0]
        return self.key


_POLICY = email.policy.default
_MSGID = re.compile(r"<([^<>\s]+)>")
_REPLY_PREFIX = re.compile(
    r"^\s*((re|aw|sv|vs|antw|wg|fw|fwd|tr|rif|r)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE
)
_BOUNCE_SUBJECT = re.compile(
    r"^(undeliver(ed|able)|delivery (status notification|failure|has failed)|"
    r"returned mail|mail delivery (failed|system)|failure notice)",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"^(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheitsnotiz|"
    r"r[ée]ponse automatique|auto:)",
    re.IGNORECASE,
)
_ATTRIBUTION = re.compile(
    r"^(on\b.{0,300}\bwrote:|am\b.{0,300}\bschrieb .{0,200}:|le\b.{0,300}\ba écrit ?:)\s*$",
    re.IGNORECASE,
)
_ORIGINAL = re.compile(r"^-{2,}\s*(original message|ursprüngliche nachricht)\s*-{2,}\s*$", re.I)
_BOUNCERS = ("mailer-daemon@", "postmaster@")


def base_subject(subject: str | None) -> str:
    """``subject`` without reply and forward prefixes (``Re:``, ``AW:``, ``Fwd:``...),
    whitespace collapsed and lower-cased: the key of the subject fallback for threads."""
    if not subject:
        return ""
    return " ".join(_REPLY_PREFIX.sub("", subject).split()).casefold()


def message_ids(value: str | None) -> tuple[str, ...]:
    """The ``<id>`` tokens of a Message-ID / In-Reply-To / References header, in order."""
    if not value:
        return ()
    out: list[str] = []
    for token in _MSGID.findall(value):
        if token not in out:
            out.append(token)
    return tuple(out)


def to_message(
    raw: bytes | str | email.message.Message,
) -> tuple[email.message.EmailMessage, bytes]:
    """The parsed message and the bytes its content hash is taken of."""
    if isinstance(raw, email.message.EmailMessage):
        return raw, raw.as_bytes(policy=_POLICY.clone(linesep="\n"))
    if isinstance(raw, email.message.Message):
        data = raw.as_bytes()
    elif isinstance(raw, str):
        data = raw.encode("utf-8", "surrogateescape")
    elif isinstance(raw, bytes | bytearray | memoryview):
        data = bytes(raw)
    else:
        raise MessageError(f"is a {type(raw).__name__}, not bytes, text or an EmailMessage")
    if not data.strip():
        raise MessageError("is empty")
    message = email.message_from_bytes(data, policy=_POLICY)
    assert isinstance(message, email.message.EmailMessage)
    return message, data


def _header(message: email.message.EmailMessage, name: str) -> str | None:
    try:
        value = message.get(name)
    except Exception as exc:  # a header the policy cannot even parse
        raise MessageError(f"has an unreadable {name} header ({exc})") from None
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _addresses(message: email.message.EmailMessage, name: str) -> tuple[ParsedAddress, ...]:
    values = message.get_all(name) or []
    out: list[ParsedAddress] = []
    for value in values:
        try:
            pairs = [(a.display_name, a.addr_spec) for a in value.addresses]
        except Exception:  # not a structured address header: read it the lenient way
            pairs = email.utils.getaddresses([str(value)])
        for display, spec in pairs:
            spec = spec.strip().strip("<>")
            if "@" not in spec:
                continue
            local, _, domain = spec.rpartition("@")
            address = f"{local}@{domain.lower()}"
            if all(p.address.casefold() != address.casefold() for p in out):
                out.append(ParsedAddress(address, " ".join(display.split()) or None))
    return tuple(out)


def _sent_at(message: email.message.EmailMessage) -> dt.datetime:
    candidates: list[str] = []
    date = message.get("Date")
    if date is not None:
        candidates.append(str(date))
    for received in message.get_all("Received") or []:  # the last hop's time, if any
        candidates.append(str(received).rpartition(";")[2])
    for text in candidates:
        try:
            when = email.utils.parsedate_to_datetime(text.strip())
        except (TypeError, ValueError, IndexError):
            continue
        if when.tzinfo is None:  # "-0000": the zone is unknown; RFC 5322 says read it as UTC
            when = when.replace(tzinfo=dt.UTC)
        return when
    raise MessageError("has no readable Date (nor Received) header")


def _text(part: email.message.EmailMessage) -> str:
    try:
        content = part.get_content()
    except LookupError:
        raise MessageError(f"is in an unknown charset ({part.get_content_charset()!r})") from None
    except Exception as exc:
        raise MessageError(f"has an undecodable {part.get_content_type()} part ({exc})") from None
    if not isinstance(content, str):
        raise MessageError(f"has a {part.get_content_type()} body that is not text")
    return content


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body (``inscriptis``: keeps lists, tables, quotes)."""
    from inscriptis import get_text  # type: ignore[import-untyped]

    text: str = get_text(html)
    return text


def _attachments(message: email.message.EmailMessage) -> Iterator[Attachment]:
    for part in message.iter_attachments():
        assert isinstance(part, email.message.EmailMessage)
        ctype = part.get_content_type()
        if part.is_multipart() and ctype != "message/rfc822":
            yield from _attachments(part)
            continue
        if ctype == "message/rfc822":
            inner = part.get_payload(0) if part.is_multipart() else part.get_content()
            data = inner.as_bytes() if isinstance(inner, email.message.Message) else b""
        elif ctype in ("message/delivery-status", "text/rfc822-headers"):
            data = part.as_bytes().partition(b"\n\n")[2]
        else:
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
        yield Attachment(
            filename=part.get_filename() or None,
            content_type=ctype,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )


def split_reply(text: str) -> tuple[str, str | None, str | None]:
    """Split a plain-text body into (new text, quoted reply, signature).

    The signature starts at the RFC 3676 separator line ``-- ``; the quoted reply at an
    attribution line (``On ... wrote:``), an ``-----Original Message-----`` line or the
    first ``>`` line. Quoted lines between answers (inline replies) go to the quoted text,
    the answers stay in the body.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    body: list[str] = []
    quoted: list[str] = []
    signature: list[str] | None = None
    original = False
    for i, line in enumerate(lines):
        if signature is not None:
            signature.append(line)
            continue
        if original:
            quoted.append(line)
            continue
        if line == "-- " or (line == "--" and not quoted):
            signature = []
            continue
        stripped = line.strip()
        if _ORIGINAL.match(stripped):
            original = True
            quoted.append(line)
            continue
        if stripped.startswith(">"):
            quoted.append(line)
            continue
        if _ATTRIBUTION.match(stripped):
            rest = [x for x in lines[i + 1 :] if x.strip()]
            if rest and rest[0].lstrip().startswith(">"):
                quoted.append(line)
                continue
        body.append(line)

    def joined(part: list[str] | None) -> str | None:
        if part is None:
            return None
        value = "\n".join(part).strip()
        return value or None

    return (joined(body) or "", joined(quoted), joined(signature))


def _automatic(message: email.message.EmailMessage, sender: ParsedAddress | None) -> str | None:
    ctype = message.get_content_type()
    subject = _header(message, "Subject") or ""
    if ctype == "multipart/report" and message.get_param("report-type") == "delivery-status":
        return Automatic.BOUNCE
    address = sender.address.casefold() if sender else ""
    if address.startswith(_BOUNCERS) or (
        _BOUNCE_SUBJECT.match(subject) and not (_header(message, "Return-Path") or "x").strip("<> ")
    ):
        return Automatic.BOUNCE
    auto = (_header(message, "Auto-Submitted") or "no").lower()
    if auto != "no":
        return Automatic.AUTO_REPLY
    if any(message.get(h) is not None for h in ("X-Autoreply", "X-Autorespond")):
        return Automatic.AUTO_REPLY
    if (_header(message, "Precedence") or "").lower() in ("auto_reply", "bulk", "junk"):
        return Automatic.AUTO_REPLY
    if _AUTO_SUBJECT.match(subject):
        return Automatic.AUTO_REPLY
    return None


def parse_message(raw: bytes | str | email.message.Message) -> ParsedMessage:
    """Read one message (raw bytes, text or an :class:`email.message.EmailMessage`).

    Raises :class:`MessageError` (with the reason) for a message that cannot be read:
    empty input, no headers, no sender, no readable date, an unknown charset.
    """
    message, data = to_message(raw)
    if not message.keys():
        raise MessageError("has no headers (not an RFC 822 message)")
    defects = [d for d in message.defects if type(d).__name__ == "MissingHeaderBodySeparatorDefect"]
    if defects and not any(message.get(h) for h in ("From", "Date", "Subject")):
        raise MessageError("has no header block (not an RFC 822 message)")
    senders = _addresses(message, "From")
    if not senders:
        senders = _addresses(message, "Sender")
    if not senders:
        raise MessageError("has no sender address (From header)")
    sender = senders[0]
    ids = message_ids(_header(message, "Message-ID"))
    message_id = ids[0] if ids else None
    key = message_id or "sha256:" + hashlib.sha256(data).hexdigest()
    body_part = message.get_body(preferencelist=("plain", "html"))
    text = ""
    if isinstance(body_part, email.message.EmailMessage):
        text = _text(body_part)
        if body_part.get_content_subtype() == "html":
            text = html_to_text(text)
    text = text.replace("\r\n", "\n").replace("\x00", "")
    new, quoted, signature = split_reply(text)
    references = message_ids(_header(message, "References"))
    in_reply_to = message_ids(_header(message, "In-Reply-To"))
    return ParsedMessage(
        key=key,
        message_id=message_id,
        subject=_header(message, "Subject"),
        sender=sender,
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        sent_at=_sent_at(message),
        body=new or None,
        quoted_text=quoted,
        signature=signature,
        attachments=tuple(_attachments(message)),
        in_reply_to=in_reply_to,
        references=references,
        automatic=_automatic(message, sender),
    )
