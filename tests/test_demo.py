"""The README's demo (``python -m crmkit.demo``) runs and shows what it says it shows."""

from __future__ import annotations

import pathlib

import pytest

from crmkit import demo


@pytest.mark.parametrize("url", ["memory://", demo.DEFAULT_URL, "mongomock://"])
def test_demo_runs_and_shows_each_capability(
    url: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # the default URL is a file in the current directory
    (tmp_path / "crmkit-demo.db").write_text("an old demo database, replaced on every run")
    assert demo.main([url] if url != demo.DEFAULT_URL else []) == 0
    out = capsys.readouterr().out
    assert f"crmkit demo on {url}" in out
    assert "ada@acme.com                     +442079460958" in out  # typed messy, stored clean
    assert "matched on email, phone" in out
    assert "merged into Ada Lovelace: ada@acme.com, ada@home.org.uk" in out
    assert "refused: deal 'Globex pilot' cannot enter stage 'proposal': missing close_date" in out
    assert "proposal -> won" in out
    assert "weighted   24000.00 EUR" in out  # 48000 x 0.5 in the proposal stage
    assert "contacts before 4, after 4" in out
    assert "1 high-priority ticket(s) open." in out
