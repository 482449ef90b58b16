"""Every ``python`` code block in the docs and the README runs, top to bottom, per page."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: pathlib.Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run(
    page: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # snippets that create files do so in a scratch folder
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for number, code in enumerate(blocks(page), start=1):
        try:
            exec(compile(code, f"{page.name} block {number}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{page.name}, code block {number} failed: {exc!r}") from exc
        # pytest-style snippets define test functions: run them with a fresh CRM
        for name, value in list(namespace.items()):
            if name.startswith("test_") and callable(value):
                import crmkit

                value(crmkit.connect("memory://"))
                del namespace[name]


def test_docs_have_examples() -> None:
    for page in PAGES:
        if page.parent.name == "docs":
            assert blocks(page), f"{page.name} has no runnable example"
