"""Every script in examples/ runs to completion as a user would run it."""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

import crmkit
from crmkit.testing.conformance import ConformanceSuite

ROOT = pathlib.Path(__file__).resolve().parent.parent
CUSTOM_BACKEND = ROOT / "examples" / "custom_backend"
EXAMPLES = [*sorted((ROOT / "examples").glob("*.py")), CUSTOM_BACKEND / "jsonkv.py"]


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script: pathlib.Path, tmp_path: pathlib.Path) -> None:
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip(), f"{script.name} printed nothing"


def _jsonkv() -> ModuleType:
    """The custom backend example, imported from its file as a third-party module."""
    module = sys.modules.get("jsonkv")
    if module is None:
        spec = importlib.util.spec_from_file_location("jsonkv", CUSTOM_BACKEND / "jsonkv.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["jsonkv"] = module
        spec.loader.exec_module(module)
    return module


class TestCustomBackendExample(ConformanceSuite):
    """examples/custom_backend passes the shipped conformance suite, as its
    test_jsonkv.py claims."""

    @pytest.fixture
    def crm(self) -> Iterator[crmkit.CRM]:
        """A fresh CRM on the example's jsonkv backend."""
        crm = crmkit.CRM(_jsonkv().open_backend("jsonkv://"))
        yield crm
        crm.close()
