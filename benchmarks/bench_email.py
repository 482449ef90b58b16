"""Email capture of an mbox: messages per second against the standard library's parsing.

Run with ``python benchmarks/bench_email.py [--messages 10000] [--backend memory|sqlite]``.
An mbox of ``--messages`` generated messages is written on the fly (threads of a
customer's request, an agent's reply with quoted text and a follow-up; a third are
multipart/alternative with HTML, one in ten carries an attachment, one in twenty has a
Latin-1 body), then ingested with ``crm.email.ingest_mailbox`` into a fresh CRM (support
address configured, so requests open tickets and replies record first responses).

Baseline measured in the same run: reading the same mbox with ``mailbox.mbox`` and parsing
every message with ``email`` (``policy.default``: headers, addresses, body text) and
nothing else. Reports messages/second of both and their ratio; also the rate of a second,
all-duplicate ingest. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import mailbox
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from _timing import timed

import crmkit

SUPPORT = "support@acme.example"


def message(i: int) -> bytes:
    """Message ``i`` of the generated mailbox (deterministic)."""
    thread, step = divmod(i, 3)
    customer = f"customer{thread % 500}@client{thread % 37}.example"
    mid = f"<t{thread}-{step}@bench.example>"
    subject = f"Order {thread} question"
    headers = [f"Message-ID: {mid}", f"Date: Mon, 02 Nov 2026 {step + 9:02d}:{i % 60:02d}:00 +0100"]
    if step == 1:
        headers += [
            f"From: Agent <agent{thread % 7}@acme.example>",
            f"To: {customer}",
            f"Subject: Re: {subject}",
        ]
    else:
        headers += [
            f"From: Customer {thread} <{customer}>",
            f"To: {SUPPORT}",
            f"Subject: {'Re: ' if step else ''}{subject}",
        ]
    if step:
        refs = " ".join(f"<t{thread}-{s}@bench.example>" for s in range(step))
        headers += [f"In-Reply-To: <t{thread}-{step - 1}@bench.example>", f"References: {refs}"]
    text = (
        f"Hello,\n\nline {i} of the conversation about order {thread}.\n\n"
        "On Monday, someone wrote:\n> earlier text\n> more earlier text\n\n-- \nSignature\n"
    )
    if i % 20 == 7:
        body = [
            b"Content-Type: text/plain; charset=iso-8859-1",
            b"",
            (text + "Caf\u00e9 cr\u00e8me\n").encode("latin-1"),
        ]
    elif i % 10 == 3:
        body = [
            b'Content-Type: multipart/mixed; boundary="b"',
            b"",
            b"--b",
            b"Content-Type: text/plain; charset=utf-8",
            b"",
            text.encode(),
            b"--b",
            b'Content-Type: application/pdf; name="a.pdf"',
            b'Content-Disposition: attachment; filename="a.pdf"',
            b"Content-Transfer-Encoding: base64",
            b"",
            b"JVBERi0xLjQKJSVFT0YK" * 20,
            b"--b--",
        ]
    elif i % 3 == 0:
        html = "<html><body><p>" + text.replace("\n", "<br>") + "</p></body></html>"
        body = [
            b'Content-Type: multipart/alternative; boundary="a"',
            b"",
            b"--a",
            b"Content-Type: text/plain; charset=utf-8",
            b"",
            text.encode(),
            b"--a",
            b"Content-Type: text/html; charset=utf-8",
            b"",
            html.encode(),
            b"--a--",
        ]
    else:
        body = [b"Content-Type: text/plain; charset=utf-8", b"", text.encode()]
    head = [h.encode() for h in headers] + [b"MIME-Version: 1.0"]
    return b"\n".join(head + body) + b"\n"


def write_mbox(path: pathlib.Path, count: int) -> None:
    """An mbox of ``count`` generated messages."""
    box = mailbox.mbox(str(path))
    box.lock()
    for i in range(count):
        box.add(message(i))
    box.flush()
    box.unlock()
    box.close()


def baseline(path: pathlib.Path) -> int:
    """The standard library alone: read every message, its headers, addresses and text."""
    box = mailbox.mbox(str(path), factory=None, create=False)
    n = 0
    for key in box.iterkeys():
        msg = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        str(msg["Subject"]), msg["From"].addresses, str(msg["Date"])
        part = msg.get_body(preferencelist=("plain", "html"))
        if part is not None:
            part.get_content()
        n += 1
    box.close()
    return n


def main() -> None:
    """Write the mbox, time the baseline and the capture, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--backend", choices=["memory", "sqlite"], default="memory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "bench.mbox"
        write_mbox(path, args.messages)
        url = "memory://" if args.backend == "memory" else f"sqlite:///{tmp}/crm.db"
        crm = crmkit.connect(url)
        crm.create_schema()
        crm.email.configure(own_domains=["acme.example"], support_addresses=[SUPPORT])
        raw = timed(lambda: baseline(path))
        holder: list[crmkit.email.IngestReport] = []
        first = timed(lambda: holder.append(crm.email.ingest_mailbox(path)))
        report = holder[0]
        again = timed(lambda: holder.append(crm.email.ingest_mailbox(path)))
        n = args.messages
        print(f"email capture of a {n}-message mbox on {args.backend}")
        print(f"  baseline (mailbox + email parsing): {n / raw:10.0f} messages/s")
        print(
            f"  crm.email.ingest_mailbox:           {n / first:10.0f} messages/s "
            f"(ratio to baseline {raw / first:.2f})"
        )
        print(f"  second ingest (all duplicates):     {n / again:10.0f} messages/s")
        print(
            f"  created={report.created} tickets_opened={report.tickets_opened} "
            f"rejected={len(report.rejected)} duplicates_2nd={holder[1].duplicates}"
        )
        crm.close()


if __name__ == "__main__":
    main()
