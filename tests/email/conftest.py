"""Fixtures of the email tests: a throwaway Dovecot IMAP server on loopback."""

from __future__ import annotations

import imaplib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@attrs.frozen
class ImapServer:
    """Connection info of the test IMAP server, and its user's Maildir."""

    host: str
    port: int
    user: str
    password: str
    maildir: Path

    def connect(self) -> imaplib.IMAP4:
        """A logged-in client."""
        client = imaplib.IMAP4(self.host, self.port, timeout=30)
        client.login(self.user, self.password)
        return client


@pytest.fixture(scope="session")
def imap_server() -> Iterator[ImapServer]:
    """A Dovecot server started with scripts/imap-start.sh (installed when missing); the
    test fails with the script's output when it cannot start."""
    # not pytest's tmp_path: its parent folders are private to the user running the tests,
    # and the server's mail processes run as the unprivileged "mail" user
    workdir = Path(tempfile.mkdtemp(prefix="crmkit-imap-"))
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "imap-start.sh"), str(workdir)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"the IMAP server did not start:\n{proc.stdout}\n{proc.stderr}")
    info = dict(line.split("=", 1) for line in proc.stdout.splitlines() if line.startswith("IMAP_"))
    try:
        yield ImapServer(
            host=info["IMAP_HOST"],
            port=int(info["IMAP_PORT"]),
            user=info["IMAP_USER"],
            password=info["IMAP_PASSWORD"],
            maildir=Path(info["IMAP_MAILDIR"]),
        )
    finally:
        subprocess.run(
            ["bash", str(SCRIPTS / "imap-stop.sh"), str(workdir)],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
        shutil.rmtree(workdir, ignore_errors=True)
