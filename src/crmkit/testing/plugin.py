"""The crmkit pytest plugin: a ``crm`` fixture on a fresh in-memory CRM.

Installed through the ``pytest11`` entry point, so any project that installs crmkit can
write::

    def test_signup(crm):
        ada = crm.contacts.add(crmkit.Contact(first_name="Ada"))
        assert crm.contacts.count() == 1

The fixture is function-scoped: every test gets its own empty ``memory://`` CRM, closed
afterwards. A test class or module may override ``crm`` (the conformance suite does, per
backend).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# the shipped suite lives in an installed package: ask pytest to rewrite its asserts so
# that failures show the compared values (must happen before the modules are imported)
pytest.register_assert_rewrite("crmkit.testing.conformance", "crmkit.testing.reference")

import crmkit  # noqa: E402

__all__ = ["crm"]


@pytest.fixture
def crm() -> Iterator[crmkit.CRM]:
    """A fresh, empty CRM on ``memory://``, closed after the test."""
    instance = crmkit.connect("memory://")
    try:
        yield instance
    finally:
        instance.close()
