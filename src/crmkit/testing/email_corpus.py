"""A deterministic corpus of real-world-shaped email messages and what crmkit makes of them.

Used by :class:`crmkit.testing.conformance_email.EmailConformance` (every backend ingests
it) and written to ``tests/email/corpus/*.eml``. The organization is ``acme.example``
(support address ``support@acme.example``); Ada and Grace are known contacts; ticket
``T-1042`` is open before the corpus arrives.
"""

from __future__ import annotations

import base64
import quopri
from typing import Any

__all__ = ["CORPUS", "EXPECTED", "OWN_DOMAINS", "SUPPORT", "corpus"]

OWN_DOMAINS = ("acme.example",)
SUPPORT = "support@acme.example"

_PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
_PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


def _raw(headers: list[tuple[str, str]], body: bytes | str) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers).encode("ascii")
    data = body.encode("utf-8") if isinstance(body, str) else body
    return head + b"\r\n" + data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _b64(data: bytes) -> str:
    text = base64.b64encode(data).decode("ascii")
    return "\n".join(text[i : i + 76] for i in range(0, len(text), 76))


def _ew(charset: str, text: str) -> str:
    """An RFC 2047 encoded word (base64) of ``text`` in ``charset``."""
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode('ascii')}?="


def _std(mid: str | None, frm: str, to: str, subject: str, date: str) -> list[tuple[str, str]]:
    h = [("Return-Path", "<bounce@mx.example>"), ("From", frm), ("To", to)]
    h += [("Subject", subject), ("Date", date)]
    if mid is not None:
        h.append(("Message-ID", f"<{mid}>"))
    h.append(("MIME-Version", "1.0"))
    return h


ADA = "Ada Lovelace <ada@customer.example>"
GRACE = "Grace Hopper <grace@navy.example>"
BOB = "Bob Agent <bob@acme.example>"


