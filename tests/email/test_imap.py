"""IMAP capture against a real Dovecot server on loopback, incremental by UID.

(``tests/email`` is not a package: it would shadow the standard library's ``email``.)
"""

from __future__ import annotations

import time
from typing import Any

import crmkit
from crmkit.testing.email_corpus import CORPUS, OWN_DOMAINS, SUPPORT


def test_imap_ingest_is_incremental_by_uid(imap_server: Any) -> None:
    """Messages appended to the server's INBOX are ingested once: a second run from the
    last UID sees only the new ones, and message flags are left untouched."""
    crm = crmkit.connect("memory://")
    crm.email.configure(own_domains=OWN_DOMAINS, support_addresses=[SUPPORT])
    names = sorted(CORPUS)
    client = imap_server.connect()
    try:
        client.create("crm-test")
        for name in names[:10]:
            status, _ = client.append("crm-test", None, time.time(), CORPUS[name])
            assert status == "OK"
        first = crm.email.ingest_imap(client, folder="crm-test")
        assert first.created == 10
        assert not first.rejected
        assert first.last_uid is not None
        for name in names[10:]:
            client.append("crm-test", None, time.time(), CORPUS[name])
        second = crm.email.ingest_imap(client, folder="crm-test", since_uid=first.last_uid)
        assert second.total == len(names) - 10
        assert len(second.rejected) == 4
        assert all(r.source.startswith("imap:crm-test:") for r in second.rejected)
        third = crm.email.ingest_imap(client, folder="crm-test", since_uid=second.last_uid)
        assert third.total == 0
        assert third.last_uid == second.last_uid
        again = crm.email.ingest_imap(client, folder="crm-test")
        assert again.duplicates == len(names) - 4
        assert again.created == 0
        client.select("crm-test", readonly=True)
        status, data = client.uid("SEARCH", None, "UNSEEN")
        assert status == "OK"
        assert len((data[0] or b"").split()) == len(names)
        ticket = crm.tickets.first()
        assert ticket is not None
        assert ticket.first_response_at is not None
    finally:
        client.delete("crm-test")
        client.logout()
    crm.close()
