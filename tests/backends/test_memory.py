"""The conformance suite on the in-memory backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import crmkit
from crmkit.testing.conformance import ConformanceSuite


class TestMemory(ConformanceSuite):
    """Every conformance test, on ``memory://``."""

    @pytest.fixture
    def crm(self) -> Iterator[crmkit.CRM]:
        """A fresh in-memory CRM per test."""
        crm = crmkit.connect("memory://")
        yield crm
        crm.close()