def corpus() -> dict[str, bytes]:
    """The messages by name, in ingest order (names sort in that order too)."""
    m: dict[str, bytes] = {}
    text = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Transfer-Encoding", "8bit")]
    m["m01_support_request"] = _raw(
        _std(
            "m01@customer.example",
            ADA,
            SUPPORT,
            "Printer on fire",
            "Mon, 02 Nov 2026 09:00:00 +0100",
        )
        + text,
        "Hello,\n\nour printer is on fire again.\n\n-- \nAda Lovelace\nAnalytical Engines Ltd\n",
    )
    m["m02_agent_reply"] = _raw(
        [
            *_std(
                "m02@acme.example",
                BOB,
                ADA,
                "Re: Printer on fire",
                "Mon, 02 Nov 2026 10:30:00 +0100",
            ),
            ("Cc", SUPPORT),
            ("In-Reply-To", "<m01@customer.example>"),
            ("References", "<m01@customer.example>"),
            *text,
        ],
        "Hi Ada,\n\nplease unplug it.\n\nOn Mon, 2 Nov 2026 at 09:00, Ada Lovelace wrote:\n"
        "> Hello,\n>\n> our printer is on fire again.\n",
    )
    m["m03_customer_followup"] = _raw(
        [
            *_std(
                "m03@customer.example",
                ADA,
                SUPPORT,
                "Re: Re: Printer on fire",
                "Mon, 02 Nov 2026 11:00:00 +0100",
            ),
            ("In-Reply-To", "<m02@acme.example>"),
            ("References", "<m01@customer.example> <m02@acme.example>"),
            *text,
        ],
        "Done, thanks!\n\n> please unplug it.\n\n-- \nAda\n",
    )
    m["m04_ticket_reference"] = _raw(
        _std(
            "m04@navy.example",
            GRACE,
            SUPPORT,
            "Re: [#T-1042] Invoice question",
            "Tue, 03 Nov 2026 08:15:00 -0500",
        )
        + text,
        "Any news on the invoice?\n",
    )
    m["m05_multipart_alternative"] = _raw(
        [
            *_std(
                "m05@navy.example",
                GRACE,
                "bob@acme.example",
                "Meeting notes",
                "Tue, 03 Nov 2026 09:00:00 -0500",
            ),
            ("Content-Type", 'multipart/alternative; boundary="alt5"'),
        ],
        "--alt5\nContent-Type: text/plain; charset=us-ascii\n\nNotes: ship it.\n"
        "--alt5\nContent-Type: text/html; charset=us-ascii\n\n<p>Notes: <b>ship it</b>.</p>\n"
        "--alt5--\n",
    )
    m["m06_html_only"] = _raw(
        [
            *_std(
                "m06@customer.example",
                ADA,
                "bob@acme.example",
                "Order list",
                "Tue, 03 Nov 2026 10:00:00 +0000",
            ),
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Transfer-Encoding", "quoted-printable"),
        ],
        quopri.encodestring(
            "<html><body><p>We need:</p><ul><li>3 gears</li><li>2 levers</li></ul>"
            "<p>Caf\u00e9 on us.</p></body></html>\n".encode()
        ),
    )
    m["m07_latin1"] = _raw(
        [
            *_std(
                "m07@customer.example",
                ADA,
                "bob@acme.example",
                "=?ISO-8859-1?Q?R=E9sum=E9_attach=E9?=",
                "Wed, 04 Nov 2026 12:00:00 +0100",
            ),
            ("Content-Type", "text/plain; charset=ISO-8859-1"),
            ("Content-Transfer-Encoding", "8bit"),
        ],
        "Voil\u00e0 mon r\u00e9sum\u00e9, \u00e7a va?\n".encode("iso-8859-1"),
    )
    m["m08_cyrillic_1251"] = _raw(
        [
            *_std(
                "m08@mail.example",
                _ew("windows-1251", "Иван Петров") + " <ivan@mail.example>",
                "bob@acme.example",
                _ew("windows-1251", "Привет"),
                "Wed, 04 Nov 2026 13:00:00 +0300",
            ),
            ("Content-Type", "text/plain; charset=windows-1251"),
            ("Content-Transfer-Encoding", "base64"),
        ],
        _b64("\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!\n".encode("cp1251")),
    )
    m["m09_japanese_iso2022"] = _raw(
        [
            *_std(
                "m09@mail.example",
                "Taro <taro@mail.example>",
                "bob@acme.example",
                _ew("iso-2022-jp", "こんにちは"),
                "Wed, 04 Nov 2026 20:00:00 +0900",
            ),
            ("Content-Type", "text/plain; charset=ISO-2022-JP"),
            ("Content-Transfer-Encoding", "7bit"),
        ],
        "\u3053\u3093\u306b\u3061\u306f\u3001\u4e16\u754c\n".encode("iso-2022-jp"),
    )
    m["m10_utf8_base64_emoji"] = _raw(
        [
            *_std(
                "m10@customer.example",
                ADA,
                "bob@acme.example",
                _ew("utf-8", "🎉 Launch"),
                "Thu, 05 Nov 2026 09:00:00 +0000",
            ),
            ("Content-Type", "text/plain; charset=UTF-8"),
            ("Content-Transfer-Encoding", "base64"),
        ],
        _b64("We launched \U0001f680 today.\n".encode()),
    )
    m["m11_encoded_sender_name"] = _raw(
        _std(
            "m11@mail.example",
            "=?utf-8?q?Zo=C3=AB_M=C3=BCller?= <zoe@mail.example>",
            SUPPORT,
            "Hallo",
            "Thu, 05 Nov 2026 10:00:00 +0100",
        )
        + text,
        "Guten Tag, ich habe eine Frage.\n",
    )
    m["m12_missing_message_id"] = _raw(
        _std(None, GRACE, "bob@acme.example", "No id here", "Thu, 05 Nov 2026 11:00:00 -0500")
        + text,
        "Sent from an old client without Message-ID.\n",
    )
    m["m13_pdf_attachment"] = _raw(
        [
            *_std(
                "m13@customer.example",
                ADA,
                "bob@acme.example",
                "Invoice attached",
                "Fri, 06 Nov 2026 09:00:00 +0000",
            ),
            ("Content-Type", 'multipart/mixed; boundary="mix13"'),
        ],
        "--mix13\nContent-Type: text/plain; charset=utf-8\n\nSee the attached invoice.\n"
        '--mix13\nContent-Type: application/pdf; name="invoice.pdf"\n'
        'Content-Disposition: attachment; filename="invoice.pdf"\n'
        f"Content-Transfer-Encoding: base64\n\n{_b64(_PDF)}\n--mix13--\n",
    )
    m["m14_two_attachments_rfc2231"] = _raw(
        [
            *_std(
                "m14@navy.example",
                GRACE,
                "bob@acme.example",
                "Photos",
                "Fri, 06 Nov 2026 10:00:00 -0500",
            ),
            ("Content-Type", 'multipart/mixed; boundary="mix14"'),
        ],
        "--mix14\nContent-Type: text/plain; charset=utf-8\n\nTwo files.\n"
        "--mix14\nContent-Type: image/png\n"
        "Content-Disposition: attachment; filename*=UTF-8''gr%C3%BC%C3%9Fe.png\n"
        f"Content-Transfer-Encoding: base64\n\n{_b64(_PNG)}\n"
        "--mix14\nContent-Type: text/csv; charset=utf-8\n"
        'Content-Disposition: attachment; filename="data.csv"\n\na,b\n1,2\n--mix14--\n',
    )
    m["m15_forward_as_attachment"] = _raw(
        [
            *_std(
                "m15@customer.example",
                ADA,
                "bob@acme.example",
                "Fwd: Printer on fire",
                "Fri, 06 Nov 2026 11:00:00 +0000",
            ),
            ("Content-Type", 'multipart/mixed; boundary="mix15"'),
        ],
        "--mix15\nContent-Type: text/plain; charset=utf-8\n\nFYI, see below.\n"
        "--mix15\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n"
        "From: someone@else.example\nSubject: original\nDate: Fri, 06 Nov 2026 08:00:00 +0000\n"
        "Message-ID: <inner15@else.example>\n\nOriginal text.\n--mix15--\n",
    )
    m["m16_inline_forward"] = _raw(
        _std(
            "m16@acme.example", BOB, GRACE, "Fwd: Meeting notes", "Fri, 06 Nov 2026 12:00:00 +0000"
        )
        + text,
        "Grace, for you.\n\n---------- Forwarded message ---------\n"
        "From: Carol <carol@acme.example>\n"
        "Subject: Meeting notes\n\nThe notes.\n",
    )
    m["m17_auto_submitted_reply"] = _raw(
        [
            *_std(
                "m17@customer.example",
                ADA,
                "bob@acme.example",
                "Automatic reply: Re: Printer on fire",
                "Sat, 07 Nov 2026 09:00:00 +0000",
            ),
            ("Auto-Submitted", "auto-replied"),
            ("In-Reply-To", "<m02@acme.example>"),
            ("References", "<m01@customer.example> <m02@acme.example>"),
            *text,
        ],
        "I am away until Monday.\n",
    )
    m["m18_out_of_office"] = _raw(
        [
            *_std(
                "m18@navy.example",
                GRACE,
                SUPPORT,
                "Out of Office: Invoice question",
                "Sat, 07 Nov 2026 10:00:00 -0500",
            ),
            ("X-Autoreply", "yes"),
            *text,
        ],
        "Out of office.\n",
    )
    m["m19_bounce_dsn"] = _raw(
        [
            *_std(
                "m19@mx.acme.example",
                "Mail Delivery System <MAILER-DAEMON@mx.acme.example>",
                "bob@acme.example",
                "Undelivered Mail Returned to Sender",
                "Sat, 07 Nov 2026 11:00:00 +0000",
            ),
            ("Content-Type", 'multipart/report; report-type=delivery-status; boundary="dsn19"'),
        ],
        "--dsn19\nContent-Type: text/plain\n\nYour message could not be delivered.\n"
        "--dsn19\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.acme.example\n\n"
        "Final-Recipient: rfc822; nobody@customer.example\nAction: failed\nStatus: 5.1.1\n"
        "--dsn19\nContent-Type: text/rfc822-headers\n\nSubject: Hello\n--dsn19--\n",
    )
    m["m20_bounce_postmaster"] = _raw(
        _std(
            "m20@mx.navy.example",
            "postmaster@navy.example",
            "bob@acme.example",
            "Undeliverable: Photos",
            "Sat, 07 Nov 2026 12:00:00 +0000",
        )
        + text,
        "Delivery has failed to these recipients.\n",
    )
    m["m21_outlook_original_message"] = _raw(
        [
            *_std(
                "m21@navy.example",
                GRACE,
                "bob@acme.example",
                "RE: Photos",
                "Sun, 08 Nov 2026 09:00:00 -0500",
            ),
            ("In-Reply-To", "<m14@navy.example>"),
            *text,
        ],
        "Got them, thanks.\n\n-----Original Message-----\nFrom: Bob\nSent: Friday\n\nPhotos.\n",
    )
    m["m22_topic_start"] = _raw(
        _std(
            "m22@navy.example",
            GRACE,
            "bob@acme.example",
            "Quarterly review",
            "Sun, 08 Nov 2026 10:00:00 -0500",
        )
        + text,
        "Shall we meet?\n",
    )
    m["m23_subject_fallback_reply"] = _raw(
        _std(
            "m23@acme.example",
            BOB,
            GRACE,
            "RE: Quarterly review",
            "Sun, 08 Nov 2026 16:00:00 +0000",
        )
        + text,
        "Yes, Tuesday.\n",
    )
    m["m24_unknown_sender_support"] = _raw(
        _std(
            "m24@newco.example",
            '"Linus Newman" <linus@newco.example>',
            SUPPORT,
            "Pricing question",
            "Mon, 09 Nov 2026 09:00:00 +0100",
        )
        + text,
        "How much is it?\n",
    )
    m["m25_cc_participants"] = _raw(
        [
            *_std(
                "m25@customer.example",
                ADA,
                "bob@acme.example",
                "Intro",
                "Mon, 09 Nov 2026 10:00:00 +0000",
            ),
            ("Cc", f"{GRACE}, carol@acme.example"),
            *text,
        ],
        "Bob, meet Grace.\n",
    )
    m["m26_half_hour_zone"] = _raw(
        _std(
            "m26@mail.example",
            "Priya <priya@mail.example>",
            "bob@acme.example",
            "Namaste",
            "Mon, 09 Nov 2026 15:30:00 +0530",
        )
        + text,
        "Hello from Pune.\n",
    )
    m["m27_no_sender"] = _raw(
        [
            ("To", "bob@acme.example"),
            ("Subject", "who am I"),
            ("Date", "Mon, 09 Nov 2026 16:00:00 +0000"),
            ("Message-ID", "<m27@x.example>"),
        ],
        "No From header at all.\n",
    )
    m["m28_not_a_message"] = b"\x00\x01\x02\xff\xfe binary junk without headers\x00"
    m["m29_unknown_charset"] = _raw(
        [
            *_std(
                "m29@mail.example",
                "x@mail.example",
                "bob@acme.example",
                "charset",
                "Mon, 09 Nov 2026 17:00:00 +0000",
            ),
            ("Content-Type", "text/plain; charset=x-no-such-charset"),
        ],
        b"\x8f\x90\x91\n",
    )
    m["m30_no_date"] = _raw(
        [
            ("From", "y@mail.example"),
            ("To", "bob@acme.example"),
            ("Subject", "undated"),
            ("Message-ID", "<m30@mail.example>"),
        ],
        "When was this sent?\n",
    )
    m["m31_received_date_only"] = _raw(
        [
            (
                "Received",
                "from mx.mail.example by mx.acme.example; Tue, 10 Nov 2026 08:00:00 +0000",
            ),
            ("From", "z@mail.example"),
            ("To", "bob@acme.example"),
            ("Subject", "no Date header"),
            ("Message-ID", "<m31@mail.example>"),
        ],
        "The Received header tells when.\n",
    )
    m["m32_inline_answers"] = _raw(
        [
            *_std(
                "m32@customer.example",
                ADA,
                "bob@acme.example",
                "Re: Order list",
                "Tue, 10 Nov 2026 09:00:00 +0000",
            ),
            ("In-Reply-To", "<m06@customer.example>"),
            ("References", "<m06@customer.example>"),
            *text,
        ],
        "> 3 gears\nMake it 4.\n> 2 levers\nFine.\n",
    )
    m["m33_uppercase_address"] = _raw(
        _std(
            "m33@customer.example",
            "ADA@Customer.Example",
            "bob@acme.example",
            "Caps",
            "Tue, 10 Nov 2026 10:00:00 +0000",
        )
        + text,
        "Shouting address.\n",
    )
    return m


