"""crmkit's conformance suite on the jsonkv backend: ``pytest test_jsonkv.py``.

A backend author's whole test module: subclass the suite and give it a fresh CRM per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jsonkv import open_backend

import crmkit
from crmkit.testing.conformance import ConformanceSuite


class TestJsonKV(ConformanceSuite):
    """Every conformance test, on ``jsonkv://``."""

    @pytest.fixture
    def crm(self) -> Iterator[crmkit.CRM]:
        """A fresh, empty CRM on the jsonkv backend."""
        crm = crmkit.CRM(open_backend("jsonkv://"))
        yield crm
        crm.close()
