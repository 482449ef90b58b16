"""Shared fixtures: a real PostgreSQL server for the SQL backend's tests.

``postgres_url`` is ``$CRMKIT_POSTGRES_URL`` when set. Otherwise the project's own
``scripts/pg-start.sh`` starts a throwaway server for the test session (installing Debian's
``postgresql`` with apt-get when missing, which needs root as in CI) and
``scripts/pg-stop.sh`` stops it when the session ends.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL of a PostgreSQL database the tests may freely create tables in."""
    given = os.environ.get("CRMKIT_POSTGRES_URL")
    if given:
        yield given
        return
    # not under pytest's basetemp: that is private to root (0700) and the server runs as
    # the postgres user; pg-start.sh hands this directory over to it
    datadir = tempfile.mkdtemp(prefix="crmkit-pg-")
    try:
        started = subprocess.run(
            ["bash", str(SCRIPTS / "pg-start.sh"), datadir],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if started.returncode != 0:
            pytest.fail(f"could not start PostgreSQL:\n{started.stdout}\n{started.stderr}")
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(
            ["bash", str(SCRIPTS / "pg-stop.sh"), datadir],
            capture_output=True,
            timeout=120,
            check=False,
        )
        shutil.rmtree(datadir, ignore_errors=True)