#: The corpus, built once.
CORPUS: dict[str, bytes] = corpus()

#: What each message becomes. ``status``: created / rejected. ``direction``: inbound,
#: outbound or None (automatic). ``thread``: the name of the thread's first message.
#: ``ticket``: "T-1042", the name of the message that opened it, or None. ``contacts``:
#: first names of the linked contacts. Further keys are checked when present.
EXPECTED: dict[str, dict[str, Any]] = {
    "m01_support_request": {
        "direction": "inbound",
        "ticket": "m01_support_request",
        "contacts": ["Ada"],
        "signature": "Ada Lovelace\nAnalytical Engines Ltd",
        "body": "Hello,\n\nour printer is on fire again.",
    },
    "m02_agent_reply": {
        "direction": "outbound",
        "thread": "m01_support_request",
        "ticket": "m01_support_request",
        "contacts": ["Ada"],
        "body": "Hi Ada,\n\nplease unplug it.",
        "quoted": True,
    },
    "m03_customer_followup": {
        "direction": "inbound",
        "thread": "m01_support_request",
        "ticket": "m01_support_request",
        "contacts": ["Ada"],
        "body": "Done, thanks!",
        "quoted": True,
        "signature": "Ada",
    },
    "m04_ticket_reference": {"direction": "inbound", "ticket": "T-1042", "contacts": ["Grace"]},
    "m05_multipart_alternative": {
        "direction": "inbound",
        "body": "Notes: ship it.",
        "contacts": ["Grace"],
    },
    "m06_html_only": {"direction": "inbound", "body_contains": ["3 gears", "2 levers", "Café"]},
    "m07_latin1": {"subject": "Résumé attaché", "body": "Voilà mon résumé, ça va?"},
    "m08_cyrillic_1251": {
        "subject": "Привет",
        "body": "Привет, мир!",
        "sender_name": "Иван Петров",
        "contacts": ["Иван"],
    },
    "m09_japanese_iso2022": {"subject": "こんにちは", "body": "こんにちは、世界"},
    "m10_utf8_base64_emoji": {
        "subject": "\U0001f389 Launch",
        "body": "We launched \U0001f680 today.",
    },
    "m11_encoded_sender_name": {
        "sender_name": "Zoë Müller",
        "ticket": "m11_encoded_sender_name",
        "contacts": ["Zoë"],
    },
    "m12_missing_message_id": {"key_hashed": True, "contacts": ["Grace"]},
    "m13_pdf_attachment": {"attachments": [("invoice.pdf", "application/pdf", len(_PDF))]},
    "m14_two_attachments_rfc2231": {
        "attachments": [("grüße.png", "image/png", len(_PNG)), ("data.csv", "text/csv", 8)]
    },
    "m15_forward_as_attachment": {
        "attachments": [(None, "message/rfc822", None)],
        "body": "FYI, see below.",
    },
    "m16_inline_forward": {
        "direction": "outbound",
        "body_contains": ["Forwarded message", "The notes."],
    },
    "m17_auto_submitted_reply": {
        "direction": None,
        "automatic": "auto_reply",
        "thread": "m01_support_request",
        "ticket": None,
    },
    "m18_out_of_office": {"direction": None, "automatic": "auto_reply", "ticket": None},
    "m19_bounce_dsn": {"direction": None, "automatic": "bounce", "ticket": None},
    "m20_bounce_postmaster": {"direction": None, "automatic": "bounce", "ticket": None},
    "m21_outlook_original_message": {
        "thread": "m14_two_attachments_rfc2231",
        "body": "Got them, thanks.",
        "quoted": True,
    },
    "m22_topic_start": {"direction": "inbound"},
    "m23_subject_fallback_reply": {"direction": "outbound", "thread": "m22_topic_start"},
    "m24_unknown_sender_support": {
        "ticket": "m24_unknown_sender_support",
        "contacts": ["Linus"],
        "lead": True,
    },
    "m25_cc_participants": {
        "contacts": ["Ada", "Grace"],
        "participants": [
            ("from", "ada@customer.example"),
            ("to", "bob@acme.example"),
            ("cc", "grace@navy.example"),
            ("cc", "carol@acme.example"),
        ],
    },
    "m26_half_hour_zone": {"occurred_at": "2026-11-09T10:00:00+00:00"},
    "m27_no_sender": {"status": "rejected", "reason": "sender"},
    "m28_not_a_message": {"status": "rejected", "reason": "header"},
    "m29_unknown_charset": {"status": "rejected", "reason": "charset"},
    "m30_no_date": {"status": "rejected", "reason": "Date"},
    "m31_received_date_only": {"occurred_at": "2026-11-10T08:00:00+00:00"},
    "m32_inline_answers": {"thread": "m06_html_only", "body": "Make it 4.\nFine.", "quoted": True},
    "m33_uppercase_address": {"contacts": ["Ada"]},
}
